"""The long-running process: the ASGI app, its workers, watch and live reload, feed bridging."""
