"""The doctor's pieces that need no DNS: the records it prints, how it reads a DMARC record and an organisational
domain, and the hygiene's typo suggestions and resolver settings."""
from __future__ import annotations

import pytest

from postline.domains import DomainAnswer, make_resolver, suggest, typing_distance
from postline_cli.doctor.dns_checks import Identity, organisational_domain, parse_dmarc, records_to_create


def test_the_records_to_create_in_zone_file_form():
    identity = Identity("mail.example.com", "eu-west-1", ("abc", "def"), "PENDING", None, None)
    assert records_to_create(identity, "quarantine", "dmarc@example.com", "unsubscribe.mail.example.com") == [
        "; DNS records for sending mail.example.com through Amazon SES (eu-west-1) with postline",
        "; Easy DKIM: SES signs with these keys",
        "abc._domainkey.mail.example.com. 1800 IN CNAME abc.dkim.amazonses.com.",
        "def._domainkey.mail.example.com. 1800 IN CNAME def.dkim.amazonses.com.",
        "; MAIL FROM: bounces come back to SES, and SPF aligns with your domain",
        "bounce.mail.example.com. 1800 IN MX 10 feedback-smtp.eu-west-1.amazonses.com.",
        'bounce.mail.example.com. 1800 IN TXT "v=spf1 include:amazonses.com ~all"',
        "; DMARC: what receivers do with mail that fails, and where they send reports",
        '_dmarc.mail.example.com. 1800 IN TXT "v=DMARC1; p=quarantine; rua=mailto:dmarc@example.com"',
        "; Unsubscribe by email: SES receives the List-Unsubscribe mailto address's mail",
        "unsubscribe.mail.example.com. 1800 IN MX 10 inbound-smtp.eu-west-1.amazonaws.com.",
    ]


def test_a_dmarc_record_is_read_tag_by_tag():
    assert parse_dmarc("v=DMARC1; p=reject; rua=mailto:a@example.com;") == (
        {"v": "DMARC1", "p": "reject", "rua": "mailto:a@example.com"}, [])
    assert parse_dmarc("p=none; v=DMARC1")[1] == ["it must start with v=DMARC1"]
    assert parse_dmarc("v=DMARC1; reject")[1] == ["'reject' is not tag=value"]


@pytest.mark.parametrize("name, organisational", [
    ("mail.example.com", "example.com"), ("example.com", "example.com"), ("news.shop.example.co.uk", "example.co.uk"),
])
def test_the_organisational_domain(name, organisational):
    assert organisational_domain(name) == organisational


@pytest.mark.parametrize("domain, meant", [
    ("gmial.com", "gmail.com"), ("hotmial.com", "hotmail.com"), ("yahooo.com", "yahoo.com"),
    ("gmail.con", "gmail.com"), ("outlok.com", "outlook.com"), ("gmail.com", None), ("example.com", None),
])
def test_typos_of_large_providers_get_a_suggestion(domain, meant):
    assert suggest(domain) == meant


def test_the_reason_names_the_domain_and_the_suggestion():
    assert DomainAnswer("gmial.com", False, "does not exist").reason() == (
        "undeliverable_domain: gmial.com does not exist (did you mean gmail.com?)")
    assert typing_distance("gmial", "gmail") == 1  # two letters swapped: one mistake


def test_the_resolver_asks_the_nameserver_given_and_gives_up_in_time():
    resolver = make_resolver("127.0.0.1:5353", 1.5)
    assert (resolver.nameservers, resolver.port, resolver.lifetime) == (["127.0.0.1"], 5353, 1.5)
    assert make_resolver("192.0.2.53", 2).port == 53


def test_records_without_a_domain_is_refused_in_one_line():
    from click.testing import CliRunner

    from postline_cli.main import cli

    result = CliRunner().invoke(cli, ["doctor", "--records"])
    assert result.exit_code == 2
    assert result.output.strip() == "error: --records needs the DOMAIN whose records to print"
