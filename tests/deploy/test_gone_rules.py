"""The rules a build writes for deleted posts, run by Debian's nginx and Caddy as
docs/deploy.md includes them: a deleted post's page, every path below it (its older comment
pages) and its ids answer 410 Gone; live and unknown paths are untouched; a post written
again under the same slug is served again after the server reloads; `indiebridge doctor`
checks it, and names a server that does not include the rules.

ActivityPub section 6.4 and Webmention section 3.2.2 ask for 410, not 404, on what was
deleted (``bridge/site/gone.py``).  The daemon's own answers are tested in
``tests/e2e/test_gone.py``; here no daemon runs, as on a host that serves the files alone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.stack import ROOT, Deployment, Namespace, nginx_config, replace, served
from tests.deploy.test_webservers import URL, line, make_site, pytestmark  # noqa: F401

POST = "content/posts/2026-01-10-first-article.md"
SLUG = "first-article"


def publish(site: Path) -> str:
    argv = [sys.executable, "-m", "bridge", "publish", "--no-webmentions", "--site", str(site)]
    done = subprocess.run(
        argv,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def add_replies(site: Path) -> None:
    """Two more replies to the post, so that one reply a page makes older pages."""
    folder = site / "content" / "comments" / SLUG
    first = json.loads(next(folder.glob("*.json")).read_text(encoding="utf-8"))
    for n in (2, 3):
        reply = {**first, "id": f"c0ffee0000000000a00{n}", "content": f"<p>Reply {n}</p>"}
        reply["object_id"] = f"https://social.example/users/friend/statuses/{n}"
        reply["published"] = f"2026-01-1{n}T12:00:00Z"
        (folder / f"{reply['id']}.json").write_text(json.dumps(reply), encoding="utf-8")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, key_files: Path) -> Path:
    """The test site with first-article published, then deleted and published again."""
    folder = tmp_path_factory.mktemp("gone")
    site = make_site(folder, key_files, comments_per_page=1)
    add_replies(site)
    publish(site)
    assert (site / "public" / "posts" / SLUG / "comments" / "1" / "index.html").is_file()
    (site / POST).unlink()
    assert "1 deleted" in publish(site)
    assert not (site / "public" / "posts" / SLUG).exists()
    return site


@pytest.mark.parametrize("server", ["nginx", "caddy"])
def test_a_deleted_posts_pages_and_ids_answer_410(
    server: str, site: Path, ns: Namespace, certs: dict[str, Path], tmp_path: Path
) -> None:
    deployment = Deployment(ns, site, tmp_path / "run")
    public = tmp_path / "public"
    shutil.copytree(site / "public", public)  # as uploaded; the build's own folder moves on
    deployment.start_setup(server, certs, public)
    try:
        for path in (f"/posts/{SLUG}/", f"/posts/{SLUG}", f"/posts/{SLUG}/comments/1/"):
            status, body = served(ns, URL + path)
            assert (status, "This post was deleted." in body) == (410, True), (path, status)
        for path in (f"/ap/posts/{SLUG}.json", f"/ap/posts/{SLUG}/create.json"):
            assert served(ns, URL + path)[0] == 410, path
        assert served(ns, f"{URL}/posts/quick-note/")[0] == 200
        assert served(ns, f"{URL}/posts/{SLUG}-2/")[0] == 404  # a prefix of the folder only
        assert served(ns, f"{URL}/posts/never-was/")[0] == 404
        assert line(deployment.doctor()[1], "gone") == (
            f"ok       gone: a deleted post answers 410 Gone: {URL}/posts/{SLUG}/ and 2 more"
        )
    finally:
        deployment.stop_server()

    # Written again under the same slug: its page is back once the server reloads the rules.
    post = site / POST
    shutil.copy(ROOT / "tests" / "data" / "site" / POST, post)
    publish(site)
    shutil.rmtree(public)
    shutil.copytree(site / "public", public)
    deployment.start_setup(server, certs, public)
    try:
        status, body = served(ns, f"{URL}/posts/{SLUG}/")
        assert status == 200 and "This post was deleted." not in body
        assert served(ns, f"{URL}/posts/{SLUG}/comments/1/")[0] == 200
        assert served(ns, f"{URL}/ap/posts/{SLUG}.json")[0] == 410  # the old id stays gone
    finally:
        deployment.stop_server()
        post.unlink()
        assert "1 deleted" in publish(site)  # deleted again, as the other server's run expects


def test_doctor_names_a_server_without_the_rules(
    site: Path, ns: Namespace, certs: dict[str, Path], tmp_path: Path
) -> None:
    """The docs' snippets before they included the rules: a deleted post answers 404."""
    deployment = Deployment(ns, site, tmp_path / "run")
    public = tmp_path / "public"
    shutil.copytree(site / "public", public)
    without = f"include {public}/_gone.nginx;"
    edit = lambda text: replace(text, without, "")  # noqa: E731
    deployment.start_nginx(nginx_config(tmp_path / "nginx", public, certs, site=edit))
    try:
        assert line(deployment.doctor()[1], "gone") == (
            f"failure  gone: {URL}/posts/{SLUG}/ answered 404, not 410: servers and webmention"
            " receivers keep a deleted post that answers anything else -- fix: nginx: `include"
            " /srv/blog/public/_gone.nginx;` in the server block; Caddy: `import"
            " /srv/blog/public/_gone.caddy` before file_server (your public folder's path);"
            " Netlify: upload public/_redirects; then reload the server after each publish that"
            " deletes"
        )
    finally:
        deployment.stop_server()
