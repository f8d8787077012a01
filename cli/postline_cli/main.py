"""postline: the operator CLI. Every read command takes --json for scripts."""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table

from postline.contract import Rejected
from postline.settings import STREAMS
from postline.suppression import REASONS, suppression_names

from .analytics.commands import report as report_command
from .analytics.commands import stats as stats_command
from .campaigns import campaigns as campaign_commands
from .doctor.commands import doctor as doctor_command
from .events import events as events_command
from .inbox import inbox as inbox_command
from .rate import rate as rate_commands
from .rate import warmup as warmup_commands
from .suppressions import SCOPES
from .target import Target, target
from .views import iso
from .web.commands import outbox as outbox_commands
from .web.dashboard import dashboard as dashboard_command

# soft_wrap: a line longer than the console is left to the terminal to wrap, never broken mid-sentence by rich.
console = Console(soft_wrap=True)
errors = Console(stderr=True, soft_wrap=True)
# click handles these itself: usage errors, ctx.exit(), Ctrl-C, and a closed pipe (quietly).
CLICKS_OWN = (click.ClickException, click.exceptions.Exit, click.Abort, BrokenPipeError)


def emit_json(value) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


def fail(message: str, code: int = 1) -> NoReturn:
    errors.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)  # one line, however long
    sys.exit(code)


def parse_json_option(value: str | None, what: str) -> dict:
    if value is None:
        return {}
    # Bytes a command line could not decode (``--data "$(cat latin1.json)"``) reach Python as lone surrogates.
    undecodable = next((at for at, character in enumerate(value) if "\udc80" <= character <= "\udcff"), None)
    if undecodable is not None:
        fail(f"{what} is not UTF-8 text (at character {undecodable + 1}): save the data as UTF-8", 2)
    try:
        data = json.loads(value)
    except json.JSONDecodeError as error:
        fail(f"{what} is not valid JSON: {error}", 2)
    if not isinstance(data, dict):
        fail(f"{what} must be a JSON object", 2)
    return data


class Cli(click.Group):
    """Turns any failure into one line on stderr (what is wrong, what to do) and exit 1, instead of a traceback;
    click's own usage errors and exits stay click's."""

    def invoke(self, ctx):
        from .errors import DEBUG_VARIABLE, explain

        try:
            return super().invoke(ctx)
        except CLICKS_OWN:
            raise
        except Exception as error:  # noqa: BLE001 - whatever it is, the operator gets one line
            if os.environ.get(DEBUG_VARIABLE, "") not in ("", "0"):
                traceback.print_exc()
            fail(explain(error))


@click.group(cls=Cli, epilog="A failure prints one line; POSTLINE_DEBUG=1 prints the Python traceback before it.")
def cli() -> None:
    """postline: serverless email delivery on Amazon SES."""


# ---------------------------------------------------------------- local stack
@cli.group()
def local() -> None:
    """The local stack: a real AWS endpoint on loopback running postline's functions."""


@local.command("up")
@click.option("--detach", is_flag=True, help="Start in the background and return when ready.")
@click.option("--aws-port", default=4566, show_default=True)
@click.option("--api-port", default=3000, show_default=True)
@click.option("--smtp-port", default=2526, show_default=True, help="The unsubscribe address's local MX.")
@click.option(
    "--smtp-relay-port",
    default=2525,
    show_default=True,
    help="The local SMTP relay (the streams in POSTLINE_LOCAL_SMTP_STREAMS send through it).",
)
@click.option(
    "--ses-route",
    type=click.Choice(["sns", "eventbridge"]),
    default="sns",
    show_default=True,
    help="How SES's events reach postline, as the deploy config's ses_event_route.",
)
@click.option(
    "--fault",
    "faults",
    default=os.environ.get("POSTLINE_LOCAL_FAULTS", ""),
    hidden=True,
    help="Fault injection for tests, e.g. crash_after_ses:ADDRESS.",
)
@click.option(
    "--config",
    "config_file",
    metavar="PATH",
    help="The deploy config whose render_concurrency and send_concurrency the queues' pollers follow "
    "(default: postline.config.json, else infra/config/example.json).",
)
@click.option("--queue-pollers", hidden=True, help="The pollers --config gave, for the detached stack (JSON).")
def local_up(
    detach: bool,
    aws_port: int,
    api_port: int,
    smtp_port: int,
    smtp_relay_port: int,
    ses_route: str,
    faults: str,
    config_file: str | None,
    queue_pollers: str | None,
) -> None:
    """Start the local stack (in the foreground until Ctrl-C unless --detach)."""
    from .local.stack import LocalPaths, LocalStack, LocalStackError, deploy_pollers, running_state, start_detached

    paths = LocalPaths.default()
    if running_state(paths):
        fail("the local stack is already up (postline local down stops it)")
    if queue_pollers:
        pollers = json.loads(queue_pollers)
    else:
        try:
            pollers, note = deploy_pollers(config_file)
        except LocalStackError as error:
            fail(f"--config: {error}" if config_file else str(error), 2)
        if note:
            click.echo(f"note: {note}", err=True)
    try:
        if detach:
            args = [
                "--aws-port",
                str(aws_port),
                "--api-port",
                str(api_port),
                "--smtp-port",
                str(smtp_port),
                "--smtp-relay-port",
                str(smtp_relay_port),
                "--ses-route",
                ses_route,
            ]
            args += ["--fault", faults] if faults else []
            args += ["--queue-pollers", json.dumps(pollers)]
            state = start_detached(paths, args)
            _print_state(state, detached=True)
            return
        LocalStack(
            paths,
            aws_port,
            api_port,
            faults,
            ses_route,
            queue_pollers=pollers,
            smtp_port=smtp_port,
            smtp_relay_port=smtp_relay_port,
        ).run(
            on_ready=lambda _: _print_state(
                {
                    "endpoint": f"http://127.0.0.1:{aws_port}",
                    "api_url": f"http://127.0.0.1:{api_port}",
                    "outbox": str(paths.outbox),
                    "queues": {n: f"http://127.0.0.1:{aws_port}/123456789012/{n}" for n in _queue_names()},
                },
                detached=False,
            )
        )
    except LocalStackError as error:
        fail(str(error))


