"""Commands as a writer runs them: one-post ``build``, ``publish`` with nothing new, watch.

* one-post edit, then ``indiebridge build`` as a command (interpreter start-up, imports,
  key handling and the build), median of 11 edits, each to another post;
* ``indiebridge build`` with nothing changed, median of 3;
* ``indiebridge publish`` with nothing new: the corpus is published once first (no
  followers, no webmentions: every post is recorded, nothing is sent), then, once its
  outputs are older than the build stamp's racy window (2 s), the same command is timed
  once (the full no-op build that records the stamp) and then 3 more times (median);
  then ``indiebridge build`` on the same corpus, median of 3 (a build with nothing
  changed stops at its stamp, ``bridge.site.build_stamp``);
* watch mode, save -> reload event: ``SiteWatcher`` with its default debounce and a
  ``ReloadHub``, as ``serve --watch`` runs them, in a child process; from the moment a
  post is saved to the moment the hub broadcast the build that rewrote its page (whose
  text is then checked), median of 3.

Every command runs in a fresh child process with bytecode caching on (as an installed
package has it: ``PYTHONDONTWRITEBYTECODE`` is removed from the child's environment, and
one warm-up run writes the caches), so start-up is what a user sees.

    python -m benchmarks --only commands            # edit at 1,000 posts; publish, watch at 10,000
    python -m benchmarks --only commands --short    # all at 200 posts (CI, ~20 s)
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import common, corpus

EDITS = 11  # a noisy host moves single runs by 20 %: the median of more


_SRC: Path | None = None  # another checkout's bridge package (``--baseline``)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if _SRC is not None:
        env["PYTHONPATH"] = str(_SRC)
    return env


def _cli(*args: str) -> list[str]:
    """The installed ``indiebridge`` script beside this interpreter, for this checkout and
    ``--baseline``'s alike (``PYTHONPATH`` picks the package); not the one on ``PATH``,
    which may be a version manager's shell shim (pyenv's costs 50-200 ms a run)."""
    script = Path(sys.executable).with_name("indiebridge")
    if script.is_file():
        return [str(script), *args]
    return [sys.executable, "-m", "bridge", *args]


def _check(run: common.Run, what: str) -> common.Run:
    if run.returncode != 0:
        raise RuntimeError(f"{what} failed ({run.returncode}):\n{run.stderr[-3000:]}")
    return run


def _timed(
    args: list[str], what: str, *, cwd: Path, env: dict[str, str]
) -> tuple[common.Run, float]:
    """The run and its CPU time (user + system, the child and its descendants): on a
    machine other work shares, the CPU time moves far less than the wall time."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    run = _check(common.run(args, cwd=cwd, env=env), what)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return run, cpu


def _site(n: int) -> tuple[Path, list[Path]]:
    """A built corpus of N posts (generated and built once, then reused)."""
    root = common.WORK / f"commands-{n}"
    site = root / "indiebridge"
    if not (site / "public").is_dir():
        site = corpus.write_indiebridge(root / "indiebridge", list(corpus.posts(n)))
        print(f"# commands: cold build of {n} posts", file=sys.stderr, flush=True)
        _check(common.run(_cli("build"), cwd=site, env=_env(), timeout=3600), "cold build")
    posts = sorted((site / "content" / "posts").iterdir())
    return site, posts


def _median(values: list[float]) -> float:
    return statistics.median(values)


