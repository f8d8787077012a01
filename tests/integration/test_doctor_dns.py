"""The doctor's DNS checks against a real authoritative DNS server on loopback (tests/dns_server.py), each with a
zone that passes and a zone holding a mistake senders really make."""
from __future__ import annotations

import pytest

from postline_cli.doctor.dns_checks import Identity, dns_checks, records_to_create
from postline_cli.doctor.report import FAIL, PASS, WARN
from tests.dns_server import DnsServer

DOMAIN = "mail.example.com"
TOKENS = ("tok1abcdefgh", "tok2abcdefgh", "tok3abcdefgh")
IDENTITY = Identity(DOMAIN, "us-east-1", TOKENS, "SUCCESS", f"bounce.{DOMAIN}", "SUCCESS")
SPF = '"v=spf1 include:amazonses.com ~all"'
DMARC = '"v=DMARC1; p=quarantine; rua=mailto:dmarc@example.com"'
MX = "10 feedback-smtp.us-east-1.amazonses.com."


def good_zone(**replace: str) -> str:
    """The example.com zone of a well set up sender; ``replace`` swaps a record's value (empty: no record)."""
    records = {
        "spf": f"bounce.mail TXT {SPF}",
        "mx": f"bounce.mail MX {MX}",
        "dmarc": f"_dmarc.mail TXT {DMARC}",
        **{f"dkim{i}": f"{t}._domainkey.mail CNAME {t}.dkim.amazonses.com." for i, t in enumerate(TOKENS, 1)},
        "www": "www A 192.0.2.10",
    }
    records.update(replace)
    return "\n".join(line for line in records.values() if line)


@pytest.fixture
def dns():
    with DnsServer() as server:
        yield server


def run(dns, zone: str, identity: Identity = IDENTITY, warmed_up: bool = False, extra: dict[str, str] = None):
    dns.add_zone("example.com", zone)
    for origin, text in (extra or {}).items():
        dns.add_zone(origin, text)
    return dns_checks(dns.resolver(timeout=1.0), identity, warmed_up)


def status_of(checks, name: str) -> str:
    found = [c for c in checks if c.name == name]
    assert found, f"no check {name!r} in {[c.name for c in checks]}"
    return found[0].status


def the(checks, name: str):
    return next(c for c in checks if c.name == name)


def test_a_well_set_up_domain_passes_every_check(dns):
    checks = run(dns, good_zone())
    assert [(c.area, c.name, c.status) for c in checks if c.status != PASS] == []
    assert {c.area for c in checks} == {"spf", "dkim", "dmarc", "mail_from"}
    assert the(checks, "SPF DNS lookups").found == "1 of at most 10"


def test_two_spf_records_fail_with_the_one_record_to_keep(dns):
    checks = run(dns, good_zone(spf2='bounce.mail TXT "v=spf1 include:_spf.google.com ~all"'))
    check = the(checks, "one SPF record")
    assert check.status == FAIL
    assert check.found.startswith("2 v=spf1 records at bounce.mail.example.com")
    assert check.fix.endswith('bounce.mail.example.com. 1800 IN TXT "v=spf1 include:amazonses.com ~all"')


def test_spf_without_amazon_ses_fails(dns):
    checks = run(dns, good_zone(spf='bounce.mail TXT "v=spf1 mx -all"'))
    assert status_of(checks, "SPF includes Amazon SES") == FAIL
    assert status_of(checks, "SPF ends in ~all or -all") == PASS


def test_spf_over_ten_lookups_counted_through_every_include_fails(dns):
    zone = good_zone(spf='bounce.mail TXT "v=spf1 include:amazonses.com include:s1.example.net '
                         'include:s2.example.net ~all"')
    checks = run(dns, zone, extra={"example.net": """
        s1 TXT "v=spf1 a mx include:s3.example.net -all"
        s2 TXT "v=spf1 a mx a:x.example.net mx:y.example.net -all"
        s3 TXT "v=spf1 a mx exists:x.example.net ip4:192.0.2.0/24 -all"
    """})
    check = the(checks, "SPF DNS lookups")
    assert check.status == FAIL
    # amazonses + s1 + s2 (3), s1's a, mx, include (3), s3's a, mx, exists (3), s2's four: 13
    assert check.found.startswith("13 DNS lookups")


