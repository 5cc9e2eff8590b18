"""The first mistakes a blogger makes each get one line that says what to fix.

Each case asserts the exact message and a non-zero exit, and that nothing was written.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bridge.cli import main


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def one_line_error(result: Result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.output.splitlines()
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        (
            "--base-url",
            "blog.example",
            "--base-url 'blog.example': expected an absolute URL starting with https:// "
            "(like https://blog.example)",
        ),
        (
            "--base-url",
            "https://me.example/blog",
            "--base-url 'https://me.example/blog': the blog must be at the root of its host, "
            "without a path or query (like https://me.example)",
        ),
        (
            "--base-url",
            "https://me.example/?page=1",
            "--base-url 'https://me.example/?page=1': the blog must be at the root of its host, "
            "without a path or query (like https://me.example)",
        ),
        (
            "--username",
            "Me Myself",
            "--username 'Me Myself': expected letters, digits and underscores only, at most 30 "
            "(like me_myself)",
        ),
        (
            "--username",
            "a" * 31,
            f"--username '{'a' * 31}': expected letters, digits and underscores only, at most 30 "
            f"(like {'a' * 30})",
        ),
    ],
)
def test_init_refuses_what_the_fediverse_cannot_address(
    tmp_path: Path, option: str, value: str, message: str
) -> None:
    folder = tmp_path / "blog"
    assert one_line_error(invoke("init", str(folder), option, value)) == f"Error: {message}"
    assert not folder.exists()


def test_init_ends_with_the_next_three_commands(tmp_path: Path) -> None:
    folder = tmp_path / "my blog"
    result = invoke("init", str(folder), "--base-url", "https://me.example", "--username", "me")
    assert result.exit_code == 0, result.output
    site = f"'{folder}'"
    assert result.output.splitlines()[-4:] == [
        "Next:",
        f'  indiebridge new "My first post" --site {site}     # write a post',
        f"  indiebridge serve --watch --drafts --site {site}  "
        "# preview on http://127.0.0.1:8000 with drafts, rebuilt on save",
        f"  indiebridge publish --site {site}                 "
        "# send posts to followers once the site is live",
    ]


def test_a_toml_syntax_error_names_the_file_line_and_column(site: Path) -> None:
    toml = site / "site.toml"
    lines = toml.read_text(encoding="utf-8").splitlines()
    lines[2] = "language = en"  # a bare word is not a TOML value
    toml.write_text("\n".join(lines) + "\n", encoding="utf-8")
    line = one_line_error(invoke("build", "--site", str(site)))
    assert line == "Error: site.toml:3:12: invalid TOML: Invalid value"


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("post_per_page", "unknown key 'post_per_page' (did you mean 'posts_per_page'?)"),
        ("base_ur", "unknown key 'base_ur' (did you mean 'base_url'?)"),
        ("colour", "unknown key 'colour'"),
    ],
)
def test_an_unknown_key_suggests_the_near_miss(
    make_site: Callable[..., Path], key: str, message: str
) -> None:
    folder = make_site({key: 5})
    assert one_line_error(invoke("build", "--site", str(folder))) == f"Error: site.toml: {message}"


def test_an_unknown_author_key_suggests_the_near_miss(make_site: Callable[..., Path]) -> None:
    folder = make_site({"author": {"avatr": "me.png"}})
    assert one_line_error(invoke("build", "--site", str(folder))) == (
        "Error: site.toml: unknown key 'author.avatr' (did you mean 'author.avatar'?)"
    )


def test_a_port_in_use_is_one_line_and_nothing_else(site: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = invoke("serve", "--site", str(site), "--port", str(port))
    line = one_line_error(result)
    assert line == f"Error: 127.0.0.1:{port} is in use; stop the other server or pass --port"
    assert not (site / "public").exists()  # refused before building
