"""The output writer: staging beside the output folder, a journal, an atomic switch.

``write_outputs`` takes the outputs the plan yields (a path, a key, a way to render) and
writes them so that the served folder is only ever the previous complete site or the new
complete site:

* first build (or no usable manifest): every output goes into a fresh tree beside the
  folder, which is then swapped in (``RENAME_EXCHANGE`` where Linux offers it);
* later builds: an output whose key matches the manifest is not rendered; one whose bytes
  match the old file is not written; each changed file is staged beside the folder, and
  once all are rendered a journal lists the moves before the first rename, so a build
  killed while renaming is completed by the next build or daemon start (roll-forward).

Nothing temporary is ever inside the output: a build killed half-way leaves nothing there to
be served or deployed, and the next build removes the staging folders of killed builds.  The
manifest (output path -> [key, sha256], ``manifest.py``) is one per output folder.  The
moves themselves (the journal carried out, the fresh tree swapped in, recovery after a
kill) are ``output_switch.py``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bridge.config import SiteConfig
from bridge.errors import BuildError
from bridge.site import parallel
from bridge.site.manifest import Manifest
from bridge.site.manifest import keep_manifest as _keep_manifest
from bridge.site.manifest import manifest_path as _manifest_path
from bridge.site.manifest import pending_path as _pending_manifest_path
from bridge.site.manifest import read_manifest as _read_manifest
from bridge.site.manifest import write_entries as _write_entries
from bridge.site.manifest import write_manifest as _write_manifest
from bridge.site.output_switch import (
    apply_journal,
    check_rel,
    journal_path,
    recover_output,
    remove_stale_siblings,
    swap_in,
)
from bridge.site.preview import preview_dir

Progress = Callable[[int, int], None]


@dataclass
class Output:
    """One file of the site: where it goes, what it is made from, how to render it."""

    path: str  # relative, POSIX
    key: str
    render: Callable[[], bytes]
    # False: the next output reuses what rendering this one signed (a post's object, its
    # Create, the outbox page embedding it), so parallel workers must not part them.
    cut: bool = True


@dataclass
class Kept:
    """Outputs planned before from the same inputs (``bridge.site.kept``): taken as they
    are when the manifest holds every (path, key) pair, else planned (``expand``).  A
    resident process's own are taken without looking at the files (one deleted by hand
    comes back at the next command build); those a command build takes from the last
    one's (``look``) are looked at, as a planned output is."""

    entries: Sequence[tuple[str, str]]
    expand: Callable[[], Iterator[Output]]
    look: bool = False


def planned(outputs: Iterable[Output | Kept]) -> Iterator[Output]:
    """Every output, ``Kept`` ones planned again (a fresh tree needs them all)."""
    for out in outputs:
        yield from out.expand() if isinstance(out, Kept) else (out,)


def count(outputs: Iterable[Output | Kept]) -> int:
    return sum(len(out.entries) if isinstance(out, Kept) else 1 for out in outputs)


@dataclass
class WriteStats:
    """What one write did: outputs seen, files written, outputs rendered, paths changed."""

    files: int = 0
    written: int = 0
    rendered: int = 0
    changed: list[str] = field(default_factory=list)


def previous_outputs(config: SiteConfig, out_dir: Path) -> Callable[[str, str], bytes | None]:
    """``read(path, key)``: the bytes the last build wrote at ``path`` when it wrote them
    with ``key`` and they are still there unchanged, else None.  For outputs that embed
    another output's document (an outbox page, its posts' Creates), so an unchanged one
    is read back instead of being signed again.  Valid until this build's switch."""
    manifest = _read_manifest(_manifest_path(config, out_dir))
    root = out_dir.resolve()

    def read(rel: str, key: str) -> bytes | None:
        entry = manifest.get(rel)
        if not entry or entry[0] != key:
            return None
        try:
            check_rel(root, rel)
            data = (root / rel).read_bytes()
        except (OSError, BuildError):
            return None
        return data if hashlib.sha256(data).hexdigest() == entry[1] else None

    return read


def _write_failed(out_dir: Path, exc: OSError, then: str) -> BuildError:
    return BuildError(f"{out_dir}: could not write the site ({exc.strerror or exc}); {then}")


