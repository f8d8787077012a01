"""The local stack as applications and operators use it: SQS in, outbox and status out."""
from __future__ import annotations

import json
import shutil
import time
import urllib.request
import uuid

from tests.e2e.conftest import CRASH_ADDRESS, ROOT


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}@example.org"


def example(name: str) -> dict:
    return json.loads((ROOT / "templates" / name / "example.json").read_text())


def test_stack_reports_up_and_serves_the_http_api(local_stack):
    status = local_stack.cli_json("local", "status")
    assert status["up"] and status["endpoint"] == local_stack.endpoint
    with urllib.request.urlopen(local_stack.api_url + "/", timeout=5) as response:
        assert response.status == 200
    names = {url.rsplit("/", 1)[-1] for url in local_stack.client("sqs").list_queues()["QueueUrls"]}
    for stream in ("critical", "transactional", "marketing"):
        assert {f"postline-{stream}", f"postline-{stream}-dlq", f"postline-send-{stream}",
                f"postline-send-{stream}-dlq"} <= names


def test_every_sample_template_is_delivered_to_the_outbox(local_stack):
    templates = local_stack.cli_json("templates", "list")
    assert {t["stream"] for t in templates} == {"critical", "transactional", "marketing"}
    sent_to = {}  # all sent first, then each looked at: they flow through the pipeline together
    for template in templates:
        address = unique(template["name"])
        sent_to[address] = local_stack.cli_json("send", "--template", template["name"], "--to", address,
                                                "--data", json.dumps(template["example_data"]))
    for template, (address, sent) in zip(templates, sent_to.items(), strict=True):
        view = local_stack.wait_for(sent["message_id"], statuses={"delivered"})
        assert view["status"] == "delivered", view
        assert view["ses_message_id"]
        assert [e["type"] for e in view["events"]][:4] == ["queued", "rendered", "send_attempt", "sent"]
        emails = local_stack.outbox_for(address)
        assert len(emails) == 1
        assert (local_stack.outbox / f"{sent['message_id']}.eml").exists()
        assert emails[0]["Subject"]
        assert ("List-Unsubscribe" in emails[0]) == (template["stream"] == "marketing")


def test_an_application_batch_with_a_malformed_a_duplicate_and_a_suppressed_message(local_stack):
    suppressed = unique("suppressed")
    local_stack.cli("suppressions", "add", suppressed, "--reason", "manual")
    good = [unique(f"good{i}") for i in range(6)]
    run = uuid.uuid4().hex[:8]
    bodies = [{"id": f"{run}-{i}", "template": "welcome", "to": a, "data": example("welcome")}
              for i, a in enumerate(good)]
    bodies.append({"id": f"{run}-0", "template": "welcome", "to": good[0], "data": example("welcome")})  # duplicate
    bodies.append({"id": f"{run}-supp", "template": "welcome", "to": suppressed, "data": example("welcome")})
    malformed = {"id": f"{run}-bad", "template": "welcome", "to": "bad\r\nBcc: x@example.org", "data": {}}
    bodies.append(malformed)
    queue = local_stack.queue_url("postline-transactional")
    answer = local_stack.client("sqs").send_message_batch(QueueUrl=queue, Entries=[
        {"Id": str(i), "MessageBody": json.dumps(b)} for i, b in enumerate(bodies)])
    assert not answer.get("Failed")

    # Each assertion shows the message's whole view when it fails: this test once failed without saying where.
    for i, address in enumerate(good):
        view = local_stack.wait_for(f"{run}-{i}", statuses={"delivered"})
        assert view["status"] == "delivered", view
        assert len(local_stack.outbox_for(address)) == 1, view  # the duplicate of good[0] was not sent
    view = local_stack.wait_for(f"{run}-0")
    assert view["duplicates_ignored"] == 1, view
    view = local_stack.wait_for(f"{run}-supp")
    assert view["status"] == "suppressed", view
    assert local_stack.outbox_for(suppressed) == []
    rejected = local_stack.wait_for(f"{run}-bad")
    assert rejected["status"] == "rejected" and "line break" in rejected["reason"], rejected

    # The record is written before the body is dead-lettered: the DLQ may get it a moment after the status.
    dlq = local_stack.queue_url("postline-transactional-dlq")
    mine, deadline = [], time.time() + 15
    while not mine and time.time() < deadline:
        messages = local_stack.client("sqs").receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                                             MessageAttributeNames=["All"]).get("Messages", [])
        mine = [m for m in messages if json.loads(m["Body"]).get("id") == f"{run}-bad"]
    assert len(mine) == 1, f"{len(mine)} copies of the rejected body found in the DLQ within 15 s"
    assert "line break" in mine[0]["MessageAttributes"]["postline_reason"]["StringValue"]


