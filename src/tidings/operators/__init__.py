"""The operator's own keys: the operator API (connectors, routes) answers only to them."""
