"""The build stamp: a command build with nothing to do, found before anything is planned.

After a command's build that wrote nothing, the stamp records everything ``build()``
reads and every output; the next command build compares the stamp with the disk and,
when every entry matches, prints what the build printed (its warnings and its summary,
with nothing changed) without loading a post or planning an output.  A build that wrote
files leaves only the posts' facts (below) for the next one: its outputs are too new to
trust, and so a one-post rebuild pays for no walk.

What the stamp holds (``.indiebridge/manifest-<folder>.stamp``, one per output folder):

* the key: this module's ``VERSION``, the package's version, the Python version, the
  site's settings as loaded (``SiteConfig``, which ``site.toml`` and any override make)
  and the build's arguments (output folder, drafts, strict, live reload);
* every input file, by path, size and mtime (ns), walked with ``os.scandir``:
  ``content/`` whole (posts, pages, comments, anything beside them), the site's
  ``templates/`` and ``static/``, the default theme, ``site.toml``, the key files, the
  output folder's manifest, the ``bridge`` package's own files and the files of the
  libraries rendering depends on (Markdown, Jinja, MarkupSafe, PyYAML, nh3, Pygments,
  cryptography);
* the rows the build reads from the state database (``ledger.fingerprint``, a hash of
  exactly the rows ``ledger.read`` reads: the daemon's other writes change nothing);
* every output the manifest lists, by path, size and mtime (ns);
* the build's result: post, page and file counts and the warnings it printed;
* what ``publish`` asks of the posts (``PostFacts``), so a publish with nothing new
  needs no post either.

Not in it: the caches under ``.indiebridge/cache/`` (each a function of the inputs
above) and the clock (the build reads no time).

Any doubt gives the full, unchanged build: no stamp, an unreadable one, another key, a
file added, removed or changed, a stat within ``RACY_NS`` of the scan that took it (a
same-size write in the same clock tick keeps the mtime; ``parse_cache`` does the same),
a half-done switch or staging folder beside the output, other database rows.  The
build itself needs none of this: the stamp only decides whether it runs.

Only builds run for a command use it (``for_command``, which the command line's
``build_with_progress`` enters): a resident process (``serve --watch``, the daemon)
builds because something changed and keeps its own state between builds.
"""

from __future__ import annotations

import array
import contextlib
import dataclasses
import functools
import importlib.util
import marshal
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from bridge import __version__
from bridge.config import CONFIG_NAME, DEFAULT_THEME, SiteConfig
from bridge.site import ledger
from bridge.site.build_result import BuildResult
from bridge.site.manifest import manifest_path, read_manifest
from bridge.site.mentions import find_handles
from bridge.site.parse_cache import might_mention
from bridge.site.posts import Post

VERSION = "build-stamp-2"
RACY_NS = 2_000_000_000
# The libraries whose files shape the output (an upgrade changes them).
LIBRARIES = ("markdown", "jinja2", "markupsafe", "yaml", "nh3", "pygments", "cryptography")

_wanted: ContextVar[bool] = ContextVar("build_stamp_wanted", default=False)

Stats = dict[str, tuple[int, int]]  # path -> (size, mtime_ns)


@contextlib.contextmanager
def _wanting(value: bool) -> Iterator[None]:
    token = _wanted.set(value)
    try:
        yield
    finally:
        _wanted.reset(token)


def for_command() -> contextlib.AbstractContextManager[None]:
    """Builds inside use the stamp (a command's builds; see the module docstring)."""
    return _wanting(True)


def _bypassed() -> contextlib.AbstractContextManager[None]:
    return _wanting(False)


@dataclasses.dataclass(frozen=True)
class PostFacts:
    """What ``bridge.federation.pending`` asks of the built posts: their slugs, the
    ``@user@host`` handles their HTML holds, and the posts they quote."""

    slugs: tuple[str, ...]
    handles: frozenset[str]
    quoted: frozenset[str]

    @classmethod
    def of(cls, posts: Sequence[Post]) -> PostFacts:
        return cls.from_rows({p.slug: _facts_row(p) for p in posts})

    @classmethod
    def from_rows(cls, rows: dict[str, tuple[str, tuple[str, ...], str]]) -> PostFacts:
        return cls(
            slugs=tuple(rows),
            handles=frozenset(h for _, handles, _ in rows.values() for h in handles),
            quoted=frozenset(q for _, _, q in rows.values() if q),
        )


def _facts_row(post: Post) -> tuple[str, tuple[str, ...], str]:
    """(digest, handles, quoted URL) of one built post; a cached post's HTML is read only
    when it holds an ``@``."""
    handles = tuple(find_handles(post.html)) if might_mention(post) else ()
    return (post.digest, handles, post.quote_of or "")