def test_a_message_with_a_lone_surrogate_is_rejected_alone_and_its_five_neighbours_are_delivered(local_stack):
    """JavaScript's JSON.stringify writes `\ud83d` for a string cut inside an emoji: that one message is rejected
    with the field named, the five beside it in the same batch go out at once."""
    run = uuid.uuid4().hex[:8]
    good = [unique(f"beside{i}") for i in range(5)]
    bodies = [json.dumps({"id": f"{run}-{i}", "template": "welcome", "to": a, "data": example("welcome")})
              for i, a in enumerate(good)]
    data = json.dumps({**example("welcome"), "name": "Ada CUT"}).replace("CUT", "\\ud83d")
    poisoned = '{"id": "%s-cut", "template": "welcome", "to": "%s", "data": %s}' % (run, unique("cut"), data)
    bodies.insert(2, poisoned)
    answer = local_stack.client("sqs").send_message_batch(QueueUrl=local_stack.queue_url("postline-transactional"),
                                                          Entries=[{"Id": str(i), "MessageBody": body}
                                                                   for i, body in enumerate(bodies)])
    assert not answer.get("Failed")
    for i, address in enumerate(good):
        view = local_stack.wait_for(f"{run}-{i}", statuses={"delivered"})
        assert view["status"] == "delivered" and len(local_stack.outbox_for(address)) == 1, view
    rejected = local_stack.wait_for(f"{run}-cut")
    assert rejected["status"] == "rejected" and "data.name" in rejected["reason"], rejected
    assert "surrogate" in rejected["reason"]


def test_a_crash_after_ses_accepted_sends_exactly_once(local_stack):
    """The local stack's send function dies right after SES accepts mail to CRASH_ADDRESS (injected fault):
    SES's Send event settles the claim, and the redelivered record is not sent again."""
    queue = local_stack.queue_url("postline-send-critical")
    sqs = local_stack.client("sqs")
    empty = {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}

    def counts_once_empty(seconds: float) -> dict:
        deadline = time.time() + seconds
        while True:
            attributes = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=list(empty))["Attributes"]
            if attributes == empty or time.time() > deadline:
                return attributes
            time.sleep(0.5)

    # The stack is shared: a copy of an earlier test's critical email, delivered twice by SQS, may wait out its
    # claim (about a minute) on this queue. The check below is about this test's batch alone.
    assert counts_once_empty(90) == empty
    sent = local_stack.cli_json("send", "--template", "password-reset", "--to", CRASH_ADDRESS,
                                "--data", json.dumps(example("password-reset")))
    view = local_stack.wait_for(sent["message_id"], statuses={"delivered"})
    assert view["status"] == "delivered"
    # Wait past the redelivery of the crashed batch (visibility timeout 10 s) and check it was not re-sent.
    assert counts_once_empty(25) == empty
    assert local_stack.ses_sends_for(sent["message_id"]) == 1
    assert len(local_stack.outbox_for(CRASH_ADDRESS)) == 1
    # The redelivered copy was SQS's, not the application sending the message again: no repeat counted.
    assert local_stack.cli_json("status", sent["message_id"])["duplicates_ignored"] == 0


def test_a_hard_bounce_suppresses_the_address_and_the_next_send_is_skipped(local_stack):
    address = "bounce@simulator.amazonses.com"
    first = local_stack.cli_json("send", "--template", "welcome", "--to", address,
                                 "--data", json.dumps(example("welcome")))
    assert local_stack.wait_for(first["message_id"], statuses={"bounced"})["status"] == "bounced"
    shown = local_stack.cli_json("suppressions", "show", address)
    assert [(s["scope"], s["reason"]) for s in shown["suppressions"]] == [("all", "hard_bounce")]
    second = local_stack.cli_json("send", "--template", "password-reset", "--to", address,
                                  "--data", json.dumps(example("password-reset")))
    view = local_stack.wait_for(second["message_id"])
    assert view["status"] == "suppressed" and "hard_bounce" in view["reason"]


