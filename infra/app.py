#!/usr/bin/env python3
"""The postline CDK app: `npx cdk synth|deploy` (cdk.json) or `python infra/app.py` (writes cdk.out/).

The configuration file is chosen with `-c config=<path>`; see docs/deploy.md.
"""
import os
import sys
from pathlib import Path

from aws_cdk import App

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stacks.app_builder import build  # noqa: E402
from stacks.config import REPO_ROOT, ConfigError, load_config  # noqa: E402


def main() -> None:
    # The CDK CLI says where to write; run directly, the template goes to cdk.out/ like `cdk synth`.
    app = App(outdir=None if "CDK_OUTDIR" in os.environ else str(REPO_ROOT / "cdk.out"))
    try:
        config = load_config(app.node.try_get_context("config"))
    except ConfigError as error:
        sys.exit(str(error))
    build(app, config)
    app.synth()


if __name__ == "__main__":
    main()
