"""Putting a build's files in place: the journaled switch, the swap of a fresh tree, and
the recovery of a switch a killed build left half done (``output.py`` renders and stages;
this module moves).

* ``apply_journal`` carries out the moves a journal lists, idempotently: a build or daemon
  start finding a journal completes it (roll-forward), so old and new pages are never
  served side by side;
* ``swap_in`` puts a fresh tree where the output is, in one ``RENAME_EXCHANGE`` where
  Linux offers it, else in two renames that put the old tree back if the second fails;
* ``build_lock`` keeps two writers (the daemon's rebuilds, a ``build`` from the command
  line) off one output folder, and ``remove_stale_siblings`` removes what killed builds
  left beside it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from bridge.config import SiteConfig
from bridge.errors import BuildError
from bridge.site.manifest import manifest_path as _manifest_path
from bridge.site.manifest import write_manifest as _write_manifest


def safe_join(root: Path, rel: str) -> Path:
    """``root / rel`` once ``check_rel`` has passed."""
    check_rel(root, rel)
    return root / rel


def check_rel(root: Path, rel: str) -> None:
    """Refuse an output path (from a plan, a manifest or a journal) that would land outside
    ``root``: absolute, with a ``..`` part, or with a backslash."""
    if rel.startswith("/") or (".." in rel and ".." in rel.split("/")) or "\\" in rel:
        raise BuildError(f"refusing to write {rel!r}: it would land outside {root}")


def swap_in(new_dir: Path, out_dir: Path) -> None:
    """Put ``new_dir`` where ``out_dir`` is: in one atomic step where the system can
    (RENAME_EXCHANGE); otherwise the old tree is moved aside and put back if the second
    rename fails."""
    aside = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
    if out_dir.exists() and exchange(new_dir, out_dir):
        os.rename(new_dir, aside)  # new_dir now holds the old tree
    else:
        if out_dir.exists():
            os.replace(out_dir, aside)
        try:
            os.replace(new_dir, out_dir)
        except OSError:
            if aside.exists() and not out_dir.exists():
                os.replace(aside, out_dir)
            raise
    if aside.exists():
        shutil.rmtree(aside, ignore_errors=True)


@contextlib.contextmanager
def build_lock(config: SiteConfig, out_dir: Path) -> Iterator[None]:
    """An exclusive lock (flock) on the output folder's lock file, held while writing."""
    import fcntl

    path = _manifest_path(config, out_dir).with_suffix(".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # waits for a build in progress to finish
        yield
    finally:
        os.close(fd)  # closing releases the lock


def journal_path(out_dir: Path) -> Path:
    return out_dir.with_name(f".{out_dir.name}.journal")


def apply_journal(config: SiteConfig, out_dir: Path, journal: Path) -> None:
    """Carry out a journaled switch; idempotent, so it can be re-run after a crash."""
    data = json.loads(journal.read_text())
    manifest_path = _manifest_path(config, out_dir)
    pending = Path(data["manifest_file"]) if "manifest_file" in data else None
    # Until every move is done, no manifest may claim the new files are in place.  The
    # pending one gone means it already replaced the manifest: only clean-up remains.
    if pending is None or pending.exists():
        manifest_path.unlink(missing_ok=True)
    for tmp, rel in data["moves"]:
        target = safe_join(out_dir, rel)
        if os.path.exists(tmp):  # already moved when a crash interrupted an earlier run
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, target)
    for rel in data["removed"]:
        path = safe_join(out_dir, rel)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        for folder in path.parents:
            if folder == out_dir or not folder.is_relative_to(out_dir):
                break
            try:
                folder.rmdir()
            except OSError:
                break  # not empty
    if pending is None:  # a journal written before the manifest moved out of it
        _write_manifest(manifest_path, data["manifest"])
    elif pending.exists():
        os.replace(pending, manifest_path)
    shutil.rmtree(data["stage"], ignore_errors=True)
    journal.unlink()


def recover_output(config: SiteConfig, out_dir: Path | None = None) -> bool:
    """Complete a switch a killed build left half done; True when there was one.

    Called by every build before it starts and by the daemon at start-up, so after a crash
    the served site is the complete new tree (or, for a fresh tree whose swap was cut
    between its two renames, the old tree put back).
    """
    out_dir = (out_dir or config.output_dir).resolve()
    journal = journal_path(out_dir)
    recovered = False
    if journal.is_file():
        try:
            apply_journal(config, out_dir, journal)
        except (OSError, ValueError, KeyError, TypeError):
            journal.unlink(missing_ok=True)  # unreadable: the next build starts afresh
            _manifest_path(config, out_dir).unlink(missing_ok=True)
        recovered = True
    if not out_dir.exists():
        for aside in sorted(out_dir.parent.glob(f".{out_dir.name}.old-*")):
            if aside.is_dir():
                os.rename(aside, out_dir)  # the old tree, moved aside by a killed swap
                recovered = True
                break
    return recovered


def exchange(a: Path, b: Path) -> bool:
    """Atomically swap two directories (Linux renameat2 RENAME_EXCHANGE); False if the
    system cannot, in which case the caller falls back to two renames."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    result = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    return bool(result == 0)


def remove_stale_siblings(out_dir: Path) -> None:
    """Remove the staging and new-tree folders that killed builds left beside the output."""
    try:
        siblings = list(out_dir.parent.iterdir())
    except OSError:
        return
    for path in siblings:
        name = path.name
        if not name.startswith(f".{out_dir.name}.") or "-" not in name:
            continue
        kind, _, pid = name[len(out_dir.name) + 2 :].rpartition("-")
        if kind not in ("stage", "new", "old") or not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
            continue  # that build is still running
        except ProcessLookupError:
            pass
        except OSError:
            continue  # someone else's process: leave its folder alone
        shutil.rmtree(path, ignore_errors=True)
