"""A local preview: built for the address it is served at, into its own folder, marked as a
preview in the documents a fediverse server would read, and `build` is unchanged."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bridge import config as config_mod
from bridge.site import build as site_mod
from bridge.site import preview

PREVIEW_URL = "http://127.0.0.1:8765"


@pytest.mark.parametrize(
    ("base_url", "host", "port", "expected"),
    [
        ("https://blog.example", "127.0.0.1", 8000, "preview"),  # a laptop
        ("http://127.0.0.1:8000", "127.0.0.1", 8000, "production"),  # the sample as it is
        ("http://127.0.0.1:8000", "127.0.0.1", 8001, "preview"),  # the sample, another port
        ("https://blog.example", "blog.example", 443, "production"),  # the default port
        ("http://Blog.Example", "blog.example", 80, "production"),  # hosts are case-blind
        ("https://blog.example", "0.0.0.0", 443, "preview"),
    ],
)
def test_mode_is_production_only_at_base_urls_own_address(
    make_site, base_url: str, host: str, port: int, expected: str
) -> None:
    config = config_mod.load(make_site({"base_url": base_url}))
    assert preview.mode(config, host, port) == expected


def test_listen_url_is_the_address_to_open() -> None:
    assert preview.listen_url("127.0.0.1", 8000) == "http://127.0.0.1:8000"
    assert preview.listen_url("0.0.0.0", 8000) == "http://127.0.0.1:8000"
    assert preview.listen_url("::1", 8000) == "http://[::1]:8000"


def test_preview_config_rebases_the_blogs_own_urls(site: Path) -> None:
    config = config_mod.load(site)
    local = preview.preview_config(config, PREVIEW_URL + "/")
    assert local.base_url == local.federation_url == PREVIEW_URL
    assert local.preview_of == "https://blog.example"
    assert local.author.url == PREVIEW_URL + "/"
    assert [f.value for f in local.author.fields] == [PREVIEW_URL + "/", "they/them"]
    assert local.also_known_as == config.also_known_as  # other servers' URLs stay
    assert local.output_dir == site / ".indiebridge" / "preview"
    # Applied again (site.toml reloaded while watching), it starts from the real address.
    assert preview.preview_config(local, "http://127.0.0.1:9000").preview_of == config.base_url


def test_preview_build_points_at_the_local_address_only(site: Path) -> None:
    config = config_mod.load(site)
    result = site_mod.build(preview.preview_config(config, PREVIEW_URL))
    out = site / ".indiebridge" / "preview"
    assert result.out_dir == out
    assert not (site / "public").exists()  # the production output is never touched
    for path in out.rglob("*"):
        if path.suffix in (".html", ".xml", ".json") or path.parent.name == ".well-known":
            text = path.read_text(encoding="utf-8")
            # The only mention of the real address is the notice that this is a preview.
            stripped = text.replace(f"A local preview of {config.base_url}", "")
            stripped = stripped.replace(f"Local preview of {config.base_url}", "")
            assert "https://blog.example" not in stripped, path
    home = (out / "index.html").read_text(encoding="utf-8")
    assert f'<link rel="stylesheet" href="{PREVIEW_URL}/static/style.css">' in home
    assert f'href="{PREVIEW_URL}/page/2/"' in home  # pagination
    assert re.search(r'class="preview-banner"[^>]*>Local preview of https://blog\.example', home)


def test_preview_documents_say_they_are_a_preview(site: Path) -> None:
    import json

    config = config_mod.load(site)
    site_mod.build(preview.preview_config(config, PREVIEW_URL))
    out = site / ".indiebridge" / "preview"
    actor = json.loads((out / "ap" / "actor.json").read_text())
    assert actor["id"] == f"{PREVIEW_URL}/ap/actor.json"
    assert actor["name"] == "Tess Tester (preview)"
    assert actor["summary"].startswith(
        "<p><strong>A local preview of https://blog.example; it does not federate.</strong></p>"
    )
    assert actor["proof"]["verificationMethod"].startswith(PREVIEW_URL)
    nodeinfo = json.loads((out / "nodeinfo" / "2.1").read_text())
    assert nodeinfo["metadata"]["preview"] == (
        "A local preview of https://blog.example; it does not federate."
    )


def test_production_build_has_no_preview_marks(site: Path) -> None:
    import json

    site_mod.build(config_mod.load(site))
    out = site / "public"
    actor = json.loads((out / "ap" / "actor.json").read_text())
    assert actor["name"] == "Tess Tester"
    assert "preview" not in (out / "index.html").read_text(encoding="utf-8").lower()
    assert "preview" not in json.loads((out / "nodeinfo" / "2.1").read_text())["metadata"]


def test_a_preview_knows_the_blogs_own_handle_is_no_mention(site: Path) -> None:
    """init's first post invites follows with the blog's own handle: in a preview (where
    base_url is the local address) that is still the blog itself, not an unknown mention."""
    config = config_mod.load(site)
    post = site / "content" / "posts" / "2026-05-01-follow.md"
    post.write_text(
        f"---\ndate: 2026-05-01T10:00:00Z\n---\nFollow {config.handle} from anywhere.\n",
        encoding="utf-8",
    )
    local = preview.preview_config(config, "http://127.0.0.1:8765")
    assert site_mod.build(local).warnings == []
    assert site_mod.build(config).warnings == []