def test_a_complaint_reaches_the_suppression_list_through_sns_once_by_both_routes(local_stack):
    """The local stack publishes SES's events on the SNS topic, and the identity's complaint notification beside
    the configuration set's Complaint event: the address is suppressed, and the message shows one complaint."""
    address = f"complaint+{uuid.uuid4().hex[:8]}@simulator.amazonses.com"  # SES's simulator takes a +label
    sent = local_stack.cli_json("send", "--template", "newsletter", "--to", address,
                                "--data", json.dumps(example("newsletter")))
    view = local_stack.wait_for(sent["message_id"], statuses={"complained"})
    assert view["status"] == "complained", view
    assert [e["type"] for e in view["events"]].count("complained") == 1, view
    shown = local_stack.cli_json("suppressions", "show", address)
    assert ("all", "complaint") in [(s["scope"], s["reason"]) for s in shown["suppressions"]]
    sqs = local_stack.client("sqs")
    dlq = sqs.get_queue_attributes(QueueUrl=local_stack.queue_url("postline-ses-events-dlq"),
                                   AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
    assert dlq["ApproximateNumberOfMessages"] == "0"
    topics = local_stack.client("sns").list_topics()["Topics"]
    assert any(t["TopicArn"].endswith(":postline-ses-events") for t in topics)


def test_templates_push_makes_a_new_version_and_pinning_keeps_the_old_one(local_stack, tmp_path):
    folder = tmp_path / "invoice"
    shutil.copytree(ROOT / "templates" / "invoice", folder)
    meta = json.loads((folder / "template.json").read_text())
    meta["subject"] = "Revised invoice {{ invoice_number }}"
    (folder / "template.json").write_text(json.dumps(meta))
    pushed = local_stack.cli_json("templates", "push", str(folder))["published"]
    assert pushed[0]["changed"] and pushed[0]["version"] >= 2
    again = local_stack.cli_json("templates", "push", str(folder))["published"]
    assert again[0] == {**pushed[0], "changed": False}

    data = json.dumps(example("invoice"))
    preview = local_stack.cli_json("templates", "render", "invoice")
    assert preview["subject"].startswith("Revised invoice")
    active, pinned = unique("active"), unique("pinned")
    a = local_stack.cli_json("send", "--template", "invoice", "--to", active, "--data", data)
    p = local_stack.cli_json("send", "--template", "invoice@1", "--to", pinned, "--data", data)
    for sent in (a, p):
        assert local_stack.wait_for(sent["message_id"], statuses={"delivered"})["status"] == "delivered"
    assert local_stack.outbox_for(active)[0]["Subject"].startswith("Revised invoice")
    assert not local_stack.outbox_for(pinned)[0]["Subject"].startswith("Revised invoice")


def test_suppressions_cli_import_export_remove_and_history(local_stack, tmp_path):
    run = uuid.uuid4().hex[:8]
    csv_file = tmp_path / "list.csv"
    csv_file.write_text("email,reason\n" + "".join(f"imp{i}-{run}@example.org,manual\n" for i in range(300))
                        + "broken-address,manual\n")
    imported = local_stack.cli("suppressions", "import", str(csv_file), "--json", check=False)
    assert imported.returncode == 1  # the invalid row: imported but one, which is not done
    result = json.loads(imported.stdout)
    assert result["added"] == 300 and [r["line"] for r in result["invalid"]] == [302]
    exported = local_stack.cli("suppressions", "export").stdout
    assert sum(1 for line in exported.splitlines() if run in line) == 300
    address = f"imp0-{run}@example.org"
    local_stack.cli("suppressions", "remove", address, "--reason", "imported by mistake")
    shown = local_stack.cli_json("suppressions", "show", address)
    assert shown["suppressions"] == []
    assert [(h["action"], h["note"]) for h in shown["history"]] == [("removed", "imported by mistake")]
    listed = local_stack.cli_json("suppressions", "list", "--source", "import:list.csv", "--limit", "0")
    assert len([row for row in listed if run in row["email"]]) == 299


def test_the_application_reads_postline_events_from_the_local_queue(local_stack):
    address = "complaint@simulator.amazonses.com"
    sent = local_stack.cli_json("send", "--template", "welcome", "--to", address, "--tag", "plan=pro",
                                "--data", json.dumps(example("welcome")))
    assert local_stack.wait_for(sent["message_id"], statuses={"complained"})["status"] == "complained"
    sqs = local_stack.client("sqs")
    queue = local_stack.queue_url("postline-app-events")
    seen: set[str] = set()
    deadline = time.time() + 20
    while {"email.sent", "email.delivered", "email.complained"} - seen and time.time() < deadline:
        for message in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
                "Messages", []):
            event = json.loads(message["Body"])
            if event["detail"]["message_id"] == sent["message_id"]:
                seen.add(event["detail-type"])
                assert event["detail"]["tags"] == {"plan": "pro"}
    assert {"email.sent", "email.delivered", "email.complained"} <= seen


def test_erase_from_the_cli(local_stack):
    address = unique("erase-me")
    sent = local_stack.cli_json("send", "--template", "welcome", "--to", address,
                                "--data", json.dumps(example("welcome")))
    local_stack.wait_for(sent["message_id"], statuses={"delivered"})
    local_stack.cli("suppressions", "add", address, "--reason", "manual")
    report = local_stack.cli_json("erase", address, "--yes")
    assert report == {"erased": True, "messages": 1, "events": report["events"], "retries_cancelled": 0,
                      "still_suppressed": ["all"]}
    gone = local_stack.cli("status", sent["message_id"], "--json", check=False)
    assert (gone.returncode, json.loads(gone.stdout)["found"]) == (3, False)  # no record left
    shown = local_stack.cli_json("suppressions", "show", address)["suppressions"]  # only as its keyed hash
    assert [(s["email"][:7], s["scope"]) for s in shown] == [("erased:", "all")]
    assert address not in json.dumps(shown)
    again = local_stack.cli_json("send", "--template", "welcome", "--to", address,
                                 "--data", json.dumps(example("welcome")))
    assert local_stack.wait_for(again["message_id"])["status"] == "suppressed"
