"""The documentation keeps up with the code."""

from __future__ import annotations

import re
from pathlib import Path

from bridge.settings import SETTINGS

README = Path(__file__).resolve().parents[1] / "README.md"


def _table_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.lstrip().startswith("|")]


def test_every_setting_is_documented_in_the_readme_table() -> None:
    rows = _table_rows(README.read_text(encoding="utf-8"))
    missing = [s.key for s in SETTINGS if not any(re.search(rf"`{s.key}`", row) for row in rows)]
    assert missing == [], f"README.md settings table lacks: {', '.join(missing)}"
