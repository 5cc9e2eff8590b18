"""The wheel is a complete install: built from the checkout, installed into a fresh virtual
environment outside it, `indiebridge init`, `build` and `serve` work and the site has its
theme (a wheel without ``site_template/`` failed with "'post.html' not found").

Slow: it builds a wheel (pip fetches setuptools into an isolated build environment) and
installs the dependencies into a new venv (from pip's cache or PyPI).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _clean_env() -> dict[str, str]:
    """No PYTHONPATH and no checkout on the path: only what the venv installed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    return dict(env, PYTHONUNBUFFERED="1")


def _run(*args: str | Path, cwd: Path) -> str:
    result = subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
        env=_clean_env(),
    )
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Built from a copy of the packaging inputs, so the checkout gets no build/ or egg-info.
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(REPO / name, source / name)
    for folder in ("bridge", "site_template"):
        shutil.copytree(
            REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    dist = tmp_path_factory.mktemp("dist")
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, source, cwd=dist)
    (built,) = dist.glob("indiebridge-*.whl")
    return built


def test_wheel_holds_the_default_theme(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    theme = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "site_template").rglob("*"))
    files = [t for t in theme if (REPO / t).is_file()]
    assert files, "the checkout has no theme files"
    missing = [f for f in files if f"bridge/{f}" not in names]
    assert not missing, f"theme files missing from the wheel: {missing}"


def test_installed_wheel_inits_builds_and_serves(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    pip, cli = venv / "bin" / "pip", venv / "bin" / "indiebridge"
    _run(pip, "install", "-q", "--disable-pip-version-check", wheel, cwd=tmp_path)
    # The installed package is the one that runs, not the checkout.
    where = _run(
        venv / "bin" / "python", "-c", "import bridge; print(bridge.__file__)", cwd=tmp_path
    )
    assert where.strip().startswith(str(venv)), where

    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    _run(cli, "init", "blog", "--base-url", base_url, cwd=tmp_path)
    built = _run(cli, "build", "--site", "blog", cwd=tmp_path)
    assert "Built 1 posts" in built, built
    assert (tmp_path / "blog" / "public" / "static" / "style.css").is_file()

    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [str(cli), "serve", "--site", "blog", "--port", str(port), "--no-build"],
        cwd=tmp_path,
        env=_clean_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        home = _wait_for(f"{base_url}/", proc, tmp_path / "serve.log")
        assert home.status_code == 200
        assert "Hello, fediverse" in home.text
        assert f'href="{base_url}/static/style.css"' in home.text
        css = httpx.get(f"{base_url}/static/style.css", timeout=5)
        assert css.status_code == 200
        assert css.headers["content-type"].startswith("text/css")
        assert css.content == (REPO / "site_template" / "static" / "style.css").read_bytes()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def _wait_for(url: str, proc: subprocess.Popen[bytes], log: Path) -> httpx.Response:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited early:\n{log.read_text()}")
        try:
            return httpx.get(url, timeout=2)
        except httpx.HTTPError:
            time.sleep(0.2)
    raise AssertionError(f"serve did not answer:\n{log.read_text()}")
