"""`indiebridge doctor` against a fake deployment: every check's pass and its failures.

The real web servers (nginx, Caddy) are in ``test_webservers.py``; here each
misconfiguration is one replaced response, and the exact line doctor prints is asserted.
"""

from __future__ import annotations

import asyncio
import email.utils
import gzip
import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from bridge import keys
from bridge.doctor import Expect, Finding, diagnose, diagnose_url, exit_status
from bridge.doctor.findings import as_json
from bridge.federation.signatures import HTTPSignatureAuth
from tests.conftest import Built
from tests.deploy.fake_deployment import FakeDeployment

BLOG = "https://blog.example"


@pytest.fixture
def deployment(built: Built) -> FakeDeployment:
    return FakeDeployment(built.config, built.out)


def run(
    deployment: FakeDeployment,
    *,
    signed: bool = True,
    now: float | None = None,
    gone: tuple[str, ...] = (),
) -> list[Finding]:
    config = deployment.config
    auth = None
    if signed:
        auth = HTTPSignatureAuth(keys.load(config.state_dir).rsa, config.key_id)

    async def go() -> list[Finding]:
        async with httpx.AsyncClient(transport=deployment.transport()) as client:
            kwargs = {"now": (lambda: now)} if now is not None else {}
            expect = Expect.from_config(config, gone)
            return await diagnose(expect, client, auth=auth, **kwargs)

    return asyncio.run(go())


def line(findings: list[Finding], check: str) -> str:
    lines = [f.line() for f in findings if f.check == check]
    assert len(lines) == 1, [f.line() for f in findings]
    return lines[0]


def test_a_correct_deployment_passes_every_check(deployment: FakeDeployment) -> None:
    findings = run(deployment)
    assert [f.check for f in findings] == [
        "tls", "webfinger", "host-meta", "actor", "inbox", "shared inbox", "clock", "host",
        "outbox", "negotiation", "post", "proofs", "webmention", "cache", "nodeinfo",
    ]  # fmt: skip
    assert [f.line() for f in findings if f.level != "ok"] == []
    assert exit_status(findings) == 0
    assert line(findings, "webfinger") == (
        "ok       webfinger: acct:tester@blog.example -> https://blog.example/ap/actor.json"
    )


def test_the_unsigned_probe_reaches_both_inboxes_with_its_body(
    deployment: FakeDeployment,
) -> None:
    run(deployment)
    posts = [r for r in deployment.seen if r.method == "POST" and "inbox" in r.url.path]
    assert [r.url.path for r in posts] == ["/ap/inbox", "/inbox", "/inbox"]
    assert json.loads(posts[0].content)["actor"] == "https://doctor.invalid/actor"
    assert "signature" not in posts[0].headers and "signature" in posts[2].headers


def reply(status: int, **kwargs: object) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(status, **kwargs)  # type: ignore[arg-type]


def test_json_served_as_octet_stream_fails_the_actor(deployment: FakeDeployment) -> None:
    body = (deployment.out / "ap/actor.json").read_bytes()
    deployment.override(
        "GET",
        "/ap/actor.json",
        reply(200, headers={"Content-Type": "application/octet-stream"}, content=body),
    )
    findings = run(deployment)
    assert line(findings, "actor") == (
        "failure  actor: https://blog.example/ap/actor.json is served as "
        "application/octet-stream; Mastodon ignores it -- fix: nginx: `types { } default_type "
        "application/activity+json;` in `location /ap/`; Caddy: `header @ap >Content-Type "
        "application/activity+json`"
    )
    assert exit_status(findings) == 2


def actor_with(deployment: FakeDeployment, **changes: object) -> None:
    doc = json.loads((deployment.out / "ap/actor.json").read_bytes())
    doc.update(changes)
    deployment.override(
        "GET",
        "/ap/actor.json",
        reply(200, headers={"Content-Type": "application/activity+json"}, json=doc),
    )


