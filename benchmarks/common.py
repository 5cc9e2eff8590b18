"""Shared pieces: running a child with its peak RSS, the results table, the machine line."""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / "work"


@dataclass
class Run:
    seconds: float
    peak_rss_mb: float
    returncode: int
    stdout: str
    stderr: str


def run(
    args: Sequence[str],
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 900,
) -> Run:
    """Run a command to completion: wall time and the peak RSS of it and its children."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        list(args),
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise RuntimeError(f"{args[0]} did not finish within {timeout:g} s") from None
    seconds = time.perf_counter() - started
    # communicate() reaped the child; its rusage went into RUSAGE_CHILDREN's maximum only,
    # so the peak is measured by a wrapper instead (see rss_prefix()).
    return Run(seconds, _peak_from(err), proc.returncode, out, err)


_RSS_MARK = "@@peak-rss-kb "


def rss_prefix() -> list[str]:
    """A prefix that prints the child's peak RSS (max over it and its descendants) to stderr."""
    code = (
        "import os,sys,resource;"
        "pid=os.fork()\n"
        "if pid==0:\n os.execvp(sys.argv[1],sys.argv[1:])\n"
        "_,status,ru=os.wait4(pid,0)\n"
        f"sys.stderr.write('\\n{_RSS_MARK}%d\\n'%ru.ru_maxrss)\n"
        "sys.exit(os.waitstatus_to_exitcode(status))"
    )
    return [sys.executable, "-c", code]


def _peak_from(stderr: str) -> float:
    for line in reversed(stderr.splitlines()):
        if line.startswith(_RSS_MARK):
            return int(line[len(_RSS_MARK) :]) / 1024
    return float("nan")


def measured(args: Sequence[str], **kwargs: object) -> Run:
    """``run`` with peak RSS: the command runs under ``rss_prefix()``."""
    return run([*rss_prefix(), *args], **kwargs)  # type: ignore[arg-type]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 20.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {host}:{port} after {timeout:g} s")


@contextlib.contextmanager
def server(
    args: Sequence[str], port: int, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a loopback server process, wait for its port, stop it (by its pid) afterwards."""
    log = (WORK / f"server-{port}.log").open("wb")
    proc = subprocess.Popen(list(args), env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_port(port)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def machine_line() -> str:
    mem = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB RAM"
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} cores ({cpu or platform.machine()}), {mem}, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


def have(program: str) -> bool:
    return shutil.which(program) is not None


@dataclass
class Table:
    """Rows of (section, measure, value, note); printed as Markdown."""

    rows: list[tuple[str, str, str, str]] = field(default_factory=list)

    def add(self, section: str, measure: str, value: str, note: str = "") -> None:
        self.rows.append((section, measure, value, note))
        print(f"  {section:10} {measure:58} {value:>14}  {note}", file=sys.stderr, flush=True)

    def markdown(self) -> str:
        lines = ["| section | measure | value | note |", "|---|---|---:|---|"]
        lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in self.rows]
        return "\n".join(lines)


def seconds(value: float) -> str:
    return f"{value:.2f} s" if value >= 0.1 else f"{value * 1000:.0f} ms"


def mb(value: float) -> str:
    return f"{value:.0f} MB"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"
