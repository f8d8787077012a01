"""What each check found: pass, warn or fail, in words, with the exact record or step that fixes it."""

from __future__ import annotations

from dataclasses import asdict, dataclass

PASS, WARN, FAIL = "pass", "warn", "fail"


@dataclass(frozen=True)
class Check:
    area: str  # spf, dkim, dmarc, mail_from, ses, wiring
    name: str  # what is checked, in a few words
    status: str  # pass, warn or fail
    found: str  # what the check saw
    fix: str = ""  # the record to create or the step to take; empty when nothing is to do

    def as_json(self) -> dict[str, str]:
        return asdict(self)


def failed(checks: list[Check]) -> bool:
    return any(c.status == FAIL for c in checks)
