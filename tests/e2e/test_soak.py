"""The short soak (``make soak`` runs 20,000): a few hundred messages through the whole local stack while every
kind of fault is injected at least once, ending in zeros: no email sent twice, none lost, none to a suppressed
address."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from postline_cli.local.faults import KILL_KINDS, KINDS
from tests.e2e.conftest import ROOT

pytestmark = pytest.mark.e2e

# Every kind at least once (each_once), then at rates high enough for a short run to meet most several times; a
# read timeout holds a sending thread 16 s and a kill sends a batch back after its visibility timeout, so those
# come rarely after their first. The three kills come 3 s apart at least (20 s by default); a run that has sent
# everything before all three came gets more plain messages until they have (bench/soak.py, TOP_UP_MESSAGES).
RARE = {"ses_timeout_before", "ses_timeout_after", *KILL_KINDS}
SPEC = ",".join(f"{kind}={0.005 if kind in RARE else 0.03}" for kind in KINDS) + ",seed=11,each_once=1,kill_gap=3"


@pytest.fixture(scope="module")
def soak(tmp_path_factory):
    out = tmp_path_factory.mktemp("soak") / "figures.json"
    run = subprocess.run([sys.executable, "-m", "bench.soak", "--messages", "300", "--faults", SPEC,
                          "--deadline", "600", "--json", str(out)], cwd=ROOT, capture_output=True, text=True,
                         timeout=1200)
    print(run.stdout, run.stderr[-3000:])
    return run, json.loads(out.read_text())


def test_the_soak_ends_in_zeros(soak):
    run, figures = soak
    assert (figures["duplicates"], figures["lost"], figures["suppressed_sends"]) == (0, 0, 0), run.stdout
    assert run.returncode == 0
    assert "  lost (no final state, no DLQ reason): 0 " in run.stdout.splitlines()


def test_every_kind_of_fault_was_injected(soak):
    _, figures = soak
    assert {kind for kind, count in figures["faults"].items() if count} == set(KINDS)


def test_every_message_ended_as_its_kind_should(soak):
    """Suppressed and malformed messages end so; of those sent, the ones whose outcome nobody knows (an SES 5xx or
    read timeout before SES took it, a send worker killed while it held the claim) are parked (unknown, their job
    in a send DLQ: did SES take it?), the ones SES rejected failed, every other one ends as its recipient
    decides."""
    _, figures = soak
    by_kind = figures["by_kind"]
    assert set(by_kind["suppressed"]) == {"suppressed"}
    assert set(by_kind["garbage"]) == {"dlq"}
    assert set(by_kind["malformed"]) <= {"rejected", "dlq"}
    assert set(by_kind["bounce"]) <= {"bounced", "unknown", "failed"}
    assert set(by_kind["complaint"]) <= {"complained", "unknown", "failed"}
    assert set(by_kind["large"]) | set(by_kind["plain"]) <= {"delivered", "unknown", "failed"}
    assert figures["send_dlq_parked"] == figures["parked"]


def test_emails_ses_rejected_failed_with_its_reason(soak):
    _, figures = soak
    assert figures["failed_rejected_by_ses"] >= 1
    assert figures["failed_rejected_by_ses"] == figures["statuses"].get("failed")
