"""A cold build rendered in forked workers (``bridge.site.parallel``) writes the same bytes
as one rendered in-process, keeps each post's signed documents in one worker, and reports
a worker's failure as the error the output raises."""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bridge.config import load as load_config
from bridge.errors import BuildError
from bridge.site import parallel, proofs
from bridge.site.build import BuildResult
from bridge.site.output import Output, write_outputs
from tests.conftest import read_tree

Build = Callable[..., BuildResult]


@pytest.fixture
def forks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Workers for any number of outputs; the list counts the runs that really forked."""
    monkeypatch.setattr(parallel, "PARALLEL_MIN", 1)
    forked: list[int] = []
    render = parallel.render_and_write

    def counting(*args: Any) -> list[parallel.Written] | None:
        result = render(*args)
        if result is not None:
            forked.append(len(result))
        return result

    monkeypatch.setattr(parallel, "render_and_write", counting)
    return forked


def test_forked_build_writes_what_an_in_process_build_writes(
    site: Path, build_site: Build, forks: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    forked = build_site(site)
    assert forks and forks[0] == forked.files - 1  # all but the first, in workers
    tree = read_tree(forked.out_dir)
    shutil.rmtree(forked.out_dir)
    shutil.rmtree(load_config(site).state_dir / "cache")
    for manifest in load_config(site).state_dir.glob("manifest-*.json"):
        manifest.unlink()
    monkeypatch.setattr(parallel, "PARALLEL_MIN", 10**9)
    serial = build_site(site)
    assert len(forks) == 1
    assert read_tree(serial.out_dir) == tree
    assert serial.files == forked.files == serial.written


def _out(path: str, cut: bool = True) -> Output:
    return Output(path, "k", lambda: b"x", cut=cut)


def test_runs_end_only_where_a_cut_is_allowed() -> None:
    # Two posts of three documents each, then an outbox page, twice over, then the rest.
    outputs = (
        [_out(f"p{i}", cut=False) for i in range(6)]
        + [_out("outbox-1")]
        + [_out(f"q{i}", cut=False) for i in range(6)]
        + [_out("outbox-2")]
        + [_out(f"r{i}") for i in range(4)]
    )
    bounds = parallel.runs(outputs, 8)
    assert bounds[0][0] == 0 and bounds[-1][1] == len(outputs)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
    assert all(outputs[end - 1].cut for _, end in bounds)
    # 18 outputs in about 8 runs of 2: the posts stay with their outbox page; the last
    # four outputs may be parted anywhere.
    assert bounds == [(0, 7), (7, 14), (14, 16), (16, 18)]


def test_a_failure_in_a_worker_is_raised_as_the_output_raises_it(
    site: Path, forks: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    config = load_config(site)
    parent = os.getpid()

    def flaky() -> bytes:  # fails in a worker only: rendered again in the parent
        if os.getpid() != parent:
            raise OSError("worker only")
        return b"again"

    def broken() -> bytes:
        raise BuildError("templates/post.html:3: broken")

    outputs = [_out(f"a/{n}.txt") for n in range(5)] + [Output("b/flaky.txt", "k", flaky)]
    out_dir = site / "public"
    write_outputs(config, out_dir, iter(outputs), None, len(outputs))
    assert forks == [5]
    assert (out_dir / "b/flaky.txt").read_bytes() == b"again"
    shutil.rmtree(out_dir)
    for manifest in config.state_dir.glob("manifest-*.json"):
        manifest.unlink()
    outputs[3] = Output("a/broken.txt", "k", broken)
    with pytest.raises(BuildError, match=r"post\.html:3: broken"):
        write_outputs(config, out_dir, iter(outputs), None, len(outputs))
    assert not out_dir.exists()  # the previous (no) output is untouched
    assert not list(site.glob(".public.*"))  # nor is a half-written tree left beside it


def test_only_published_documents_are_signed(
    site: Path, build_site: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cold build signs each federated post's object and Create once, and the actor;
    a draft (even built with ``--drafts``) nothing; an unchanged rebuild nothing; an edit
    the edited post's two documents."""
    signed: list[str] = []
    sign = proofs.sign_object

    def counting(obj: dict[str, Any], *args: Any) -> dict[str, Any]:
        signed.append(str(obj["id"]))
        return sign(obj, *args)

    monkeypatch.setattr(proofs, "sign_object", counting)
    monkeypatch.setattr(parallel, "PARALLEL_MIN", 10**9)  # counted in this process
    result = build_site(site, drafts=True)
    base = "https://blog.example/ap"
    federated = ["first-article", "quick-note", "spoilers", "a-reply"]
    assert sorted(signed) == sorted(
        [f"{base}/actor.json"]
        + [f"{base}/posts/{slug}.json" for slug in federated]
        + [f"{base}/posts/{slug}/create.json" for slug in federated]
    )
    assert "posts/draft/index.html" in result.changed  # shown, never federated
    signed.clear()
    build_site(site, drafts=True)
    assert signed == []
    note = site / "content/posts/2026-01-12-quick-note.md"
    note.write_text(note.read_text(encoding="utf-8") + "\nOne more line.\n", encoding="utf-8")
    build_site(site, drafts=True)
    assert sorted(signed) == [
        f"{base}/posts/quick-note.json",
        f"{base}/posts/quick-note/create.json",
    ]


def test_a_worker_writes_a_file_as_open_would(tmp_path: Path) -> None:
    """Same bytes, same permission bits (the umask applies), and a file that was there is
    truncated, not appended to."""
    with open(tmp_path / "by-open", "wb") as fh:
        fh.write(b"x" * 70_000)
    (tmp_path / "by-worker").write_bytes(b"old content that is longer than what follows" * 9000)
    parallel._write(str(tmp_path / "by-worker"), b"x" * 70_000)
    ours, theirs = tmp_path / "by-worker", tmp_path / "by-open"
    assert ours.read_bytes() == theirs.read_bytes()
    assert ours.stat().st_mode == theirs.stat().st_mode
    parallel._folder(str(tmp_path / "a" / "b"))  # a missing parent is made too
    parallel._folder(str(tmp_path / "a" / "b"))  # and one that exists is fine
    assert (tmp_path / "a" / "b").is_dir()
