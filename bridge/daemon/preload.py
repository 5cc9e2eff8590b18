"""What ``serve``'s supervisor does to its memory before it forks its processes
(``bridge.daemon.processes``).

The supervisor imports what every role runs (``PRELOAD``) and freezes the garbage
collector's view of those objects (``gc.freeze()``) before it forks, so the children share
the pages of the code and module objects instead of each importing its own copy, and a
collection in a child does not write to (and so copy) those shared pages.  It also makes
what each child would otherwise build in memory of its own (``warm``), limits glibc's
malloc arenas (``limit_arenas``) and keeps out packages no process uses
(``keep_out_unused``).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib
import sys
import types
from typing import NoReturn

from bridge.config import SiteConfig

PRELOAD = (
    "uvicorn",
    "uvicorn.protocols.http.httptools_impl",
    "uvicorn.protocols.http.h11_impl",
    "uvicorn.lifespan.on",
    "uvloop",
    "bridge.daemon.app",
    "bridge.federation.limits",
    "bridge.conversations.webmentions",
    "bridge.federation.delivery.child",
    "bridge.conversations.fediverse",
    "bridge.conversations.quotes",
)
"""Modules more than one process runs: imported once, before the fork (optional ones,
like ``uvloop``, are skipped when missing).  The build (``bridge.site.build``, Jinja2,
Markdown, Pygments) is not here: only the rebuild process runs it, and a shared page that
one process writes to is paid for twice, the original (still mapped by the others) and
that process's copy.  So the rebuild process imports it itself and its 3 MB are paid
once; the background process completes an interrupted build's switch with
``output_switch`` alone, which does not import the build."""
NEVER_USED = ("httpx._main", "rich", "trio", "charset_normalizer", "chardet")
"""Optional packages no process of ``serve`` uses, kept out the way
``delivery.pool.NOT_IMPORTED`` keeps them out of an interpreter-started delivery child:

* httpx imports its command line (``httpx._main``, and with it click, Pygments and
  ``rich``) when those are installed, httpcore ``trio`` (its trio support); both fall back
  without them.  (Pygments is the rebuild process's, for code blocks: it imports it
  itself, with the build);
* Beautiful Soup (``bs4.dammit``) imports a character-set detector, ``charset_normalizer``
  or ``chardet``, to guess the encoding of markup given as bytes.  The daemon hands it text
  (``conversations.html_budget.parse_html`` takes ``str``), which it never guesses about.
  ``charset_normalizer`` imports every codec of ``encodings`` (about 90 modules): 2.7 MB."""
STAND_INS = ("requests",)
"""Packages a dependency imports at its top for a path ``serve`` never takes: mf2py
imports requests to fetch the URL it is given when it is not given the page, and the
daemon always gives it the parsed page (``conversations.mf2``).  Marking one absent would
fail the import of mf2py itself, so a stand-in module takes its place; using it raises
``AttributeError`` naming it.  About 1.7 MB less (requests and urllib3, about 100
modules)."""

ARENAS = 2
"""glibc malloc arenas per process (``mallopt(M_ARENA_MAX)``): the default, 8 per core,
lets each thread (the inbox writer, ``asyncio.to_thread``) grow a heap of its own."""


def preload(config: SiteConfig | None = None) -> None:
    """Import ``PRELOAD``, make the C libraries' first-use set-up (``warm``), and freeze
    what is alive now out of the collector's reach, so forked children keep sharing those
    pages (module docstring)."""
    keep_out_unused()
    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    limit_arenas()
    if config is not None:
        warm(config)
    gc.collect()
    gc.freeze()


def keep_out_unused() -> None:
    """Mark ``NEVER_USED`` absent and put ``STAND_INS`` in place (call before anything
    imports httpx or mf2py): the packages that would import them fall back, as they do
    when those are not installed.  A package already imported is left as it is."""
    for name in NEVER_USED:
        if name not in sys.modules:
            sys.modules[name] = None  # type: ignore[assignment]
    for name in STAND_INS:
        if name not in sys.modules:
            sys.modules[name] = StandIn(name)


class StandIn(types.ModuleType):
    """A package ``serve`` keeps out (``STAND_INS``): importable, unusable."""

    def __getattr__(self, attribute: str) -> NoReturn:
        if attribute.startswith("__"):  # what import machinery and introspection probe
            raise AttributeError(attribute)
        raise AttributeError(
            f"{self.__name__}.{attribute}: {self.__name__} is not loaded in the daemon's "
            "processes (bridge.daemon.preload.STAND_INS)"
        )


def limit_arenas() -> None:
    """At most ``ARENAS`` malloc arenas in this process and the ones it forks (glibc)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).mallopt(-8, ARENAS)  # M_ARENA_MAX


def warm(config: SiteConfig) -> None:
    """What every child does first and would otherwise do in memory of its own: OpenSSL 3
    builds its key decoders and X.509 tables on first use (reading a PEM key, making a TLS
    context), SQLite its global state on the first connection.  Done once here, before
    the fork, those tables are shared pages (about 4 MB less in each process)."""
    import sqlite3

    from bridge import keys
    from bridge.federation.addresses import tls_context

    with contextlib.suppress(Exception):  # a missing or broken key is the child's error
        keys.load(config.state_dir)
    with contextlib.suppress(Exception):  # the shared one (addresses.tls_context), kept
        tls_context()
    sqlite3.connect(":memory:").close()
