"""Recipient-domain hygiene in the render stage, against a DNS server on loopback (tests/dns_server.py) and moto: a
marketing email to a domain that cannot receive mail is rejected as undeliverable_domain before SES is asked, each
domain is looked up once per TTL (per container, and shared through DynamoDB), a DNS that does not answer lets the
email go, and the rejections are counted in the stats."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from postline.analytics.stats import read
from postline.contract import message_id_for
from postline.domains import DomainCheck, make_resolver
from postline.models import Message
from tests.dns_server import DnsServer

ROOT = Path(__file__).resolve().parents[2]
NEWSLETTER = json.loads((ROOT / "templates" / "newsletter" / "example.json").read_text())
ZONES = {
    "example.com": "@ MX 10 mx.example.com.\nmx A 192.0.2.1",  # an ordinary provider
    "example.net": "@ A 192.0.2.2",  # no MX, but an address: RFC 5321's implicit MX
    "example.org": "@ MX 0 .",  # a null MX (RFC 7505): it receives no mail
    "example.info": "www A 192.0.2.3",  # neither MX nor A/AAAA
    "gmial.com": "www A 192.0.2.4",  # a typo's domain, registered, receiving nothing
    "slow.example": "@ MX 10 mx.slow.example.",
}


@pytest.fixture
def dns():
    with DnsServer() as server:
        for origin, text in ZONES.items():
            server.add_zone(origin, text)
        server.silence("slow.example")
        yield server


@pytest.fixture
def checked(pipeline, dns):
    """The pipeline's settings with marketing's domains checked against the loopback DNS server."""
    pipeline.settings = dataclasses.replace(pipeline.settings, domain_check_streams=("marketing",),
                                            dns_nameserver=f"127.0.0.1:{dns.port}", dns_timeout_seconds=0.5)
    return pipeline


def newsletter(to: str, key: str) -> dict:
    return {"template": "newsletter", "to": to, "data": NEWSLETTER, "id": key, "campaign": "june"}


def record(key: str) -> Message:
    return Message.get(message_id_for(key), consistent_read=True)


def dead_letters(pipeline) -> int:
    url = pipeline.queue_url("postline-marketing-dlq")
    return int(pipeline.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])[
        "Attributes"]["ApproximateNumberOfMessages"])


def test_undeliverable_domains_are_rejected_before_ses_and_counted(checked, dns):
    recipients = {"ok": "ada@example.com", "implicit": "bob@example.net", "null": "carol@example.org",
                  "nothing": "dan@example.info", "gone": "eve@does-not-exist.example.com", "typo": "fay@gmial.com"}
    for key, to in recipients.items():
        checked.enqueue("marketing", newsletter(to, key))
    checked.drain()

    sent = {s["Destination"]["ToAddresses"][0] for s in checked.ses.sends}
    assert sent == {"ada@example.com", "bob@example.net"}
    assert {key: (record(key).status, record(key).reason) for key in ("null", "nothing", "gone", "typo")} == {
        "null": ("rejected", "undeliverable_domain: example.org publishes a null MX: it accepts no mail"),
        "nothing": ("rejected", "undeliverable_domain: example.info has no MX and no A/AAAA record: no server "
                                "receives its mail"),
        "gone": ("rejected", "undeliverable_domain: does-not-exist.example.com does not exist"),
        "typo": ("rejected", "undeliverable_domain: gmial.com has no MX and no A/AAAA record: no server receives its "
                             "mail (did you mean gmail.com?)"),
    }
    assert dead_letters(checked) == 0  # the address's fault: nothing to redrive
    stats = read(checked.session.client("dynamodb"), checked.settings.stats_table, "campaign", "june",
                 since=checked.clock() - 3600, until=checked.clock() + 3600)
    assert stats.totals["undeliverable_domain"] == 4
    assert stats.totals["rejected"] == 0  # SES's rejections are another count


def test_each_domain_is_looked_up_once_per_ttl_in_a_container_and_across_containers(checked, dns):
    for n in range(5):
        checked.enqueue("marketing", newsletter(f"reader{n}@example.com", f"a{n}"))
        checked.enqueue("marketing", newsletter(f"reader{n}@example.org", f"b{n}"))
    context = checked.render_context()
    checked.run_render(context)
    for n in range(5, 8):
        checked.enqueue("marketing", newsletter(f"reader{n}@example.com", f"a{n}"))
    checked.run_render(context)
    assert (dns.count("example.com", "MX"), dns.count("example.org", "MX")) == (1, 1)
    assert context.domain_check.lookups == 2

    other_container = checked.render_context()  # a new container: the shared cache answers, not the DNS
    checked.enqueue("marketing", newsletter("late@example.org", "late"))
    checked.run_render(other_container)
    assert record("late").status == "rejected"
    assert (other_container.domain_check.lookups, other_container.domain_check.shared_hits) == (0, 1)
    assert dns.count("example.org", "MX") == 1

    checked.now[0] += checked.settings.domain_check_ttl_seconds + 1  # past the TTL: asked again, once
    checked.enqueue("marketing", newsletter("later@example.org", "later"))
    checked.enqueue("marketing", newsletter("latest@example.org", "latest"))
    checked.run_render(other_container)
    assert dns.count("example.org", "MX") == 2


def test_a_dns_that_does_not_answer_lets_the_email_go_and_is_counted(checked, dns):
    checked.enqueue("marketing", newsletter("someone@slow.example", "slow"))
    context = checked.render_context()
    checked.run_render(context)
    checked.run_send()
    assert [s["Destination"]["ToAddresses"] for s in checked.ses.sends] == [["someone@slow.example"]]
    assert context.domain_check.timeouts == 1
    assert record("slow").status in ("sending", "sent")


def test_other_streams_are_not_checked_unless_configured(checked, dns):
    checked.enqueue("transactional", {"template": "welcome", "to": "new@example.org", "id": "w1",
                                      "data": json.loads((ROOT / "templates/welcome/example.json").read_text())})
    checked.drain()
    assert record("w1").status == "sent" and dns.count("example.org") == 0

    checked.settings = dataclasses.replace(checked.settings, domain_check_streams=("transactional", "marketing"))
    checked.enqueue("transactional", {"template": "welcome", "to": "other@example.org", "id": "w2",
                                      "data": json.loads((ROOT / "templates/welcome/example.json").read_text())})
    checked.drain()
    assert record("w2").status == "rejected"


def test_a_campaign_sized_batch_of_mixed_domains(pipeline, dns):
    """Thousands of addresses over a few dozen domains: one DNS question per domain, whatever the batch count."""
    dns.add_zone("shop.test", "\n".join(f"d{n} MX 10 mx.shop.test." for n in range(30)))
    domains = [f"d{n}.shop.test" for n in range(30)] + ["example.org", "example.info", "example.net"]
    check = DomainCheck(make_resolver(f"127.0.0.1:{dns.port}", 0.5), pipeline.session.client("dynamodb"),
                        pipeline.settings.events_table, 3600, pipeline.clock)
    verdicts = {}
    for batch in range(300):  # 3,000 addresses, ten to a batch, as the render function gets them
        addresses = [domains[(batch * 10 + n) % len(domains)] for n in range(10)]
        verdicts.update({d: a.deliverable for d, a in check.check(addresses).items()})
    assert check.lookups == len(domains)
    assert sum(dns.count(d, "MX") for d in domains) == len(domains)
    assert {d for d, deliverable in verdicts.items() if not deliverable} == {"example.org", "example.info"}
