"""Doctor checks for what the daemon answers: inboxes, Webmention, clock, Host.

Facts relied on, with their public sources:

* Inbox: a redirect answered with 301/302/303 makes HTTP clients repeat the request as a
  GET without its body (RFC 9110 section 15.4); 307/308 keep method and body.  An
  unsigned POST must be refused: the daemon answers 401 after parsing the JSON body, so a
  401 from it also proves that the body arrived.
* Clock: Mastodon refuses a signature whose ``Date`` is more than an hour in the future or
  older than about 65 minutes (``app/lib/signed_request.rb``, 5 min expiry + 1 h skew
  margin); other servers allow less, so more than 5 minutes is a failure here.
* Gone: a deleted post's page, every path below it and its ids answer 410: ActivityPub
  section 6.4 (a deleted object's id SHOULD answer 410 Gone) and Webmention section 3.2.2
  (on a 410 the receiver SHOULD delete the mention; a 404 reads as a passing error).
* Host: senders sign the ``Host`` header; the daemon rebuilds the URL they signed from the
  scheme of ``federation_url`` and the Host it receives (``bridge.federation.inbox``).  So
  a proxy that replaces Host breaks every signature, while ``X-Forwarded-Proto`` is not
  read at all.
"""

from __future__ import annotations

import email.utils
import re
from urllib.parse import urljoin, urlsplit

import httpx

from bridge.doctor.findings import Finding, failure, ok, warning
from bridge.doctor.responses import (
    Expect,
    base_of,
    json_object,
    url_of,
)

CLOCK_WARN_SECONDS = 30
CLOCK_FAIL_SECONDS = 300
FIX_HOST = (
    "nginx: `proxy_set_header Host $host;` (the indiebridge_proxy include); "
    "Caddy: remove any `header_up Host` from reverse_proxy"
)
FIX_GONE = (
    "nginx: `include /srv/blog/public/_gone.nginx;` in the server block; Caddy: `import"
    " /srv/blog/public/_gone.caddy` before file_server (your public folder's path); Netlify:"
    " upload public/_redirects; then reload the server after each publish that deletes"
)
FIX_NTP = "synchronise the server's clock: `timedatectl set-ntp true`"


def _proxy_fix(path: str) -> str:
    return (
        f"nginx: `location = {path} {{ proxy_pass http://127.0.0.1:8000; include"
        f" indiebridge_proxy; }}`; Caddy: add {path} to `@daemon path ...`"
    )


def inbox(check: str, url: str, hops: list[httpx.Response]) -> Finding:
    """An unsigned POST to an inbox and the redirects it met (307/308 are followed)."""
    path = urlsplit(url).path
    first = hops[0]
    if first.status_code in (301, 302, 303):
        target = urljoin(url, first.headers.get("location", ""))
        https = url.startswith("http://") and target.startswith("https://")
        return failure(
            check,
            f"POST {url} answered {first.status_code} to {target}; the body is dropped",
            f'set federation_url = "{base_of(target)}" in site.toml and rebuild'
            if https
            else f"answer {path} without redirecting: {_proxy_fix(path)}",
        )
    final = hops[-1]
    if final.status_code in (404, 405):
        return failure(
            check,
            f"POST {url} answered {final.status_code}: not proxied to the daemon",
            _proxy_fix(path),
        )
    if final.status_code in (200, 201, 202, 204):
        return failure(
            check,
            f"POST {url} accepted an unsigned activity ({final.status_code})",
            f"proxy {path} to `indiebridge serve`, which checks signatures",
        )
    if final.status_code != 401:
        return failure(
            check,
            f"POST {url} answered {final.status_code}, not 401 to an unsigned activity",
            _proxy_fix(path),
        )
    if len(hops) > 1:
        return warning(
            check,
            f"POST {url} is redirected ({first.status_code}) before it reaches the daemon",
            f"proxy {path} directly: {_proxy_fix(path)}",
        )
    return ok(check, f"POST {url}: unsigned activity refused with 401")


