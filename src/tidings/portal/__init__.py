"""The web portal: pages for a client's people (``/portal``) and the operator's staff
(``/operator``), rendered on the server from the domains' own services and permission
checks (docs/portal.md)."""
