"""What `indiebridge doctor` reports: one finding per check, and the exit status."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Literal

Level = Literal["ok", "warning", "failure"]
EXIT = {"ok": 0, "warning": 1, "failure": 2}


@dataclass(frozen=True)
class Finding:
    """One check's outcome; a warning or failure says how to fix it in ``fix``."""

    check: str
    level: Level
    message: str
    fix: str = ""

    def line(self) -> str:
        text = f"{self.level:<8} {self.check}: {self.message}"
        return f"{text} -- fix: {self.fix}" if self.fix else text


def ok(check: str, message: str) -> Finding:
    return Finding(check, "ok", message)


def warning(check: str, message: str, fix: str = "") -> Finding:
    return Finding(check, "warning", message, fix)


def failure(check: str, message: str, fix: str) -> Finding:
    return Finding(check, "failure", message, fix)


def exit_status(findings: Iterable[Finding]) -> int:
    """0 when every check passed, 1 with warnings only, 2 with any failure."""
    return max((EXIT[f.level] for f in findings), default=0)


def as_json(url: str, findings: list[Finding]) -> str:
    return json.dumps(
        {
            "url": url,
            "status": exit_status(findings),
            "checks": [asdict(f) for f in findings],
        },
        indent=2,
    )