def _queue_names() -> list[str]:
    from .local.resources import all_queue_names

    return all_queue_names()


def _print_state(state: dict, detached: bool) -> None:
    console.print(
        f"[green]postline local stack is up[/green]  AWS endpoint {state['endpoint']}  HTTP API {state['api_url']}",
        highlight=False,
    )
    console.print(f"outbox: {state['outbox']}", highlight=False)
    width = max(map(len, state["queues"]))
    for name, url in state["queues"].items():
        click.echo(f"  {name:<{width}}  {url}")
    console.print(
        "use it with: export AWS_ENDPOINT_URL="
        + state["endpoint"]
        + (" (or just run postline commands from this folder)"),
        highlight=False,
    )
    if not detached:
        console.print("Ctrl-C stops it.")


@local.command("down")
def local_down() -> None:
    """Stop a local stack started with --detach."""
    from .local.stack import LocalPaths, stop

    if stop(LocalPaths.default()):
        console.print("local stack stopped")
    else:
        console.print("no local stack was running")


@local.command("status")
@click.option("--json", "as_json", is_flag=True)
def local_status(as_json: bool) -> None:
    """Exit 0 and describe the local stack if it is up; exit 1 if not."""
    from .local.stack import LocalPaths, running_state

    state = running_state(LocalPaths.default())
    if as_json:
        emit_json({"up": bool(state), **(state or {})})
    elif state:
        console.print(
            f"up: AWS endpoint {state['endpoint']}, HTTP API {state['api_url']}, outbox {state['outbox']}",
            highlight=False,
        )
    else:
        console.print("down")
    sys.exit(0 if state else 1)


@local.command("clock")
@click.option("--advance", metavar="DURATION", help="Move the clock forward: 1d, 36h, 1d12h, 30m, 90s.")
@click.option("--set", "set_to", metavar="ISO8601", help="Move the clock to this time (UTC unless it says otherwise).")
@click.option("--reset", is_flag=True, help="Back to real time.")
@click.option("--json", "as_json", is_flag=True)
def local_clock(advance: str | None, set_to: str | None, reset: bool, as_json: bool) -> None:
    """Show or move the local stack's clock, to see what a day changes without waiting for it.

    The functions (and their sending-rate limiter), the queues' delays and SES's rate and 24-hour windows all run on
    it: moved a day forward, mail that waits for tomorrow (a warm-up cap, the daily quota) goes. Moving it back
    holds what is in flight on the queues until the clock catches up. It starts at real time with the stack."""
    from .local.clock import describe_offset, parse_duration, parse_instant, read_offset, write_offset
    from .local.stack import LocalPaths, running_state

    if sum((advance is not None, set_to is not None, reset)) > 1:
        fail("give one of --advance, --set and --reset", 2)
    paths = LocalPaths.default()
    if not running_state(paths):
        fail("no local stack is up here (postline local up): its clock starts at real time with it")
    try:
        if advance is not None:
            write_offset(paths.clock_file, read_offset(paths.clock_file) + parse_duration(advance))
        elif set_to is not None:
            write_offset(paths.clock_file, parse_instant(set_to) - time.time())
        elif reset:
            write_offset(paths.clock_file, 0)
    except ValueError as error:
        fail(str(error), 2)
    real, offset = time.time(), read_offset(paths.clock_file)
    if as_json:
        emit_json({"now": iso(real + offset), "offset_seconds": round(offset, 3), "real_now": iso(real)})
    else:
        console.print(f"local stack clock: {iso(real + offset)} ({describe_offset(offset)})", highlight=False)


