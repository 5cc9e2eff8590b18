"""``python -m benchmarks``: build, delivery, inbox and start-up figures, side by side.

    python -m benchmarks                    # N = 1,000 and 10,000, full delivery and inbox
    python -m benchmarks --short            # CI: N = 200, 500 deliveries, 3 s of inbox load
    python -m benchmarks --only build --n 1000
    python -m benchmarks --baseline REV     # also run build and delivery on commit REV

Everything runs on this machine in this run, on loopback only; the table (Markdown) goes
to stdout and to benchmarks/work/results.md, progress to stderr.  Nothing passes or
fails on time: targets are printed beside the figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import common, corpus

SECTIONS = ("build", "delivery", "inbox", "startup", "commands")


def startup(table: common.Table) -> None:
    cmd = (
        ["indiebridge", "--help"]
        if common.have("indiebridge")
        else [sys.executable, "-m", "bridge", "--help"]
    )
    times = []
    for _ in range(7):
        r = common.run(cmd)
        times.append(r.seconds)
    table.add(
        "startup",
        "indiebridge --help (median of 7)",
        common.seconds(statistics.median(times)),
        "target < 0.3 s",
    )


def baseline_checkout(rev: str) -> Path:
    """A worktree of ``rev`` under benchmarks/work, for its bridge package."""
    path = common.WORK / f"baseline-{rev}"
    if not path.exists():
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(path), rev],
            cwd=common.ROOT,
            check=True,
            capture_output=True,
        )
    return path


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--short", action="store_true", help="CI mode: small and quick")
    parser.add_argument("--n", help="comma-separated post counts (default 1000,10000)")
    parser.add_argument("--only", choices=SECTIONS, action="append", help="run only these")
    parser.add_argument("--deliveries", help="comma-separated fan-out sizes")
    parser.add_argument("--inbox-seconds", type=float)
    parser.add_argument("--baseline", help="git revision to compare build and delivery with")
    parser.add_argument("--no-peers", action="store_true", help="skip Pelican and Hugo")
    args = parser.parse_args()

    sections = args.only or list(SECTIONS)
    sizes = (
        [int(x) for x in args.n.split(",")] if args.n else ([200] if args.short else [1000, 10000])
    )
    fanouts = (
        [int(x) for x in args.deliveries.split(",")]
        if args.deliveries
        else ([500] if args.short else [1000, 10000])
    )
    inbox_seconds = args.inbox_seconds or (3.0 if args.short else 8.0)
    common.WORK.mkdir(parents=True, exist_ok=True)
    table = common.Table()
    started = time.perf_counter()
    base = baseline_checkout(args.baseline) if args.baseline else None
    print(f"# {common.machine_line()}", file=sys.stderr)
    corpus.defer_deletes(common.WORK / ".trash")  # old trees deleted at exit (see there)

    if "startup" in sections:
        startup(table)
    if "build" in sections:
        from benchmarks import build

        for n in sizes:
            now = build.run(table, n, peers=not args.no_peers)
            if base is not None:
                before = build.run(
                    table, n, peers=False, src=base, label=f"before ({args.baseline})"
                )
                for key, what in (
                    ("cold", "cold build"),
                    ("cold_cpu", "cold build CPU"),
                    ("touch", "one-post rebuild"),
                    ("template", "template rebuild"),
                ):
                    table.add(
                        "build",
                        f"N={n} {what}: after / before",
                        common.ratio(now[key], before[key]),
                    )
    if "delivery" in sections:
        from benchmarks import delivery

        delivery.run(
            table,
            fanouts,
            flat=0 if args.short else 100_000,
            flat_seconds=20,
            src=base,
            label=args.baseline,
            followers=(10_000, 500) if args.short else delivery.FOLLOWERS,
        )
    if "commands" in sections:
        from benchmarks import commands

        commands.run(table, short=args.short)
        if base is not None:
            commands.run(table, short=args.short, src=base, label=f"before {args.baseline}")
    if "inbox" in sections:
        from benchmarks import inbox

        inbox.run(table, inbox_seconds, rate=0 if args.short else 2000)

    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    report = (
        f"{stamp} — {common.machine_line()}\n"
        f"(`python -m benchmarks {' '.join(sys.argv[1:])}`, "
        f"{time.perf_counter() - started:.0f} s)\n\n" + table.markdown() + "\n"
    )
    (common.WORK / "results.md").write_text(report, encoding="utf-8")
    print(report)


if __name__ == "__main__":
    main()