def test_spf_within_ten_lookups_passes(dns):
    zone = good_zone(spf='bounce.mail TXT "v=spf1 include:amazonses.com include:s1.example.net ~all"')
    checks = run(dns, zone, extra={"example.net": 's1 TXT "v=spf1 a mx include:s3.example.net -all"\n'
                                                  's3 TXT "v=spf1 a mx -all"'})
    assert the(checks, "SPF DNS lookups").found == "7 of at most 10"
    assert [c for c in checks if c.status == FAIL] == []


def test_an_spf_include_loop_fails_and_names_the_loop(dns):
    zone = good_zone(spf='bounce.mail TXT "v=spf1 include:amazonses.com include:loop-a.example.net ~all"')
    checks = run(dns, zone, extra={"example.net": 'loop-a TXT "v=spf1 include:loop-b.example.net -all"\n'
                                                  'loop-b TXT "v=spf1 include:loop-a.example.net -all"'})
    check = the(checks, "SPF include loop")
    assert check.status == FAIL
    assert "loop-a.example.net -> loop-b.example.net -> loop-a.example.net" in check.found


def test_plus_all_and_ptr_warn_without_failing(dns):
    checks = run(dns, good_zone(spf='bounce.mail TXT "v=spf1 include:amazonses.com ptr +all"'))
    assert status_of(checks, "SPF ends in ~all or -all") == WARN
    assert status_of(checks, "SPF without ptr") == WARN
    assert not [c for c in checks if c.status == FAIL]


def test_a_dkim_cname_pointing_elsewhere_fails_with_the_right_record(dns):
    t = TOKENS[1]
    checks = run(dns, good_zone(dkim2=f"{t}._domainkey.mail CNAME {t}.dkim.example-esp.net."))
    failing = [c for c in checks if c.area == "dkim" and c.status == FAIL]
    assert len(failing) == 1
    assert failing[0].found == (f"{t}._domainkey.{DOMAIN} points to {t}.dkim.example-esp.net, not to SES's DKIM "
                                "host")
    assert failing[0].fix == f"replace it: {t}._domainkey.{DOMAIN}. 1800 IN CNAME {t}.dkim.amazonses.com."


def test_a_missing_dkim_cname_and_ses_pending_status(dns):
    identity = Identity(DOMAIN, "us-east-1", TOKENS, "PENDING", f"bounce.{DOMAIN}", "SUCCESS")
    checks = run(dns, good_zone(dkim3=""), identity)
    assert [c.found for c in checks if c.area == "dkim" and c.status == FAIL] == [
        f"no CNAME at {TOKENS[2]}._domainkey.{DOMAIN}"]
    assert status_of(checks, "SES DKIM status") == WARN


def test_dmarc_with_a_misspelt_tag_fails_and_suggests_the_tag(dns):
    checks = run(dns, good_zone(dmarc='_dmarc.mail TXT "v=DMARC1; p=quarantine; rau=mailto:dmarc@example.com"'))
    check = the(checks, "DMARC record valid")
    assert check.status == FAIL
    assert check.found == "tag 'rau' is not a DMARC tag (did you mean 'rua'?), so receivers ignore it"


def test_dmarc_missing_fails_and_inherited_from_the_organisational_domain_passes(dns):
    missing = run(dns, good_zone(dmarc=""))
    assert the(missing, "one DMARC record").status == FAIL
    assert the(missing, "one DMARC record").found == (
        f"no v=DMARC1 record at _dmarc.{DOMAIN} nor at _dmarc.example.com: Gmail and Yahoo refuse bulk mail "
        "without one")
    dns.zones.clear()
    inherited = run(dns, good_zone(dmarc=f"_dmarc TXT {DMARC}"))
    assert the(inherited, "one DMARC record").status == PASS
    assert the(inherited, "one DMARC record").found.endswith("(inherited from the organisational domain)")


