"""Template dependencies are found by parsing each template source once, then kept."""

from __future__ import annotations

import json
from pathlib import Path

import jinja2
import pytest

from bridge import config as config_mod
from bridge.site import template_refs
from bridge.site.pages import Renderer


def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    real = jinja2.Environment.parse

    def counting(
        self: jinja2.Environment, source: str, name: str | None = None, *a: object, **k: object
    ) -> object:
        seen.append(str(name))
        return real(self, source, name, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(jinja2.Environment, "parse", counting)
    return seen


def test_a_second_process_parses_no_unchanged_template(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = config_mod.load(site)
    seen = parses(monkeypatch)
    first = Renderer(config).template_digest("post.html")
    assert "post.html" in seen and "base.html" in seen
    assert len(seen) == len(set(seen))  # base.html once, not once per page template
    seen.clear()
    again = Renderer(config)  # a new build process reads the cache
    assert again.template_digest("post.html") == first
    assert again.template_names("tag.html") is not None
    # Only what post.html does not use is new: base.html and post.html are not parsed again.
    assert "tag.html" in seen and "base.html" not in seen and "post.html" not in seen


def test_an_edited_template_is_parsed_again_and_changes_the_digest(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = config_mod.load(site)
    before = Renderer(config).template_digest("tag.html")
    templates = site / "templates"
    templates.mkdir(exist_ok=True)
    (templates / "tag.html").write_text(
        '{% extends "base.html" %}{% block content %}{% include "extra.html" %}{% endblock %}',
        encoding="utf-8",
    )
    (templates / "extra.html").write_text("<p>extra</p>", encoding="utf-8")
    seen = parses(monkeypatch)
    renderer = Renderer(config)
    names = renderer.template_names("tag.html")
    assert names is not None and {"base.html", "extra.html", "tag.html"} <= set(names)
    assert renderer.template_digest("tag.html") != before
    assert "tag.html" in seen and "base.html" not in seen


def test_an_unreadable_or_foreign_cache_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "refs.json"
    path.write_text(json.dumps({"k": [1, 2], "j": "x"}), encoding="utf-8")
    refs = template_refs.TemplateRefs(path)
    env = jinja2.Environment()
    source = '{% include "a.html" %}{% include name %}'
    assert refs.refs("t.html", source, lambda: env.parse(source)) == ["a.html", None]
    assert json.loads(path.read_text(encoding="utf-8")) == {
        next(iter(json.loads(path.read_text(encoding="utf-8")))): ["a.html", None]
    }
    path.write_text("{not json", encoding="utf-8")
    assert template_refs.TemplateRefs(path).refs("t.html", source, lambda: env.parse(source)) == [
        "a.html",
        None,
    ]


def test_the_cache_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(template_refs, "MAX_ENTRIES", 3)
    path = tmp_path / "refs.json"
    refs = template_refs.TemplateRefs(path)
    env = jinja2.Environment()
    for i in range(5):
        source = f'{{% include "{i}.html" %}}'
        refs.refs("t.html", source, lambda source=source: env.parse(source))
    kept = json.loads(path.read_text(encoding="utf-8"))
    assert list(kept.values()) == [["2.html"], ["3.html"], ["4.html"]]
