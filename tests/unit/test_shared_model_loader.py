"""The test processes share one botocore model loader (tests/conftest.py): it must serve what a loader of a
session's own serves, and be in force (else every test pays for the models again)."""
import botocore.loaders
import botocore.session
import pytest

SERVICES = ("dynamodb", "sqs", "sesv2", "s3", "sns", "events", "scheduler", "secretsmanager", "cloudwatch")


def test_sessions_made_in_tests_share_one_model_loader():
    first, second = botocore.session.Session(), botocore.session.Session()
    assert first.get_component("data_loader") is second.get_component("data_loader")


@pytest.mark.parametrize("service", SERVICES)
def test_the_shared_loader_serves_the_same_models_as_a_loader_of_ones_own(service):
    shared = botocore.session.Session()
    own = botocore.session.Session()
    own.register_component("data_loader", botocore.loaders.create_loader())  # botocore's own, not the cached one
    assert own.get_component("data_loader") is not shared.get_component("data_loader")
    served, expected = shared.get_service_model(service), own.get_service_model(service)
    assert served.api_version == expected.api_version
    assert served.operation_names == expected.operation_names
    for name in served.operation_names:
        assert _members(served.operation_model(name)) == _members(expected.operation_model(name))


def _members(operation) -> tuple:
    shapes = (operation.input_shape, operation.output_shape)
    return tuple(None if shape is None else (shape.name, list(shape.members)) for shape in shapes)
