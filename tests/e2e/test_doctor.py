"""postline doctor on the local stack: the records `--records` prints, parsed back as a zone and served by a DNS
server on loopback, pass every DNS check; the SES answers come from the local endpoint; the round trip's Delivery
event comes back through the SNS topic and the events function; a disabled event destination fails the doctor."""
from __future__ import annotations

import json

import dns.rdatatype
import dns.zone
import pytest

from postline_cli.local import resources
from tests.dns_server import DnsServer

pytestmark = pytest.mark.e2e
DOMAIN = resources.SENDING_DOMAIN


@pytest.fixture
def dns_with_the_printed_records(local_stack):
    printed = local_stack.cli("doctor", "--records", DOMAIN, "--dmarc-policy", "quarantine",
                              "--dmarc-report", f"dmarc@{DOMAIN}").stdout
    zone = dns.zone.from_text(printed, origin=DOMAIN + ".", relativize=False, check_origin=False)
    assert {(name.to_text(), dns.rdatatype.to_text(rdataset.rdtype)) for name, rdataset in zone.iterate_rdatasets()
            } >= {(f"bounce.{DOMAIN}.", "MX"), (f"bounce.{DOMAIN}.", "TXT"), (f"_dmarc.{DOMAIN}.", "TXT"),
                  (f"{resources.UNSUBSCRIBE_DOMAIN}.", "MX")}
    with DnsServer() as server:
        server.add_zone(DOMAIN, printed)
        yield server


def test_the_printed_records_served_back_pass_the_doctor(local_stack, dns_with_the_printed_records):
    server = dns_with_the_printed_records
    result = local_stack.cli("doctor", "--nameserver", f"127.0.0.1:{server.port}", "--json", check=False)
    report = json.loads(result.stdout)
    assert [(c["area"], c["name"], c["status"], c["found"]) for c in report["checks"] if c["status"] != "pass"] == []
    assert result.returncode == 0
    assert {c["area"] for c in report["checks"]} == {"ses", "spf", "dkim", "dmarc", "mail_from", "unsubscribe",
                                                     "wiring"}
    assert sum(1 for c in report["checks"] if c["name"].startswith("DKIM CNAME")) == 3
    round_trip = next(c for c in report["checks"] if c["name"] == "round trip")
    assert "its Delivery event reached postline" in round_trip["found"]


def test_a_disabled_event_destination_fails_the_doctor_with_the_fix(local_stack, dns_with_the_printed_records):
    sesv2 = local_stack.client("sesv2")
    disabled = {**resources.event_destination("sns"), "Enabled": False}
    sesv2.update_configuration_set_event_destination(ConfigurationSetName="postline-marketing",
                                                     EventDestinationName="Events", EventDestination=disabled)
    try:
        result = local_stack.cli("doctor", "--nameserver", f"127.0.0.1:{dns_with_the_printed_records.port}",
                                 check=False)
    finally:
        sesv2.update_configuration_set_event_destination(ConfigurationSetName="postline-marketing",
                                                         EventDestinationName="Events",
                                                         EventDestination=resources.event_destination("sns"))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    at = lines.index("  FAIL  marketing event destination: postline-marketing: the event destination Events is "
                     "disabled, so no event of marketing mail reaches postline (statuses stay at sent)")
    assert lines[at + 1].startswith("        fix: aws sesv2 update-configuration-set-event-destination "
                                    "--configuration-set-name postline-marketing --event-destination-name Events")
    assert "  warn  round trip: not tried: the account or wiring checks above fail" in lines
    assert lines[-1].endswith(", 1 failed")
