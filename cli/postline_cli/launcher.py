"""The ``postline`` command's entry point. ``pip install postline`` installs the application client only; the CLI's
own dependencies come with the ``cli`` extra, so without them the command says what to install instead of a
traceback."""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from .main import cli
    except ModuleNotFoundError as missing:
        if (missing.name or "").split(".")[0] in ("postline", "postline_cli"):
            raise  # postline's own code is broken: that is not a missing extra
        sys.stderr.write(
            f"error: postline's CLI needs its extra ({missing.name} is not installed): pip install 'postline[cli]'\n"
        )
        sys.exit(1)
    cli()
