"""``indiebridge publish`` with nothing new: it says so without loading what sending needs,
and it still delivers what the queue holds."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from bridge import config as config_mod
from bridge.cli import main
from bridge.db import Database
from bridge.federation import delivery
from bridge.site import build as site_build
from bridge.site import build_stamp

REPO = Path(__file__).resolve().parents[2]
NOTHING = "Nothing to send: no post or profile changed since the last publish."
ZERO = "Delivered 0, retrying later 0, failed 0, gone 0"

# Runs publish in a fresh interpreter that refuses to read a private key file once the
# build is done (the build itself shows the public key), then names which of the sending
# modules were imported.
CHILD = """
import sys
from bridge import keys
from bridge.site import build as site_build
done = []
real_build, real_read = site_build.build, keys._read_private
def build(*args, **kwargs):
    result = real_build(*args, **kwargs)
    done.append(True)
    return result
def read(*args, **kwargs):
    if done:
        raise AssertionError("a private key was read after the build")
    return real_read(*args, **kwargs)
site_build.build, keys._read_private = build, read
from bridge.cli import main
main(["publish", "--site", sys.argv[1]], standalone_mode=False)
assert done
sending = ("httpx", "bridge.daemon.services", "bridge.federation.delivery",
           "bridge.federation.outbox", "bridge.federation.context")
print("loaded:", sorted(m for m in sending if m in sys.modules))
"""


def _publish(folder: Path) -> str:
    result = CliRunner().invoke(main, ["publish", "--no-webmentions", "--site", str(folder)])
    assert result.exit_code == 0, result.output
    return result.output


def test_nothing_new_loads_neither_keys_nor_the_sending_stack(
    make_site: Callable[..., Path],
) -> None:
    folder = make_site()
    _publish(folder)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(folder)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert NOTHING in done.stdout and ZERO in done.stdout
    assert "loaded: []" in done.stdout


def test_nothing_new_still_delivers_what_is_due(make_site: Callable[..., Path]) -> None:
    folder = make_site()
    _publish(folder)
    config = config_mod.load(folder)
    db = Database(config.db_path)
    try:
        activity = {"id": f"{config.base_url}/ap/test-activity", "type": "Create"}
        delivery.enqueue(db, activity, ["http://127.0.0.1:9/inbox"], now=time.time() - 1)
        output = _publish(folder)
        assert NOTHING in output
        assert ZERO not in output  # the due row was attempted
        row = db.one("SELECT state, tries FROM deliveries")
        assert row is not None and (row["state"], row["tries"]) != ("queued", 0)
        assert NOTHING in _publish(folder)
    finally:
        db.close()


def test_dry_run_with_nothing_new_says_so_and_delivers_nothing(
    make_site: Callable[..., Path],
) -> None:
    folder = make_site()
    _publish(folder)
    result = CliRunner().invoke(main, ["publish", "--dry-run", "--site", str(folder)])
    assert result.exit_code == 0, result.output
    assert NOTHING in result.output and "Delivered" not in result.output


def test_a_post_without_links_does_not_load_the_microformats_parser(
    make_site: Callable[..., Path],
) -> None:
    """Sending webmentions needs no mf2 parser (that is the receiving side's): a new post
    whose text links nowhere is published without importing it."""
    folder = make_site({"federate_since": dt.datetime(2020, 1, 1, tzinfo=dt.UTC)})
    _publish(folder)
    (folder / "content" / "posts" / "plain-words.md").write_text(
        f"---\ntitle: Plain words\ndate: {time.strftime('%Y-%m-%d')}\n---\nNo links at all.\n",
        "utf-8",
    )
    code = (
        "import sys\n"
        "from bridge.cli import main\n"
        "main(['publish', '--site', sys.argv[1]], standalone_mode=False)\n"
        "print('mf2py loaded:', 'mf2py' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(folder)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "1 new, 0 updated, 0 deleted" in done.stdout
    assert "mf2py loaded: False" in done.stdout


def _settle_stamp(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Trust stats however fresh (``build_stamp.RACY_NS``), and build until a build
    stops at its stamp."""
    monkeypatch.setattr(build_stamp, "RACY_NS", 0)
    runner = CliRunner()
    for _ in range(2):
        assert runner.invoke(main, ["build", "--site", str(folder)]).exit_code == 0


def test_nothing_new_at_a_settled_stamp_loads_no_post(
    make_site: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = make_site()
    _publish(folder)
    _settle_stamp(folder, monkeypatch)

    def no_loading(*args: object, **kwargs: object) -> None:
        raise AssertionError("a post was loaded")

    monkeypatch.setattr(site_build, "load_content", no_loading)
    output = _publish(folder)
    assert NOTHING in output and ZERO in output


def test_a_due_delivery_at_a_settled_stamp_publishes_the_built_posts(
    make_site: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A publish that has something to do after a build stopped at its stamp gets the
    posts from a full build: nothing is taken for deleted."""
    folder = make_site()
    _publish(folder)
    _settle_stamp(folder, monkeypatch)
    config = config_mod.load(folder)
    db = Database(config.db_path)
    try:
        live = db.one("SELECT count(*) AS n FROM published WHERE state = 'live'")
        activity = {"id": f"{config.base_url}/ap/test-activity", "type": "Create"}
        delivery.enqueue(db, activity, ["http://127.0.0.1:9/inbox"], now=time.time() - 1)
        output = _publish(folder)
        assert NOTHING in output and ZERO not in output
        after = db.one("SELECT count(*) AS n FROM published WHERE state = 'live'")
        assert live is not None and after is not None and live["n"] == after["n"] > 0
    finally:
        db.close()
