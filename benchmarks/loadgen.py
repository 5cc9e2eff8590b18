"""A small HTTP/1.1 load generator over raw keep-alive sockets (loopback only).

It sends pre-built request bytes, so the client costs a few tens of microseconds per
request and the server, not the generator, is what is measured.  Two shapes:

* closed loop: ``connections`` clients each send the next request as soon as the previous
  answer arrived, for at most ``seconds`` or ``len(requests)`` requests;
* fixed rate: request ``i`` is due at ``start + i / rate``; its latency is counted from
  that due time (a late send is the server's delay too, so no coordinated omission).

Run as ``python -m benchmarks.loadgen REQUESTS.pickle --port P ...``; prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pickle
import time
from collections import Counter
from pathlib import Path
from typing import Any


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = 0
    chunked = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status


async def run(
    host: str,
    port: int,
    requests: list[bytes],
    connections: int,
    seconds: float,
    rate: float = 0.0,
) -> dict[str, Any]:
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    timeline: list[tuple[float, float]] = []  # (due, latency) at a fixed rate
    errors: list[str] = []
    next_index = 0
    started = time.perf_counter()
    deadline = started + seconds

    async def client() -> None:
        nonlocal next_index
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while True:
                i = next_index
                if i >= len(requests) or time.perf_counter() >= deadline:
                    return
                next_index += 1
                if rate:
                    due = started + i / rate
                    delay = due - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    t0 = due
                else:
                    t0 = time.perf_counter()
                writer.write(requests[i])
                status = await _read_response(reader)
                latencies.append(time.perf_counter() - t0)
                if rate:
                    timeline.append((t0 - started, latencies[-1]))
                statuses[status] += 1
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            if len(errors) < 5:
                errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            writer.close()

    async with asyncio.timeout(seconds + 30):
        await asyncio.gather(*(client() for _ in range(connections)))
    elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(len(latencies) * p))] if latencies else 0.0

    return {
        "sent": sum(statuses.values()),
        "seconds": elapsed,
        "statuses": {str(k): v for k, v in statuses.items()},
        "p50_ms": pct(0.50) * 1000,
        "p99_ms": pct(0.99) * 1000,
        "errors": errors,
        "slow": slow_windows(timeline, pct(0.99)) if rate else {},
    }


SLOW_WINDOW = 0.1  # seconds


def slow_windows(timeline: list[tuple[float, float]], p99: float) -> dict[str, Any]:
    """Where the requests at or over the p99 fall: few windows of ``SLOW_WINDOW`` seconds
    holding most of them is a stall (a lock, a sync, a process paused), many windows
    holding one or two each is steady contention for the cores."""
    windows: Counter[int] = Counter(
        int(due / SLOW_WINDOW) for due, latency in timeline if latency >= p99 > 0
    )
    slow = sum(windows.values())
    worst = windows.most_common(3)
    return {
        "requests": slow,
        "windows": len(windows),
        "in_worst_3": sum(n for _, n in worst),
        "worst": [(round(w * SLOW_WINDOW, 1), n) for w, n in worst],
    }


def describe_slow(slow: dict[str, Any]) -> str:
    """``slow_windows``' result in words ("" when there is none)."""
    if not slow.get("requests"):
        return ""
    return (
        f"the {slow['requests']} requests at or over the p99 fall in {slow['windows']} "
        f"windows of {SLOW_WINDOW:g} s; the worst 3 hold {slow['in_worst_3']} "
        f"(at {', '.join(f'{t:g} s' for t, _ in slow['worst'])} into the load)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("requests", type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rate", type=float, default=0)
    parser.add_argument("--skip", type=int, default=0, help="start at this request")
    args = parser.parse_args()
    requests: list[bytes] = pickle.loads(args.requests.read_bytes())[args.skip :]
    job = run(args.host, args.port, requests, args.connections, args.seconds, args.rate)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        result = asyncio.run(job)
    else:
        result = uvloop.run(job)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
