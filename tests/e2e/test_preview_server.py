"""`indiebridge serve` on a laptop: a site whose base_url is https://blog.example, served on
a free loopback port, is a working preview at the address printed (styles, images, links,
pagination, feeds), over real loopback HTTP; it refuses the federation endpoints and never
writes public/.  With --production the same command is the daemon, as before."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import copy_site
from tests.e2e.blog import REPO, free_port

pytestmark = pytest.mark.slow


class Server:
    def __init__(self, site: Path, *args: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = site.parent / f"serve-{self.port}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    *(sys.executable, "-m", "bridge", "serve", "--site", str(site)),
                    *("--port", str(self.port), *args),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                env=dict(os.environ, PYTHONUNBUFFERED="1"),
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited early:\n{self.output()}")
            try:
                httpx.get(self.url + "/", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise AssertionError(f"serve did not answer:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def get(self, path: str, **kwargs: object) -> httpx.Response:
        if path.startswith("http"):
            return httpx.get(path, timeout=10, **kwargs)  # type: ignore[arg-type]
        return httpx.get(self.url + path, timeout=10, **kwargs)  # type: ignore[arg-type]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(20)


@pytest.fixture
def laptop_site(tmp_path: Path, key_files: Path) -> Path:
    return copy_site(tmp_path / "site", key_files)


@pytest.fixture
def preview(laptop_site: Path) -> Iterator[Server]:
    server = Server(laptop_site)
    yield server
    server.stop()


def test_serve_on_a_laptop_is_a_working_preview(preview: Server, laptop_site: Path) -> None:
    first = preview.output().splitlines()[0]
    assert first == (
        f"Preview of https://blog.example at {preview.url}: built in "
        f"{laptop_site / '.indiebridge' / 'preview'}, not federating "
        "(--production to serve as the blog)"
    )
    home = preview.get("/")
    assert home.status_code == 200
    # Every stylesheet, script, image and internal link on the home page answers here.
    urls = set(re.findall(r'(?:href|src)="([^"]+)"', home.text))
    internal = sorted(u for u in urls if u.startswith(preview.url))
    assert f"{preview.url}/static/style.css" in internal
    assert f"{preview.url}/page/2/" in internal
    assert f"{preview.url}/feed.xml" in internal
    assert not [u for u in urls if u.startswith("https://blog.example")]
    for url in internal:
        if url == f"{preview.url}/webmention":
            continue  # an endpoint for POST, refused below
        assert preview.get(url).status_code == 200, url
    css = preview.get("/static/style.css")
    assert css.headers["content-type"].startswith("text/css")
    avatar = preview.get("/static/avatar.png")
    assert avatar.headers["content-type"] == "image/png" and avatar.content[:4] == b"\x89PNG"
    feed = preview.get("/feed.xml").text
    assert f"<id>{preview.url}/</id>" in feed or f'href="{preview.url}/"' in feed
    actor = preview.get("/", headers={"Accept": "application/activity+json"}).json()
    assert actor["id"] == f"{preview.url}/ap/actor.json"
    assert actor["name"].endswith("(preview)")
    assert not (laptop_site / "public").exists()


def test_a_preview_never_federates(preview: Server) -> None:
    for path in ("/inbox", "/ap/inbox", "/webmention"):
        response = httpx.post(
            preview.url + path,
            content=b'{"type": "Follow"}',
            headers={"Content-Type": "application/activity+json"},
            timeout=10,
        )
        assert response.status_code == 403, path
        assert response.text == (
            "A local preview of https://blog.example; it does not federate. "
            "Nothing is received here.\n"
        )
    assert preview.get("/no-such-page/").status_code == 404


def test_production_flag_serves_public_as_the_blog(laptop_site: Path) -> None:
    shutil.rmtree(laptop_site / ".indiebridge" / "preview", ignore_errors=True)
    server = Server(laptop_site, "--production")
    try:
        assert server.output().splitlines()[0] == (
            "Production: serving https://blog.example with its inbox and delivery"
        )
        home = server.get("/").text
        assert 'href="https://blog.example/static/style.css"' in home  # as built for the web
        assert (laptop_site / "public" / "index.html").is_file()
        assert not (laptop_site / ".indiebridge" / "preview").exists()
    finally:
        server.stop()