WF = "https://blog.example/.well-known/webfinger?resource=acct:tester@blog.example"
JRD = {"Content-Type": "application/jrd+json", "Access-Control-Allow-Origin": "*"}


def jrd(deployment: FakeDeployment) -> dict[str, object]:
    data: dict[str, object] = json.loads((deployment.out / ".well-known/webfinger").read_bytes())
    return data


@pytest.mark.parametrize(
    ("breakage", "check", "expected"),
    [
        (
            lambda d: d.override("GET", "/.well-known/webfinger", reply(404)),
            "webfinger",
            f"failure  webfinger: no WebFinger at the host root: {WF} answered 404 -- fix: serve"
            " public/.well-known/webfinger at https://blog.example/.well-known/webfinger, or"
            " proxy that path to the daemon",
        ),
        (
            lambda d: d.override(
                "GET",
                "/.well-known/webfinger",
                reply(301, headers={"Location": "https://ap.example/.well-known/webfinger"}),
            ),
            "webfinger",
            f"failure  webfinger: {WF} redirects to another host"
            " (https://ap.example/.well-known/webfinger); the acct's host must answer -- fix:"
            " serve public/.well-known/webfinger at https://blog.example/.well-known/webfinger"
            " (nginx `location = /.well-known/webfinger { try_files $uri =404; }`)",
        ),
        (
            lambda d: d.override(
                "GET",
                "/.well-known/webfinger",
                reply(200, headers=JRD, json={**jrd(d), "links": [{"rel": "self", "href": "x"}]}),
            ),
            "webfinger",
            "failure  webfinger: no rel=self link typed application/activity+json -- fix:"
            " rebuild the site (the JRD)",
        ),
        (
            lambda d: d.override(
                "GET",
                "/.well-known/webfinger",
                reply(200, headers={"Content-Type": "application/json"}, json=jrd(d)),
            ),
            "webfinger",
            "warning  webfinger: served as application/json, not application/jrd+json; no"
            " Access-Control-Allow-Origin: * (RFC 7033 asks for CORS) -- fix: nginx:"
            " `default_type application/jrd+json;` in `location = /.well-known/webfinger`;"
            " Caddy: `header @webfinger >Content-Type application/jrd+json`; add the header"
            " `Access-Control-Allow-Origin: *` to /.well-known/webfinger",
        ),
        (
            lambda d: d.override("GET", "/.well-known/host-meta", reply(404)),
            "host-meta",
            "warning  host-meta: https://blog.example/.well-known/host-meta answered 404 without"
            " an lrdd link (read only when WebFinger answers 404) -- fix: serve"
            " public/.well-known/host-meta as application/xrd+xml",
        ),
        (
            lambda d: actor_with(d, id="https://blog.example/ap/actor"),
            "actor",
            "failure  actor: id https://blog.example/ap/actor differs from the URL it was fetched"
            " from, https://blog.example/ap/actor.json -- fix: set base_url ="
            ' "https://blog.example" in site.toml, rebuild and upload public/',
        ),
        (
            lambda d: actor_with(
                d, publicKey={"id": "https://blog.example/ap/actor.json#main-key", "pem": "x"}
            ),
            "actor",
            "failure  actor: publicKey has no valid publicKeyPem -- fix: check"
            " .indiebridge/keys/ and rebuild (`indiebridge keys show`)",
        ),
        (
            lambda d: d.override("POST", "/ap/inbox", reply(404)),
            "inbox",
            "failure  inbox: POST https://blog.example/ap/inbox answered 404: not proxied to the"
            " daemon -- fix: nginx: `location = /ap/inbox { proxy_pass http://127.0.0.1:8000;"
            " include indiebridge_proxy; }`; Caddy: add /ap/inbox to `@daemon path ...`",
        ),
        (
            lambda d: d.override("POST", "/inbox", reply(202)),
            "shared inbox",
            "failure  shared inbox: POST https://blog.example/inbox accepted an unsigned activity"
            " (202) -- fix: proxy /inbox to `indiebridge serve`, which checks signatures",
        ),
        (
            lambda d: d.override(
                "POST", "/webmention", reply(405, headers={"Allow": "GET"})
            ),
            "webmention",
            "failure  webmention: POST https://blog.example/webmention answered 405: not proxied"
            " to the daemon -- fix: nginx: `location = /webmention { proxy_pass"
            " http://127.0.0.1:8000; include indiebridge_proxy; }`; Caddy: add /webmention to"
            " `@daemon path ...`",
        ),
        (
            lambda d: d.override(
                "POST",
                "/inbox",
                reply(401, json={"error": "signature does not verify with key k"}),
            ),
            "host",
            "failure  host: a correctly signed POST to https://blog.example/inbox does not"
            " verify: the proxy changes the Host header (expected blog.example) -- fix: nginx:"
            " `proxy_set_header Host $host;` (the indiebridge_proxy include); Caddy: remove any"
            " `header_up Host` from reverse_proxy",
        ),
        (
            lambda d: d.override(
                "GET",
                "/posts/a-reply/",
                reply(200, headers={"Content-Type": "text/html"}, text="<p>no links</p>"),
            ),
            "post",
            "failure  post: https://blog.example/posts/a-reply/ has no <link rel=alternate"
            " type=application/activity+json> -- fix: rebuild the site with the default"
            " templates (the alternate link is in base.html)",
        ),
        (
            lambda d: d.override(
                "GET",
                "/ap/outbox.json",
                reply(200, headers={"Content-Type": "application/activity+json"},
                      json={"id": "https://blog.example/ap/outbox.json"}),
            ),
            "outbox",
            "failure  outbox: https://blog.example/ap/outbox.json names no first page -- fix:"
            " rebuild and upload public/",
        ),
        (
            lambda d: d.override("GET", "/.well-known/nodeinfo", reply(404)),
            "nodeinfo",
            "warning  nodeinfo: https://blog.example/.well-known/nodeinfo answered 404 without a"
            " NodeInfo link -- fix: upload public/.well-known/nodeinfo and public/nodeinfo/",
        ),
    ],
    ids=[
        "no-webfinger", "webfinger-elsewhere", "no-self-link", "jrd-type-and-cors",
        "no-host-meta", "actor-id", "actor-pem", "inbox-404", "unsigned-accepted",
        "webmention-405", "host-dropped", "no-alternate", "outbox-unpaged", "no-nodeinfo",
    ],
)  # fmt: skip
def test_each_breakage_is_named_with_its_fix(
    deployment: FakeDeployment,
    breakage: Callable[[FakeDeployment], None],
    check: str,
    expected: str,
) -> None:
    breakage(deployment)
    findings = run(deployment)
    assert line(findings, check) == expected
    assert exit_status(findings) == (2 if expected.startswith("failure") else 1)


