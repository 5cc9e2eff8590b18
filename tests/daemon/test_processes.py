"""`indiebridge serve --workers 2` as a subprocess on a loopback port: two HTTP workers on
one socket and one background process (``bridge.daemon.processes``).

Remote actors and their keys are seeded in the daemon's cache (as a first fetch would
leave them), every activity is signed (draft-cavage) and sent over real HTTP.  The second
test kills the background process with SIGKILL while a batch is half-way (comment files
written, their rows not yet recorded done): the supervisor starts it again, and every
accepted activity ends processed exactly once: one comment per reply, each logged once as
received, every row done.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bridge import config as config_mod
from bridge.daemon import preload
from bridge.daemon.processes import BACKGROUND_NICE, WakePipe, default_workers
from bridge.db import Database
from bridge.federation.delivery.child import NICE as CHILD_NICE
from bridge.federation.signatures import sign_request
from tests.e2e.blog import Blog

ACTORS = 20
PUBLIC = "https://www.w3.org/ns/activitystreams#Public"


@pytest.fixture(scope="module")
def remote_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def blog(tmp_path: Path, remote_key: rsa.RSAPrivateKey) -> Iterator[Blog]:
    b = Blog(tmp_path / "site")
    try:
        b.write_post("hello", "Hello, fediverse.", title="Hello")
        b.cli("build")
        seed_actors(b, remote_key)
        yield b
    finally:
        b.cleanup()


def actor_id(i: int) -> str:
    return f"https://r{i}.example/users/a{i}"


def seed_actors(blog: Blog, key: rsa.RSAPrivateKey) -> None:
    pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    Database(state_db(blog)).close()  # creates the tables
    con = sqlite3.connect(state_db(blog))
    with con:
        for i in range(ACTORS):
            actor = actor_id(i)
            doc = {
                "@context": "https://www.w3.org/ns/activitystreams",
                "id": actor,
                "type": "Person",
                "preferredUsername": f"a{i}",
                "inbox": actor + "/inbox",
                "publicKey": {"id": actor + "#main-key", "owner": actor, "publicKeyPem": pem},
            }
            con.execute(
                "INSERT OR REPLACE INTO actors(id, doc, fetched) VALUES (?, ?, ?)",
                (actor, json.dumps(doc), time.time()),
            )
            con.execute(
                "INSERT OR REPLACE INTO keys(key_id, owner, pem, fetched) VALUES (?, ?, ?, ?)",
                (actor + "#main-key", actor, pem, time.time()),
            )
    con.close()


def state_db(blog: Blog) -> Path:
    return blog.root / ".indiebridge" / "state.sqlite3"


def activity(blog: Blog, n: int, *, likes: bool = True) -> dict[str, Any]:
    """Replies and (with ``likes``) likes, alternately, from ``ACTORS`` actors."""
    actor = actor_id(n % ACTORS)
    cfg = config_mod.load(blog.root)
    post = cfg.post_url("hello")
    if likes and n % 2:
        return {"id": f"{actor}/likes/{n}", "type": "Like", "actor": actor, "object": post}
    note = {
        "id": f"{actor}/statuses/{n}",
        "type": "Note",
        "attributedTo": actor,
        "inReplyTo": post,
        "content": f"<p>Reply number {n}.</p>",
        "published": "2026-01-02T10:00:00Z",
        "to": [PUBLIC],
        "cc": [cfg.actor_id],
    }
    return {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": f"{actor}/statuses/{n}/activity",
        "type": "Create",
        "actor": actor,
        "object": note,
        "to": [PUBLIC],
        "cc": [cfg.actor_id],
    }


def send_all(blog: Blog, key: rsa.RSAPrivateKey, docs: list[dict[str, Any]]) -> Counter[int]:
    """POST every activity, signed, over 16 keep-alive connections; the status counts."""

    async def run() -> Counter[int]:
        limits = httpx.Limits(max_connections=16)
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:
            gate = asyncio.Semaphore(16)

            async def one(doc: dict[str, Any]) -> int:
                request = httpx.Request(
                    "POST",
                    blog.base_url + "/inbox",
                    content=json.dumps(doc).encode(),
                    headers={"Content-Type": "application/activity+json"},
                )
                sign_request(
                    request, key, doc["actor"] + "#main-key", "cavage", dt.datetime.now(dt.UTC)
                )
                async with gate:
                    return (await client.send(request)).status_code

            return Counter(await asyncio.gather(*(one(d) for d in docs)))

    return asyncio.run(run())


def inbox_states(blog: Blog) -> Counter[str]:
    con = sqlite3.connect(state_db(blog))
    try:
        return Counter(r[0] for r in con.execute("SELECT status FROM inbox"))
    finally:
        con.close()


def comment_files(blog: Blog) -> list[Path]:
    return sorted((blog.root / "content" / "comments" / "hello").glob("*.json"))


def events(blog: Blog) -> list[dict[str, Any]]:
    lines = []
    for line in blog.log_text().splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def processes(blog: Blog) -> dict[str, int]:
    found = [e for e in events(blog) if e["event"] == "processes"]
    assert found, blog.log_text()
    return {k: v for k, v in found[-1].items() if k.startswith(("http-", "background"))}


def test_two_http_workers_and_a_background_process_take_signed_activities(
    blog: Blog, remote_key: rsa.RSAPrivateKey
) -> None:
    blog.start(build=False, extra=("--workers", "2", "--log-format", "json"))
    pids = blog.wait_until(lambda: processes(blog), what="the process line")
    assert sorted(pids) == ["background", "http-1", "http-2"]
    assert blog.proc is not None
    for role, pid in pids.items():
        assert os.path.exists(f"/proc/{pid}"), pid
        assert pid != blog.proc.pid
        if sys.platform.startswith("linux"):  # named after its role, for ps and top
            assert Path(f"/proc/{pid}/comm").read_text().strip() == f"ib-{role}"
    ours = os.getpriority(os.PRIO_PROCESS, blog.proc.pid)
    # Receiving goes first: the background process yields the cores to the workers.
    assert os.getpriority(os.PRIO_PROCESS, pids["http-1"]) == ours
    assert os.getpriority(os.PRIO_PROCESS, pids["background"]) == min(ours + BACKGROUND_NICE, 19)
    assert blog.get("/posts/hello/").status_code == 200  # pages, from the workers

    docs = [activity(blog, n) for n in range(80)]
    assert send_all(blog, remote_key, docs) == Counter({202: 80})
    blog.wait_until(lambda: inbox_states(blog) == Counter({"done": 80}), what="80 rows done")
    kinds = Counter(json.loads(f.read_text())["type"] for f in comment_files(blog))
    assert kinds == Counter({"reply": 40, "like": ACTORS // 2})  # one like per actor
    # The background process rebuilt the page with the replies.
    blog.wait_until(lambda: "Reply number 78." in blog.html("/posts/hello/"), what="rebuild")

    blog.stop()  # SIGTERM to the supervisor stops every process
    for pid in pids.values():
        deadline = time.monotonic() + 10
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not os.path.exists(f"/proc/{pid}"), f"process {pid} outlived serve"


def test_delivery_children_are_forked_by_the_supervisor_with_nothing_inherited(
    blog: Blog, remote_key: rsa.RSAPrivateKey
) -> None:
    """``bridge.federation.delivery.forkserver``: the supervisor forks the delivery children
    itself (no fork server process), single-threaded; a Follow's Accept makes a delivery
    due, and the delivery child is the supervisor's child, holding only its stdin,
    stdout and stderr (the listening socket, the pipes, the fork socket and the daemon
    lock closed), below the background process's priority.  A child that ends is reaped by
    the supervisor: no zombie is left."""
    site_toml = blog.root / "site.toml"
    site_toml.write_text("delivery_processes = 2\n" + site_toml.read_text(), encoding="utf-8")
    blog.start(build=False, extra=("--workers", "2", "--log-format", "json"))
    found = blog.wait_until(
        lambda: [e for e in events(blog) if e["event"] == "processes"], what="the process line"
    )
    roles = {k: v for k, v in found[-1].items() if isinstance(v, int) and k != "pid"}
    assert "forkserver" not in found[-1]
    supervisor = blog.proc.pid if blog.proc is not None else 0
    assert all(parent_of(pid) == supervisor for pid in roles.values())

    actor = actor_id(0)
    follow = {"id": f"{actor}/follows/1", "type": "Follow", "actor": actor}
    follow["object"] = config_mod.load(blog.root).actor_id
    assert send_all(blog, remote_key, [follow]) == Counter({202: 1})

    def delivery_children() -> list[int]:
        kids = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
        return [int(p) for p in kids if _comm(int(p)) == "ib-delivery"]  # once it runs

    (child,) = blog.wait_until(delivery_children, what="a delivery child")
    # forked from a single-threaded process (a child's threads at its start: the probe in
    # tests/federation/test_forkserver.py)
    assert "Threads:\t1\n" in Path(f"/proc/{supervisor}/status").read_text()
    # Beyond stdin and stdout (the pool's pipes) and stderr, only what the child opened
    # itself (its database, its connections): nothing the supervisor holds.
    ours = {
        os.readlink(f"/proc/{supervisor}/fd/{fd}") for fd in os.listdir(f"/proc/{supervisor}/fd")
    }
    fds = os.listdir(f"/proc/{child}/fd")
    held = [os.readlink(f"/proc/{child}/fd/{fd}") for fd in fds]
    assert {"0", "1", "2"} <= set(fds)
    stderr = os.readlink(f"/proc/{child}/fd/2")
    assert set(held) & ours - {"anon_inode:[eventpoll]"} <= {stderr}
    # anonymous inodes all read the same: the supervisor's epoll and pidfds are told apart
    # by count (the child's own event loop has one epoll) and by their fdinfo
    assert held.count("anon_inode:[eventpoll]") <= 1
    pidfds = [fd for fd in fds if "\nPid:" in Path(f"/proc/{child}/fdinfo/{fd}").read_text()]
    assert pidfds == []
    assert [h for h in ours if h.startswith("socket:")]  # the listening and fork sockets
    nice = int(Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[16])
    assert nice == BACKGROUND_NICE + CHILD_NICE
    os.kill(child, signal.SIGKILL)  # the pool starts another later; the supervisor reaps
    blog.wait_until(lambda: not os.path.exists(f"/proc/{child}"), what="the child reaped")
    blog.stop()


def test_a_restarted_process_inherits_nothing_from_the_supervisors_loop(blog: Blog) -> None:
    """A role restarted from the loop that also forks delivery children (``supervisor``)
    holds neither the loop's epoll nor its siblings' pidfds, which a fork keeps although
    they are close-on-exec, nor the supervisor's sockets."""
    site_toml = blog.root / "site.toml"  # delivery in children: the loop forks them
    site_toml.write_text("delivery_processes = 2\n" + site_toml.read_text(), encoding="utf-8")
    blog.start(build=False, extra=("--workers", "2", "--log-format", "json"))
    found = blog.wait_until(
        lambda: [e for e in events(blog) if e["event"] == "processes"], what="the process line"
    )
    supervisor = blog.proc.pid if blog.proc is not None else 0
    os.kill(int(found[-1]["rebuild"]), signal.SIGKILL)
    restarted = blog.wait_until(
        lambda: [e for e in events(blog) if e["event"] == "process-restarted"],
        what="the rebuild process restarted",
    )
    assert restarted[0]["role"] == "rebuild"
    pid = int(restarted[0]["pid"])
    # named once it runs its role, after it has closed what it must not keep
    blog.wait_until(lambda: _comm(pid) == "ib-rebuild", what="the restarted process named")

    def links(pid: int, skip: tuple[str, ...] = ()) -> list[str]:
        found = []
        for fd in os.listdir(f"/proc/{pid}/fd"):
            if fd not in skip:
                with contextlib.suppress(OSError):  # the listing's own, closed by now
                    found.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        return found

    held = links(pid, skip=("0", "1", "2"))
    assert "anon_inode:[pidfd]" not in held  # the rebuild process opens none itself
    assert held.count("anon_inode:[eventpoll]") <= 1  # its own, for the build pipe
    # the listening socket and the fork socket's ends (the build pipe it reads is its own)
    ours = {link for link in links(supervisor) if link.startswith("socket:")}
    assert len(ours) >= 3
    assert not ours & set(held)


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def gone(pid: int) -> bool:
    """The process has exited (a zombie until its parent reaps it counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):  # reaped, or being reaped
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def restarted_after(blog: Blog, pid: int) -> int:
    """The pid of the background process the supervisor started in place of ``pid``."""
    found = blog.wait_until(
        lambda: [
            e for e in events(blog) if e["event"] == "process-restarted" and e["previous"] == pid
        ],
        what=f"the background process {pid} restarted",
    )
    assert found[0]["role"] == "background"
    return int(found[0]["pid"])


def test_kill_9_of_the_background_process_mid_batch_processes_each_activity_once(
    blog: Blog, remote_key: rsa.RSAPrivateKey
) -> None:
    blog.start(build=False, extra=("--workers", "2", "--log-format", "json"))
    background = blog.wait_until(lambda: processes(blog), what="the process line")["background"]
    # Activities are sent from a thread while this one watches for the kill's moment: comment
    # files exist whose rows are not recorded done (mid-batch).  The state is read once the
    # killed process is gone: a commit it was making when the signal came may still land,
    # and a kill that came after its batch was recorded is not mid-batch.  A round without
    # a kill mid-batch is followed by another, at most five in all.
    batch, total, in_flight = 400, 0, 0
    at_kill: Counter[str] | None = None
    killed = background
    for _ in range(5):
        docs = [activity(blog, total + n, likes=False) for n in range(batch)]
        total += batch
        with ThreadPoolExecutor(1) as pool:
            sending = pool.submit(send_all, blog, remote_key, docs)
            deadline = time.monotonic() + 60
            while True:
                done = inbox_states(blog)["done"]
                written = len(comment_files(blog))
                if written > done and done < total:
                    killed = background
                    os.kill(killed, signal.SIGKILL)
                    while not gone(killed):
                        time.sleep(0.001)
                    state = inbox_states(blog)
                    if state["done"] < total:
                        at_kill, in_flight = state, written - done
                    else:  # its batch was recorded first: wait for its successor
                        background = restarted_after(blog, killed)
                    break
                if done == total and sending.done():
                    break
                assert time.monotonic() < deadline, "the background process made no progress"
                time.sleep(0.001)
            assert sending.result() == Counter({202: batch})
        if at_kill is not None:
            break
    assert at_kill is not None, "five rounds were each done before a kill could land mid-batch"

    assert restarted_after(blog, killed) != killed  # the background process came back
    blog.wait_until(
        lambda: inbox_states(blog) == Counter({"done": total}),
        timeout=60,
        what="every row done after the restart",
    )
    files = comment_files(blog)
    assert len(files) == total  # one comment per reply
    assert {json.loads(f.read_text())["type"] for f in files} == {"reply"}
    received = Counter(e["id"] for e in events(blog) if e["event"] == "comment-received")
    assert set(received.values()) == {1}  # none was received twice
    assert set(received) <= {f.stem for f in files}
    # A kill between a comment's write and its log line loses that line (the restarted
    # process finds the file and writes nothing): only rows in flight at the kill may miss it.
    assert total - len(received) <= in_flight


def test_the_wake_pipe_never_blocks_a_writer_and_loses_no_kind() -> None:
    pipe = WakePipe()
    try:
        for _ in range(200_000):  # far more than a pipe holds: the writes past it are dropped
            pipe.send("i")
        pipe.send("w")  # dropped while the pipe is full: the reader wakes every worker
        assert pipe.drain() == {"i", "w", "d", "b"}
        pipe.send("w")
        pipe.send("d")
        assert pipe.drain() == {"w", "d"}
        assert pipe.drain() == set()
    finally:
        os.close(pipe.read_fd)
        os.close(pipe.write_fd)


def test_default_workers_is_one_per_core_at_most_four() -> None:
    assert 1 <= default_workers() <= 4
    assert default_workers() == min(len(os.sched_getaffinity(0)), 4)


PRELOAD_CHECK = """
import json, os, sys, threading
from bridge import config
from bridge.daemon import preload
preload.preload(config.load(sys.argv[1]))
from bridge.federation.addresses import tls_context
fds = []
for fd in os.listdir("/proc/self/fd"):
    try:
        fds.append(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:  # the listing's own descriptor, closed by now
        pass
unused = [m for m in preload.NEVER_USED if sys.modules.get(m) is not None]
stand_ins = [type(sys.modules[m]).__name__ for m in preload.STAND_INS]
later = ("bridge.site.build", "jinja2", "markdown", "pygments", "bs4", "mf2py", "watchdog")
build = [m for m in later if m in sys.modules]
from bridge.conversations import mf2
page = '<div class="h-entry"><a class="u-in-reply-to" href="https://blog.example/p">x</a>'
page += '<p class="e-content">Caf\u00e9</p></div>'
reply = mf2.interpret(page, "https://a.example/r", ["https://blog.example/p"])
print(json.dumps({"threads": threading.active_count(), "fds": fds,
                  "tls": tls_context.cache_info().currsize, "unused": unused,
                  "stand_ins": stand_ins, "build": build,
                  "reply": [reply.type, reply.content_text]}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_preload_leaves_no_thread_and_no_open_file_for_the_children(blog: Blog) -> None:
    """What the supervisor makes before forking (``preload.preload``) is memory only:
    no thread, no database file or socket left open for a child to inherit; the TLS
    context every child uses is made; packages no process uses are not imported, and a
    package imported only for a path the daemon never takes is a stand-in, with which
    webmention sources still parse; the build, which only the rebuild process runs, is
    left to it, the webmention parser to the first source read, watchdog to ``--watch``."""
    out = subprocess.run(
        [sys.executable, "-c", PRELOAD_CHECK, str(blog.root)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    seen = json.loads(out.stdout)
    assert seen["threads"] == 1
    assert seen["tls"] == 1
    assert seen["unused"] == []  # httpx, httpcore, bs4 imported without rich, trio, chardet
    assert seen["stand_ins"] == ["StandIn"]  # mf2py imported without requests
    assert seen["build"] == []
    assert seen["reply"] == ["reply", "Caf\u00e9"]
    assert not [fd for fd in seen["fds"] if "sqlite" in fd or fd.startswith("socket:")]


def test_a_stand_in_says_what_it_is_when_used() -> None:
    """A package ``serve`` keeps out (``preload.STAND_INS``) fails where it is used, with
    one line naming it, not later with a confusing error; import machinery's probes of
    dunder names get the plain ``AttributeError`` they expect."""
    stand_in = preload.StandIn("requests")
    with pytest.raises(AttributeError, match=r"^requests\.get: requests is not loaded"):
        stand_in.get  # noqa: B018
    assert not hasattr(stand_in, "__path__")
