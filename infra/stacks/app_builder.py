"""Builds the CDK app: used by infra/app.py and by the infra tests, so both synthesize the very same thing."""

from __future__ import annotations

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks

from .config import Config
from .environment_size import EnvironmentSizeCheck
from .postline_stack import PostlineStack


def build(app: App, config: Config) -> PostlineStack:
    """The postline stack in ``app``, checked at synth by cdk-nag's AwsSolutions pack and by the size of each
    function's environment (Lambda refuses more than 4 KB; a deploy would fail and roll back)."""
    # Environment-agnostic: synth needs no credentials; account and region come from the deploy.
    stack = PostlineStack(app, config.stack_name, config=config)
    Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True), EnvironmentSizeCheck(config.stack_name))
    return stack