def test_an_http_inbox_redirected_to_https_drops_the_body(deployment: FakeDeployment) -> None:
    actor_with(deployment, inbox="http://blog.example/ap/inbox")
    deployment.override(
        "POST",
        "/ap/inbox",
        lambda r: (
            httpx.Response(301, headers={"Location": "https://blog.example/ap/inbox"})
            if r.url.scheme == "http"
            else httpx.Response(401, json={"error": "request is not signed"})
        ),
    )
    assert line(run(deployment), "inbox") == (
        "failure  inbox: POST http://blog.example/ap/inbox answered 301 to"
        " https://blog.example/ap/inbox; the body is dropped -- fix: set federation_url ="
        ' "https://blog.example" in site.toml and rebuild'
    )


def test_a_307_before_the_inbox_keeps_the_body_but_warns(deployment: FakeDeployment) -> None:
    deployment.override(
        "POST", "/inbox", reply(307, headers={"Location": "https://blog.example/ap/inbox"})
    )
    findings = run(deployment)
    assert line(findings, "shared inbox") == (
        "warning  shared inbox: POST https://blog.example/inbox is redirected (307) before it"
        " reaches the daemon -- fix: proxy /inbox directly: nginx: `location = /inbox {"
        " proxy_pass http://127.0.0.1:8000; include indiebridge_proxy; }`; Caddy: add /inbox"
        " to `@daemon path ...`"
    )
    redirected = [r for r in deployment.seen if r.method == "POST" and r.url.path == "/ap/inbox"]
    assert json.loads(redirected[-1].content)["actor"] == "https://doctor.invalid/actor"


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        (
            7200,
            "failure  clock: the server's clock is 7200 s ahead of this machine's; signatures"
            " will be refused -- fix: synchronise the server's clock: `timedatectl set-ntp true`",
        ),
        (
            -90,
            "warning  clock: the server's clock is 90 s behind this machine's -- fix:"
            " synchronise the server's clock: `timedatectl set-ntp true`",
        ),
        (0, "ok       clock: the server's Date is within 0 s of this machine's"),
    ],
)
def test_the_clock_is_compared_with_the_daemons_date(
    deployment: FakeDeployment, offset: int, expected: str
) -> None:
    now = 1_800_000_000.0
    deployment.override(
        "POST",
        "/ap/inbox",
        reply(401, headers={"Date": email.utils.formatdate(now + offset, usegmt=True)}, json={}),
    )
    assert line(run(deployment, now=now), "clock") == expected


