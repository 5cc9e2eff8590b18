"""WebFinger answers over real loopback HTTP: RFC 7033 section 4.2 wants 400 for a missing
or malformed ``resource``, 404 for a well-formed one that is not ours."""

from __future__ import annotations

from tests.e2e.blog import Blog


def test_webfinger_status_per_resource(blog: Blog) -> None:
    blog.start()
    host = blog.base_url.removeprefix("http://")
    ours = f"acct:blog@{host}"
    cases = {
        ours: 200,
        blog.actor_id: 200,
        f"blog@{host}": 400,  # no acct: scheme
        f"=acct:blog@{host}": 400,  # from resource==acct:...
        "acct:blog": 400,  # no host
        "http://": 400,
        "": 400,
        "acct:someone@elsewhere.example": 404,
        "https://elsewhere.example/users/x": 404,
    }
    for resource, status in cases.items():
        answer = blog.get(f"/.well-known/webfinger?resource={resource}")
        assert answer.status_code == status, (resource, answer.text)
        assert answer.headers["access-control-allow-origin"] == "*"
    assert blog.get("/.well-known/webfinger").status_code == 400
    assert blog.get(f"/.well-known/webfinger?resource={ours}").json()["subject"] == ours