def write_outputs(
    config: SiteConfig,
    out_dir: Path,
    outputs: Iterator[Output | Kept],
    progress: Progress | None,
    total: int,
) -> WriteStats:
    """Write outputs: a fresh tree swapped in, or only the changed files, switched in.

    (Copying every unchanged file into a new tree and deleting the old one cost seconds
    per thousand posts on ordinary disks, hence the two ways.)
    """
    recover_output(config, out_dir)  # a switch a killed build left half done comes first
    old = _read_manifest(_manifest_path(config, out_dir))
    remove_stale_siblings(out_dir)
    if not old or not out_dir.is_dir():
        return _write_fresh_tree(config, out_dir, planned(outputs), progress, total)
    return _write_changes(config, out_dir, outputs, progress, total, old)


def _unless_kept(
    outputs: Iterator[Output | Kept],
    root: str,
    old: Manifest,
    manifest: Manifest,
    stats: WriteStats,
    progress: Progress | None,
    total: int,
) -> Iterator[Output]:
    """The outputs to look at; a ``Kept`` whose pairs the old manifest holds is not one."""
    for out in outputs:
        if not isinstance(out, Kept):
            yield out
            continue
        for path, key in out.entries:
            entry = old.get(path)
            if (
                entry is None
                or entry[0] != key
                or (out.look and not os.path.isfile(f"{root}/{path}"))
            ):
                yield from out.expand()  # (its entries so far are written over)
                break
            manifest[path] = entry
        else:
            stats.files += len(out.entries)
            if progress:
                progress(stats.files, total)


def _write_changes(
    config: SiteConfig,
    out_dir: Path,
    outputs: Iterator[Output | Kept],
    progress: Progress | None,
    total: int,
    old: Manifest,
) -> WriteStats:
    """Stage each changed output beside the folder, then switch them all in (journaled)."""
    stats = WriteStats()
    manifest: Manifest = {}
    staged: list[tuple[Path, Path]] = []
    made_dirs: list[Path] = []
    known_dirs: set[Path] = set()
    stage = out_dir.with_name(f".{out_dir.name}.stage-{os.getpid()}")
    root = str(out_dir)
    try:
        for out in _unless_kept(outputs, root, old, manifest, stats, progress, total):
            # Strings and os.path here: most outputs are unchanged, and pathlib's overhead
            # for tens of thousands of them was most of a no-op rebuild.
            check_rel(out_dir, out.path)
            previous = old.get(out.path)
            stats.files += 1
            if progress:
                progress(stats.files, total)
            if previous and previous[0] == out.key and os.path.isfile(f"{root}/{out.path}"):
                manifest[out.path] = previous
                continue
            target = out_dir / out.path
            data = out.render()
            stats.rendered += 1
            digest = hashlib.sha256(data).hexdigest()
            manifest[out.path] = [out.key, digest]
            if previous and previous[1] == digest and target.is_file():
                continue
            parent = target.parent
            if parent not in known_dirs:
                missing = [d for d in (parent, *parent.parents) if not d.exists()]
                for folder in reversed(missing):
                    folder.mkdir()
                    made_dirs.append(folder)
                known_dirs.add(parent)
            if not staged:
                stage.mkdir()
            staged_file = stage / str(len(staged))
            staged.append((staged_file, target))
            staged_file.write_bytes(data)
            stats.written += 1
            stats.changed.append(out.path)
    except BaseException as exc:
        shutil.rmtree(stage, ignore_errors=True)
        for folder in reversed(made_dirs):
            with contextlib.suppress(OSError):
                folder.rmdir()
        if isinstance(exc, OSError):
            raise _write_failed(out_dir, exc, "the previous output is untouched") from None
        raise
    removed = [p for p in old if p not in manifest]
    stats.changed.extend(removed)
    if staged or removed or manifest != old:  # otherwise the manifest stands
        _switch(config, out_dir, stage, staged, removed, manifest)
    return stats


