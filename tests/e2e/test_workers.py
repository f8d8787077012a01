"""Workers that can die: each function runs in its own process, as a Lambda container does, and ``postline local
workers kill NAME`` SIGKILLs one at any moment. The stack starts it anew; the queues and tables, in the AWS
endpoint's process, lose nothing: every email ends delivered once, or parked with its reason, never sent twice."""
from __future__ import annotations

import json
import random
import re
import time
import uuid

from tests.e2e.conftest import ROOT, started_stack, wait_until

MESSAGES = 40
# A kill between the send function's claim and its SES call leaves a claim nobody can settle: it is parked as
# ``unknown`` (in the send DLQ, with its reason) once stale, never resent on a timer. The shortest staleness allowed
# (more than the Send event's delay and margin), so such a message is seen parked within the test.
STALE_CLAIM_SECONDS = "70"


# A deploy config whose critical send concurrency (3) differs from the defaults (4), and whose critical render
# concurrency (50) is above the local stack's ceiling (4).
CONCURRENCY = {"render_concurrency": {"critical": 50, "transactional": 3, "marketing": 2},
               "send_concurrency": {"critical": 3, "transactional": 2, "marketing": 2}}


def workers(stack) -> dict[str, dict]:
    return {row["name"]: row for row in stack.cli_json("local", "workers")}


def kill_and_see_it_back(stack, name: str) -> None:
    before = workers(stack)[name]
    assert before["alive"], before
    killed = stack.cli("local", "workers", "kill", name)
    assert killed.stdout.strip() == (f"killed the {name} worker (pid {before['pid']}, SIGKILL): "
                                     "the stack starts a new one")

    def back() -> bool:
        now = workers(stack)[name]
        return now["alive"] and now["pid"] != before["pid"] and now["restarts"] == before["restarts"] + 1

    wait_until(back, 60, f"the {name} worker started anew")


def test_killed_workers_come_back_and_no_email_is_lost_or_sent_twice(tmp_path):
    seed = random.randrange(1_000_000)  # noqa: S311 - the moment of a kill, not a secret
    print(f"random seed {seed}")
    chance = random.Random(seed)  # noqa: S311
    config = tmp_path / "deploy.json"
    config.write_text(json.dumps({**json.loads((ROOT / "infra/config/example.json").read_text()), **CONCURRENCY}))
    with started_stack(tmp_path, "--config", str(config), POSTLINE_STALE_CLAIM_SECONDS=STALE_CLAIM_SECONDS) as stack:
        assert sorted(workers(stack)) == ["campaign", "render", "send", "ses_events"]
        assert all(row["alive"] and row["restarts"] == 0 for row in workers(stack).values())
        assert stack.up_stderr == (
            "note: the local stack runs at most 4 batches at once per queue: render_concurrency.critical 50 "
            f"(in {config}) is lowered to 4 here; a deployment gets the config's\n")
        assert {name: row["pollers"] for name, row in workers(stack).items()} == {
            "render": {"postline-critical": 4, "postline-transactional": 3, "postline-marketing": 2},
            "send": {"postline-send-critical": 3, "postline-send-transactional": 2, "postline-send-marketing": 2},
            "ses_events": {"postline-ses-events": 3, "postline-ses-send-events": 3},
            "campaign": {"postline-campaigns": 2},
        }
        critical = critical_batch_delivered_once(stack)
        data = json.loads((ROOT / "templates" / "welcome" / "example.json").read_text())
        run = uuid.uuid4().hex[:8]
        began = time.monotonic()
        messages = {f"{run}-{i}": f"worker-{run}-{i}@example.org" for i in range(MESSAGES)}
        queue, sqs = stack.queue_url("postline-transactional"), stack.client("sqs")
        ids = list(messages)

        def enqueue(part: list[str]) -> None:
            for start in range(0, len(part), 10):
                answer = sqs.send_message_batch(QueueUrl=queue, Entries=[
                    {"Id": str(n), "MessageBody": json.dumps({"id": mid, "template": "welcome",
                                                              "to": messages[mid], "data": data})}
                    for n, mid in enumerate(part[start:start + 10])])
                assert not answer.get("Failed"), answer

        # Half the messages, then the send worker killed at a random moment while they flow; the other half,
        # then the render worker.
        for part, name in ((ids[:MESSAGES // 2], "send"), (ids[MESSAGES // 2:], "render")):
            enqueue(part)
            time.sleep(chance.uniform(0.0, 3.0))
            kill_and_see_it_back(stack, name)

        table = stack.cli("local", "workers").stdout
        assert re.search(r"│ send\s+│ \d+\s+│ yes\s+│ 1\s+│ postline-send-critical 3,", table), table
        assert re.search(r"│ render\s+│ \d+\s+│ yes\s+│ 1\s+│ postline-critical 4,", table), table

        print(f"workers back at {time.monotonic() - began:.0f} s")
        views = {mid: stack.wait_for(mid, statuses={"delivered", "unknown"}, seconds=240) for mid in ids}
        parked = {mid for mid, view in views.items() if view["status"] == "unknown"}
        for mid, view in views.items():
            assert view["status"] in ("delivered", "unknown"), view
            sends = stack.ses_sends_for(view["message_id"])  # postline's id, not the application's key
            assert len(stack.outbox_for(messages[mid])) == sends, view  # never sent twice
            assert sends == (0 if mid in parked else 1), view
        if parked:  # killed between claim and SES: parked, in the send DLQ with its reason, for an operator
            dlq = stack.queue_url("postline-send-transactional-dlq")
            held = []
            while batch := sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, VisibilityTimeout=60,
                                               WaitTimeSeconds=1).get("Messages", []):
                held += batch
            in_dlq = {mid for mid in parked if any(views[mid]["message_id"] in m["Body"] for m in held)}
            assert in_dlq == parked, (parked, held)
            assert all(views[mid]["reason"] for mid in parked), [views[mid] for mid in parked]
        print(f"{len(ids) - len(parked)} delivered once, {len(parked)} parked as unknown, "
              f"at {time.monotonic() - began:.0f} s")

        assert all(len(stack.outbox_for(address)) == 1 for address in critical)  # the kills resent none of them
        unknown = stack.cli("local", "workers", "kill", "nope", check=False)
        assert unknown.returncode == 2
        assert unknown.stderr.strip() == ("error: no worker named 'nope': "
                                          "the workers are render, send, ses_events, campaign")

        pids = [row["pid"] for row in workers(stack).values()]
        stack.cli("local", "down")
        wait_until(lambda: not any(_running(pid) for pid in pids), 30, "every worker gone after local down")


def critical_batch_delivered_once(stack) -> list[str]:
    """A batch of ten password resets on the critical queue, consumed with the config's concurrency: each delivered,
    once; their addresses."""
    data = json.loads((ROOT / "templates" / "password-reset" / "example.json").read_text())
    run = uuid.uuid4().hex[:8]
    people = {f"{run}-c{i}": f"critical-{run}-{i}@example.org" for i in range(10)}
    answer = stack.client("sqs").send_message_batch(QueueUrl=stack.queue_url("postline-critical"), Entries=[
        {"Id": str(n), "MessageBody": json.dumps({"id": mid, "template": "password-reset", "to": to, "data": data})}
        for n, (mid, to) in enumerate(people.items())])
    assert not answer.get("Failed"), answer
    for mid, to in people.items():
        assert stack.wait_for(mid, statuses={"delivered"})["status"] == "delivered", mid
        assert len(stack.outbox_for(to)) == 1
    return list(people.values())


def _running(pid: int) -> bool:
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited (its parent has not reaped it yet)