def test_the_host_the_daemon_names_is_quoted(deployment: FakeDeployment) -> None:
    refused = (
        "the signed host header '127.0.0.1:8000' is not this server ('blog.example'): the"
        " request was signed for another server"
    )
    deployment.override("POST", "/inbox", reply(401, json={"error": refused}))
    assert line(run(deployment), "host") == (
        "failure  host: a correctly signed POST to https://blog.example/inbox is refused: the"
        " daemon sees Host 127.0.0.1:8000, not blog.example (the proxy changes the Host header)"
        " -- fix: nginx: `proxy_set_header Host $host;` (the indiebridge_proxy include); Caddy:"
        " remove any `header_up Host` from reverse_proxy"
    )


def test_without_the_sites_keys_the_host_check_is_skipped(deployment: FakeDeployment) -> None:
    findings = run(deployment, signed=False)
    assert line(findings, "host") == (
        "warning  host: not checked: the site's keys are not in .indiebridge/keys/ -- fix: run"
        " `indiebridge doctor` in the site's folder"
    )
    assert exit_status(findings) == 1


def test_a_tampered_post_fails_its_proof(deployment: FakeDeployment) -> None:
    doc = json.loads((deployment.out / "ap/posts/a-reply.json").read_bytes())
    doc["content"] = "<p>edited on the server</p>"
    deployment.override(
        "GET",
        "/ap/posts/a-reply.json",
        reply(200, headers={"Content-Type": "application/activity+json"}, json=doc),
    )
    assert line(run(deployment), "proofs").startswith(
        "failure  proofs: the post's proof does not verify: "
    )


def test_negotiation_answering_plain_json_fails(deployment: FakeDeployment) -> None:
    body = (deployment.out / "ap/posts/a-reply.json").read_bytes()
    deployment.override(
        "GET",
        "/posts/a-reply/",
        lambda r: httpx.Response(200, headers={"Content-Type": "application/json"}, content=body)
        if "activity+json" in r.headers.get("accept", "")
        else httpx.Response(200, headers={"Content-Type": "text/html"},
                            content=(deployment.out / "posts/a-reply/index.html").read_bytes()),
    )  # fmt: skip
    assert line(run(deployment), "negotiation") == (
        "failure  negotiation: https://blog.example/posts/a-reply/ answers JSON as"
        " application/json -- fix: nginx: `types { } default_type application/activity+json;`"
        " in `location /ap/`; Caddy: `header @ap >Content-Type application/activity+json`"
    )


