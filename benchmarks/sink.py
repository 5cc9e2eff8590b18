"""A loopback inbox sink: accepts POSTs on any path, verifies draft-cavage signatures, counts.

Run as ``python -m benchmarks.sink --port P --hosts 16 --public-key key.pem --key-id URL``.
It listens on ``hosts`` loopback addresses (``address(i)``: 127.0.0.1, 127.0.0.2, ...), so
inbox URLs can name several hosts as a real fan-out does (the delivery worker limits
connections per host); thousands of hosts need as many listening sockets.
Each signed POST is checked with ``bridge.signatures.verify_request`` against the one known
public key; ``GET /stats`` answers the counts as JSON and ``POST /reset`` zeroes them.
``--bare`` answers 202 without reading or verifying anything (the ceiling).
"""

from __future__ import annotations

import argparse
import json
import socket
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from bridge.federation.signatures import PublicKeyInfo, verify_request


def make_app(public_pem: bytes | None, known_key_id: str, owner: str, bare: bool) -> Any:
    counts: dict[str, Any] = {"verified": 0, "unsigned": 0, "invalid": 0, "errors": []}
    key = serialization.load_pem_public_key(public_pem) if public_pem else None

    async def lookup(key_id: str, refresh: bool) -> PublicKeyInfo:
        if key_id != known_key_id or key is None:
            raise ValueError(f"unknown key {key_id}")
        return PublicKeyInfo(key_id, owner, key)  # type: ignore[arg-type]

    async def send_json(send: Any, status: int, doc: Any) -> None:
        body = json.dumps(doc).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path == "/stats":
            await send_json(send, 200, counts)
            return
        if path == "/reset":
            counts.update(verified=0, unsigned=0, invalid=0, errors=[])
            await send_json(send, 200, counts)
            return
        if bare:
            await send({"type": "http.response.start", "status": 202, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        status = 202
        if "signature" not in headers:
            counts["unsigned"] += 1
        else:
            host = headers.get("host", "")
            try:
                await verify_request("POST", f"http://{host}{path}", headers, body, lookup)
                counts["verified"] += 1
            except Exception as exc:  # noqa: BLE001 - counted and quoted, never fatal
                counts["invalid"] += 1
                if len(counts["errors"]) < 5:
                    counts["errors"].append(str(exc))
                status = 401
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    return app


def address(i: int) -> str:
    """The ``i``-th loopback address the sink listens on: 127.0.0.1 .. 127.0.0.250, then
    127.0.1.1 and so on (all of 127.0.0.0/8 is loopback on Linux)."""
    return f"127.0.{i // 250}.{1 + i % 250}"


def sockets(port: int, hosts: int) -> list[socket.socket]:
    out = []
    for i in range(hosts):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((address(i), port))
        s.listen(2048)
        s.set_inheritable(True)
        out.append(s)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--hosts", type=int, default=1)
    parser.add_argument("--public-key", type=Path)
    parser.add_argument("--key-id", default="")
    parser.add_argument("--owner", default="")
    parser.add_argument("--bare", action="store_true")
    args = parser.parse_args()
    import uvicorn

    pem = args.public_key.read_bytes() if args.public_key else None
    app = make_app(pem, args.key_id, args.owner, args.bare)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", backlog=2048)
    uvicorn.Server(config).run(sockets=sockets(args.port, args.hosts))


if __name__ == "__main__":
    main()
