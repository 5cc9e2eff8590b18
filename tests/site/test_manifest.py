"""The manifest's encoder writes what ``json.dumps`` writes, reusing the text of entries
it wrote before (a resident process writes a manifest of 30,000 entries after each save)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from bridge.site import manifest as manifest_mod

TEXT = st.text(st.characters(codec="utf-8"), max_size=12)


VALUE = st.one_of(TEXT, st.integers(), st.none())


@given(st.dictionaries(TEXT, st.lists(VALUE, min_size=0, max_size=3) | VALUE, max_size=20))
def test_encode_is_json_dumps_byte_for_byte(manifest: dict[str, Any]) -> None:
    """Any entries, also what a hand-edited manifest may hold."""
    manifest_mod.forget_manifests()
    assert manifest_mod.encode(manifest) == json.dumps(manifest)  # a process's first
    assert manifest_mod.encode(manifest) == json.dumps(manifest)  # its texts made
    assert manifest_mod.encode(manifest) == json.dumps(manifest)  # from the kept texts


def test_a_changed_entry_is_encoded_again_and_an_unchanged_one_is_reused() -> None:
    manifest_mod.forget_manifests()
    kept = ["k1", "s1"]
    first = {"a/index.html": kept, "b/index.html": ["k2", "s2"]}
    manifest_mod.encode(first)  # json.dumps: a command writes one manifest
    assert not manifest_mod._encoded
    manifest_mod.encode(first)
    second = {"a/index.html": kept, "b/index.html": ["k3", "s3"], 'c"\\.json': ["k", "é"]}
    assert manifest_mod.encode(second) == json.dumps(second)
    assert manifest_mod._encoded["a/index.html"][0] is kept
    assert json.loads(manifest_mod.encode(second)) == second
