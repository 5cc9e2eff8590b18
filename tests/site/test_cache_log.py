"""Cache databases close without SQLite's closing checkpoint, and lose nothing by it
(``bridge.site.cache_log``)."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest

from bridge import config as config_mod
from bridge.site import build as site_build
from bridge.site import cache_log
from bridge.site.cache_log import close_keeping_log


def _wal_db(path: Path) -> sqlite3.Connection:
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    with con:
        con.execute("CREATE TABLE t (x)")
        con.execute("INSERT INTO t VALUES (randomblob(5000))")
    return con


def test_the_log_stays_and_every_commit_is_read_back(tmp_path: Path) -> None:
    kept, plain = tmp_path / "kept.sqlite3", tmp_path / "plain.sqlite3"
    close_keeping_log(_wal_db(kept), kept)
    _wal_db(plain).close()
    assert Path(f"{kept}-wal").exists()  # no checkpoint, no new log to sync next time
    assert not Path(f"{plain}-wal").exists()  # what a plain close does
    with contextlib.closing(sqlite3.connect(kept)) as con:
        assert con.execute("SELECT count(*) FROM t").fetchone() == (1,)
        with con:
            con.execute("INSERT INTO t VALUES (1)")
    with contextlib.closing(sqlite3.connect(kept)) as con:
        assert con.execute("SELECT count(*) FROM t").fetchone() == (2,)


def test_a_build_leaves_its_caches_logs_and_the_next_build_reads_them(site: Path) -> None:
    config = config_mod.load(site)
    site_build.build(config)
    site_build.forget_resident_state()  # closes the parse cache as a command's exit does
    for name in ("parsed.sqlite3", "markdown.sqlite3"):
        assert (config.cache_dir / f"{name}-wal").exists(), name
    with contextlib.closing(sqlite3.connect(config.cache_dir / "parsed.sqlite3")) as con:
        (rows,) = con.execute("SELECT count(*) FROM items").fetchone()
    sources = [*(site / "content/posts").glob("*.md"), *(site / "content/pages").glob("*.md")]
    assert rows == len(sources) > 0
    assert site_build.build(config).written == 0


def test_a_large_log_is_checkpointed_and_removed_at_close(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "big.sqlite3"
    monkeypatch.setattr(cache_log, "LOG_LIMIT", 1000)  # the test's 5 kB row is "large"
    close_keeping_log(_wal_db(path), path)
    assert not Path(f"{path}-wal").exists()
