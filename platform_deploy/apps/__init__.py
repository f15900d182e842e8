"""Layer 7, apps: each app's own settings and steps, one module per app."""
