"""One delivery process of a ``DeliveryPool``: ``python -m bridge.federation.delivery.child``.

The parent (``pool.DeliveryPool``) starts it with pipes on stdin and stdout:

* stdin: first an 8-byte big-endian length and a pickle of a ``pool.ChildSpec`` (the
  site's ``SiteConfig`` and this child's options), then one byte per ``wake()``.  End of file, which
  the kernel delivers when the parent exits however it dies, stops the child the way
  ``run_forever(stop)`` stops: unsent jobs go back to ``queued``, attempts in flight finish.
* stdout: one line ``ready`` once the worker runs, ``gone <inbox URL>`` for each inbox
  that answered 410 (the parent calls its ``on_gone``, so the rule that removes the
  followers behind it exists in one process only), and ``idle`` before it exits because it
  had nothing to send for the spec's ``idle_exit`` seconds: no attempt of its own in
  flight, no row claimed by it, no queued row due within that time.  It then stops the
  way end of file stops it.  Its last line, when it ends normally, is ``exit 0`` (the pool
  cannot read the status of a child ``forkserver`` forked).

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
import dataclasses
import logging
import os
import pickle
import signal
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, BinaryIO

from bridge.federation.delivery.pool import HEADER, MAX_SPEC_BYTES, ChildSpec

if TYPE_CHECKING:
    from bridge.db import Database
    from bridge.federation.delivery.worker import DeliveryWorker

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
        idler = None
        if spec.idle_exit is not None:
            idler = asyncio.create_task(_exit_when_idle(db, spec, worker, stop, report))
        report("ready")
        try:
            await worker.run_forever(stop)
        finally:
            listener.cancel()
            if idler is not None:
                idler.cancel()
            transport.close()
    finally:
        db.close()


async def _exit_when_idle(
    db: Database,
    spec: ChildSpec,
    worker: DeliveryWorker,
    stop: asyncio.Event,
    report: Callable[[str], None],
) -> None:
    """Set ``stop`` (after reporting ``idle``) once nothing happened for ``idle_exit`` s."""
    from bridge.federation.delivery import queue

    assert spec.idle_exit is not None
    loop = asyncio.get_running_loop()
    quiet_since = loop.time()
    last = dataclasses.astuple(worker.stats)
    while not stop.is_set():
        await asyncio.sleep(min(1.0, spec.idle_exit / 4))
        now = dataclasses.astuple(worker.stats)
        due = queue.next_due(db)
        held = db.one(
            "SELECT 1 FROM deliveries WHERE state = 'sending' AND claimed_by = ? LIMIT 1",
            (spec.owner,),
        )
        soon = due is not None and due < time.time() + spec.idle_exit
        if now != last or held is not None or soon:
            last, quiet_since = now, loop.time()
            continue
        if loop.time() - quiet_since >= spec.idle_exit:
            report("idle")
            stop.set()
            return


def main(*, forked: bool = False) -> None:
    """Run the child; ``forked``: started by ``forkserver`` (logging is set up anew)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError, AttributeError):  # not Unix: the same priority
        os.nice(NICE)
    if sys.platform.startswith("linux"):  # named for ps and top, as serve's processes are
        with contextlib.suppress(OSError, AttributeError):
            import ctypes

            ctypes.CDLL(None).prctl(15, b"ib-delivery")  # PR_SET_NAME
    spec = read_spec(sys.stdin.buffer)
    logging.basicConfig(
        level=spec.log_level,
        format="%(asctime)s delivery[%(process)d] %(levelname)s %(name)s: %(message)s",
        force=forked,
    )
    asyncio.run(run(spec))
    with contextlib.suppress(OSError, ValueError):  # a forked child's status, for the pool
        sys.stdout.write("exit 0\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
