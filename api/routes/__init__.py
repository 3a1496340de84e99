"""HTTP routes, one module per area; each parses its request, calls one service, returns."""