def test_dmarc_p_none_warns_once_the_domain_is_past_warm_up(dns):
    zone = good_zone(dmarc='_dmarc.mail TXT "v=DMARC1; p=none; rua=mailto:dmarc@example.com"')
    assert status_of(run(dns, zone, warmed_up=False), "DMARC policy") == PASS
    dns.zones.clear()
    warned = the(run(dns, zone, warmed_up=True), "DMARC policy")
    assert warned.status == WARN
    assert "p=quarantine" in warned.fix and "p=reject" in warned.fix


def test_a_from_domain_that_aligns_with_neither_dkim_nor_spf_fails(dns):
    identity = Identity(DOMAIN, "us-east-1", TOKENS, "SUCCESS", f"bounce.{DOMAIN}", "SUCCESS",
                        from_domain="shop.example.org")
    checks = run(dns, good_zone(), identity, extra={"example.org": f"_dmarc.shop TXT {DMARC}"})
    assert status_of(checks, "From domain aligned") == FAIL
    strict = run_again(dns, good_zone(dmarc='_dmarc.mail TXT "v=DMARC1; p=reject; adkim=s; aspf=s; '
                                             'rua=mailto:d@example.com"'))
    assert status_of(strict, "From domain aligned") == PASS  # DKIM's d= is the From domain itself


def run_again(dns, zone: str):
    dns.zones.clear()
    return run(dns, zone)


def test_a_missing_mail_from_mx_fails_with_the_record(dns):
    check = the(run(dns, good_zone(mx="")), "MAIL FROM MX")
    assert check.status == FAIL
    assert check.found == f"no MX record at bounce.{DOMAIN}"
    assert check.fix == f"bounce.{DOMAIN}. 1800 IN MX 10 feedback-smtp.us-east-1.amazonses.com."


def test_a_null_mx_on_the_mail_from_domain_fails(dns):
    check = the(run(dns, good_zone(mx="bounce.mail MX 0 .")), "MAIL FROM MX")
    assert check.status == FAIL
    assert "null MX" in check.found


def test_a_dns_that_does_not_answer_fails_the_check_instead_of_crashing(dns):
    dns.silence(f"_dmarc.{DOMAIN}")
    checks = run(dns, good_zone())
    check = [c for c in checks if c.area == "dmarc"]
    assert [(c.name, c.status) for c in check] == [("DNS answered", FAIL)]
    assert status_of(checks, "MAIL FROM MX") == PASS


def test_the_records_to_create_served_back_pass_the_dns_checks(dns):
    lines = records_to_create(IDENTITY, "quarantine", "dmarc@example.com", f"unsubscribe.{DOMAIN}")
    zone = "\n".join(line for line in lines if not line.startswith(";"))
    dns.add_zone("example.com", zone)
    checks = dns_checks(dns.resolver(timeout=1.0), IDENTITY, False, f"unsubscribe.{DOMAIN}")
    assert [c for c in checks if c.status != PASS] == []
    assert the(checks, "unsubscribe MX").found == f"unsubscribe.{DOMAIN} MX inbound-smtp.us-east-1.amazonaws.com"


@pytest.mark.parametrize("record, found", [
    ("", f"no MX record at unsubscribe.{DOMAIN}"),
    ("unsubscribe.mail MX 10 mx.example.com.", f"unsubscribe.{DOMAIN} MX mx.example.com"),
])
def test_an_unsubscribe_domain_ses_does_not_receive_for_is_a_warning_with_its_record(dns, record, found):
    dns.add_zone("example.com", good_zone(unsubscribe=record))
    checks = dns_checks(dns.resolver(timeout=1.0), IDENTITY, False, f"unsubscribe.{DOMAIN}")
    check = the(checks, "unsubscribe MX")
    assert (check.status, check.found) == (WARN, found + ": SES does not receive the unsubscribe requests people "
                                                         "send by email")
    assert check.fix == f"unsubscribe.{DOMAIN}. 1800 IN MX 10 inbound-smtp.us-east-1.amazonaws.com."
