"""The CLI finds a deployed stack's resources from its CloudFormation outputs."""
import pytest

from postline_cli.target import STACK_OUTPUTS, TargetError, _names_from_stack


class FakeCloudFormation:
    def __init__(self, outputs=None, error=None):
        self.outputs, self.error = outputs or {}, error

    def describe_stacks(self, StackName):
        if self.error:
            raise self.error
        return {"Stacks": [{"StackName": StackName,
                            "Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in self.outputs.items()]}]}


def test_names_come_from_the_stack_outputs():
    outputs = {key: f"value-of-{key}" for key in STACK_OUTPUTS} | {"ApiUrl": "https://x"}
    names = _names_from_stack("postline", FakeCloudFormation(outputs))
    assert names["POSTLINE_MESSAGES_TABLE"] == "value-of-TableMessages"
    assert names["POSTLINE_INBOUND_QUEUE_URL_MARKETING"] == "value-of-InboundQueueUrlMarketing"


def test_a_stack_without_the_outputs_is_a_clear_error():
    with pytest.raises(TargetError, match="lacks the outputs .*TableMessages"):
        _names_from_stack("postline", FakeCloudFormation({"ApiUrl": "https://x"}))


def test_no_stack_is_a_clear_error():
    with pytest.raises(TargetError, match="postline local up"):
        _names_from_stack("postline", FakeCloudFormation(error=RuntimeError("Stack with id postline does not exist")))
