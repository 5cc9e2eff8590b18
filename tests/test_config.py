"""site.toml: every mistake is one line naming the file and the key, and the exit is non-zero."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from bridge import config
from bridge.cli import main
from bridge.errors import ConfigError


def run_build(site_dir: Path) -> Result:
    return CliRunner().invoke(main, ["build", "--site", str(site_dir)])


def assert_one_line_error(result: Result, *needles: str) -> str:
    """The command failed cleanly with a single line that mentions every needle."""
    assert result.exit_code not in (0, None), result.output
    assert isinstance(result.exception, SystemExit), result.exception  # no crash
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


# ---- the CLI reports each bad site.toml in one line -------------------------------------------

BAD_SETTINGS: list[tuple[str, dict[str, Any], str]] = [
    ("unknown key", {"colour": "blue"}, "colour"),
    ("unknown author key", {"author": {"twitter": "@x"}}, "author.twitter"),
    ("missing title", {"title": None}, "title"),
    ("missing base_url", {"base_url": None}, "base_url"),
    ("missing username", {"username": None}, "username"),
    ("missing [author]", {"author": None}, "[author]"),
    ("missing author.name", {"author": {"name": None}}, "author.name"),
    ("wrong type", {"posts_per_page": "ten"}, "posts_per_page"),
    ("zero", {"posts_per_page": 0}, "posts_per_page"),
    ("bool as string", {"manually_approves_followers": "yes"}, "manually_approves_followers"),
    ("list as string", {"also_known_as": "https://old.example/@me"}, "also_known_as"),
    ("bad choice", {"fediverse_format": "tweet"}, "fediverse_format"),
    ("bad scheme choice", {"signature_scheme": "rsa"}, "signature_scheme"),
    ("bad datetime", {"federate_since": "tomorrow"}, "federate_since"),
    ("bad base_url", {"base_url": "blog.example"}, "base_url"),
    ("ftp base_url", {"base_url": "ftp://blog.example"}, "base_url"),
    ("bad federation_url", {"federation_url": "mailto:me@blog.example"}, "federation_url"),
    ("bad author.url", {"author": {"url": "my homepage"}}, "author.url"),
    ("bad username", {"username": "tess tester"}, "username"),
    ("bad profile fields", {"author": {"fields": ["Blog"]}}, "author.fields"),
]


@pytest.mark.parametrize(
    ("overrides", "key"), [c[1:] for c in BAD_SETTINGS], ids=[c[0] for c in BAD_SETTINGS]
)
def test_bad_setting_is_one_line_naming_file_and_key(
    make_site: Callable[..., Path], overrides: dict[str, Any], key: str
) -> None:
    folder = make_site(overrides)
    assert_one_line_error(run_build(folder), "site.toml", key)
    assert not (folder / "public").exists()


def test_broken_toml_names_file_and_line(site: Path) -> None:
    toml = site / "site.toml"
    text = toml.read_text(encoding="utf-8").splitlines()
    text[2] = "language = en"  # third line: a bare word is not a TOML value
    toml.write_text("\n".join(text) + "\n", encoding="utf-8")
    line = assert_one_line_error(run_build(site), "site.toml", "invalid TOML")
    assert "site.toml:3:12: invalid TOML" in line  # file:line:column


def test_missing_site_toml_says_how_to_start(tmp_path: Path) -> None:
    line = assert_one_line_error(run_build(tmp_path), "site.toml")
    assert "indiebridge init" in line


def test_site_toml_that_is_not_utf8(site: Path) -> None:
    (site / "site.toml").write_bytes(b'title = "caf\xe9"\n')
    assert_one_line_error(run_build(site), "site.toml")


# ---- load() values ----------------------------------------------------------------------------


def test_load_values_defaults_and_layout(site: Path) -> None:
    c = config.load(site)
    assert c.site_dir == site.resolve()
    assert (c.title, c.username, c.base_url) == ("Test Tides", "tester", "https://blog.example")
    assert c.posts_per_page == 2 and c.fediverse_format == "article"
    assert c.also_known_as == ("https://old.example/users/tester",)
    # Defaults of keys the test site leaves out.
    assert c.federation_url == c.base_url
    assert c.signature_scheme == "cavage"
    assert c.manually_approves_followers is False and c.discoverable is True
    assert c.federate_since is None
    assert c.output_dir == site.resolve() / "public"
    assert c.state_dir == site.resolve() / ".indiebridge"
    assert c.author.name == "Tess Tester"
    assert [(f.name, f.value) for f in c.author.fields] == [
        ("Blog", "https://blog.example/"),
        ("Pronouns", "they/them"),
    ]
    # The URL layout every part of the program relies on.
    assert c.host == "blog.example"
    assert c.handle == "@tester@blog.example"
    assert c.actor_id == "https://blog.example/ap/actor.json"
    assert c.key_id == "https://blog.example/ap/actor.json#main-key"
    assert c.inbox_url == "https://blog.example/ap/inbox"
    assert c.shared_inbox_url == "https://blog.example/inbox"
    assert c.webmention_url == "https://blog.example/webmention"
    assert c.post_url("x") == "https://blog.example/posts/x/"
    assert c.post_ap_id("x") == "https://blog.example/ap/posts/x.json"
    assert c.local_path("https://blog.example/posts/x/") == "/posts/x/"
    assert c.local_path("https://blog.example") == "/"
    assert c.local_path("https://blog.example.evil/x") is None


def test_urls_lose_trailing_slash_and_federation_url_moves_endpoints(
    make_site: Callable[..., Path],
) -> None:
    folder = make_site(
        {"base_url": "https://blog.example/", "federation_url": "https://ap.example/"}
    )
    c = config.load(folder)
    assert c.base_url == "https://blog.example"
    assert c.actor_id == "https://blog.example/ap/actor.json"
    assert c.inbox_url == "https://ap.example/ap/inbox"
    assert c.shared_inbox_url == "https://ap.example/inbox"
    assert c.webmention_url == "https://ap.example/webmention"


def test_port_is_part_of_the_handle(make_site: Callable[..., Path]) -> None:
    c = config.load(make_site({"base_url": "http://127.0.0.1:8000"}))
    assert c.host == "127.0.0.1:8000"
    assert c.handle == "@tester@127.0.0.1:8000"


def test_dates_and_overrides(make_site: Callable[..., Path]) -> None:
    folder = make_site({"federate_since": dt.date(2026, 1, 1)})
    assert config.load(folder).federate_since == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    overridden = config.load(folder, {"posts_per_page": 7, "output_dir": "site-out"})
    assert overridden.posts_per_page == 7
    assert overridden.output_dir.name == "site-out"
    with pytest.raises(ConfigError, match="posts_per_page"):
        config.load(folder, {"posts_per_page": -1})


def test_every_setting_has_help_and_a_known_kind() -> None:
    keys = [s.key for s in config.SETTINGS]
    assert len(keys) == len(set(keys))
    for setting in config.SETTINGS:
        assert setting.help.strip(), setting.key
        assert setting.kind in {"str", "url", "int", "bool", "list[str]", "datetime"} or (
            setting.kind.startswith(("choice:", "int:"))
        )
        if setting.kind.startswith("choice:") and setting.default is not None:
            assert setting.default in setting.kind.split(":", 1)[1].split("|")
        if setting.kind.startswith("int:"):  # a bounded count: "int:<low>-<high>"
            low, high = (int(n) for n in setting.kind[4:].split("-"))
            assert low <= setting.default <= high, setting.key


@pytest.mark.parametrize(
    "url",
    ["https://blog.example/?page=1", "https://blog.example/#top", "https://bad host.example"],
)
def test_base_url_must_be_a_plain_origin_and_path(make_site: Callable[..., Path], url: str) -> None:
    with pytest.raises(ConfigError, match="base_url"):
        config.load(make_site({"base_url": url}))