def webmention(url: str | None, response: httpx.Response | None) -> Finding:
    if url is None or response is None:
        return warning(
            "webmention",
            "the post page advertises no Webmention endpoint",
            "rebuild with the default templates (they carry <link rel=webmention>)",
        )
    if response.status_code in (404, 405) or response.status_code >= 500:
        path = urlsplit(url).path
        return failure(
            "webmention",
            f"POST {url} answered {response.status_code}: not proxied to the daemon",
            _proxy_fix(path),
        )
    if response.status_code in (301, 302, 303):
        return failure(
            "webmention",
            f"POST {url} answered {response.status_code}; the form is dropped",
            _proxy_fix(urlsplit(url).path),
        )
    return ok("webmention", f"{url} reachable (an empty POST answered {response.status_code})")


def clock(response: httpx.Response, now: float) -> Finding:
    """The daemon's ``Date`` header against this machine's clock."""
    value = response.headers.get("date", "")
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return warning("clock", f"{url_of(response)} sent no Date header", "")
    skew = when - now
    where = "ahead of" if skew > 0 else "behind"
    message = f"the server's clock is {abs(int(skew))} s {where} this machine's"
    if abs(skew) > CLOCK_FAIL_SECONDS:
        return failure("clock", message + "; signatures will be refused", FIX_NTP)
    if abs(skew) > CLOCK_WARN_SECONDS:
        return warning("clock", message, FIX_NTP)
    return ok("clock", f"the server's Date is within {abs(int(skew))} s of this machine's")


def host_header(expect: Expect, response: httpx.Response | None) -> Finding:
    """A POST signed with the site's own key, whose actor differs from the key's owner.

    The daemon answers "signed by ..., but the actor is ..." only after the signature
    verified, i.e. after it rebuilt the signed URL from the Host it was given.  It refuses
    a covered Host that is not ``federation_url``'s with "... '<host>' is not this server",
    naming the Host it received; a daemon without that check reports a changed Host only
    as a signature that does not verify.
    """
    check = "host"
    if response is None:
        return warning(
            check,
            "not checked: the site's keys are not in .indiebridge/keys/",
            "run `indiebridge doctor` in the site's folder",
        )
    reason = str((json_object(response) or {}).get("error", ""))
    if response.status_code == 401 and reason.startswith("signed by "):
        return ok(check, f"the daemon verified a signed POST to {url_of(response)}: Host arrives")
    expected = urlsplit(expect.federation_url).netloc
    seen = re.search(r"'([^']*)' is not this server", reason)
    if response.status_code == 401 and seen:
        return failure(
            check,
            f"a correctly signed POST to {url_of(response)} is refused: the daemon sees Host"
            f" {seen.group(1)}, not {expected} (the proxy changes the Host header)",
            FIX_HOST,
        )
    if response.status_code == 401 and reason.startswith("signature does not verify"):
        return failure(
            check,
            f"a correctly signed POST to {url_of(response)} does not verify: the proxy changes"
            f" the Host header (expected {expected})",
            FIX_HOST,
        )
    if response.status_code == 400 and "Host header" in reason:
        return failure(check, f"the daemon got an invalid Host header: {reason}", FIX_HOST)
    return warning(
        check,
        f"could not tell which Host the daemon sees: {response.status_code} {reason}".rstrip(),
        "",
    )


def gone(responses: list[httpx.Response]) -> Finding:
    """A deleted post's URLs (``Expect.gone``) as fetched: each must answer 410."""
    wrong = next((r for r in responses if r.status_code != 410), None)
    if wrong is None:
        more = f" and {len(responses) - 1} more" if len(responses) > 1 else ""
        return ok("gone", f"a deleted post answers 410 Gone: {url_of(responses[0])}{more}")
    return failure(
        "gone",
        f"{url_of(wrong)} answered {wrong.status_code}, not 410: servers and webmention"
        " receivers keep a deleted post that answers anything else",
        FIX_GONE,
    )
