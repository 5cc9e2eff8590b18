"""Run the daemon app as ``indiebridge serve --no-build`` does: ``python -m
benchmarks.daemon_server SITE PORT`` (loopback only)."""

from __future__ import annotations

import sys
from pathlib import Path


def main() -> None:
    import uvicorn

    from bridge import config
    from bridge.daemon.app import create_app

    site, port = Path(sys.argv[1]), int(sys.argv[2])
    app = create_app(config.load(site))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
