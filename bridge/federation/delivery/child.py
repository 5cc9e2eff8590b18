"""One delivery process of a ``DeliveryPool``: ``python -m bridge.federation.delivery.child``.

The parent (``pool.DeliveryPool``) starts it with pipes on stdin and stdout:

* stdin: first an 8-byte big-endian length and a pickle of a ``pool.ChildSpec`` (the
  site's ``SiteConfig`` and this child's options), then one byte per ``wake()``.  End of file, which
  the kernel delivers when the parent exits however it dies, stops the child the way
  ``run_forever(stop)`` stops: unsent jobs go back to ``queued``, attempts in flight finish.
* stdout: one line ``ready`` once the worker runs, and ``gone <inbox URL>`` for each inbox
  that answered 410 (the parent calls its ``on_gone``, so the rule that removes the
  followers behind it exists in one process only).

SIGINT is ignored (a Ctrl-C in the terminal reaches the whole process group; the daemon
stops its children itself); SIGTERM stops the child like end of file.

A child runs at a lower scheduling priority (``NICE``, added to the daemon's): on a small
server a fan-out's signing would otherwise take the cores the HTTP workers need, and the
inbox's latency would follow.  With idle cores a niced child runs as fast as before; under
contention receiving goes first and sending waits (a delivery is retried anyway, an inbox
request that times out may not be).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import signal
import sys
from typing import BinaryIO

from bridge.federation.delivery.pool import HEADER, MAX_SPEC_BYTES, ChildSpec

NICE = 10


def read_spec(stream: BinaryIO) -> ChildSpec:
    """The spec the parent wrote first (it is our own parent's pickle, not remote input)."""
    header = stream.read(HEADER.size)
    if len(header) != HEADER.size:
        raise SystemExit("delivery child: no spec on stdin")
    (size,) = HEADER.unpack(header)
    if size > MAX_SPEC_BYTES:
        raise SystemExit(f"delivery child: spec of {size} bytes is too large")
    data = stream.read(size)
    spec = pickle.loads(data)  # noqa: S301 - written by the parent process over a pipe
    if not isinstance(spec, ChildSpec):
        raise SystemExit("delivery child: stdin did not start with a ChildSpec")
    return spec


async def run(spec: ChildSpec) -> None:
    from bridge import keys
    from bridge.db import Database
    from bridge.federation.delivery.worker import DeliveryWorker

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    out = sys.stdout

    def report(line: str) -> None:
        with contextlib.suppress(OSError, ValueError):  # the parent has gone: we stop soon
            out.write(line + "\n")
            out.flush()

    def gone(inbox: str) -> None:
        report(f"gone {inbox}")

    db = Database(spec.config.db_path)
    try:
        worker = DeliveryWorker.from_config(
            spec.config,
            db,
            keys.load(spec.config.state_dir),
            on_gone=gone,
            poll_interval=spec.poll_interval,
            owner=spec.owner,
            **spec.options,
        )
        reader = asyncio.StreamReader()
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer
        )
        loop.add_signal_handler(signal.SIGTERM, stop.set)

        async def listen() -> None:
            while True:
                data = await reader.read(4096)
                if not data:  # the parent closed our stdin or died
                    stop.set()
                    return
                worker.wake()

        listener = asyncio.create_task(listen())
        report("ready")
        try:
            await worker.run_forever(stop)
        finally:
            listener.cancel()
            transport.close()
    finally:
        db.close()


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError, AttributeError):  # not Unix: the same priority
        os.nice(NICE)
    spec = read_spec(sys.stdin.buffer)
    logging.basicConfig(
        level=spec.log_level,
        format="%(asctime)s delivery[%(process)d] %(levelname)s %(name)s: %(message)s",
    )
    asyncio.run(run(spec))


if __name__ == "__main__":
    main()
