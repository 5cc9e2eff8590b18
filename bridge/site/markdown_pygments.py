"""``fenced_code`` imported without importing Pygments, which the site never calls.

Python-Markdown's ``fenced_code`` imports ``codehilite``, which imports Pygments (its
lexer registry reads every installed package's entry points: about 11 ms, a twentieth of
a one-post rebuild).  ``fenced_code`` highlights a block only when a ``CodeHiliteExtension``
is registered on the same converter (``FencedBlockPreprocessor.run``: it reads the
configuration of a registered one, and ``use_pygments`` comes from that configuration
only); the site's converter registers none, so its output never depends on Pygments.

``import_fenced_code()`` therefore imports ``codehilite`` with Pygments hidden, in a
process with one thread only (a command; no other thread can be importing Pygments in
that moment), and then gives ``codehilite`` back what the stock import gives it: the
four Pygments names, each importing Pygments on its first call.  Another converter in
the same process that does register ``codehilite`` highlights exactly as before.
``tests/site/test_markdown_pygments.py`` checks both.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from types import ModuleType
from typing import Any

NAMES = {
    "highlight": "pygments",
    "get_lexer_by_name": "pygments.lexers",
    "guess_lexer": "pygments.lexers",
    "get_formatter_by_name": "pygments.formatters",
    "ClassNotFound": "pygments.util",
}


def import_fenced_code() -> None:
    """Import ``markdown.extensions.fenced_code`` (and ``codehilite``) lazily as above;
    the stock import when Pygments is loaded already or other threads run."""
    if (
        "markdown.extensions.codehilite" in sys.modules
        or "pygments" in sys.modules
        or threading.active_count() > 1
    ):
        importlib.import_module("markdown.extensions.fenced_code")
        return
    sys.modules["pygments"] = None  # type: ignore[assignment]  # makes the import fail
    try:
        codehilite = importlib.import_module("markdown.extensions.codehilite")
    finally:
        if sys.modules.get("pygments", 0) is None:
            del sys.modules["pygments"]
    installed = importlib.util.find_spec("pygments") is not None
    if getattr(codehilite, "pygments", None) is False and installed:
        _defer_pygments(codehilite)
    importlib.import_module("markdown.extensions.fenced_code")


def _defer_pygments(codehilite: ModuleType) -> None:
    """Give ``codehilite`` its Pygments names as functions that import Pygments on the
    first call and then put the real names in their place.  ``ClassNotFound`` is only
    named in an ``except`` after a lexer was asked for, so it is real by then."""

    def load() -> None:
        for name, module in NAMES.items():
            setattr(codehilite, name, getattr(importlib.import_module(module), name))

    def deferred(name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            load()
            return getattr(codehilite, name)(*args, **kwargs)

        return call

    for name in NAMES:
        if name != "ClassNotFound":
            setattr(codehilite, name, deferred(name))
    setattr(codehilite, "pygments", True)  # noqa: B010 - a module attribute