def one_post_build(table: common.Table, n: int) -> None:
    site, posts = _site(n)
    env = _env()
    _check(common.run(_cli("build"), cwd=site, env=env), "warm-up build")
    edits, edit_cpu = [], []
    stamp = int(time.time())
    for i in range(EDITS):
        corpus.edit_post(posts[len(posts) // 2 + i], stamp + i)
        run, cpu = _timed(_cli("build"), "build", cwd=site, env=env)
        edits.append(run.seconds)
        edit_cpu.append(cpu)
    noop = [_timed(_cli("build"), "build", cwd=site, env=env) for _ in "abc"]
    table.add(
        "commands",
        f"N={n} one-post edit -> `indiebridge build` (median of {EDITS})",
        common.seconds(_median(edits)),
        f"target < 0.3 s, stretch < 0.15 s (min {common.seconds(min(edits))}; "
        f"CPU {common.seconds(_median(edit_cpu))})",
    )
    table.add(
        "commands",
        f"N={n} `indiebridge build`, nothing changed (median of 3)",
        common.seconds(_median([r.seconds for r, _ in noop])),
        f"CPU {common.seconds(_median([c for _, c in noop]))}",
    )


def publish_noop(table: common.Table, n: int) -> None:
    site, _ = _site(n)
    env = _env()
    first = _check(
        common.run(_cli("publish", "--no-webmentions"), cwd=site, env=env, timeout=3600),
        "first publish",
    )
    # A stamp is trusted only once the outputs it lists are older than the racy window
    # (``build_stamp.RACY_NS``); the first publish after a build that wrote files does
    # the full no-op build that records it.  Both are reported: a blogger who publishes
    # twice within two seconds of a build pays the first figure.
    time.sleep(2.2)
    first_noop, first_cpu = _timed(_cli("publish"), "publish", cwd=site, env=env)
    times, cpus = [], []
    for _ in range(3):
        run, cpu = _timed(_cli("publish"), "publish", cwd=site, env=env)
        if "Nothing to send" not in run.stdout:
            raise RuntimeError(f"publish found something to send:\n{run.stdout[-2000:]}")
        times.append(run.seconds)
        cpus.append(cpu)
    table.add(
        "commands",
        f"N={n} `indiebridge publish`, nothing new (median of 3)",
        common.seconds(_median(times)),
        f"target < 1 s (CPU {common.seconds(_median(cpus))}; the first publish, "
        f"recording {n} posts: {common.seconds(first.seconds)}; the first with nothing "
        f"new, which records the build stamp: {common.seconds(first_noop.seconds)}, "
        f"CPU {common.seconds(first_cpu)})",
    )
    noop = [_timed(_cli("build"), "build", cwd=site, env=env) for _ in "abc"]
    table.add(
        "commands",
        f"N={n} `indiebridge build`, nothing changed (median of 3)",
        common.seconds(_median([r.seconds for r, _ in noop])),
        f"target < 1 s (CPU {common.seconds(_median([c for _, c in noop]))})",
    )


# The child: a watcher as `serve --watch` runs it; prints one JSON line per save.
WATCH_CHILD = """
import json, sys, threading, time
from pathlib import Path
from bridge import config as config_mod
from bridge.daemon.livereload import ReloadHub
from bridge.daemon.watch import SiteWatcher
site, saves, stamp = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
config = config_mod.load(site)
hub = ReloadHub()
built = threading.Event()
def on_build(outcome):
    hub.on_build(outcome)
    on_build.at = time.perf_counter()
    on_build.outcome = outcome
    built.set()
watcher = SiteWatcher(config, on_build, live_reload=False).start()
watcher.wait_idle(3600)
built.clear()
posts = sorted((site / "content" / "posts").iterdir())
for i in range(saves):
    time.sleep(0.5)
    post = posts[len(posts) // 2 - 1 - i]
    text = post.read_text(encoding="utf-8") + f"\\nSaved in watch mode, {stamp + i}.\\n"
    started, cpu = time.perf_counter(), time.process_time()
    post.write_text(text, encoding="utf-8")
    while True:
        if not built.wait(600):
            raise SystemExit("no build after a save")
        built.clear()
        outcome = on_build.outcome
        if isinstance(outcome, Exception):
            raise SystemExit(f"build failed: {outcome}")
        page = config.output_dir / "posts" / post.stem / "index.html"
        if f"{stamp + i}." in page.read_text(encoding="utf-8"):
            break
    print(json.dumps({"seconds": on_build.at - started, "build": outcome.seconds,
                      "cpu": time.process_time() - cpu, "written": outcome.written,
                      "delay": watcher.delay}), flush=True)
watcher.stop()
"""


def watch_save(table: common.Table, n: int) -> None:
    site, _ = _site(n)
    child = [sys.executable, "-c", WATCH_CHILD, str(site), "3", str(int(time.time()))]
    # From the site folder: ``python -c`` puts the current folder first on sys.path,
    # which from a checkout would import its bridge package instead of ``--baseline``'s.
    run = _check(common.run(child, cwd=site, env=_env(), timeout=3600), "watch mode")
    rows = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    table.add(
        "commands",
        f"N={n} watch mode: save -> reload event (median of 3)",
        common.seconds(_median([r["seconds"] for r in rows])),
        f"target < 0.5 s (in build(): {common.seconds(_median([r['build'] for r in rows]))}, "
        f"CPU {common.seconds(_median([r['cpu'] for r in rows]))}; "
        f"{common.seconds(rows[0]['delay'])} debounce included)",
    )


def run(table: common.Table, *, short: bool, src: Path | None = None, label: str = "") -> None:
    """All four measures; with ``src``, of that checkout's bridge package (rows named
    ``label``), on the same corpora (their state files are read by either version)."""
    global _SRC
    _SRC = src
    edit_n, large_n = (200, 200) if short else (1000, 10000)
    subprocess.run(_cli("--help"), env=_env(), capture_output=True, check=False)  # bytecode
    before = len(table.rows)
    try:
        one_post_build(table, edit_n)
        publish_noop(table, large_n)
        watch_save(table, large_n)
    finally:
        _SRC = None
    if label:
        table.rows[before:] = [(a, f"{b} ({label})", c, d) for a, b, c, d in table.rows[before:]]
