"""What every test process shares."""
from __future__ import annotations

import functools

import botocore.loaders
import botocore.session
import pytest


@pytest.fixture(scope="session", autouse=True)
def one_model_loader_per_process():
    """Each botocore session reads every AWS service's JSON model afresh, and a test against moto makes several
    (the integration pipeline's boto3 session, PynamoDB's per connection): two thirds of its setup. Here one
    loader per data path serves the whole test process, as one session's loader serves all its clients
    (tests/unit/test_shared_model_loader.py: the same models as a loader of one's own)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(botocore.session, "create_loader", functools.cache(botocore.loaders.create_loader))
        yield
