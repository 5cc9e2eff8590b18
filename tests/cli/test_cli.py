"""The command line: init, build and keys show, as a user runs them."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner, Result

from bridge import __version__, keys
from bridge import config as config_mod
from bridge.cli import main

REPO = Path(__file__).resolve().parents[2]


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def test_init_creates_a_buildable_site(tmp_path: Path) -> None:
    folder = tmp_path / "blog"
    result = invoke(
        "init",
        str(folder),
        "--title",
        'My "quoted" blog',
        "--base-url",
        "https://me.example/",
        "--username",
        "me",
    )
    assert result.exit_code == 0, result.output

    settings = tomllib.loads((folder / "site.toml").read_text(encoding="utf-8"))
    assert settings["title"] == 'My "quoted" blog'
    assert settings["base_url"] == "https://me.example"
    assert settings["username"] == "me"
    assert "name" in settings["author"]
    config = config_mod.load(folder)  # valid as written
    assert config.handle == "@me@me.example"

    [first] = (folder / "content/posts").glob("*.md")
    assert first.read_text(encoding="utf-8").startswith("---\ntitle: ")
    assert (folder / "content/pages").is_dir()

    key_dir = folder / ".indiebridge/keys"
    names = sorted(p.name for p in key_dir.iterdir())
    assert names == sorted([keys.RSA_FILE, keys.ED25519_FILE])
    for name in names:
        assert stat.S_IMODE((key_dir / name).stat().st_mode) == 0o600
    keys.load(folder / ".indiebridge")

    ignored = (folder / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert ".indiebridge/" in ignored

    built = invoke("build", "--site", str(folder))
    assert built.exit_code == 0, built.output
    assert built.output.startswith("Built 1 posts, 0 pages: ")
    assert (folder / "public/ap/actor.json").is_file()

    # Running init again keeps what is there: settings, posts and above all the keys.
    before = {p: p.read_bytes() for p in key_dir.iterdir()}
    toml_before = (folder / "site.toml").read_bytes()
    again = invoke("init", str(folder))
    assert again.exit_code == 0, again.output
    assert "exists" in again.output and "kept" in again.output
    assert {p: p.read_bytes() for p in key_dir.iterdir()} == before
    assert (folder / "site.toml").read_bytes() == toml_before
    assert len(list((folder / "content/posts").glob("*.md"))) == 1
    lines = (folder / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert lines.count(".indiebridge/") == 1


def test_init_adds_to_an_existing_gitignore(tmp_path: Path, key_files: Path) -> None:
    folder = tmp_path / "blog"
    (folder / ".indiebridge/keys").mkdir(parents=True)
    for path in key_files.iterdir():  # existing keys: init must not make new ones
        (folder / ".indiebridge/keys" / path.name).write_bytes(path.read_bytes())
    (folder / ".gitignore").write_text("node_modules/\n", encoding="utf-8")
    result = invoke("init", str(folder))
    assert result.exit_code == 0, result.output
    lines = (folder / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "node_modules/"
    assert ".indiebridge/" in lines


def test_build_prints_a_one_line_summary(site: Path) -> None:
    result = invoke("build", "--site", str(site))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 1
    written = sum(1 for f in (site / "public").rglob("*") if f.is_file())
    assert lines[0].startswith(f"Built 4 posts, 1 pages: {written} files ({written} changed) in ")
    assert lines[0].endswith(str((site / "public").resolve()))
    again = invoke("build", "--site", str(site))
    assert "(0 changed)" in again.output


def test_build_into_another_folder(site: Path, tmp_path: Path) -> None:
    out = tmp_path / "elsewhere"
    result = invoke("build", "--site", str(site), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert (out / "index.html").is_file()
    assert not (site / "public").exists()


def test_keys_show_prints_public_keys_only(site: Path) -> None:
    result = invoke("keys", "show", "--site", str(site))
    assert result.exit_code == 0, result.output
    assert "https://blog.example/ap/actor.json#main-key" in result.output
    assert "https://blog.example/ap/actor.json#ed25519-key" in result.output
    assert "-----BEGIN PUBLIC KEY-----" in result.output
    assert "-----END PUBLIC KEY-----" in result.output
    assert "PRIVATE" not in result.output
    loaded = keys.load(site / ".indiebridge")
    assert loaded.public_pem.strip() in result.output
    assert f"publicKeyMultibase: {loaded.ed25519_multibase}" in result.output


def test_keys_show_without_keys_is_one_line(site: Path) -> None:
    (site / ".indiebridge/keys" / keys.RSA_FILE).unlink()
    result = invoke("keys", "show", "--site", str(site))
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and keys.RSA_FILE in lines[0]
    assert "Traceback" not in result.output


def test_version_and_unknown_command() -> None:
    assert invoke("--version").output.strip().endswith(__version__)
    assert invoke("frobnicate").exit_code == 2


def test_python_dash_m_bridge_help() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "bridge", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Usage:" in proc.stdout
    for command in ("init", "build", "keys"):
        assert command in proc.stdout


def _key_line(result: Result) -> str:
    assert result.exit_code == 0, result.output
    return result.output.splitlines()[0]


def test_site_before_the_command_and_from_the_environment(
    make_site: Callable[..., Path], tmp_path: Path
) -> None:
    one = make_site({"base_url": "https://one.example"})
    two = make_site({"base_url": "https://two.example"})
    runner = CliRunner()
    before = runner.invoke(main, ["--site", str(one), "keys", "show"])
    assert "https://one.example/" in _key_line(before)
    from_env = runner.invoke(main, ["keys", "show"], env={"INDIEBRIDGE_SITE": str(two)})
    assert "https://two.example/" in _key_line(from_env)
    # The nearest one wins: after the command, then before it, then the environment.
    both = runner.invoke(
        main,
        ["--site", str(one), "keys", "show", "--site", str(two)],
        env={"INDIEBRIDGE_SITE": str(tmp_path)},
    )
    assert "https://two.example/" in _key_line(both)
    group_over_env = runner.invoke(
        main, ["--site", str(one), "keys", "show"], env={"INDIEBRIDGE_SITE": str(two)}
    )
    assert "https://one.example/" in _key_line(group_over_env)
    nowhere = runner.invoke(main, ["keys", "show"], env={"INDIEBRIDGE_SITE": str(tmp_path)})
    assert nowhere.exit_code == 1
    assert str(tmp_path) in nowhere.output and "site.toml" in nowhere.output


def test_new_writes_a_draft_post_and_prints_its_path(site: Path) -> None:
    result = invoke("new", "Why I left the silo", "--site", str(site))
    assert result.exit_code == 0, result.output
    rel = result.stdout.strip()  # the path alone: `$EDITOR "$(indiebridge new ...)"` works
    # A newcomer's preview without --drafts would not show it: the hint says so.
    assert result.stderr == (
        "a draft: `serve --watch --drafts` shows it; remove `draft: true` to publish it\n"
    )
    assert rel.startswith("content/posts/") and rel.endswith("-why-i-left-the-silo.md")
    text = (site / rel).read_text(encoding="utf-8")
    assert text.startswith('---\ntitle: "Why I left the silo"\ndate: ')
    assert "draft: true\n---\n" in text
    # The same title again never overwrites: a second file.
    again = invoke("new", "Why I left the silo", "--site", str(site)).stdout.strip()
    assert again == rel.removesuffix(".md") + "-2.md"
    note = invoke("new", "--note", "Short thought, #indieweb", "--no-draft", "--site", str(site))
    assert note.exit_code == 0, note.output
    assert note.stderr == ""  # not a draft: nothing to explain
    note_text = (site / note.output.strip()).read_text(encoding="utf-8")
    assert "title:" not in note_text and "draft:" not in note_text
    assert note_text.endswith("---\nShort thought, #indieweb\n")
    # Drafts build only with --drafts; the note is a post at once.
    built = invoke("build", "--site", str(site))
    assert built.output.startswith("Built 5 posts")
    drafted = invoke("build", "--site", str(site), "--drafts").output  # the site has one draft
    assert drafted.startswith("Built 8 posts")


def test_new_without_a_title_is_one_line(site: Path) -> None:
    result = invoke("new", "--site", str(site))
    assert result.exit_code == 1
    assert result.output == 'Error: expected a title: indiebridge new "My post" (or --note)\n'


def test_blocks_list(site: Path) -> None:
    assert invoke("blocks", "list", "--site", str(site)).output == "Nothing is blocked.\n"
    assert invoke("block", "spam.example", "--site", str(site)).exit_code == 0
    assert invoke("block", "@troll@social.example", "--site", str(site)).exit_code == 0
    listed = invoke("blocks", "list", "--site", str(site))
    assert listed.output == "@troll@social.example\nspam.example\n"
    as_json = invoke("blocks", "list", "--json", "--site", str(site)).output
    assert json.loads(as_json) == ["@troll@social.example", "spam.example"]
