"""One line per build: what the terminal and the browser overlay show.

``describe(outcome)`` is the line for a finished build (``rebuilt in 0.12s: 2 file(s)
changed: ...``) or a failed one (``build failed: content/posts/x.md:3: ...``);
``describe_error`` is the one-line message of a failure, naming the file and line at
fault (template frames included) instead of a traceback.  ``terminal_reporter`` is the
``on_build`` callback of ``SiteWatcher`` that prints it and tells the live-reload hub; it
also prints a build's warnings (a missing image), each once: a warning the build before
already printed is counted, not repeated, so a save does not scroll the site's old
warnings past the new one (``build`` from the command line prints them all).
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from bridge import config as config_mod
from bridge.config import SiteConfig

if TYPE_CHECKING:
    from bridge.site.build import BuildResult


class BuildListener(Protocol):
    """What the terminal reporter forwards outcomes to (the live-reload ``ReloadHub``)."""

    def on_build(self, outcome: BuildResult | Exception, message: str = "") -> None: ...


OnBuild = Callable[["BuildResult | Exception"], None]
Echo = Callable[[str], None]


def _short_path(path: str, config: SiteConfig | None) -> str:
    p = Path(path)
    roots = [config.site_dir] if config is not None else []
    roots.append(config_mod.DEFAULT_THEME.parent)
    for root in roots:
        try:
            return p.resolve().relative_to(root.resolve()).as_posix()
        except (ValueError, OSError):
            continue
    return path


def describe_error(exc: BaseException, config: SiteConfig | None = None) -> str:
    """One line naming the file (and line) at fault and what is wrong."""
    import jinja2

    from bridge.errors import BridgeError

    if isinstance(exc, jinja2.TemplateSyntaxError):
        where = _short_path(exc.filename or exc.name or "template", config)
        text = f"{where}:{exc.lineno}: {exc.message}"
    elif isinstance(exc, jinja2.TemplateNotFound):
        text = f"template not found: {exc.name}"
    elif isinstance(exc, BridgeError):
        text = str(exc)
    else:
        message = f"{type(exc).__name__}: {exc}"
        text = message
        # Jinja rewrites tracebacks so template frames carry the template's file and line.
        for frame in reversed(traceback.extract_tb(exc.__traceback__)):
            if frame.filename.endswith((".html", ".xml", ".txt", ".j2", ".jinja")):
                text = f"{_short_path(frame.filename, config)}:{frame.lineno}: {message}"
                break
    return " ".join(text.split())


def describe(outcome: BuildResult | Exception, config: SiteConfig | None = None) -> str:
    """The one line the terminal shows for a build."""
    if isinstance(outcome, Exception):
        return f"build failed: {describe_error(outcome, config)}"
    changed = outcome.changed
    if not changed:
        return f"rebuilt in {outcome.seconds:.2f}s: nothing changed"
    shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
    return f"rebuilt in {outcome.seconds:.2f}s: {len(changed)} file(s) changed: {shown}"


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def terminal_reporter(
    hub: BuildListener | None = None,
    echo: Echo | None = None,
    config: SiteConfig | None = None,
    *,
    warned: Iterable[str] = (),
) -> OnBuild:
    """An ``on_build`` that prints one line per build and forwards the outcome to ``hub``;
    ``warned``: the warnings the terminal already shows (the build ``serve`` ran first)."""
    out = echo or _stderr
    shown = set(warned)  # the warnings of the last build that finished

    def report(outcome: BuildResult | Exception) -> None:
        nonlocal shown
        out(describe(outcome, config))
        if not isinstance(outcome, Exception):
            current = set(outcome.warnings)
            for warning in outcome.warnings:
                if warning not in shown:
                    out(f"warning: {warning}")
            kept = len(current & shown)
            if kept:
                out(f"({kept} earlier warning(s) still apply)")
            shown = current
        if hub is not None:
            hub.on_build(
                outcome, describe_error(outcome, config) if isinstance(outcome, Exception) else ""
            )

    return report
