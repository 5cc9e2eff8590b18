"""The deploy recipes of docs/deploy.md, run for real: Debian's nginx and Caddy with TLS in
front of `indiebridge serve`, checked from the outside by `indiebridge doctor`.

The correct deployments pass every check (exit 0).  Each broken one is the docs' snippet
with one realistic mistake, and the test asserts the exact line doctor prints for it.
See ``stack.py`` for the namespace, the host names and the throwaway CA.
"""

from __future__ import annotations

import os
import shutil
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.doctor.findings import Finding
from tests.conftest import SITE_DATA, copy_site, dump_toml, merge
from tests.deploy.stack import (
    BLOG,
    DAEMON_HOSTS,
    FAKETIME_LIB,
    SETUPS,
    Deployment,
    Namespace,
    build_site,
    caddy_config,
    copy_public,
    nginx_config,
    replace,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not all(shutil.which(tool) for tool in ("nginx", "caddy", "unshare", "nsenter"))
        or not FAKETIME_LIB.is_file()
        or os.geteuid() != 0,
        reason="needs root (namespaces), nginx, caddy, faketime (.ci/run installs them)",
    ),
]

URL = f"https://{BLOG}"


def make_site(folder: Path, key_files: Path, **overrides: Any) -> Path:
    site = copy_site(folder / "site", key_files)
    data = tomllib.loads((SITE_DATA / "site.toml").read_text(encoding="utf-8"))
    settings = {"base_url": URL, "allow_private_addresses": True, **overrides}
    (site / "site.toml").write_text(dump_toml(merge(data, settings)), encoding="utf-8")
    build_site(site)
    return site


@pytest.fixture(scope="module")
def running(
    tmp_path_factory: pytest.TempPathFactory, key_files: Path, ns: Namespace
) -> Iterator[Deployment]:
    """The test site built for https://blog.test, its daemon running in the namespace."""
    folder = tmp_path_factory.mktemp("blog")
    deployment = Deployment(ns, make_site(folder, key_files), folder / "run")
    deployment.start_daemon()
    yield deployment
    deployment.stop()


@pytest.fixture
def deployed(running: Deployment) -> Iterator[Deployment]:
    yield running
    running.stop_server()


def lines(report: dict[str, Any], level: str = "") -> list[str]:
    return [
        Finding(**{k: c[k] for k in ("check", "level", "message", "fix")}).line()
        for c in report["checks"]
        if not level or c["level"] == level
    ]


def line(report: dict[str, Any], check: str) -> str:
    found = [text for c, text in zip(report["checks"], lines(report), strict=True)
             if c["check"] == check]  # fmt: skip
    assert len(found) == 1, lines(report)
    return found[0]


@pytest.mark.parametrize("setup", [name for name, settings in SETUPS.items() if not settings])
def test_each_documented_setup_passes_doctor(
    deployed: Deployment, certs: dict[str, Path], setup: str
) -> None:
    deployed.start_setup(setup, certs, copy_public(deployed.site_dir, deployed.folder / "public"))
    status, report = deployed.doctor()
    assert lines(report, "warning") + lines(report, "failure") == []
    assert status == 0
    assert len(report["checks"]) == 15
    assert line(report, "host") == (
        "ok       host: the daemon verified a signed POST to https://blog.test/inbox: Host arrives"
    )
    negotiation = "content negotiation" if "daemon-only" in setup else "alternate link"
    assert negotiation in line(report, "negotiation")


def test_a_bare_url_is_checked_from_the_sites_own_pages(
    deployed: Deployment, certs: dict[str, Path], tmp_path: Path
) -> None:
    deployed.start_setup("nginx", certs, copy_public(deployed.site_dir, deployed.folder / "pub"))
    status, report = deployed.doctor(URL, site=tmp_path)  # no site.toml, no keys there
    assert lines(report, "warning") + lines(report, "failure") == [
        "warning  host: not checked: the site's keys are not in .indiebridge/keys/ -- fix: run"
        " `indiebridge doctor` in the site's folder"
    ]
    assert status == 1


def test_the_split_domain_setup_passes_doctor(
    other_site: Callable[..., Deployment], certs: dict[str, Path]
) -> None:
    deployment = other_site(**SETUPS["nginx-split"])
    public = copy_public(deployment.site_dir, deployment.folder / "public")
    deployment.start_setup("nginx-split", certs, public)
    status, report = deployment.doctor()
    assert lines(report, "warning") + lines(report, "failure") == []
    assert line(report, "inbox") == (
        "ok       inbox: POST https://ap.blog.test/ap/inbox: unsigned activity refused with 401"
    )
    assert line(report, "webfinger") == (
        "ok       webfinger: acct:tester@blog.test -> https://blog.test/ap/actor.json"
    )
    assert status == 0


