"""``postline outbox serve``: the outbox viewer on its own (``postline dashboard`` serves it too)."""

from __future__ import annotations

from pathlib import Path

import click

from .server import DEFAULT_PORT


@click.group()
def outbox() -> None:
    """The local stack's outbox: the emails it sent, as their recipients would see them."""


@outbox.command("serve")
@click.option("--port", default=DEFAULT_PORT, show_default=True, help="Port on 127.0.0.1 (0: any free port).")
@click.option(
    "--outbox",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    help="The outbox folder (default: the local stack's, POSTLINE_OUTBOX or ./outbox).",
)
def outbox_serve(port: int, folder: Path | None) -> None:
    """Serve the outbox viewer on http://127.0.0.1:PORT/outbox until Ctrl-C. It opens no browser itself."""
    from ..local.stack import LocalPaths
    from ..main import fail
    from .outbox import viewer_routes
    from .server import make_server, serve

    paths = LocalPaths.default()
    try:
        server = make_server(viewer_routes((folder or paths.outbox).resolve(), paths.send_log), port)
    except OSError as error:
        fail(
            f"cannot listen on 127.0.0.1:{port} ({error.strerror}): is the dashboard or another viewer running? "
            f"--port picks another port"
        )
    click.echo(f"outbox viewer: {server.url}/outbox  (emails in {folder or paths.outbox}; Ctrl-C stops it)")
    serve(server)
