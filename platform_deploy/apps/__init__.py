"""The apps layer: each app's own settings and steps, one module per app."""