def test_long_caching_hides_updates(deployment: FakeDeployment) -> None:
    body = (deployment.out / "ap/actor.json").read_bytes()
    deployment.override(
        "GET",
        "/ap/actor.json",
        reply(200, content=body, headers={
            "Content-Type": "application/activity+json", "Cache-Control": "public, max-age=86400"
        }),
    )  # fmt: skip
    assert line(run(deployment), "cache") == (
        "warning  cache: https://blog.example/ap/actor.json is cached (public, max-age=86400);"
        " Updates and Deletes stay hidden -- fix: send at most `Cache-Control: max-age=3600`"
        " for pages and /ap/"
    )


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate"
            " (_ssl.c:1000)",
            "failure  tls: https://blog.example/: TLS certificate not valid (self-signed"
            " certificate) -- fix: install a certificate valid for the host name"
            " (Let's Encrypt: certbot or Caddy)",
        ),
        (
            "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1000)",
            "failure  tls: https://blog.example/: no TLS on this port (the server answered plain"
            " HTTP) -- fix: nginx: `listen 443 ssl;` with ssl_certificate lines; Caddy serves"
            " TLS by itself",
        ),
    ],
)
def test_tls_errors_stop_the_check_with_one_line(
    deployment: FakeDeployment, error: str, expected: str
) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(error, request=request)

    deployment.override("GET", "/", refuse)
    findings = run(deployment)
    assert [f.line() for f in findings] == [expected]


def test_an_http_base_url_is_a_failure(built: Built) -> None:
    expect = Expect.from_config(built.config)
    plain = Expect("http://blog.example", "http://blog.example", "tester", "", "")
    assert expect.host == plain.host

    async def go() -> list[Finding]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(reply(200))) as client:
            return await diagnose(plain, client)

    assert [f.line() for f in asyncio.run(go())] == [
        "failure  tls: http://blog.example/ is not HTTPS; fediverse servers fetch and deliver"
        ' over HTTPS only -- fix: serve the site over TLS and set base_url = "https://blog.example"'
    ]


def test_json_report_carries_every_check(deployment: FakeDeployment) -> None:
    findings = run(deployment, signed=False)
    report = json.loads(as_json(BLOG, findings))
    assert report["status"] == 1
    assert {c["check"]: c["level"] for c in report["checks"]}["host"] == "warning"
    assert len(report["checks"]) == len(findings)


def test_cli_reports_an_unreachable_site_in_one_line(make_site: Callable[..., Path]) -> None:
    from bridge.cli import main

    site = make_site({"base_url": "https://127.0.0.1:9"})
    result = CliRunner().invoke(main, ["doctor", "--site", str(site)])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("failure  tls: https://127.0.0.1:9/: ")
    assert len(result.output.splitlines()) == 1
    result = CliRunner().invoke(main, ["doctor", "--site", str(site), "--json"])
    assert json.loads(result.output)["status"] == 2 and result.exit_code == 2


def test_an_answer_over_one_mebibyte_is_not_read(deployment: FakeDeployment) -> None:
    huge = b'{"id": "' + b"x" * 1_100_000 + b'"}'
    deployment.override(
        "GET", "/ap/actor.json", reply(200, headers={"Content-Type": "application/activity+json"},
                                       content=huge),
    )  # fmt: skip
    findings = run(deployment)
    assert findings[-1].line() == (
        "failure  network: https://blog.example/ap/actor.json: answer larger than 1048576 bytes"
        " -- fix: check the web server"
    )


def test_compressed_answers_are_read_decoded(deployment: FakeDeployment) -> None:
    body = (deployment.out / "ap/actor.json").read_bytes()
    deployment.override(
        "GET",
        "/ap/actor.json",
        reply(200, content=gzip.compress(body), headers={
            "Content-Type": "application/activity+json", "Content-Encoding": "gzip"
        }),
    )  # fmt: skip
    findings = run(deployment)
    assert line(findings, "actor").startswith("ok       actor: ")
    assert exit_status(findings) == 0


