"""A real indiebridge daemon for end-to-end tests: a fresh site, `indiebridge serve` as a
subprocess on a free loopback port, and helpers to edit posts and run CLI commands.

Use the ``blog`` fixture (``from tests.e2e.blog import blog``): the site's base_url is
``http://127.0.0.1:<port>`` and ``allow_private_addresses`` is on, as loopback needs.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Blog:
    def __init__(self, root: Path, port: int | None = None, extra_toml: str = "") -> None:
        self.root = root
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = tempfile.NamedTemporaryFile(prefix="indiebridge-", suffix=".log", delete=False)  # noqa: SIM115
        self.write_site(extra_toml)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def handle(self) -> str:
        return f"@blog@127.0.0.1:{self.port}"

    @property
    def actor_id(self) -> str:
        return f"{self.base_url}/ap/actor.json"

    def write_site(self, extra_toml: str = "") -> None:
        (self.root / "content" / "posts").mkdir(parents=True, exist_ok=True)
        (self.root / "site.toml").write_text(
            textwrap.dedent(
                f"""\
                title = "E2E blog"
                base_url = "{self.base_url}"
                username = "blog"
                allow_private_addresses = true
                federate_since = 2000-01-01T00:00:00Z
                """
            )
            + extra_toml
            + textwrap.dedent(
                """
                [author]
                name = "E2E Author"
                """
            ),
            encoding="utf-8",
        )

    def write_post(
        self, slug: str, body: str, *, title: str | None = "A post", **meta: Any
    ) -> Path:
        lines = ["---"]
        if title:
            lines.append(f"title: {json.dumps(title)}")
        lines.append(f"date: {meta.pop('date', '2026-01-01T10:00:00Z')}")
        lines.append(f"slug: {slug}")
        for key, value in meta.items():
            lines.append(f"{key}: {json.dumps(value)}")
        lines.append("---")
        path = self.root / "content" / "posts" / f"{slug}.md"
        path.write_text("\n".join(lines) + "\n" + body + "\n", encoding="utf-8")
        return path

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "bridge", *args, "--site", str(self.root)],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=REPO,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"indiebridge {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
            )
        return result

    def start(self, *, build: bool = True, extra: tuple[str, ...] = ()) -> Blog:
        if build:
            self.cli("build")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bridge",
                "serve",
                "--site",
                str(self.root),
                "--port",
                str(self.port),
                "--no-build",
                *extra,
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env=env,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited early:\n{self.log_text()}")
            try:
                if httpx.get(self.base_url + "/", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"daemon did not start:\n{self.log_text()}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def kill9(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)
        self.proc = None

    def log_text(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(encoding="utf-8", errors="replace")

    def cleanup(self) -> None:
        self.stop()
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(self.base_url + path, timeout=10, **kwargs)

    def html(self, path: str) -> str:
        return self.get(path).text

    def followers(self) -> list[dict[str, Any]]:
        return json.loads(self.cli("followers", "list", "--json").stdout)

    def wait_until(self, predicate: Any, timeout: float = 20.0, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}\n--- daemon log ---\n{self.log_text()}")


@pytest.fixture
def blog(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Blog]:
    b = Blog(tmp_path / "site")
    yield b
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        print("--- daemon log ---\n" + b.log_text())
    b.cleanup()
