"""Which templates a template names (``extends``, ``include``, ``import``, and the
functions of ``RENDERING_CALLS``), kept by source.

A page's key holds the digest of every template it uses (``Renderer.template_digest``),
and finding them means parsing each template: tens of ms of every build process, for
templates that rarely change.  The names found are kept in ``.indiebridge/cache/`` keyed
on the Jinja version, the template's name and its full source, so an edited template is
parsed again and an unchanged one never is.  A cache that cannot be read or written only
costs that parse.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import jinja2
import jinja2.meta
import jinja2.nodes

from bridge.site import comment_cards

MAX_ENTRIES = 256  # old sources of edited templates are dropped, oldest first
VERSION = "refs-3"  # what a template is found to name (a change must not reuse old finds)

RENDERING_CALLS = {name: template for name, (template, _) in comment_cards.CALLS.items()}
"""Functions a template calls that render a template by name (``comment_cards``): a page
that calls one uses that template as if it included it."""

Refs = list[str | None]  # None: a template named by a variable (it could be any)


class TemplateRefs:
    """``refs(name, source, parse)``: the templates ``name`` names, parsed once per source."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._known: dict[str, Refs] | None = None

    def refs(self, name: str, source: str, parse: Callable[[], jinja2.nodes.Template]) -> Refs:
        key = f"{VERSION}\0{jinja2.__version__}\0{name}\0{source}"
        key = hashlib.sha256(key.encode()).hexdigest()
        known = self._load()
        found = known.get(key)
        if found is None:
            tree = parse()
            found = list(jinja2.meta.find_referenced_templates(tree))
            called = {n.name for n in tree.find_all(jinja2.nodes.Name)} & RENDERING_CALLS.keys()
            found += sorted(RENDERING_CALLS[n] for n in called)
            known[key] = found
            while len(known) > MAX_ENTRIES:
                del known[next(iter(known))]
            self._save(known)
        return found

    def _load(self) -> dict[str, Refs]:
        if self._known is None:
            self._known = {}
            if self.path is not None:
                try:
                    data = json.loads(self.path.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    data = {}
                if isinstance(data, dict):
                    self._known = {
                        k: v
                        for k, v in data.items()
                        if isinstance(v, list) and all(r is None or isinstance(r, str) for r in v)
                    }
        return self._known

    def _save(self, known: dict[str, Refs]) -> None:
        if self.path is None:
            return
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(known), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError:
            tmp.unlink(missing_ok=True)