def _switch(
    config: SiteConfig,
    out_dir: Path,
    stage: Path,
    staged: list[tuple[Path, Path]],
    removed: list[str],
    manifest: Manifest,
) -> None:
    """Rename the staged files into place and delete the removed ones, journaled.

    The list of moves is written (atomically) before the first rename, so a build killed
    while renaming is completed by the next build or daemon start (roll-forward) instead
    of leaving old and new pages side by side.  The new manifest is written beside the
    old one first and the journal names it: the journal stays as small as the change
    (the manifest of 10,000 posts is 16 MB, which the journal used to hold and re-read).
    """
    try:
        journal = journal_path(out_dir)
        pending = _pending_manifest_path(config, out_dir)
        _write_entries(pending, manifest)
        _write_manifest(
            journal,
            {
                "stage": str(stage),
                "moves": [
                    [str(staged_file), str(target.relative_to(out_dir))]
                    for staged_file, target in staged
                ],
                "removed": removed,
                "manifest_file": str(pending),
            },
        )
        apply_journal(config, out_dir, journal)
    except OSError as exc:
        raise _write_failed(out_dir, exc, "build again to complete it") from None
    _keep_manifest(_manifest_path(config, out_dir), manifest)


def _write_fresh_tree(
    config: SiteConfig,
    out_dir: Path,
    outputs: Iterator[Output],
    progress: Progress | None,
    total: int,
) -> WriteStats:
    """Write every output into a fresh tree and swap it in (first build, or no manifest)."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    new_dir = out_dir.with_name(f".{out_dir.name}.new-{os.getpid()}")
    if new_dir.exists():
        shutil.rmtree(new_dir)
    new_dir.mkdir()
    stats = WriteStats()
    manifest: Manifest = {}
    try:
        todo = list(outputs)
        for out in todo:
            check_rel(new_dir, out.path)
        # The first output in-process: its templates are compiled once, before forking.
        first = _write_serially(new_dir, todo[:1])
        after_first = (lambda n, t: progress(n + 1, t)) if progress else None
        written = parallel.render_and_write(new_dir, todo[1:], after_first, total)
        if written is None:
            written = _write_serially(new_dir, todo[1:], after_first, total)
        for out, done in zip(todo, first + written, strict=True):
            if done is None:  # a worker failed on it: rendered again here, to raise
                [done] = _write_serially(new_dir, [out])
            manifest[out.path] = list(done or ())
            stats.changed.append(out.path)
        stats.rendered = stats.written = stats.files = len(todo)
        swap_in(new_dir, out_dir)
        _write_entries(_manifest_path(config, out_dir), manifest)
        _keep_manifest(_manifest_path(config, out_dir), manifest)
    except BaseException as exc:
        shutil.rmtree(new_dir, ignore_errors=True)
        if isinstance(exc, OSError):
            raise _write_failed(out_dir, exc, "the previous output is untouched") from None
        raise
    return stats


def _write_serially(
    root: Path, outputs: list[Output], progress: Progress | None = None, total: int = 0
) -> list[parallel.Written]:
    """Render and write ``outputs`` under ``root`` in this process: (key, sha256) each."""
    made_dirs: set[Path] = set()
    done: list[parallel.Written] = []
    for out in outputs:
        target = root / out.path
        if target.parent not in made_dirs:
            target.parent.mkdir(parents=True, exist_ok=True)
            made_dirs.add(target.parent)
        data = out.render()
        target.write_bytes(data)
        done.append((out.key, hashlib.sha256(data).hexdigest()))
        if progress:
            progress(len(done), total)
    return done


def check_output_dir(config: SiteConfig, out_dir: Path) -> None:
    """The output folder is replaced whole on every build: it must not hold the site."""
    site = config.site_dir.resolve()
    sources = [
        config.content_dir.resolve(),
        config.state_dir.resolve(),
        (site / "templates").resolve(),
        (site / "static").resolve(),
    ]
    for folder in [site, *sources]:
        if out_dir == folder or folder.is_relative_to(out_dir):
            raise BuildError(
                f"{out_dir}: the output folder would replace {folder}; "
                "choose a separate folder such as public/"
            )
    for folder in sources:
        if out_dir.is_relative_to(folder) and out_dir != preview_dir(config).resolve():
            raise BuildError(
                f"{out_dir}: the output folder must not be inside {folder}; "
                "choose a separate folder such as public/"
            )
    if (
        out_dir.is_dir()
        and any(out_dir.iterdir())
        and not _manifest_path(config, out_dir).exists()
        and not (out_dir / "ap" / "actor.json").is_file()
    ):
        raise BuildError(
            f"{out_dir}: exists and does not hold a site built by indiebridge; "
            "refusing to replace it (empty it or choose another folder)"
        )