def _drop_location(path: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        kept = [ln for ln in text.splitlines(keepends=True) if f"location = {path} " not in ln]
        assert len(kept) < len(text.splitlines()), path
        return "".join(kept)

    return edit


def _ap_block(new: str) -> Callable[[str], str]:
    old = "        types { }\n        default_type application/activity+json;\n"
    return lambda text: replace(text, old, new)


NGINX_BREAKAGES: dict[str, tuple[dict[str, Any], str, str]] = {
    # name: (how the docs' config is broken, the doctor check, its exact line)
    "activity-json-as-octet-stream": (
        {"site": _ap_block("        types { }\n")},
        "actor",
        "failure  actor: https://blog.test/ap/actor.json is served as application/octet-stream;"
        " Mastodon ignores it -- fix: nginx: `types { } default_type application/activity+json;`"
        " in `location /ap/`; Caddy: `header @ap >Content-Type application/activity+json`",
    ),
    "activity-json-as-json": (
        {"site": _ap_block("")},
        "actor",
        "failure  actor: https://blog.test/ap/actor.json is served as application/json; Mastodon"
        " ignores it -- fix: nginx: `types { } default_type application/activity+json;` in"
        " `location /ap/`; Caddy: `header @ap >Content-Type application/activity+json`",
    ),
    "no-webfinger-uploaded": (
        {"skip": (".well-known",)},
        "webfinger",
        "failure  webfinger: no WebFinger at the host root:"
        " https://blog.test/.well-known/webfinger?resource=acct:tester@blog.test answered 404"
        " -- fix: serve public/.well-known/webfinger at"
        " https://blog.test/.well-known/webfinger, or proxy that path to the daemon",
    ),
    "webfinger-redirects-to-another-host": (
        {
            "site": lambda text: replace(
                text,
                "location = /.well-known/webfinger {\n",
                "location = /.well-known/webfinger {\n"
                f"        return 301 https://ap.{BLOG}$request_uri;\n",
            )
        },
        "webfinger",
        "failure  webfinger: https://blog.test/.well-known/webfinger?resource=acct:tester@blog.test"
        " redirects to another host (https://ap.blog.test/.well-known/webfinger?resource="
        "acct:tester@blog.test); the acct's host must answer -- fix: serve"
        " public/.well-known/webfinger at https://blog.test/.well-known/webfinger (nginx"
        " `location = /.well-known/webfinger { try_files $uri =404; }`)",
    ),
    "inbox-not-proxied": (
        {"site": _drop_location("/ap/inbox")},
        "inbox",
        "failure  inbox: POST https://blog.test/ap/inbox answered 404: not proxied to the daemon"
        " -- fix: nginx: `location = /ap/inbox { proxy_pass http://127.0.0.1:8000; include"
        " indiebridge_proxy; }`; Caddy: add /ap/inbox to `@daemon path ...`",
    ),
    "proxy-drops-host": (
        {"proxy": lambda text: replace(text, "proxy_set_header Host $host;\n", "")},
        "host",
        "failure  host: a correctly signed POST to https://blog.test/inbox is refused: the"
        " daemon sees Host 127.0.0.1:8000, not blog.test (the proxy changes the Host header)"
        " -- fix: nginx: `proxy_set_header Host $host;` (the indiebridge_proxy include);"
        " Caddy: remove any `header_up Host` from reverse_proxy",
    ),
}


@pytest.mark.parametrize("name", list(NGINX_BREAKAGES))
def test_doctor_names_each_broken_nginx_deployment(
    deployed: Deployment, certs: dict[str, Path], name: str
) -> None:
    breakage, check, expected = NGINX_BREAKAGES[name]
    public = copy_public(
        deployed.site_dir, deployed.folder / "public", skip=breakage.get("skip", ())
    )
    config = nginx_config(
        deployed.folder / "nginx",
        public,
        certs,
        site=breakage.get("site", str),
        proxy=breakage.get("proxy", str),
    )
    deployed.start_nginx(config)
    status, report = deployed.doctor()
    assert line(report, check) == expected
    assert status == 2


CADDY_BREAKAGES: dict[str, tuple[Callable[[str], str], str, str]] = {
    "inbox-not-proxied": (
        lambda text: replace(text, "path /inbox /ap/inbox ", "path /inbox "),
        "inbox",
        "failure  inbox: POST https://blog.test/ap/inbox answered 404: not proxied to the daemon"
        " -- fix: nginx: `location = /ap/inbox { proxy_pass http://127.0.0.1:8000; include"
        " indiebridge_proxy; }`; Caddy: add /ap/inbox to `@daemon path ...`",
    ),
    "proxy-drops-host": (
        lambda text: replace(
            text,
            "reverse_proxy @daemon 127.0.0.1:8000\n",
            "reverse_proxy @daemon 127.0.0.1:8000 {\n\t\theader_up Host {upstream_hostport}\n\t}\n",
        ),
        "host",
        "failure  host: a correctly signed POST to https://blog.test/inbox is refused: the"
        " daemon sees Host 127.0.0.1:8000, not blog.test (the proxy changes the Host header)"
        " -- fix: nginx: `proxy_set_header Host $host;` (the indiebridge_proxy include);"
        " Caddy: remove any `header_up Host` from reverse_proxy",
    ),
}


@pytest.mark.parametrize("name", list(CADDY_BREAKAGES))
def test_doctor_names_each_broken_caddy_deployment(
    deployed: Deployment, certs: dict[str, Path], name: str
) -> None:
    edit, check, expected = CADDY_BREAKAGES[name]
    public = copy_public(deployed.site_dir, deployed.folder / "public")
    deployed.start_caddy(caddy_config(deployed.folder / "caddy", public, certs, site=edit))
    status, report = deployed.doctor()
    assert line(report, check) == expected
    assert status == 2


def test_no_tls_is_one_failure(deployed: Deployment, certs: dict[str, Path]) -> None:
    public = copy_public(deployed.site_dir, deployed.folder / "public")
    config = nginx_config(
        deployed.folder / "nginx",
        public,
        certs,
        site=lambda text: replace(text, "listen 443 ssl http2;", "listen 443;"),
    )
    deployed.start_nginx(config)
    status, report = deployed.doctor()
    assert lines(report) == [
        "failure  tls: https://blog.test/: no TLS on this port (the server answered plain HTTP)"
        " -- fix: nginx: `listen 443 ssl;` with ssl_certificate lines; Caddy serves TLS by itself"
    ]
    assert status == 2


@pytest.fixture
def other_site(
    tmp_path: Path, key_files: Path, certs: dict[str, Path]
) -> Iterator[Callable[..., Deployment]]:
    """Another build of the site, with its daemon in a namespace of its own."""
    started: list[tuple[Namespace, Deployment]] = []

    def make(clock: str = "", **overrides: Any) -> Deployment:
        namespace = Namespace(tmp_path / "ns", DAEMON_HOSTS, certs["ca"])
        site = make_site(tmp_path, key_files, **overrides)
        deployment = Deployment(namespace, site, tmp_path / "run")
        started.append((namespace, deployment))
        deployment.start_daemon(clock=clock)
        return deployment

    yield make
    for namespace, deployment in started:
        deployment.stop()
        namespace.close()


def test_an_http_federation_url_meets_the_https_redirect(
    other_site: Callable[..., Deployment], certs: dict[str, Path]
) -> None:
    deployment = other_site(federation_url=f"http://{BLOG}")
    public = copy_public(deployment.site_dir, deployment.folder / "public")
    deployment.start_nginx(nginx_config(deployment.folder / "nginx", public, certs))
    status, report = deployment.doctor()
    assert line(report, "inbox") == (
        "failure  inbox: POST http://blog.test/ap/inbox answered 301 to"
        " https://blog.test/ap/inbox; the body is dropped -- fix: set federation_url ="
        ' "https://blog.test" in site.toml and rebuild'
    )
    assert status == 2


def test_an_actor_id_that_differs_from_its_url(
    other_site: Callable[..., Deployment], certs: dict[str, Path]
) -> None:
    deployment = other_site(base_url=f"https://www.{BLOG}")
    public = copy_public(deployment.site_dir, deployment.folder / "public")
    deployment.start_nginx(nginx_config(deployment.folder / "nginx", public, certs))
    status, report = deployment.doctor(URL)
    assert line(report, "actor") == (
        "failure  actor: id https://www.blog.test/ap/actor.json differs from the URL it was"
        " fetched from, https://blog.test/ap/actor.json -- fix: set base_url ="
        ' "https://blog.test" in site.toml, rebuild and upload public/'
    )
    assert status == 2


def test_a_daemon_clock_two_hours_off_through_caddy(
    other_site: Callable[..., Deployment], certs: dict[str, Path]
) -> None:
    deployment = other_site(clock="+2h")
    public = copy_public(deployment.site_dir, deployment.folder / "public")
    deployment.start_caddy(caddy_config(deployment.folder / "caddy", public, certs))
    status, report = deployment.doctor()
    clock = line(report, "clock")
    skew = int(clock.split(" is ")[1].split(" s ")[0])
    assert 7190 <= skew <= 7210  # libfaketime's +2h, less the time between the two clocks
    assert clock == (
        f"failure  clock: the server's clock is {skew} s ahead of this machine's; signatures"
        " will be refused -- fix: synchronise the server's clock: `timedatectl set-ntp true`"
    )
    assert status == 2
