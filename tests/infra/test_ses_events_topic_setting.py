"""ses_events knows the stack's SES events topic (the SNS route), so it can refuse SNS messages from any other
(postline.events); no other function is given it, and the EventBridge route, which has no topic, gives none."""
from __future__ import annotations

from stacks.constants import FUNCTIONS

VARIABLE = "POSTLINE_SES_EVENTS_TOPIC_ARN"


def _variables(synth, name):
    return synth.resource(synth.stack.functions.functions[name])["Properties"]["Environment"]["Variables"]


def test_the_sns_route_gives_ses_events_its_topic_and_nobody_else(synth):
    assert synth.config.ses_event_route == "sns"
    assert _variables(synth, "ses_events")[VARIABLE] == {"Ref": synth.logical_id(synth.stack.ses.topic)}
    assert [name for name in FUNCTIONS if name != "ses_events" and VARIABLE in _variables(synth, name)] == []


def test_the_eventbridge_route_gives_no_topic(variant):
    assert variant.config.ses_event_route == "eventbridge"
    assert VARIABLE not in _variables(variant, "ses_events")