@local.group("workers", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def local_workers(ctx: click.Context, as_json: bool) -> None:
    """The functions' worker processes (one per function, as Lambda's containers): name, pid, alive, restarts, and
    the concurrent batches each runs per queue (the deploy config's, see local up --config)."""
    from .local.stack import LocalPaths, running_state, workers

    if ctx.invoked_subcommand:
        return
    state = running_state(LocalPaths.default())
    if not state:
        fail("no local stack is up here (postline local up)")
    rows = workers(state)
    if as_json:
        emit_json(rows)
        return
    table = Table("worker", "pid", "alive", "restarts", "pollers per queue")
    for row in rows:
        pollers = ", ".join(f"{queue} {number}" for queue, number in row["pollers"].items())
        table.add_row(row["name"], str(row["pid"]), "yes" if row["alive"] else "no", str(row["restarts"]), pollers)
    console.print(table)


@local_workers.command("kill")
@click.argument("name")
def local_workers_kill(name: str) -> None:
    """SIGKILL NAME's worker at once, as a Lambda container dies; the stack starts a new one, and its queues and
    tables (in the AWS endpoint's process) lose nothing."""
    from .local.stack import LocalPaths, LocalStackError, kill_worker, running_state
    from .local.worker import WORKER_FUNCTIONS

    if name not in WORKER_FUNCTIONS:
        fail(f"no worker named {name!r}: the workers are {', '.join(WORKER_FUNCTIONS)}", 2)
    state = running_state(LocalPaths.default())
    if not state:
        fail("no local stack is up here (postline local up)")
    try:
        pid = kill_worker(state, name)
    except LocalStackError as error:
        fail(str(error))
    console.print(f"killed the {name} worker (pid {pid}, SIGKILL): the stack starts a new one", highlight=False)


# ---------------------------------------------------------------- templates
@cli.group()
def templates() -> None:
    """Publish, list and preview templates."""


@templates.command("push")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Check (publish's checks and lint) without publishing.")
@click.option("--force", is_flag=True, help="Publish despite lint errors (a template that cannot render never is).")
@click.option("--json", "as_json", is_flag=True)
def templates_push(directory: Path, dry_run: bool, force: bool, as_json: bool) -> None:
    """Publish every template folder in DIRECTORY (or DIRECTORY itself if it is one), after lint."""
    from postline.templates import TemplateProblem

    from .publish import load_template_dir, prepare, publish
    from .template_lint import HARD_RULES, lint

    if not dry_run:
        target()
    folders = template_folders(directory)
    author = os.environ.get("USER", "postline")
    results: list[dict[str, Any]] = []
    problems, findings = [], []
    for folder in folders:
        try:
            source = load_template_dir(folder)
            found = lint(source)
            unpublishable = [f.message for f in found if f.rule == "publish"]
            if unpublishable:
                problems.extend(unpublishable)
                continue
            findings.extend(found)
            errors_found = [f for f in found if f.severity == "error"]
            hard = any(f.rule in HARD_RULES for f in errors_found)
            if hard or (errors_found and not force):
                problems.append(
                    f"{source.name}: {len(errors_found)} lint error(s)"
                    + ("" if hard else " (--force publishes anyway)")
                )
                continue
            item = prepare(source, author)
            if dry_run:
                results.append({"name": item.name, "version": None, "stream": item.stream, "changed": None})
                continue
            published = publish(item)
        except TemplateProblem as problem:
            problems.append(str(problem))
            continue
        results.append(
            {
                "name": published.name,
                "version": published.version,
                "stream": published.stream,
                "changed": published.changed,
            }
        )
    if as_json:
        emit_json(
            {
                "published": [] if dry_run else results,
                "checked": results if dry_run else [],
                "findings": [f.as_json() for f in findings],
                "problems": problems,
            }
        )
    else:
        for finding in findings:
            colour = "red" if finding.severity == "error" else "yellow"
            errors.print(
                f"[{colour}]{finding.severity}:[/{colour}] {escape(str(finding))}", highlight=False, soft_wrap=True
            )
        if results and dry_run:
            for r in results:
                console.print(
                    f"{r['name']} ({r['stream']}): ready to publish (dry run: nothing published)", highlight=False
                )
        elif results:
            table = Table("template", "stream", "version", "")
            for r in results:
                table.add_row(r["name"], r["stream"], str(r["version"]), "new version" if r["changed"] else "unchanged")
            console.print(table)
        for text in problems:
            errors.print(f"[red]not published:[/red] {escape(text)}", highlight=False, soft_wrap=True)
    # As for every other input the CLI refuses (docs/cli.md, "Exit codes"): 2 when every folder was refused, so
    # nothing was published; 1 when only some were. A dry run exits as the push it checks would.
    sys.exit(0 if not problems else 1 if results else 2)


def template_folders(directory: Path) -> list[Path]:
    """DIRECTORY itself when it is a template folder, else the template folders in it."""
    folders = (
        [directory]
        if (directory / "template.json").exists()
        else sorted(p for p in directory.iterdir() if (p / "template.json").exists())
    )
    if not folders:
        fail(f"no template folders (with template.json) in {directory}", code=2)  # input refused, nothing done
    return folders


@templates.command("lint")
@click.argument("what", required=False, default="templates")
@click.option("--json", "as_json", is_flag=True)
def templates_lint(what: str, as_json: bool) -> None:
    """Check template folders in DIR (default: templates/), or the published template NAME, for what makes mail
    clipped, unreadable, non-compliant or mangled. Exit 1 on errors."""
    from postline.templates import TemplateProblem

    from .publish import LocaleSource, TemplateSource, load_template_dir
    from .template_lint import lint

    if Path(what).is_dir():
        sources = []
        for folder in template_folders(Path(what)):
            try:
                sources.append(load_template_dir(folder))
            except TemplateProblem as problem:
                fail(str(problem))
    else:
        from postline.locales import DEFAULT_LOCALE
        from postline.models import Template
        from postline.templates import required_variables

        stored = _published_template(what)
        item = Template.get(stored.name, stored.version)
        optional = set(required_variables(item.subject, item.html, item.text)) - set(item.required or [])
        sources = [
            TemplateSource(
                name=item.name,
                stream=item.stream,
                subject=item.subject,
                html=item.html,
                text=item.text,
                description=item.description or "",
                optional=sorted(optional),
                from_address=item.from_address,
                example_data=item.example_data or {},
                path=Path(f"{item.name}@{item.version}"),
                locale=item.locale or DEFAULT_LOCALE,
                variants=[
                    LocaleSource(tag, parts["subject"], parts["html"], parts.get("text"))
                    for tag, parts in (item.locales or {}).items()
                ],
            )
        ]
    findings = [finding for source in sources for finding in lint(source)]
    if as_json:
        emit_json({"templates": [s.name for s in sources], "findings": [f.as_json() for f in findings]})
    else:
        for finding in findings:
            colour = "red" if finding.severity == "error" else "yellow"
            console.print(
                f"[{colour}]{finding.severity}:[/{colour}] {escape(str(finding))}", highlight=False, soft_wrap=True
            )
        errors_count = sum(f.severity == "error" for f in findings)
        console.print(
            f"{len(sources)} template(s): {errors_count} error(s), {len(findings) - errors_count} warning(s)",
            highlight=False,
        )
    sys.exit(1 if any(f.severity == "error" for f in findings) else 0)


@templates.command("list")
@click.option("--json", "as_json", is_flag=True)
def templates_list(as_json: bool) -> None:
    """The active version of every template, with its locales (the default first)."""
    from postline.locales import DEFAULT_LOCALE

    from .publish import active_templates

    target()
    items: list[dict[str, Any]] = [
        {
            "name": t.name,
            "stream": t.stream,
            "version": int(t.version),
            "description": t.description,
            "required": list(t.required or []),
            "example_data": t.example_data or {},
            "locale": t.locale or DEFAULT_LOCALE,
            "locales": [t.locale or DEFAULT_LOCALE, *sorted(t.locales or {})],
        }
        for t in active_templates()
    ]
    if as_json:
        emit_json(items)
        return
    table = Table("template", "stream", "version", "locales", "needs")
    for item in items:
        table.add_row(
            item["name"], item["stream"], str(item["version"]), ", ".join(item["locales"]), ", ".join(item["required"])
        )
    console.print(table)


@templates.command("render")
@click.argument("name")
@click.option("--data", help="JSON object of template data (default: the template's example data).")
@click.option(
    "--html", "html_out", type=click.Path(dir_okay=False, path_type=Path), help="Also write the HTML part to this file."
)
@click.option("--locale", help="Render as a message with this locale would be (de-AT: de-AT, de, the default).")
@click.option("--json", "as_json", is_flag=True)
def templates_render(name: str, data: str | None, html_out: Path | None, locale: str | None, as_json: bool) -> None:
    """Preview NAME (or NAME@VERSION) rendered with --data or its example data; or a template folder (a path,
    unpublished), exactly as publishing would make it."""
    import re

    from postline.contract import LOCALE
    from postline.templates import CompiledTemplate, TemplateProblem

    if locale is not None and not re.match(LOCALE, locale):
        fail(f"--locale {locale!r} is not a locale (a BCP 47 tag such as de or de-AT)", 2)
    values = parse_json_option(data, "--data") if data is not None else None
    if Path(name).is_dir():
        from .publish import load_template_dir, prepare, render_problem

        try:
            source = load_template_dir(Path(name))
            compiled = CompiledTemplate.compile(prepare(source, "preview"))
        except TemplateProblem as problem:
            fail(str(problem))
        if values is None:
            values = source.example_data
        if compiled.missing(values):
            fail(
                f"{'--data' if data is not None else 'example.json'} lacks what {name} needs: "
                f"{', '.join(compiled.missing(values))}"
            )
        try:
            rendered = compiled.render(values, {"unsubscribe_url": "https://example.com/u/preview-token"}, locale)
        except TemplateProblem as problem:
            fail(
                render_problem(source, problem, "--data" if data is not None else "example.json")
                if problem.part
                else str(problem)
            )
        label = f"{compiled.name} (folder {name}, unpublished)"
    else:
        from postline.models import Template

        target()
        compiled = _published_template(name)
        if values is None:
            values = Template.get(compiled.name, compiled.version).example_data or {}
        try:
            rendered = compiled.render(values, {"unsubscribe_url": "https://example.com/u/preview-token"}, locale)
        except TemplateProblem as problem:
            fail(str(problem))
        label = compiled.ref
    if html_out:
        html_out.write_text(rendered.html)
    if as_json:
        emit_json(
            {
                "name": compiled.name,
                "version": compiled.version if not Path(name).is_dir() else None,
                "stream": compiled.stream,
                "locale": rendered.locale,
                "subject": rendered.subject,
                "text": rendered.text,
                "html": rendered.html,
            }
        )
        return
    about = compiled.stream
    if locale or len(compiled.locales) > 1:  # which variant, once there is a choice
        about += f", locale {rendered.locale}" + (
            "" if rendered.locale == compiled.locale else f" (default {compiled.locale})"
        )
    console.print(f"[bold]{escape(label)}[/bold] ({escape(about)})", highlight=False)
    console.print(f"Subject: {rendered.subject}\n", highlight=False, markup=False)
    console.print(rendered.text, highlight=False, markup=False)


@templates.command("preview")
@click.argument("what", required=False, default="templates")
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("template-preview.html"),
    show_default=True,
    help="The HTML file to write.",
)
def templates_preview(what: str, out: Path) -> None:
    """Write one HTML page showing each template in DIR (default: templates/, unpublished), or the published
    template NAME, rendered with its example data in every locale, the HTML part beside the text part.
    Exit 1 when a template or locale cannot be rendered (the page shows why)."""
    from datetime import datetime, timezone

    from postline.templates import CompiledTemplate, TemplateProblem

    from .template_preview import PreviewedTemplate, preview_html, preview_template

    shown: list[PreviewedTemplate] = []
    if Path(what).is_dir():
        from .publish import load_template_dir, prepare

        source_label = f"the folder {what}"
        for folder in template_folders(Path(what)):
            origin = f"folder {folder}, unpublished"
            try:
                source = load_template_dir(folder)
                compiled = CompiledTemplate.compile(prepare(source, "preview"))
            except TemplateProblem as problem:
                stream = (
                    json.loads((folder / "template.json").read_text()).get("stream", "?")
                    if (folder / "template.json").is_file()
                    else "?"
                )
                shown.append(PreviewedTemplate(folder.name, str(stream), origin, problem=str(problem)))
                continue
            shown.append(preview_template(compiled, source.example_data, origin))
    else:
        from postline.models import Template

        compiled = _published_template(what)
        source_label = f"the published template {compiled.ref}"
        example = Template.get(compiled.name, compiled.version).example_data or {}
        shown.append(preview_template(compiled, example, f"version {compiled.version}"))
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out.write_text(preview_html(shown, source=source_label, generated=generated), encoding="utf-8")
    problems = [t.problem for t in shown if t.problem] + [v.problem for t in shown for v in t.variants if v.problem]
    for text in problems:
        errors.print(f"[red]cannot preview:[/red] {escape(text)}", highlight=False, soft_wrap=True)
    variants = sum(len(t.variants) for t in shown)
    console.print(f"wrote {out}: {len(shown)} template(s), {variants} locale variant(s)", highlight=False)
    sys.exit(1 if problems else 0)


def _published_template(name: str):
    """The compiled published template NAME or NAME@VERSION, or a one-line failure."""
    from postline.clients import client
    from postline.contract import TEMPLATE_REF
    from postline.models import Template
    from postline.templates import TemplateProblem, TemplateStore

    target()
    match = TEMPLATE_REF.match(name)
    if not match:
        fail(f"{name!r} is neither a template folder nor a template name like 'welcome' or 'welcome@3'", 2)
    ref = (match["name"], int(match["version"]) if match["version"] else None)
    compiled = TemplateStore(Template.Meta.table_name, client("dynamodb"), 0).resolve([ref])[ref]
    if isinstance(compiled, TemplateProblem):
        fail(str(compiled))
    return compiled


# ---------------------------------------------------------------- sending and status
@cli.command()
@click.option("--template", "template_name", required=True, help="Template name, or NAME@VERSION to pin one.")
@click.option("--to", "recipient", required=True)
@click.option("--data", help="JSON object of template data.")
@click.option("--id", "message_key", help="Idempotency key (default: a new one).")
@click.option("--campaign")
@click.option("--tag", "tags", multiple=True, help="NAME=VALUE, repeatable (up to 10).")
@click.option("--reply-to", help="Reply-To address.")
@click.option("--locale", help="BCP 47 locale, e.g. en-GB.")
@click.option(
    "--queue",
    "stream",
    type=click.Choice(STREAMS),
    help="Inbound queue: the template's stream (the default), or a refusal.",
)
@click.option("--json", "as_json", is_flag=True)
def send(template_name, recipient, data, message_key, campaign, tags, reply_to, locale, stream, as_json) -> None:
    """Enqueue one message the way an application does, once the template and the data are known to render."""
    from postline.client import PostlineClient
    from postline.clients import client
    from postline.models import Template
    from postline.templates import TemplateStore

    from .sending import NotSendable, check_sendable, parse_tags

    where = target()
    try:
        tag_map = parse_tags(tags)
    except NotSendable as error:
        fail(str(error), 2)
    document = {
        "template": template_name,
        "to": recipient,
        "data": parse_json_option(data, "--data"),
        "id": message_key,
        "campaign": campaign,
        "tags": tag_map or None,
        "reply_to": reply_to,
        "locale": locale,
    }
    try:
        message, template = check_sendable(
            {k: v for k, v in document.items() if v is not None},
            TemplateStore(Template.Meta.table_name, client("dynamodb"), 0),
        )
    except (Rejected, NotSendable) as refusal:
        fail(f"not sent: {refusal}", 2)
    if stream and stream != template.stream:  # as the client refuses it: the queue sets the render's priority
        fail(
            f"not sent: template {template.name!r} is in the {template.stream} stream, not {stream}: it goes on "
            f"the {template.stream} queue (leave out --queue)",
            2,
        )
    stream = template.stream
    mailer = PostlineClient({stream: where.inbound_queue_url(stream)}, client("sqs"))
    message_id = mailer.send(
        message.template,
        message.to,
        message.data,
        stream=stream,
        id=message.id,
        campaign=message.campaign,
        tags=message.tags,
        reply_to=message.reply_to,
        locale=message.locale,
    )
    if as_json:
        emit_json({"message_id": message_id, "queue": stream})
    else:
        console.print(f"queued {message_id} on the {stream} queue", highlight=False)


@cli.command()
@click.argument("message")
@click.option(
    "--wait",
    "wait_seconds",
    type=click.FloatRange(min=0),
    default=0,
    metavar="SECONDS",
    help="Wait up to SECONDS for it to settle (delivered, bounced, suppressed, rejected, ...).",
)
@click.option("--json", "as_json", is_flag=True)
def status(message: str, wait_seconds: float, as_json: bool) -> None:
    """What happened to MESSAGE (postline's message id, or the id the application gave it). Exit 3 when postline
    has no record of it."""
    from .errors import EXIT_NO_RECORD
    from .views import settled_message_view

    target()
    view = settled_message_view(message, wait_seconds)
    if as_json:
        emit_json(view)
    elif not view["found"]:
        console.print(f"{view['message_id']}: {view['status']}: {view['reason']}", highlight=False)
    else:
        console.print(f"[bold]{view['message_id']}[/bold]: {view['status']}", highlight=False)
        for key in ("reason", "recipient", "template", "stream", "campaign", "ses_message_id", "duplicates_ignored"):
            if view.get(key):
                console.print(f"  {key}: {view[key]}", highlight=False, markup=False)
        for event in view["events"]:
            console.print(f"  {event['time']}  {event['type']}", highlight=False)
    sys.exit(0 if view["found"] else EXIT_NO_RECORD)


@cli.command()
@click.argument("message")
@click.option("--sent", "outcome", flag_value="sent", help="SES sent it (its logs, the recipient say so): end it.")
@click.option("--not-sent", "outcome", flag_value="not-sent", help="SES did not send it: send it again.")
@click.option("--note", required=True, help="How you know, for the record.")
@click.option("--json", "as_json", is_flag=True)
def resolve(message: str, outcome: str | None, note: str, as_json: bool) -> None:
    """Settle a parked MESSAGE (status unknown: nobody knows whether SES took it), as sent or to send again."""
    from postline.clients import client
    from postline.models import Message

    from .parked import NotParked, resolve_parked
    from .views import resolve_message_id

    if outcome is None:
        fail("say what happened: --sent or --not-sent", 2)
    where = target()
    message_id = resolve_message_id(message)
    try:
        stream = Message.get(message_id, consistent_read=True).stream
    except Message.DoesNotExist:
        fail(f"{message_id} has no record")
    try:
        status = resolve_parked(
            message_id, outcome == "sent", client("sqs"), where.send_queue_url(stream), where.send_dlq_url(stream), note
        )
    except NotParked as error:
        fail(str(error))
    if as_json:
        emit_json({"message_id": message_id, "status": status})
    else:
        console.print(
            f"{message_id}: {'settled as sent' if status == 'sent' else 'queued to be sent again'}", highlight=False
        )


# ---------------------------------------------------------------- suppressions
def _erasure_key(where: Target) -> bytes | None:
    """The deployment's erasure key, from its signing keys secret (None where the secret has none)."""
    from postline.clients import client
    from postline.tokens import load_keyring

    return load_keyring(where.signing_keys_secret, client("secretsmanager")).erasure_key


def _suppression_names(where: Target, address: str) -> list[str]:
    """ADDRESS and its erased form: an unsubscribe made after its message's record expired, and an erased
    address, are kept under the erased form."""
    return suppression_names(address, _erasure_key(where))


@cli.group()
def suppressions() -> None:
    """The suppression list."""


suppressions.add_command(inbox_command)  # the emails to the unsubscribe address that were not applied


@suppressions.command("add")
@click.argument("address")
@click.option("--scope", type=click.Choice(SCOPES), default="all", show_default=True)
@click.option("--reason", type=click.Choice(REASONS), default="manual", show_default=True)
@click.option("--note", help="Why, for the record.")
def suppressions_add(address: str, scope: str, reason: str, note: str | None) -> None:
    """Stop sending to ADDRESS (for one stream, or all)."""
    from . import suppressions as manage

    target()
    normalised = _address(address)
    manage.add(normalised, scope, reason, note)
    console.print(f"suppressed {normalised} (scope {scope}, reason {reason})", highlight=False)


@suppressions.command("remove")
@click.argument("address")
@click.option("--scope", type=click.Choice(SCOPES), default="all", show_default=True)
@click.option("--reason", "note", required=True, help="Why it is removed (kept in the address's history).")
def suppressions_remove(address: str, scope: str, note: str) -> None:
    """Allow sending to ADDRESS again (for one scope)."""
    from . import suppressions as manage

    normalised = _address(address)
    removed = manage.remove(_suppression_names(target(), normalised), scope, note)
    if not removed:
        fail(f"{normalised} has no {scope} suppression")
    for item in removed:
        console.print(
            f"removed the {scope} suppression ({item.reason}) of {normalised}"
            + (" (held under its keyed hash)" if item.email != normalised else ""),
            highlight=False,
        )


@suppressions.command("show")
@click.argument("address")
@click.option("--json", "as_json", is_flag=True)
def suppressions_show(address: str, as_json: bool) -> None:
    """ADDRESS's suppressions and their history (empty, not an error, when it is not suppressed)."""
    from . import suppressions as manage
    from .views import suppression_view

    normalised = _address(address)
    active, history, soft = manage.show(_suppression_names(target(), normalised))
    view: dict[str, Any] = {
        "email": normalised,
        "suppressions": [suppression_view(s) for s in active],
        "history": [
            {
                "time": iso(h.suppressed_at),
                "action": h.scope.rsplit("#", 1)[1],
                "scope": h.source,
                "reason": h.reason,
                "note": h.detail,
            }
            for h in history
        ],
        "soft_bounces_since": iso(soft.suppressed_at) if soft else None,
    }
    if as_json:
        emit_json(view)
        return
    if not active:
        console.print(f"{normalised} is not suppressed", highlight=False)
    for item in view["suppressions"]:
        console.print(
            f"{normalised}: scope {item['scope']}, {item['reason']} since {item['suppressed_at']} ({item['source']})",
            highlight=False,
            markup=False,
        )
    if view["soft_bounces_since"]:
        console.print(f"  soft-bouncing since {view['soft_bounces_since']}", highlight=False)
    for entry in view["history"]:
        console.print(
            f"  {entry['time']}  {entry['action']} {entry['scope']} {entry['reason']}"
            + (f": {entry['note']}" if entry["note"] else ""),
            highlight=False,
            markup=False,
        )


@suppressions.command("list")
@click.option("--reason", type=click.Choice(REASONS))
@click.option("--scope", type=click.Choice(SCOPES))
@click.option("--source", help="Only entries whose source starts with this (ses:, cli, import:...).")
@click.option("--limit", type=int, default=100, show_default=True, help="0 for all.")
@click.option("--json", "as_json", is_flag=True)
def suppressions_list(reason, scope, source, limit, as_json) -> None:
    """Suppressions in force, filtered."""
    from itertools import islice

    from . import suppressions as manage
    from .views import suppression_view

    target()
    items = manage.iterate(reason=reason, scope=scope, source=source)
    rows = [suppression_view(i) for i in (islice(items, limit) if limit else items)]
    if as_json:
        emit_json(rows)
        return
    # The address whole, never cut (it is what `suppressions remove` takes); the other columns fold if narrow.
    table = Table(
        Column("email", no_wrap=True, min_width=max((len(row["email"]) for row in rows), default=5)),
        *(Column(name, overflow="fold") for name in ("scope", "reason", "since", "source")),
    )
    for row in rows:
        table.add_row(row["email"], row["scope"], row["reason"], row["suppressed_at"], row["source"] or "")
    console.print(table)


@suppressions.command("import")
@click.argument("csv_file", type=click.File("r", encoding="utf-8-sig"))
@click.option(
    "--scope", type=click.Choice(SCOPES), default="all", show_default=True, help="For rows without a scope column."
)
@click.option(
    "--reason",
    type=click.Choice(REASONS),
    default="manual",
    show_default=True,
    help="For rows without a reason column.",
)
@click.option("--json", "as_json", is_flag=True)
def suppressions_import(csv_file, scope, reason, as_json) -> None:
    """Suppress every address in CSV_FILE (header with email[,scope,reason,detail], or one address a line)."""
    from rich.progress import Progress

    from . import suppressions as manage

    target()
    with Progress(console=errors, transient=True, disable=as_json or not errors.is_terminal) as bar:
        task = bar.add_task("importing", total=None)
        result = manage.import_csv(
            csv_file,
            scope,
            reason,
            source=f"import:{Path(csv_file.name).name}",
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    if as_json:
        emit_json(
            {"added": result.added, "invalid": [{"line": n, "value": v, "reason": r} for n, v, r in result.invalid]}
        )
        sys.exit(1 if result.invalid else 0)
    console.print(f"suppressed {result.added} addresses", highlight=False)
    for line, value, why in result.invalid[:20]:
        errors.print(f"line {line}: {value!r}: {why}", highlight=False, markup=False)
    if len(result.invalid) > 20:
        errors.print(f"... and {len(result.invalid) - 20} more invalid rows", highlight=False)
    if result.invalid:
        rows = "1 invalid row" if len(result.invalid) == 1 else f"{len(result.invalid)} invalid rows"
        fail(f"skipped {rows} (listed above): correct them and import them again")


@suppressions.command("export")
@click.argument("csv_file", type=click.File("w", encoding="utf-8"), default="-")
@click.option("--reason", type=click.Choice(REASONS))
@click.option("--scope", type=click.Choice(SCOPES))
def suppressions_export(csv_file, reason, scope) -> None:
    """Write the suppressions in force as CSV (to CSV_FILE, or standard output)."""
    from . import suppressions as manage

    target()
    count = manage.export_csv(csv_file, manage.iterate(reason=reason, scope=scope))
    if csv_file.name != "<stdout>":
        console.print(f"exported {count} suppressions to {csv_file.name}", highlight=False)


def _address(address: str) -> str:
    from postline.addresses import InvalidAddress, normalise_address

    try:
        return normalise_address(address)
    except InvalidAddress as error:
        fail(f"{address!r}: {error}", 2)


# ---------------------------------------------------------------- erasure
@cli.command()
@click.argument("address")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--json", "as_json", is_flag=True)
def erase(address: str, yes: bool, as_json: bool) -> None:
    """Forget ADDRESS (GDPR): delete its messages and events, keep it suppressed only as a keyed hash."""
    from postline.clients import client

    from .erase import erase as erase_address

    where = target()
    normalised = _address(address)
    if not yes and not click.confirm(f"Erase every record of {normalised}? This cannot be undone", err=True):
        if as_json:
            emit_json({"erased": False})
        else:
            console.print("nothing erased")
        return
    erasure_key = _erasure_key(where)
    if erasure_key is None:
        fail("the signing keys secret has no erasure_key (docs/deploy.md, 'Signing keys')")
    report = erase_address(
        normalised, erasure_key, client("s3"), where.claim_check_bucket, client("scheduler"), where.schedule_group
    )
    view = {
        "erased": True,
        "messages": report.messages,
        "events": report.events,
        "retries_cancelled": report.retries,
        "still_suppressed": report.kept_suppressed,
    }
    if as_json:
        emit_json(view)
        return
    console.print(
        f"erased {normalised}: {report.messages} messages, {report.events} events, "
        f"{report.retries} scheduled retries"
        + (
            f"; still suppressed ({', '.join(report.kept_suppressed)}) as a keyed hash"
            if report.kept_suppressed
            else ""
        ),
        highlight=False,
    )


# ---------------------------------------------------------------- sending rate and warm-up
cli.add_command(rate_commands)
cli.add_command(warmup_commands)


# ---------------------------------------------------------------- campaigns
cli.add_command(campaign_commands)


# ---------------------------------------------------------------- stats and reports
cli.add_command(stats_command)
cli.add_command(report_command)


# ---------------------------------------------------------------- the local pages: the outbox viewer and the dashboard
cli.add_command(outbox_commands)
cli.add_command(dashboard_command)


# ---------------------------------------------------------------- the application events
cli.add_command(events_command)


# ---------------------------------------------------------------- the deliverability doctor
cli.add_command(doctor_command)


# ---------------------------------------------------------------- demo
@cli.command()
def demo() -> None:
    """Start the local stack, send a realistic mix of messages, print what happened to each, stop."""
    from .demo import run_demo
    from .local.stack import LocalStackError

    try:
        sys.exit(run_demo(console if console.is_terminal else Console(width=130, soft_wrap=True)))
    except LocalStackError as error:
        fail(str(error))


if __name__ == "__main__":
    cli()
