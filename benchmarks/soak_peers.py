"""The soak's hostile and well-behaved peers: ``python -m benchmarks.soak_peers PORT PEM``.

One process listens on PORT at 21 loopback addresses, one role each (``benchmarks.soak``
says why each exists):

* ``127.0.0.2`` (``BIG``) and ``127.0.1.1``-``127.0.1.16`` (``BIG_SPREAD``): any path is a
  ~900 KB actor document whose key is PEM, a public key that never matches the signatures
  naming it;
* ``127.0.0.3`` (``SLOW``): never answers (each request sleeps for an hour);
* ``127.0.0.4`` (``BOMB``): an HTML page that links to ``?t=`` and then repeats
  ``<div></x>`` 30,000 times (about 263 KiB);
* ``127.0.0.5`` (``GOOD``): an h-entry whose content holds the last path segment (the
  event's marker) and links to ``?t=``;
* ``127.0.0.1``: ``GET /stats`` answers how many requests each address received, as JSON.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

AP = "application/activity+json"
BIG_ACTOR_BYTES = 900_000
BOMB_REPEAT = 30_000
BIG, SLOW, BOMB, GOOD = "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"
# More origins serving big actor documents: per-origin rate limits alone cannot bound them.
BIG_SPREAD = tuple(f"127.0.1.{i}" for i in range(1, 17))


def _peer_handler(public_pem: str, counts: dict[str, int]) -> type[BaseHTTPRequestHandler]:
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, body: bytes, ctype: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            host = self.connection.getsockname()[0]
            path, _, query = self.path.partition("?")
            with lock:
                counts[host] = counts.get(host, 0) + 1
            if path == "/stats":
                self._send(json.dumps(counts).encode(), "application/json")
            elif host == BIG or host in BIG_SPREAD:
                self._send(_big_actor(f"http://{self.headers['Host']}{path}", public_pem), AP)
            elif host == SLOW:
                time.sleep(3600)  # never answers within any client's patience
            elif host == BOMB:
                target = unquote(query.removeprefix("t="))
                page = f'<!doctype html><html><body><a href="{target}">re</a>'
                self._send((page + "<div></x>" * BOMB_REPEAT).encode(), "text/html")
            else:
                target = unquote(query.removeprefix("t="))
                marker = path.rsplit("/", 1)[-1]
                self._send(_good_page(target, marker).encode(), "text/html; charset=utf-8")

    return Handler


def _big_actor(actor: str, public_pem: str) -> bytes:
    doc = {
        "@context": ["https://www.w3.org/ns/activitystreams"],
        "id": actor,
        "type": "Person",
        "preferredUsername": "big",
        "inbox": actor + "/inbox",
        "publicKey": {"id": actor + "#main-key", "owner": actor, "publicKeyPem": public_pem},
        "summary": "x" * BIG_ACTOR_BYTES,
    }
    return json.dumps(doc).encode()


def _good_page(target: str, marker: str) -> str:
    return (
        '<!doctype html><html><body><article class="h-entry">'
        '<a class="p-author h-card" href="/">Good Neighbour</a>'
        f'<div class="e-content"><p>Nice post {marker}, see <a href="{target}">it</a>.</p></div>'
        '<a class="u-in-reply-to" href="' + target + '">in reply</a>'
        "</article></body></html>"
    )


def serve_peers(port: int, public_pem: str) -> None:
    counts: dict[str, int] = {}
    handler = _peer_handler(public_pem, counts)
    servers = []
    for host in ("127.0.0.1", BIG, SLOW, BOMB, GOOD, *BIG_SPREAD):
        srv = ThreadingHTTPServer((host, port), handler)
        srv.daemon_threads = True
        servers.append(srv)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    threading.Event().wait()


if __name__ == "__main__":
    serve_peers(int(sys.argv[1]), sys.argv[2])
