"""Doctor checks for discovery: WebFinger, host-meta and NodeInfo.

Facts relied on, with their public sources:

* WebFinger (RFC 7033 section 4): served at ``/.well-known/webfinger`` of the acct's own
  host, over HTTPS, with ``Access-Control-Allow-Origin`` (section 5) and the JRD media
  type ``application/jrd+json`` (section 10.2).  Mastodon needs a non-blank ``subject`` and
  a ``self`` link typed ``application/activity+json`` whose ``href`` is the actor id
  (mastodon/mastodon ``app/lib/webfinger.rb``); it does not check the media type, stricter
  servers may.
* host-meta (RFC 6415): read by Mastodon only after a 404 from WebFinger, for its ``lrdd``
  template.
* NodeInfo (nodeinfo.diaspora.software, "Discovery"): ``/.well-known/nodeinfo`` lists
  links whose ``rel`` names a schema version; the linked document names the software.
  Servers use it for statistics and software badges, so its absence is only a warning.
"""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

import httpx

from bridge.doctor.findings import Finding, failure, ok, warning
from bridge.doctor.responses import (
    AP_JSON,
    Expect,
    json_object,
    media_type,
    type_label,
    url_of,
    verdict,
)


def webfinger(expect: Expect, hops: list[httpx.Response]) -> Finding:
    """``hops``: the responses to the lookup, the first request first, redirects followed."""
    check = "webfinger"
    first_url = url_of(hops[0])
    for hop in hops[:-1]:
        target = urljoin(url_of(hop), hop.headers.get("location", ""))
        if urlsplit(target).netloc.lower() != expect.host.lower():
            return failure(
                check,
                f"{first_url} redirects to another host ({target}); the acct's host must answer",
                f"serve public/.well-known/webfinger at https://{expect.host}/.well-known/webfinger"
                " (nginx `location = /.well-known/webfinger { try_files $uri =404; }`)",
            )
    final = hops[-1]
    if final.status_code != 200:
        return failure(
            check,
            f"no WebFinger at the host root: {first_url} answered {final.status_code}",
            f"serve public/.well-known/webfinger at https://{expect.host}/.well-known/webfinger,"
            " or proxy that path to the daemon",
        )
    doc = json_object(final)
    if doc is None:
        return failure(check, f"{first_url} is not a JSON object", "serve the built JRD file")
    problems: list[Finding] = []
    if not str(doc.get("subject", "")).strip():
        problems.append(failure(check, "the JRD has no subject", "rebuild the site"))
    links = doc.get("links") if isinstance(doc.get("links"), list) else []
    selfs = [
        link
        for link in links or []
        if isinstance(link, dict) and link.get("rel") == "self" and link.get("type") == AP_JSON
    ]
    if not selfs:
        problems.append(
            failure(check, f"no rel=self link typed {AP_JSON}", "rebuild the site (the JRD)")
        )
    elif selfs[0].get("href") != expect.actor_id:
        problems.append(
            failure(
                check,
                f"the self link names {selfs[0].get('href')}, not {expect.actor_id}",
                f'set base_url = "{expect.base_url}" in site.toml and rebuild',
            )
        )
    if media_type(final) != "application/jrd+json":
        problems.append(
            warning(
                check,
                f"served as {type_label(final)}, not application/jrd+json",
                "nginx: `default_type application/jrd+json;` in"
                " `location = /.well-known/webfinger`;"
                " Caddy: `header @webfinger >Content-Type application/jrd+json`",
            )
        )
    if final.headers.get("access-control-allow-origin") != "*":
        problems.append(
            warning(
                check,
                "no Access-Control-Allow-Origin: * (RFC 7033 asks for CORS)",
                "add the header `Access-Control-Allow-Origin: *` to /.well-known/webfinger",
            )
        )
    return verdict(check, problems, f"{expect.acct} -> {expect.actor_id}")


def host_meta(response: httpx.Response) -> Finding:
    if response.status_code == 200 and b'rel="lrdd"' in response.content:
        return ok("host-meta", "XRD with an lrdd template")
    return warning(
        "host-meta",
        f"{url_of(response)} answered {response.status_code} without an lrdd link"
        " (read only when WebFinger answers 404)",
        "serve public/.well-known/host-meta as application/xrd+xml",
    )


def nodeinfo(links: httpx.Response, document_: httpx.Response | None) -> Finding:
    if links.status_code != 200 or document_ is None:
        return warning(
            "nodeinfo",
            f"{url_of(links)} answered {links.status_code} without a NodeInfo link",
            "upload public/.well-known/nodeinfo and public/nodeinfo/",
        )
    doc = json_object(document_) or {}
    software = doc.get("software") if isinstance(doc.get("software"), dict) else None
    if document_.status_code != 200 or not software:
        return warning(
            "nodeinfo",
            f"{url_of(document_)} answered {document_.status_code} without software",
            "upload public/nodeinfo/",
        )
    return ok("nodeinfo", f"{software.get('name')} {software.get('version')}")