class Unchanged(BuildResult):
    """The result of a build the stamp found nothing to do for.  ``facts`` answer
    ``publish``'s questions; ``built_posts``, when something asks for them, come from a
    full build (which then writes nothing)."""

    def __init__(self, facts: PostFacts, rebuild: Callable[[], BuildResult], **fields: Any) -> None:
        self._posts: tuple[Post, ...] | None = None
        self._rebuild = rebuild
        self.facts = facts
        super().__init__(**fields)

    @property
    def built_posts(self) -> tuple[Post, ...]:
        if self._posts is None:
            with _bypassed():
                self._posts = self._rebuild().built_posts
        return self._posts

    @built_posts.setter
    def built_posts(self, value: tuple[Post, ...]) -> None:
        self._posts = value or None  # () from BuildResult's __init__: not read yet

    def __repr__(self) -> str:
        return f"Unchanged({self.summary()!r})"


class Stamp:
    """One build's view of its stamp: ``unchanged`` (a result when nothing changed),
    ``save(result)`` after a successful build.  ``build`` is ``site.build.build``, run
    (without the stamp) when an unchanged build's posts are asked for.

    A build that wrote or removed a file leaves a stamp that is never trusted (its
    outputs are seconds old), holding only the posts' facts for the next one to reuse;
    so a one-post rebuild neither walks the inputs nor stats the outputs.  The next
    build, writing nothing, takes the stamp that the one after it can trust."""

    def __init__(
        self,
        config: SiteConfig,
        out_dir: Path,
        build: Callable[..., BuildResult],
        *,
        drafts: bool,
        strict: bool,
        live_reload: bool,
    ) -> None:
        self.config, self.out_dir = config, out_dir
        self.path = manifest_path(config, out_dir).with_suffix(".stamp")
        self.wanted = _wanted.get()
        self.unchanged: Unchanged | None = None
        self.old: dict[str, Any] = {}
        self.inputs: Stats | None = None
        if not self.wanted:
            return
        started = time.perf_counter()
        self.key = repr(
            (VERSION, __version__, sys.version, config, str(out_dir), drafts, strict, live_reload)
        )
        # Before the build reads anything: a change from here on is newer than the stamp.
        self.scan_ns = time.time_ns()
        self.db = ledger.fingerprint(config)
        self.old = _load(self.path)
        if self.old.get("key") != self.key:
            self.old = {}  # nor are its facts of use
            return
        if self.old.get("racy", True):
            return
        self.inputs = _inputs(config, out_dir)
        try:
            self.unchanged = self._unchanged(build, drafts, strict, live_reload, started)
        except (KeyError, TypeError, ValueError):  # a stamp of another shape: not trusted
            self.unchanged = None

    def _unchanged(
        self,
        build: Callable[..., BuildResult],
        drafts: bool,
        strict: bool,
        live_reload: bool,
        started: float,
    ) -> Unchanged | None:
        old, out_dir = self.old, self.out_dir
        if (
            old["inputs"] != self.inputs
            or old["db"] != self.db
            or _leftovers(out_dir)
            or _bytes(_output_stats(out_dir, old["outputs"])) != old["stats"]
        ):
            return None
        posts, pages, files = old["counts"]
        rebuild = functools.partial(
            build,
            self.config,
            out_dir=out_dir,
            drafts=drafts,
            strict=strict,
            live_reload=live_reload,
        )
        return Unchanged(
            PostFacts.from_rows(old["facts"]),
            rebuild,
            out_dir=out_dir,
            posts=posts,
            pages=pages,
            files=files,
            written=0,
            rendered=0,
            seconds=time.perf_counter() - started,
            warnings=[str(w) for w in old["warnings"]],
        )

    def save(self, result: BuildResult) -> None:
        """Record this build: the inputs (as they were when it started: anything changed
        since makes the stamp untrusted) and the outputs as they are now."""
        if not self.wanted:
            return
        old_facts = self.old.get("facts")
        old_facts = old_facts if isinstance(old_facts, dict) else {}
        facts = {}
        for post in result.built_posts:
            row = old_facts.get(post.slug)
            kept = isinstance(row, tuple) and len(row) == 3 and row[0] == post.digest
            facts[post.slug] = row if kept else _facts_row(post)
        now = time.time_ns()
        wrote = self.old.get("wrote_ns", 0)
        wrote = now if result.written or result.changed or not isinstance(wrote, int) else wrote
        data: dict[str, Any] = {"key": self.key, "racy": True, "facts": facts, "wrote_ns": wrote}
        if wrote < now - RACY_NS:  # no output written within 2 s by a command build
            data |= self._trusted(result)
        tmp = self.path.with_suffix(f".stamp-{os.getpid()}")
        try:
            tmp.write_bytes(marshal.dumps(data))
            os.replace(tmp, self.path)
        except (OSError, ValueError):  # a stamp that cannot be written only costs speed
            with contextlib.suppress(OSError):
                tmp.unlink()
                self.path.unlink()

    def _trusted(self, result: BuildResult) -> dict[str, Any]:
        """The stamp's inputs and outputs; ``racy`` unless every stat is older than 2 s
        before the scan that took it (the inputs': the scan before the build)."""
        inputs = self.inputs if self.inputs is not None else _inputs(self.config, self.out_dir)
        if any(m >= self.scan_ns - RACY_NS for _, m in inputs.values()):
            return {}  # an input changed within 2 s of the build: stats not trusted
        outputs = tuple(sorted(read_manifest(manifest_path(self.config, self.out_dir))))
        output_scan = time.time_ns()
        stats = _output_stats(self.out_dir, outputs)
        return {
            "racy": stats is None or max(stats[1::2], default=0) >= output_scan - RACY_NS,
            "inputs": inputs,
            "db": self.db,
            "outputs": outputs,
            "stats": _bytes(stats),
            "counts": (result.posts, result.pages, result.files),
            "warnings": tuple(result.warnings),
        }


