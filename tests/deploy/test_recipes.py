"""The deploy recipes in README.md and docs/deploy.md agree with what the deploy tests run."""

from __future__ import annotations

import re

import pytest

from tests.deploy.stack import DAEMON_ADDRESS, DAEMON_ARGS, ROOT, SETUPS, snippet

SNIPPETS = [
    "nginx-site", "nginx-proxy", "nginx-daemon-only", "nginx-daemon-host",
    "nginx-static-host", "caddy-site", "caddy-daemon-only",
]  # fmt: skip


def test_the_readme_unit_starts_the_daemon_as_the_tests_do() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    (command,) = re.findall(r"ExecStart=\S+/indiebridge serve (.*)", readme)
    assert tuple(command.split()) == DAEMON_ARGS


@pytest.mark.parametrize("name", [n for n in SNIPPETS if n != "nginx-proxy"])
def test_every_snippet_proxies_to_that_daemon(name: str) -> None:
    text = snippet(name)
    nginx = re.findall(r"proxy_pass (\S+?);", text)
    caddy = re.findall(r"reverse_proxy (?:@\w+ )?(\S+)", text)
    daemon = f"{DAEMON_ARGS[DAEMON_ARGS.index('--host') + 1]}:{DAEMON_ARGS[-1]}"
    assert daemon == DAEMON_ADDRESS
    targets = [t.removeprefix("http://") for t in nginx + caddy if "github.io" not in t]
    assert targets, name
    assert set(targets) == {daemon}, targets


def test_every_setup_the_tests_run_is_documented() -> None:
    assert set(SETUPS) == {"nginx", "caddy", "nginx-daemon-only", "caddy-daemon-only",
                           "nginx-split", "nginx-static-host"}  # fmt: skip
    for name in SNIPPETS:
        assert snippet(name).strip()
