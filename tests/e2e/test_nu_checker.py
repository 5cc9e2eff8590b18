"""The W3C Nu Html Checker (npm ``vnu-jar``, on Debian's Java runtime) reports no error on
a build that holds comments of every kind, including what real servers send: timestamps
with microseconds, authors and reactions without a URL, a javascript: URL.  And on the
sample blog.  Installed once with ``npm ci`` in ``tests/e2e/nu-checker/``."""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from bridge import config as config_mod
from bridge.site import build as site_mod
from tests.site.test_theme import POST, comment

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CHECKER = Path(__file__).resolve().parent / "nu-checker"
JAR = CHECKER / "node_modules" / "vnu-jar" / "build" / "dist" / "vnu.jar"


@pytest.fixture(scope="session")
def vnu() -> list[str]:
    java, npm = shutil.which("java"), shutil.which("npm")
    if java is None or npm is None:
        pytest.fail("the Nu Html Checker needs java and npm (apt-get install default-jre npm)")
    with (Path(tempfile.gettempdir()) / "indiebridge-vnu-npm-ci.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test process may be installing
        if not JAR.is_file():
            subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=CHECKER,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=600,
                check=True,
            )
    return [java, "-jar", str(JAR), "--errors-only", "--skip-non-html"]


def check(vnu: list[str], folder: Path) -> None:
    result = subprocess.run(
        [*vnu, str(folder)], capture_output=True, text=True, timeout=300, check=False
    )
    errors = (result.stdout + result.stderr).strip()
    assert result.returncode == 0 and errors == "", errors


def test_a_build_with_every_kind_of_comment_is_valid(vnu: list[str], site: Path) -> None:
    comment(site, "d00000000000000000l1", "like", url="https://a.example/@ann", name="Ann")
    comment(site, "d00000000000000000r1", "repost", name="Rui")
    comment(site, "d00000000000000000b1", "bookmark", url="javascript:alert(1)", name="Cy")
    comment(site, "d00000000000000000m1", "mention", source="https://c.example/p", name="Di")
    comment(site, "d00000000000000000u1", "quote", name="Ivy")
    comment(
        site,
        "d00000000000000000p1",
        "reply",
        content="<p>Top</p>",
        name="Eve",
        source="https://e.example/1",
    )
    comment(
        site,
        "d00000000000000000p2",
        "reply",
        content="<p>Nested <b>x</b></p>",
        name="Fay",
        in_reply_to="https://e.example/1",
    )
    comment(site, "d00000000000000000p3", "reply", content="<p>No URL at all</p>", name="Gus")
    toml = site / "site.toml"  # one thread a page: an older page of replies too
    toml.write_text(
        toml.read_text().replace("posts_per_page", "comments_per_page = 1\nposts_per_page")
    )
    site_mod.build(config_mod.load(site))
    assert (site / "public" / "posts" / POST / "comments" / "1" / "index.html").is_file()
    check(vnu, site / "public")


def test_the_checker_catches_what_the_theme_used_to_write(vnu: list[str], tmp_path: Path) -> None:
    page = tmp_path / "old.html"
    page.write_text(
        '<!DOCTYPE html><html lang="en"><head><title>x</title></head><body>'
        '<time datetime="2026-01-12T10:11:12.123456+00:00">x</time></body></html>'
    )
    result = subprocess.run([*vnu, str(tmp_path)], capture_output=True, text=True, check=False)
    assert "A fraction of a second must be one, two, or three digits" in result.stderr


def test_the_sample_blog_is_valid(vnu: list[str], tmp_path: Path, key_files: Path) -> None:
    site = tmp_path / "sample"
    site.mkdir()
    for name in ("content", "static"):
        shutil.copytree(REPO / name, site / name)
    shutil.copy(REPO / "site.toml", site / "site.toml")
    shutil.copytree(key_files, site / ".indiebridge" / "keys")
    site_mod.build(config_mod.load(site))
    check(vnu, site / "public")
