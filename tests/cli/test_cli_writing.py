"""``indiebridge watch`` and ``indiebridge import`` as a person runs them."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from bridge.cli import site as site_commands
from bridge.cli import writing

REPO = Path(__file__).resolve().parents[2]
FEEDS = Path(__file__).resolve().parents[1] / "data" / "feeds"
POST = "content/posts/2026-01-10-first-article.md"
# The commands as the main group will carry them, without depending on bridge/cli's wiring.
commands = [site_commands.watch, *writing.commands]
GROUP = click.Group("indiebridge", commands={c.name or "": c for c in commands})
LAUNCH = (
    "import sys, click; from bridge.cli.site import watch; from bridge.cli.writing import "
    "commands; click.Group('indiebridge', commands={c.name: c for c in [watch, *commands]})"
    "(sys.argv[1:])"
)


def test_commands_are_named_for_the_main_group() -> None:
    assert [c.name for c in commands] == ["watch", "new", "import"]
    for command in commands:
        assert "--site" in command.get_help(click.Context(command))


def test_import_prints_each_file_and_each_skip(site: Path) -> None:
    runner = CliRunner()
    first = runner.invoke(GROUP, ["import", str(FEEDS / "rss2.xml"), "--site", str(site)])
    assert first.exit_code == 0, first.output
    lines = first.output.splitlines()
    assert lines[0] == "wrote content/posts/2024-01-15-fish-and-chips.md"
    assert "Imported 4 post(s), 0 page(s), 0 draft(s), 0 private" in first.output

    again = runner.invoke(GROUP, ["import", str(FEEDS / "rss2.xml"), "--site", str(site)])
    assert again.exit_code == 0, again.output
    skipped = [line for line in again.output.splitlines() if line.startswith("skipped ")]
    assert len(skipped) == 4
    assert skipped[0] == (
        "skipped 'Fish & Chips – a review': already imported as "
        "content/posts/2024-01-15-fish-and-chips.md"
    )
    assert "Imported 0 post(s)" in again.output


def test_import_errors_are_one_line(site: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(GROUP, ["import", str(tmp_path / "nope.xml"), "--site", str(site)])
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1
    result = runner.invoke(GROUP, ["import", "http://127.0.0.1:9/feed.xml", "--site", str(site)])
    assert result.exit_code == 1
    assert "127.0.0.1" in result.output and result.output.count("\n") == 1
    result = runner.invoke(GROUP, ["import", str(FEEDS / "rss2.xml"), "--site", str(tmp_path)])
    assert result.exit_code == 1 and "site.toml" in result.output


def _ctrl_c_as_in_a_terminal() -> None:
    """Run in the child before exec: a shell starts background jobs (``&``, ``nohup``)
    with SIGINT ignored, children inherit that, and Python then installs no
    KeyboardInterrupt handler; a person at a terminal has SIGINT at its default."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Watch:
    """``indiebridge watch`` in its own process, its output read line by line."""

    def __init__(self, site: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", LAUNCH, "watch", "--site", str(site)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
            preexec_fn=_ctrl_c_as_in_a_terminal,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def expect(self, prefix: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line starting {prefix!r}; got {self.seen}") from None
            self.seen.append(line)
            if line.startswith(prefix):
                return line

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(15)
        self.reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return code


def test_watch_rebuilds_on_save_and_stops_on_ctrl_c(site: Path) -> None:
    watch = Watch(site)
    try:
        watch.expect("Watching ")
        first = watch.expect("rebuilt in ")
        assert "file(s) changed" in first

        post = site / POST
        post.write_text(
            post.read_text(encoding="utf-8").replace("second paragraph", "2nd paragraph")
        )
        line = watch.expect("rebuilt in ")
        assert "posts/first-article/index.html" in line
        page = (site / "public/posts/first-article/index.html").read_text(encoding="utf-8")
        assert "2nd paragraph" in page
        assert "livereload" not in page  # no server in build-only mode

        post.write_text(post.read_text(encoding="utf-8").replace("title:", "title: [oops"))
        line = watch.expect("build failed: ")
        assert line.startswith(f"build failed: {POST}:")
        assert "2nd paragraph" in (site / "public/posts/first-article/index.html").read_text()
    finally:
        code = watch.stop()
    assert code == 0, watch.seen
    assert watch.seen[-1] == "Stopped watching."


def test_watch_with_auto_publish_publishes_after_each_rebuild(
    make_site: Callable[..., Path],
) -> None:
    folder = make_site({"auto_publish": True})
    watch = Watch(folder)
    try:
        watch.expect("rebuilt in ")
        line = watch.expect("auto_publish: ")
        assert "recorded" in line or "new" in line
        watch.expect("auto_publish: delivered 0")
        (folder / POST).write_text(
            (folder / POST).read_text(encoding="utf-8").replace("second", "other")
        )
        watch.expect("rebuilt in ")
        watch.expect("auto_publish: ")
    finally:
        assert watch.stop() == 0, watch.seen


@pytest.mark.parametrize("args", [["watch", "--help"], ["import", "--help"]])
def test_help_names_the_site_option(args: list[str]) -> None:
    result = CliRunner().invoke(GROUP, args)
    assert result.exit_code == 0 and "--site" in result.output
