#!/usr/bin/env python3
"""The postline CDK app: `npx cdk synth|deploy` (cdk.json) or `python infra/app.py` (writes cdk.out/).

Configuration: postline.config.json at the repository root, or `-c config=<path>`; see docs/deploy.md.
"""

import os
import sys
from pathlib import Path

from aws_cdk import App

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stacks.app_builder import build  # noqa: E402
from stacks.config import EXAMPLE_CONFIG, REPO_ROOT, ConfigError, config_path, load_config  # noqa: E402


def main() -> None:
    # The CDK CLI says where to write; run directly, the template goes to cdk.out/ like `cdk synth`.
    app = App(outdir=None if "CDK_OUTDIR" in os.environ else str(REPO_ROOT / "cdk.out"))
    path = config_path(app.node.try_get_context("config"))
    if path == EXAMPLE_CONFIG:
        print(
            f"postline: using the example configuration {path.relative_to(REPO_ROOT)} (fine for synth; "
            "copy it to postline.config.json before deploying)",
            file=sys.stderr,
        )
    try:
        config = load_config(path)
    except ConfigError as error:
        sys.exit(str(error))
    build(app, config)
    app.synth()


if __name__ == "__main__":
    main()