def _load(path: Path) -> dict[str, Any]:
    try:
        data = marshal.loads(path.read_bytes())  # noqa: S302 - our own private file
    except (OSError, ValueError, EOFError, TypeError):
        return {}
    return data if isinstance(data, dict) else {}


def _inputs(config: SiteConfig, out_dir: Path) -> Stats:
    """Every input file's (size, mtime_ns), by path (see the module docstring)."""
    found: Stats = {}
    seen: set[tuple[int, int]] = set()
    for folder in (
        config.content_dir,
        config.site_dir / "templates",
        config.site_dir / "static",
        DEFAULT_THEME,
        config.state_dir / "keys",
        Path(__file__).resolve().parent.parent,  # the bridge package
    ):
        _walk(str(folder), found, seen)
    files = [config.site_dir / CONFIG_NAME, manifest_path(config, out_dir)]
    for name in LIBRARIES:
        with contextlib.suppress(ImportError, ValueError):
            spec = importlib.util.find_spec(name)
            if spec is not None and spec.origin:
                files.append(Path(spec.origin))
    for file in files:
        try:
            st = os.stat(file)
        except OSError:
            found[str(file)] = (-1, -1)
            continue
        found[str(file)] = (st.st_size, st.st_mtime_ns)
    return found


def _walk(folder: str, found: Stats, seen: set[tuple[int, int]]) -> None:
    """The files under ``folder`` (symlinks followed, each folder once)."""
    try:
        st = os.stat(folder)
        if (st.st_dev, st.st_ino) in seen:
            return
        seen.add((st.st_dev, st.st_ino))
        entries = list(os.scandir(folder))
    except OSError:
        found[folder] = (-1, -1)  # missing (or unreadable): it must stay so
        return
    for entry in entries:
        if entry.name == "__pycache__":
            continue
        try:
            if entry.is_dir():
                _walk(entry.path, found, seen)
                continue
            st = entry.stat()
        except OSError:
            found[entry.path] = (-1, -1)
            continue
        found[entry.path] = (st.st_size, st.st_mtime_ns)


def _output_stats(out_dir: Path, outputs: Sequence[str]) -> array.array[int] | None:
    """Size and mtime_ns of each output, in order, in one array (a list of 31,000 pairs
    took 10 ms to read back); None when one is missing."""
    try:
        fd = os.open(out_dir, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return None
    try:
        stat = os.stat
        out = array.array("q")
        for rel in outputs:
            st = stat(rel, dir_fd=fd, follow_symlinks=False)
            out.append(st.st_size)
            out.append(st.st_mtime_ns)
        return out
    except OSError:
        return None
    finally:
        os.close(fd)


def _bytes(stats: array.array[int] | None) -> bytes | None:
    return None if stats is None else stats.tobytes()


def _leftovers(out_dir: Path) -> bool:
    """Whether a killed build left a journal or a staging folder beside the output (the
    full build completes or removes it)."""
    prefix = f".{out_dir.name}."
    try:
        return any(name.startswith(prefix) for name in os.listdir(out_dir.parent))
    except OSError:
        return True