@pytest.mark.parametrize("url", ["not-a-url", "ftp://blog.example", "https://blog.example/blog/"])
def test_cli_refuses_a_url_that_is_not_a_site_address(site: Path, url: str) -> None:
    from bridge.cli import main

    result = CliRunner().invoke(main, ["doctor", url, "--site", str(site)])
    assert result.exit_code == 1
    assert result.output == (
        f"Error: {url}: expected the site's address, like https://blog.example\n"
    )


def test_an_outbox_item_that_cannot_be_fetched_by_its_id_fails(
    deployment: FakeDeployment,
) -> None:
    deployment.override("GET", "/ap/posts/a-reply/create.json", reply(404))
    assert line(run(deployment), "outbox") == (
        "failure  outbox: item https://blog.example/ap/posts/a-reply/create.json answered 404"
        " -- fix: upload the whole public/ folder, or proxy /ap/ to the daemon"
    )


def run_url(deployment: FakeDeployment, url: str = BLOG) -> list[Finding]:
    async def go() -> list[Finding]:
        async with httpx.AsyncClient(transport=deployment.transport()) as client:
            return await diagnose_url(url, client)

    return asyncio.run(go())


def test_a_site_known_only_by_its_address_is_read_from_its_pages(
    deployment: FakeDeployment,
) -> None:
    findings = run_url(deployment)
    assert [f.line() for f in findings if f.level != "ok"] == [
        "warning  host: not checked: the site's keys are not in .indiebridge/keys/ -- fix: run"
        " `indiebridge doctor` in the site's folder"
    ]
    assert line(findings, "webfinger") == (
        "ok       webfinger: acct:tester@blog.example -> https://blog.example/ap/actor.json"
    )
    assert len(findings) == 15


def test_a_site_whose_home_page_names_no_actor_is_one_failure(
    deployment: FakeDeployment,
) -> None:
    deployment.override("GET", "/", reply(200, headers={"Content-Type": "text/html"}, text="<p>"))
    assert [f.line() for f in run_url(deployment)] == [
        "failure  discovery: https://blog.example/ names no actor with preferredUsername, inbox"
        " and publicKey (alternate link: None) -- fix: run `indiebridge doctor` in the site's"
        " folder (--site) to check it by site.toml"
    ]


def test_cli_checks_a_bare_url_without_a_site(tmp_path: Path) -> None:
    from bridge.cli import main

    result = CliRunner().invoke(main, ["doctor", "https://127.0.0.1:9", "--site", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("failure  tls: https://127.0.0.1:9/: ")


GONE = (f"{BLOG}/posts/old/", f"{BLOG}/posts/old/comments/1/", f"{BLOG}/ap/posts/old.json")


def test_a_deleted_post_must_answer_410_on_its_page_below_it_and_its_id(
    deployment: FakeDeployment,
) -> None:
    for url in GONE:
        deployment.override("GET", httpx.URL(url).path, reply(410))
    findings = run(deployment, gone=GONE)
    assert line(findings, "gone") == (
        f"ok       gone: a deleted post answers 410 Gone: {BLOG}/posts/old/ and 2 more"
    )
    assert exit_status(findings) == 0

    deployment.override("GET", "/posts/old/comments/1/", reply(404))  # exact-path rules only
    findings = run(deployment, gone=GONE)
    assert line(findings, "gone").startswith(
        f"failure  gone: {BLOG}/posts/old/comments/1/ answered 404, not 410: "
    )
    assert exit_status(findings) == 2
    assert "gone" not in [f.check for f in run(deployment)]  # nothing deleted: no such check
    only_id = run(deployment, gone=GONE[2:])  # a post written again: its old id alone
    assert line(only_id, "gone") == f"ok       gone: a deleted post answers 410 Gone: {GONE[2]}"
