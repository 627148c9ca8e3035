"""HTTP plumbing the domains' APIs share: dependencies, problems, middleware, the
protocol, the OpenAPI schema."""
