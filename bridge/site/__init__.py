"""The build: content/ in, static files out. No network, no daemon."""
