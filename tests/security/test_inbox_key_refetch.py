"""A bogus signature naming a key never seen before costs one fetch, not two.

Rule (SECURITY.md, "The inbox against a determined stranger"): a key just fetched is not
refreshed within ``REFRESH_INTERVAL`` (60 s).  Verification retries with a refreshed key
when the cached one fails (the sender may have rotated it), but a key fetched a moment ago
is the sender's current key, so fetching it again only doubles what a stranger's bogus
signatures make the daemon download (the soak, ``python -m benchmarks.soak``, counted 200
fetches of 900 KB documents for 100 such requests spread over 16 origins).
"""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from bridge.federation.key_fetch import REFRESH_INTERVAL, FetchBudget
from tests.security.conftest import ALICE, InboxHarness, actor_doc

pytestmark = [pytest.mark.anyio, pytest.mark.category("unverified")]

EVE = "https://evil.example/users/eve"


def follow(h: InboxHarness, actor: str, n: int) -> dict[str, Any]:
    return {"id": f"{actor}#follows/{n}", "type": "Follow", "actor": actor, "object": h.actor_id}


async def test_a_bogus_signature_naming_a_new_key_fetches_it_once(inbox: InboxHarness) -> None:
    inbox.unlimited()
    listed = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signer = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for n in range(5):
        actor = f"{EVE}{n}"
        inbox.remote.serve(actor, actor_doc(actor, listed))  # lists another key than signs
        inbox.keys[actor] = signer
        r = await inbox.post(follow(inbox, actor, n), signer=actor)
        assert r.status_code == 401, r.text
    assert [inbox.remote.requests.count(f"{EVE}{n}") for n in range(5)] == [1] * 5


async def test_a_cached_key_that_no_longer_verifies_is_still_refreshed(
    inbox: InboxHarness,
) -> None:
    """Alice's key is cached (stored by an earlier run); she rotates it: one refresh, 202."""
    cached = inbox.db.one("SELECT pem FROM keys WHERE key_id = ?", (ALICE + "#main-key",))
    assert cached is not None
    inbox.keys[ALICE] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    inbox.remote.serve(ALICE, actor_doc(ALICE, inbox.keys[ALICE]))
    r = await inbox.post(follow(inbox, ALICE, 1), signer=ALICE)
    assert r.status_code == 202, r.text
    assert inbox.remote.requests.count(ALICE) == 1


def test_the_budget_refuses_a_refresh_right_after_a_fetch() -> None:
    moment = [1000.0]
    budget = FetchBudget(clock=lambda: moment[0])
    budget.fetched("https://remote.example/k#main-key")
    assert not budget.may_refresh("https://remote.example/k#main-key")
    assert budget.may_refresh("https://remote.example/other#main-key")
    moment[0] += REFRESH_INTERVAL
    assert budget.may_refresh("https://remote.example/k#main-key")
    assert not budget.may_refresh("https://remote.example/k#main-key")
