"""A deployment as an ``httpx.MockTransport``: the built site behind a well-configured
web server and daemon, with one response replaceable per path to break it on purpose.

It serves the files of a built site as the docs' nginx snippet does (ActivityPub types
under ``/ap/``, JRD for WebFinger, CORS, no content negotiation) and answers the POST
endpoints as the daemon does: 401 to an unsigned activity, 401 "signed by ..., but the
actor is ..." to one signed by the site's key, 400 to an empty webmention.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bridge.config import SiteConfig
from bridge.daemon.public_site import content_type_for

Handler = Callable[[httpx.Request], httpx.Response]


@dataclass
class FakeDeployment:
    config: SiteConfig
    out: Path
    overrides: dict[tuple[str, str], Handler] = field(default_factory=dict)
    clock_offset: float = 0.0
    seen: list[httpx.Request] = field(default_factory=list)

    def override(self, method: str, path: str, handler: Handler) -> None:
        self.overrides[(method, path)] = handler

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        custom = self.overrides.get((request.method, request.url.path))
        response = custom(request) if custom else self._default(request)
        if "date" not in response.headers:
            response.headers["Date"] = email.utils.formatdate(
                time.time() + self.clock_offset, usegmt=True
            )
        return response

    def _default(self, request: httpx.Request) -> httpx.Response:
        if request.url.host != self.config.host:
            return httpx.Response(404)
        path = request.url.path
        if request.method == "POST":
            return self._post(request, path)
        rel = path.lstrip("/")
        if rel == "" or rel.endswith("/"):
            rel += "index.html"
        target = self.out / rel
        if not target.is_file():
            return httpx.Response(404, text="not found")
        headers = {"Content-Type": content_type_for(rel)}
        if rel.startswith(("ap/", ".well-known/webfinger")):
            headers["Access-Control-Allow-Origin"] = "*"
        return httpx.Response(200, headers=headers, content=target.read_bytes())

    def _post(self, request: httpx.Request, path: str) -> httpx.Response:
        if path in ("/inbox", "/ap/inbox"):
            if "signature" not in request.headers:
                return httpx.Response(401, json={"error": "request is not signed"})
            actor = json.loads(request.content)["actor"]
            owner = self.config.actor_id
            return httpx.Response(
                401, json={"error": f"signed by {owner}, but the actor is {actor}"}
            )
        if path == "/webmention":
            return httpx.Response(400, text="source and target are required\n")
        return httpx.Response(405)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)
