"""Build errors a blogger meets first, each one line naming the file and line, exit 1:
template mistakes (in the theme and in a site's override) and local images that are not
there (front matter: an error; Markdown: a warning, or an error with --strict)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bridge import config as config_mod
from bridge.cli import main

REPO = Path(__file__).resolve().parents[2]


def build(site: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["build", "--site", str(site), *args])


def assert_fails_with(result: Result, line: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.output == f"Error: {line}\n"  # one line, no traceback


def break_line(template: Path, number: int, text: str) -> None:
    lines = template.read_text(encoding="utf-8").split("\n")
    lines[number - 1] += text
    template.write_text("\n".join(lines), encoding="utf-8")


# ---- templates --------------------------------------------------------------------------


@pytest.fixture
def theme_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The default theme copied where a test may break it, in place of the real one."""
    theme = tmp_path / "theme" / "site_template"
    shutil.copytree(REPO / "site_template", theme)
    monkeypatch.setattr(config_mod, "DEFAULT_THEME", theme)
    return theme


def test_undefined_variable_in_the_theme(site: Path, theme_copy: Path) -> None:
    break_line(theme_copy / "templates" / "post.html", 12, "{{ foo }}")
    assert_fails_with(build(site), "site_template/templates/post.html:12: 'foo' is undefined")


def test_undefined_variable_in_an_override(site: Path) -> None:
    (site / "templates").mkdir()
    override = site / "templates" / "post.html"
    shutil.copy(REPO / "site_template" / "templates" / "post.html", override)
    break_line(override, 12, "{{ foo }}")
    assert_fails_with(build(site), "templates/post.html:12: 'foo' is undefined")


def test_syntax_error_in_an_included_theme_template(site: Path, theme_copy: Path) -> None:
    break_line(theme_copy / "templates" / "_entry.html", 3, "{% if %}")
    assert_fails_with(
        build(site),
        "site_template/templates/_entry.html:3: Expected an expression, got 'end of statement "
        "block'",
    )


def test_missing_include_names_the_template_that_includes_it(site: Path) -> None:
    (site / "templates").mkdir()
    (site / "templates" / "tag.html").write_text(
        '{% extends "base.html" %}\n{% block main %}\n{% include "nope.html" %}\n{% endblock %}\n'
    )
    assert_fails_with(
        build(site),
        "templates/tag.html:3: template 'nope.html' not found in templates or "
        "site_template/templates",
    )


def test_wrong_filter_arguments_name_the_line(site: Path) -> None:
    (site / "templates").mkdir()
    (site / "templates" / "page.html").write_text(
        '{% extends "base.html" %}\n{% block main %}\n\n{{ page.title | human_date }}\n'
        "{% endblock %}\n"
    )
    result = build(site)
    assert result.exit_code == 1
    assert result.output.startswith("Error: templates/page.html:4: ")
    assert len(result.output.splitlines()) == 1


def test_a_failed_template_leaves_the_previous_output(site: Path) -> None:
    assert build(site).exit_code == 0
    before = (site / "public" / "index.html").read_bytes()
    (site / "templates").mkdir()
    (site / "templates" / "index.html").write_text("{{ nope }}\n")
    assert_fails_with(build(site), "templates/index.html:1: 'nope' is undefined")
    assert (site / "public" / "index.html").read_bytes() == before


# ---- images -----------------------------------------------------------------------------

POST = """\
---
title: Pictures
date: 2026-04-01
tags: [photos]
summary: Two pictures.
images:
  - url: {image}
    alt: A picture
---
First paragraph.

![a picture]({body_image})
"""


def write_post(site: Path, image: str, body_image: str) -> None:
    path = site / "content" / "posts" / "2026-04-01-pictures.md"
    path.write_text(POST.format(image=image, body_image=body_image), encoding="utf-8")


def test_missing_front_matter_image_stops_the_build(site: Path) -> None:
    write_post(site, "static/x.png", "/static/avatar.png")
    assert_fails_with(
        build(site), "content/posts/2026-04-01-pictures.md:7: image 'static/x.png' not found"
    )
    assert not (site / "public").exists()


def test_missing_markdown_image_warns_and_strict_stops(site: Path) -> None:
    write_post(site, "static/avatar.png", "/static/gone.png")
    warning = "content/posts/2026-04-01-pictures.md:12: image '/static/gone.png' not found"
    result = CliRunner().invoke(main, ["build", "--site", str(site)])
    assert result.exit_code == 0, result.output
    assert f"warning: {warning}\n" in result.stderr
    assert_fails_with(build(site, "--strict"), warning)


def test_existing_images_pass_whatever_folder_holds_them(site: Path) -> None:
    # Front matter paths are from the site root; Markdown ones from the page, as a browser
    # resolves them, so a root-relative or absolute URL of the theme's static file is fine.
    write_post(site, "/static/avatar.png", "https://blog.example/static/style.css")
    result = build(site, "--strict")
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output


def test_markdown_image_paths_resolve_as_urljoin_does(site: Path) -> None:
    # Dot segments are resolved as a browser resolves them (RFC 3986 5.2.4): this one
    # is the theme's static/avatar.png, so nothing is missing.
    write_post(site, "static/avatar.png", "/posts/../static/./avatar.png")
    result = build(site, "--strict")
    assert result.exit_code == 0, result.output


def test_each_missing_markdown_image_is_named_at_its_own_line(site: Path) -> None:
    path = site / "content" / "posts" / "2026-04-01-pictures.md"
    write_post(site, "static/avatar.png", "/static/gone.png")
    path.write_text(
        path.read_text(encoding="utf-8") + "\n![again](/static/gone.png)\n![b](/static/b.png)\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(main, ["build", "--site", str(site)])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    rel = "content/posts/2026-04-01-pictures.md"
    assert lines == [
        f"warning: {rel}:12: image '/static/gone.png' not found",
        f"warning: {rel}:12: image '/static/gone.png' not found",
        f"warning: {rel}:15: image '/static/b.png' not found",
    ]


def test_image_checks_are_kept_per_post_and_existence_is_checked_again(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bridge.site import images

    write_post(site, "static/avatar.png", "/static/img/later.png")
    warning = "content/posts/2026-04-01-pictures.md:12: image '/static/img/later.png' not found"
    first = CliRunner().invoke(main, ["build", "--site", str(site)])
    assert f"warning: {warning}\n" in first.stderr
    read: list[str] = []
    real = images._Checker.text

    def counting(self: images._Checker, source: str) -> str:
        read.append(source)
        return real(self, source)

    monkeypatch.setattr(images._Checker, "text", counting)
    again = CliRunner().invoke(main, ["build", "--site", str(site)])
    assert f"warning: {warning}\n" in again.stderr  # the same line, from the cache
    assert read == []  # no post file was read again to find it
    (site / "static" / "img").mkdir(parents=True, exist_ok=True)  # a folder that was missing
    (site / "static" / "img" / "later.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    fixed = CliRunner().invoke(main, ["build", "--site", str(site), "--strict"])
    assert fixed.exit_code == 0, fixed.output  # the post is unchanged; the image exists now


def test_relative_markdown_image_resolves_against_the_post(site: Path) -> None:
    # static/avatar.png exists, but from /posts/pictures/ the browser asks for
    # /posts/pictures/static/avatar.png, which the build never writes.
    write_post(site, "static/avatar.png", "static/avatar.png")
    assert_fails_with(
        build(site, "--strict"),
        "content/posts/2026-04-01-pictures.md:12: image 'static/avatar.png' not found",
    )
