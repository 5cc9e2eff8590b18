"""Run the daemon as ``indiebridge serve --no-build --production`` runs it: ``python -m
benchmarks.daemon_server SITE PORT [WORKERS]`` (loopback only).

Without WORKERS, ``serve``'s default layout: one HTTP worker per core (at most 4) on the
one socket and one background process (``bridge.daemon.processes``).  ``tree_peak_rss_mb``
adds up the peak RSS of the supervisor and every process under it; ``MemoryPeak`` samples
the summed PSS (and RSS) of the same processes while a load runs.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def command(site: Path, port: int, workers: int | None = None) -> list[str]:
    """The command line that starts the daemon for ``site`` on ``port``."""
    args = [sys.executable, "-m", "benchmarks.daemon_server", str(site), str(port)]
    return args + ([str(workers)] if workers else [])


def tree_peak_rss_mb(pid: int) -> float:
    """Sum of the peak RSS (``VmHWM``) of ``pid`` and its descendants, in MB.

    Forked processes share their parent's pages until they write them, so the sum counts
    shared pages once per process: an upper bound of what the daemon held at its peak.
    """
    total_kb = 0
    for p in [pid, *_descendants(pid)]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total_kb += int(line.split()[1])
        except OSError:
            continue
    return total_kb / 1024 if total_kb else float("nan")


def process_memory_kb(pids: list[int]) -> dict[int, tuple[int, int, int]]:
    """(RSS, PSS, private) of each of ``pids`` still alive, in KiB; private is the pages
    no other process maps (``Private_Clean`` + ``Private_Dirty``)."""
    out: dict[int, tuple[int, int, int]] = {}
    for p in pids:
        try:
            text = Path(f"/proc/{p}/smaps_rollup").read_text()
        except OSError:  # gone meanwhile, or not Linux
            continue
        got = dict.fromkeys(("Rss:", "Pss:", "Private_Clean:", "Private_Dirty:"), 0)
        for line in text.splitlines():
            name = line.split(None, 1)[0]
            if name in got:
                got[name] = int(line.split()[1])
        out[p] = (got["Rss:"], got["Pss:"], got["Private_Clean:"] + got["Private_Dirty:"])
    return out


class MemoryPeak(threading.Thread):
    """Samples ``process_memory_kb`` of ``pid`` and its descendants every ``interval``
    seconds until ``stop()``, as summed PSS (``/proc/PID/smaps_rollup`` divides each page
    among the processes that map it, so the sum counts a page shared after ``fork`` once,
    as the machine does; summed RSS counts it once per process); keeps the
    highest summed PSS and RSS seen (``pss_mb``, ``rss_mb``) and the process count then,
    and each process's CPU time (``cpu_by_role``)."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.pss_mb = 0.0
        self.rss_mb = 0.0
        self.processes = 0
        self._cpu: dict[int, tuple[str, float]] = {}
        self._start_cpu: dict[int, float] = {}
        self._done = threading.Event()
        self._at_peak: list[tuple[str, int, int]] = []  # (role, PSS, private) in KiB

    def peak_by_role(self) -> str:
        """PSS / private MB of each process at the peak sample, by role, largest first."""
        parts = sorted(self._at_peak, key=lambda item: -item[1])
        return ", ".join(f"{role} {pss / 1024:.0f}/{own / 1024:.0f}" for role, pss, own in parts)

    def cpu_by_role(self) -> dict[str, float]:
        """CPU seconds (user + system) each kind of process used while sampled, by its
        name (``/proc/PID/comm``, which ``serve`` sets per role); a process that exited
        counts up to its last sample."""
        out: dict[str, float] = {}
        for p, (comm, cpu) in self._cpu.items():
            role = comm.rstrip("0123456789").rstrip("-")
            out[role] = out.get(role, 0.0) + cpu - self._start_cpu.get(p, 0.0)
        return dict(sorted(out.items(), key=lambda item: -item[1]))

    def run(self) -> None:
        self.sample()
        self._start_cpu = {p: cpu for p, (_, cpu) in self._cpu.items()}
        while not self._done.is_set():
            self.sample()
            self._done.wait(self.interval)

    def sample(self) -> None:
        pids = [self.pid, *_descendants(self.pid)]
        for p in pids:
            try:
                comm = Path(f"/proc/{p}/comm").read_text().strip()
                fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            # utime and stime (fields 14 and 15 of stat), in clock ticks
            self._cpu[p] = (comm, (int(fields[11]) + int(fields[12])) / _TICKS)
        each = process_memory_kb(pids)
        rss, pss = sum(m[0] for m in each.values()), sum(m[1] for m in each.values())
        if pss / 1024 > self.pss_mb:
            self.pss_mb = pss / 1024
            self.processes = len(each)
            self._at_peak = [(self._role(p), m[1], m[2]) for p, m in each.items()]
        self.rss_mb = max(self.rss_mb, rss / 1024)

    def _role(self, pid: int) -> str:
        """``serve``'s name for a process (``/proc/PID/comm``); the root is the supervisor."""
        return "supervisor" if pid == self.pid else self._cpu.get(pid, ("?", 0.0))[0]

    def stop(self) -> None:
        self._done.set()
        self.join()
        self.sample()


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def main() -> None:
    from bridge.cli import main as cli

    site, port = sys.argv[1], sys.argv[2]
    args = ["serve", "--site", site, "--port", port, "--no-build", "--production"]
    if len(sys.argv) > 3:
        args += ["--workers", sys.argv[3]]
    cli(args)


if __name__ == "__main__":
    main()
