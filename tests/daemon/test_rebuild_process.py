"""The rebuild process (``bridge.daemon.rebuild_process``): what changed crosses one pipe
from the processing side to the building side, without blocking the one and without
losing a change for the other; a reply's page is built while a flood of likes waits.
The last test runs ``serve --workers 2`` and kills the rebuild process with SIGKILL."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from bridge import config as config_mod
from bridge.daemon.rebuild import Rebuilder
from bridge.daemon.rebuild_process import BuildPipe, apply
from bridge.site import build as site_mod
from bridge.site.comments import CommentStore
from tests.daemon.test_processes import activity, blog, events, remote_key, send_all
from tests.daemon.test_rebuild_schedule import like, page, record_builds, reply, wait_for
from tests.e2e.blog import Blog

__all__ = ["blog", "remote_key"]  # fixtures used here


@pytest.fixture
def pipe() -> BuildPipe:
    made = BuildPipe()
    yield made
    os.close(made.read_fd)
    os.close(made.write_fd)


def test_a_full_pipe_never_blocks_the_writer_and_loses_no_line(pipe: BuildPipe) -> None:
    sent = [f"post-{n:06d}" for n in range(100_000)]  # far more than the pipe holds
    fitted = [pipe.send("d", slug) for slug in sent]
    assert not all(fitted)  # the pipe filled up; the writer went on
    pipe.send("u", "post-000001")  # a line already read later still goes
    received: list[tuple[str, str]] = []
    while True:
        received += pipe.receive()
        if pipe.flush():
            received += pipe.receive()
            break
    assert [slug for kind, slug in received if kind == "d"] == sent  # in order, each once
    assert received[-1] == ("u", "post-000001")
    assert pipe.receive() == []


def test_an_urgent_line_sent_twice_while_queued_is_written_once(pipe: BuildPipe) -> None:
    while pipe.send("d", "filler-" + "x" * 200 + str(os.urandom(4).hex())):
        pass  # until the pipe is full
    pipe.send("u", "a-post")
    pipe.send("u", "a-post")
    received: list[tuple[str, str]] = []
    while not pipe.flush():
        received += pipe.receive()
    received += pipe.receive()
    assert received.count(("u", "a-post")) == 1


@pytest.mark.anyio
async def test_a_reply_is_built_through_the_pipe_while_a_like_flood_waits(
    site: Path, pipe: BuildPipe
) -> None:
    """The processing side (a forwarding ``Rebuilder``, its comment store's writes) and the
    building side (a ``Rebuilder`` fed by ``apply``) joined by a pipe, as in ``serve``."""
    cfg = config_mod.load(site)
    site_mod.build(cfg)
    processing = Rebuilder(cfg)
    processing.forward_to(pipe)
    builder = Rebuilder(cfg, delay=0.01, full_every=600.0, gap=0.0)
    builds = record_builds(builder)
    loop = asyncio.get_running_loop()
    # The building side's store is the processing side's here (one test process): only the
    # pipe may tell the builder what changed, so the forwarding hook must not be bypassed.
    assert builder.comments.cache is processing.comments.cache
    loop.add_reader(pipe.read_fd, lambda: apply(builder, pipe.receive()))
    stop = asyncio.Event()
    tasks = [asyncio.create_task(r.run(stop)) for r in (processing, builder)]
    store = CommentStore(cfg.content_dir)
    try:
        store.write("spoilers", like("spoilers", 0))
        processing.mark_dirty("spoilers")
        await wait_for(lambda: "Liker 0" in page(cfg, "spoilers"))  # the first build: full
        assert builds == [None]

        for n in range(1, 200):  # a flood of likes, and a reply in the middle of it
            store.write("spoilers", like("spoilers", n))
            processing.mark_dirty("spoilers")
            if n == 100:
                store.write("quick-note", reply("quick-note", "reply-in-a-flood"))
                processing.mark_dirty("quick-note")
            await asyncio.sleep(0.001)
        await wait_for(lambda: "reply-in-a-flood" in page(cfg, "quick-note"), 10.0)
        assert all(b == {"quick-note"} for b in builds[1:])  # no full build ran before it
        assert "Liker 150" not in page(cfg, "spoilers")  # the likes wait for the full build
        assert builder.dirty >= {"spoilers"}
        assert processing.dirty == set()  # the processing side keeps nothing itself
    finally:
        stop.set()
        loop.remove_reader(pipe.read_fd)
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
        builder.comments.cache.forward = None


def rebuild_pid(blog: Blog) -> int | None:
    found = [e for e in events(blog) if e["event"] == "processes"]
    return int(found[-1]["rebuild"]) if found else None


def test_kill_9_of_the_rebuild_process_loses_no_reply_from_the_page(
    blog: Blog, remote_key: rsa.RSAPrivateKey
) -> None:
    blog.start(build=False, extra=("--workers", "2", "--log-format", "json"))
    pid = blog.wait_until(lambda: rebuild_pid(blog), what="the process line")
    assert Path(f"/proc/{pid}/comm").read_text().strip() == "ib-rebuild"
    docs = [activity(blog, n, likes=False) for n in range(40)]
    assert send_all(blog, remote_key, docs[:20]) == Counter({202: 20})
    os.kill(pid, signal.SIGKILL)  # while the first replies are processed and built
    assert send_all(blog, remote_key, docs[20:]) == Counter({202: 20})
    restarted = blog.wait_until(
        lambda: [e for e in events(blog) if e["event"] == "process-restarted"],
        what="the rebuild process restarted",
    )
    assert restarted[0]["role"] == "rebuild"
    html = blog.wait_until(
        lambda: (lambda h: h if all(f"Reply number {n}." in h for n in range(40)) else None)(
            blog.html("/posts/hello/")
        ),
        timeout=60,
        what="every reply on the page",
    )
    assert html.count("Reply number 3.") == 1
