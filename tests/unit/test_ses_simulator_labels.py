"""The local SES's mailbox simulator honours SES's ``+label`` addresses: ``bounce+1@simulator.amazonses.com``
bounces as ``bounce@`` does, and so on for each simulated outcome."""
from __future__ import annotations

import pytest

from postline_cli.local.ses_simulator import events_for, simulated_outcome


def sent_to(recipient: str) -> dict:
    """One line of the local endpoint's send log."""
    return {"timestamp": 1_718_000_000.0, "ses_message_id": "0100-local", "source": "hello@mail.example.com",
            "destination": [recipient], "configuration_set": "postline-marketing",
            "tags": {"postline_message_id": "m1"}}


@pytest.mark.parametrize("label", ["", "+1", "+campaign-december", "+a+b", "+"])
@pytest.mark.parametrize("kind, outcome", [("bounce", "bounce"), ("complaint", "complaint"),
                                           ("suppressionlist", "suppressionlist"), ("success", "success"),
                                           ("ooto", "success")])
def test_a_label_does_not_change_what_the_simulator_does(kind, outcome, label):
    assert simulated_outcome(f"{kind}{label}@simulator.amazonses.com") == outcome


@pytest.mark.parametrize("recipient", ["Bounce+1@SIMULATOR.amazonses.com", "BOUNCE+X@simulator.AmazonSES.com"])
def test_case_does_not_matter(recipient):
    assert simulated_outcome(recipient) == "bounce"


@pytest.mark.parametrize("recipient", ["bounce+1@example.com", "bouncer+1@simulator.amazonses.com",
                                       "x+bounce@simulator.amazonses.com", "bounce+1@simulator.amazonses.com.example"])
def test_only_the_simulators_own_names_before_the_label_are_simulated(recipient):
    assert simulated_outcome(recipient) == "success"


@pytest.mark.parametrize("recipient", ["bounce+1@simulator.amazonses.com", "bounce+2@simulator.amazonses.com"])
def test_each_labelled_bounce_address_gets_its_own_permanent_bounce(recipient):
    events = events_for(sent_to(recipient))
    assert [event["eventType"] for event in events] == ["Send", "Bounce"]
    assert events[1]["bounce"]["bounceType"] == "Permanent"
    assert events[1]["bounce"]["bouncedRecipients"][0]["emailAddress"] == recipient


def test_a_labelled_complaint_address_is_delivered_then_complains():
    events = events_for(sent_to("complaint+7@simulator.amazonses.com"))
    assert [event["eventType"] for event in events] == ["Send", "Delivery", "Complaint"]
    assert events[2]["complaint"]["complainedRecipients"] == [{"emailAddress": "complaint+7@simulator.amazonses.com"}]


def test_a_labelled_suppression_list_address_bounces_as_on_the_account_suppression_list():
    events = events_for(sent_to("suppressionlist+3@simulator.amazonses.com"))
    assert events[1]["bounce"]["bounceSubType"] == "OnAccountSuppressionList"
