"""Run one delivery worker over a state database until nothing is due (see test_delivery_crash).

Usage: ``python run_worker.py <state.sqlite3> <state dir with keys/> <key id>``.  Prints a
JSON line with the number of recovered rows and the run's counts.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import asdict
from pathlib import Path

from bridge import keys
from bridge.db import Database
from bridge.federation.delivery import DeliveryWorker


def main() -> None:
    db_path, state_dir, key_id = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    db = Database(db_path)
    try:
        worker = DeliveryWorker(
            db,
            private_key=keys.load(state_dir).rsa,
            key_id=key_id,
            allow_private=True,
            concurrency=8,
            per_host=4,
            timeout=5.0,
        )
        recovered = worker.recover()
        print(json.dumps({"recovered": recovered}), flush=True)
        stats = asyncio.run(worker.run_until_idle())
        print(json.dumps(asdict(stats)), flush=True)
    finally:
        db.close()


if __name__ == "__main__":
    main()
