"""The house keeps its promises: one exception tree, docstrings that cite real tests,
and no module past the size where it stops owning one concept."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import bridge
from bridge import errors

REPO = Path(__file__).resolve().parents[1]
MAX_MODULE_LINES = 500


def _all_modules() -> list[str]:
    return [m.name for m in pkgutil.walk_packages(bridge.__path__, "bridge.")]


def _subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub, *_subclasses(sub)}
    return found


def test_every_bridge_error_is_defined_and_drawn_in_the_errors_module() -> None:
    for name in _all_modules():
        importlib.import_module(name)
    tree = errors.__doc__ or ""
    drawn = set(re.findall(r"[├└]── (\w+)", tree))
    defined = {cls.__name__ for cls in _subclasses(errors.BridgeError)}
    elsewhere = sorted(
        f"{cls.__module__}.{cls.__name__}"
        for cls in _subclasses(errors.BridgeError)
        if cls.__module__ != "bridge.errors"
    )
    assert elsewhere == [], "define every BridgeError in bridge/errors.py"
    assert drawn == defined, "the tree in bridge/errors.py's docstring must list every class"


def test_docstrings_and_docs_cite_only_test_files_that_exist() -> None:
    sources = [*REPO.glob("bridge/**/*.py"), *REPO.glob("*.md"), *REPO.glob("docs/*.md")]
    missing = sorted(
        f"{path.relative_to(REPO)} cites {cited}"
        for path in sources
        for cited in set(re.findall(r"tests/[\w/]+\.py", path.read_text(encoding="utf-8")))
        if not (REPO / cited).is_file()
    )
    assert missing == []


def test_no_module_is_over_the_size_limit() -> None:
    sizes = {
        str(path.relative_to(REPO)): len(path.read_text(encoding="utf-8").splitlines())
        for path in REPO.glob("bridge/**/*.py")
    }
    assert {p: n for p, n in sizes.items() if n > MAX_MODULE_LINES} == {}
