"""HTTP routes, one module per area; each exposes a router factory taking the settings."""
