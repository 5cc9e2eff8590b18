"""The Fedify interop peer, run inside a deploy test's namespace as ``peer.test``.

The peer listens on ``http://peer.test:PORT`` inside the namespace, and reaches the blog as
any server would: WebFinger and documents over HTTPS from the web server under test,
trusting the throwaway CA through ``NODE_EXTRA_CA_CERTS``.  Its control API is reached
from the test through a Unix socket (those are not bound to a network namespace) that a
small forwarder inside the namespace connects to the peer's port.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx

from tests.deploy.stack import Namespace, stop
from tests.interop.fedify import PEER_DIR, PEER_SCRIPT, FedifyPeer

PEER_HOST = "peer.test"
PEER_PORT = 8200

FORWARDER = """\
import asyncio, sys

path, port = sys.argv[1], int(sys.argv[2])


async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


async def handle(reader, writer):
    try:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        writer.close()
        return
    await asyncio.gather(
        pipe(reader, upstream_writer), pipe(upstream_reader, writer), return_exceptions=True
    )


async def main():
    server = await asyncio.start_unix_server(handle, path)
    async with server:
        await server.serve_forever()


asyncio.run(main())
"""


class NamespacedPeer(FedifyPeer):
    """A ``FedifyPeer`` whose process runs in ``ns`` and whose control API is forwarded."""

    def __init__(self, ns: Namespace, user: str = "alice") -> None:
        super().__init__(user, host=PEER_HOST)
        self.ns = ns
        self.socket = ns.folder / f"peer-{user}.sock"
        self.forwarder: subprocess.Popen[bytes] | None = None

    def _spawn(self, node: str) -> None:
        self.log_path = self.ns.folder / f"peer-{self.user}.log"
        self._log_file = self.log_path.open("wb")
        self.socket.unlink(missing_ok=True)
        self.forwarder = self.ns.start(
            [sys.executable, "-c", FORWARDER, str(self.socket), str(self.port)],
            self.ns.folder / "forwarder.log",
        )
        deadline = time.monotonic() + 10
        while not self.socket.exists() and time.monotonic() < deadline:
            time.sleep(0.05)  # a connect before the forwarder listens leaks a socket in httpx
        argv = [node, str(PEER_SCRIPT), "--host", self.host, "--port", str(self.port)]
        argv += ["--user", self.user, "--first-knock", self.first_knock]
        argv += ["--follow-policy", self.follow_policy, "--log-level", self.log_level]
        argv += ["--parent-pid", str(os.getpid())]
        self.process = subprocess.Popen(
            self.ns.command(argv),
            cwd=PEER_DIR,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env={**self.ns.env, "NO_COLOR": "1"},
        )
        self._client = httpx.Client(
            base_url=self.url,
            timeout=self.request_timeout,
            transport=httpx.HTTPTransport(uds=str(self.socket)),
        )

    def stop(self) -> None:
        super().stop()
        stop(self.forwarder)
        self.forwarder = None

    def cleanup(self) -> None:
        """Stop; the log stays in the namespace's folder, which pytest keeps for a while."""
        self.stop()
