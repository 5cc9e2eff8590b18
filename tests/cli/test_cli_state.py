"""``indiebridge vacuum``: prune by the retention rules, compact, and say how big the state is."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from click.testing import CliRunner

from bridge import config as config_mod
from bridge.cli import main
from bridge.db import Database
from bridge.federation.inbox import retention


def test_vacuum_prunes_processed_bodies_and_prints_the_sizes(site: Path) -> None:
    config = config_mod.load(site)
    db = Database(config.db_path)
    old = time.time() - retention.DEDUPE_SECONDS - 60
    with db.tx() as con:
        con.execute(
            "INSERT INTO inbox(id, type, actor, body, received, status) VALUES (?,?,?,?,?,?)",
            (
                "https://remote.example/a/1",
                "Like",
                "https://remote.example/u",
                "x" * 500_000,
                time.time(),
                "done",
            ),
        )
        con.execute(
            "INSERT INTO inbox(id, type, actor, body, received, status) VALUES (?,?,?,?,?,?)",
            ("https://remote.example/a/2", "Like", "https://remote.example/u", "{}", old, "done"),
        )
    db.close()

    result = CliRunner().invoke(main, ["vacuum", "--site", str(site)])
    assert result.exit_code == 0, result.output
    line = result.output.strip()
    assert line.startswith("state: ") and " -> " in line
    assert "2 bodies and 1 inbox rows pruned" in line  # both bodies; the old row entirely
    con = sqlite3.connect(config.db_path)
    try:
        rows = con.execute("SELECT id, body FROM inbox").fetchall()
    finally:
        con.close()
    assert rows == [("https://remote.example/a/1", "")]  # id kept for dedupe, body dropped
