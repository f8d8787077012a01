"""CPU per rendered email on the render path, against the floor, in one process.

Measured: what the render stage does for one email once the container is warm, built from the library's own
pieces (``contract.parse_send_message``, ``TemplateStore.resolve`` from the warm cache, ``CompiledTemplate.render``,
``tracking.add_tracking``, ``mime.build_mime``, a ``tokens.KeyRing``), plus, as a second row, the whole
``render.render_batch`` over batches of 10 with in-memory AWS fakes that answer at once (so its validation,
records, queue entries and logging count too).

Floor: the same compiled Jinja2 templates rendered bare (subject, HTML, text) plus the same MIME message built
with the standard library's ``email`` package, nothing else. postline's ``build_mime`` assembles the parts
itself (C quoted-printable), so the measured path now costs less than this floor.

Both are timed with ``time.process_time`` over many iterations, interleaved in rounds so that a noisy neighbour
slows both alike; the figure is the median round.

``measure_corpus`` does the same for each template of the corpus in tests/fixtures/templates (issue 24: templates
as people write them, Jinja between table rows, MSO comments, media queries), and times publishing the whole
corpus through ``templates push --dry-run``'s path against compiling its files with bare Jinja2.
"""
from __future__ import annotations

import base64
import contextlib
import io
import json
import statistics
import time
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "templates"
BIG = Path(__file__).resolve().parent / "templates" / "big-newsletter"
CORPUS = ROOT / "tests" / "fixtures" / "templates"  # issue 24's corpus: templates as people write them
BASE_URL = "https://t.example.com"
SENDER = "Postline Demo <hello@mail.example.com>"
KEYRING_SECRET = json.dumps({"active": "k1", "keys": {"k1": base64.b64encode(b"k" * 32).decode()},
                             "erasure_key": base64.b64encode(b"e" * 32).decode()})
_FLOOR_POLICY = SMTP.clone(cte_type="7bit")


def template_dirs() -> list[Path]:
    return [d for d in sorted(SAMPLES.iterdir()) if (d / "template.json").exists()] + [BIG]


class _Stored:
    """A DynamoDB client stand-in holding published templates (the store reads them once, then caches)."""

    def __init__(self, items):
        self.items = {(i.name, int(i.version)): i for i in items}
        self.calls = 0

    def batch_get_item(self, RequestItems):  # noqa: N803 - boto3's argument name
        from postline.models import ACTIVE_POINTER_VERSION, Template

        self.calls += 1
        out = []
        for table, request in RequestItems.items():
            for key in request["Keys"]:
                name, version = key["name"]["S"], int(key["version"]["N"])
                if version == ACTIVE_POINTER_VERSION:
                    out.append(Template(name, 0, active_version=1).serialize())
                elif (name, version) in self.items:
                    out.append(self.items[(name, version)].serialize())
            return {"Responses": {table: out}}
        return {"Responses": {}}


class _Instant:
    """AWS clients for ``render_batch`` that answer at once: nothing stored, nothing suppressed."""

    def __init__(self, stored: _Stored):
        self.stored = stored

    def batch_get_item(self, RequestItems):  # noqa: N803
        if any("templates" in table for table in RequestItems):
            return self.stored.batch_get_item(RequestItems)
        return {"Responses": {table: [] for table in RequestItems}}

    def transact_write_items(self, TransactItems):  # noqa: N803
        return {}

    def batch_write_item(self, RequestItems):  # noqa: N803 - the kept requests of retried streams
        return {}

    def send_message_batch(self, QueueUrl, Entries):  # noqa: N803
        return {"Successful": [{"Id": e["Id"]} for e in Entries], "Failed": []}

    def put_object(self, **_):
        return {}


def _prepared(folder: Path):
    from postline_cli.publish import load_template_dir, prepare

    source = load_template_dir(folder)
    return prepare(source, "bench"), source.example_data


def _settings():
    from postline.settings import settings_from_environ
    from postline_cli.local import resources

    environment = resources.function_environment("http://127.0.0.1:4566", BASE_URL)
    return settings_from_environ(environment)


def measure(iterations: int | None = None, rounds: int = 7) -> dict[str, Any]:
    from postline.tokens import KeyRing

    settings = _settings()
    keys = KeyRing.from_secret(KEYRING_SECRET)
    return {row.pop("name"): row for row in (_measure_template(folder, settings, keys, iterations, rounds, stage=True)
                                             for folder in template_dirs())}


def measure_corpus(iterations: int | None = None, rounds: int = 7, publish_runs: int = 5) -> dict[str, Any]:
    """The template corpus of issue 24 (tests/fixtures/templates): the time to publish it all (what
    ``templates push --dry-run`` runs: load, lint, prepare) against compiling its files with bare Jinja2, and CPU
    per email of each template against the same floor as ``measure`` (without the ``render_batch`` row)."""
    from postline.tokens import KeyRing

    folders = corpus_dirs()
    settings = _settings()
    keys = KeyRing.from_secret(KEYRING_SECRET)
    rows = [_measure_template(folder, settings, keys, iterations, rounds, stage=False) for folder in folders]
    emails = {row.pop("name"): row for row in rows}
    publish_seconds = [_publish_all(folders) for _ in range(publish_runs)]
    compile_seconds = [_compile_all(folders) for _ in range(publish_runs)]
    postline_ms = sum(r["postline_ms"] for r in emails.values()) / len(emails)
    floor_ms = sum(r["floor_ms"] for r in emails.values()) / len(emails)
    return {"templates": len(folders), "emails": emails,
            "mean_postline_ms": postline_ms, "mean_floor_ms": floor_ms, "mean_ratio": postline_ms / floor_ms,
            "worst": max(emails, key=lambda name: emails[name]["ratio"]),
            "publish_runs": publish_runs, "publish_ms": statistics.median(publish_seconds) * 1000,
            "publish_floor_ms": statistics.median(compile_seconds) * 1000}


def corpus_dirs() -> list[Path]:
    return [d for d in sorted(CORPUS.iterdir()) if (d / "template.json").exists()]


def _publish_all(folders: list[Path]) -> float:
    """Wall seconds for ``templates push --dry-run``'s work on every folder, nothing stored."""
    from postline_cli.publish import load_template_dir, prepare
    from postline_cli.template_lint import lint

    started = time.perf_counter()
    for folder in folders:
        source = load_template_dir(folder)
        assert not [f for f in lint(source) if f.severity == "error"], folder
        prepare(source, "bench")
    return time.perf_counter() - started


def _compile_all(folders: list[Path]) -> float:
    """The publish floor: reading each template's files and compiling them with a bare Jinja2 environment."""
    import jinja2

    started = time.perf_counter()
    environment = jinja2.Environment(autoescape=True)
    for folder in folders:
        environment.from_string(json.loads((folder / "template.json").read_text())["subject"])
        for part in sorted(folder.glob("*.j2")):
            environment.from_string(part.read_text())
    return time.perf_counter() - started


def _measure_template(folder: Path, settings, keys, iterations: int | None, rounds: int, stage: bool) -> dict:
    from postline import locales
    from postline.batch import QueueRecord
    from postline.contract import parse_send_message
    from postline.mime import build_mime
    from postline.render import TRACKED_STREAMS, RenderContext, render_batch
    from postline.templates import TemplateStore
    from postline.tokens import UNSUBSCRIBE, RefreshingKeyRing
    from postline.tracking import add_tracking

    item, data = _prepared(folder)
    stored = _Stored([item])
    store = TemplateStore(settings.templates_table, stored, 3600, clock=lambda: 1.0)
    body = json.dumps({"template": item.name, "to": "Reader.Name@Example.COM", "data": data, "id": "bench-1",
                       "campaign": "bench", "tags": {"source": "bench"}})
    compiled = store.resolve([(item.name, None)])[(item.name, None)]
    stream = compiled.stream
    message_id = "mbenchbenchbenchbenchbenchbe"

    def postline_one() -> bytes:
        message = parse_send_message(body, settings.max_message_bytes)
        ref = (message.template_name, message.template_version)
        template = store.resolve([ref])[ref]
        provided, list_headers = {}, {}
        if template.stream == "marketing":
            token = keys.sign(UNSUBSCRIBE, message_id)
            url = f"{BASE_URL}/u/{token}"
            provided["unsubscribe_url"] = url
            list_headers = {"List-Unsubscribe": [f"<{url}>", f"<mailto:unsubscribe@mail.example.com?subject="
                                                             f"unsubscribe%20{token}>"],
                            "List-Unsubscribe-Post": ["List-Unsubscribe=One-Click"]}
        rendered = template.render(message.data, provided)
        html = rendered.html
        if template.stream in TRACKED_STREAMS:
            html = add_tracking(html, message_id, keys, BASE_URL, frozenset(provided.values()))
        return build_mime(sender=template.from_address or SENDER, recipient=message.to, subject=rendered.subject,
                          text=rendered.text, html=html, reply_to=message.reply_to, list_headers=list_headers)

    chosen, formatting = locales.choose(None, compiled.locale, compiled._variants)
    variant = compiled._variants[chosen]  # the default's compiled Jinja2 templates
    context = {**data, "unsubscribe_url": f"{BASE_URL}/u/preview-token", locales.FORMAT_LOCALE_KEY: formatting}

    def floor_one() -> bytes:
        subject = variant.subject.render(context)
        html = variant.html.render(context)
        text = variant.text.render(context)
        message = EmailMessage(policy=_FLOOR_POLICY)
        message["From"] = SENDER
        message["To"] = "reader.name@example.com"
        message["Subject"] = subject
        message.set_content(text)
        message.add_alternative(html, subtype="html")
        return message.as_bytes()

    ctx = RenderContext(settings, dynamodb=_Instant(stored), sqs=_Instant(stored), s3=_Instant(stored),
                        secrets=None, clock=lambda: 1.0)
    ctx.__dict__["templates"] = TemplateStore(settings.templates_table, _Instant(stored), 3600, clock=lambda: 1.0)
    ctx.__dict__["keys"] = RefreshingKeyRing(lambda: keys)
    queue = f"postline-{stream}"
    batch = [QueueRecord(f"r{i}", json.dumps({**json.loads(body), "id": f"bench-{i}", "to": f"reader{i}@example.com"}),
                         queue, 1.0, 1, f"h{i}") for i in range(10)]

    def stage_ten() -> None:
        with contextlib.redirect_stdout(io.StringIO()):  # Powertools logs to stdout; the formatting counts
            result = render_batch(batch, ctx)
        assert all(o.result == "rendered" for o in result.outcomes.values()), result.outcomes

    postline_one(), floor_one()  # warm: caches, first-use imports
    if stage:
        stage_ten()
    n = iterations or _iterations_for(floor_one)
    postline_rounds, floor_rounds, stage_rounds = [], [], []
    for _ in range(rounds):
        floor_rounds.append(_cpu_per_call(floor_one, n))
        postline_rounds.append(_cpu_per_call(postline_one, n))
        if stage:
            stage_rounds.append(_cpu_per_call(stage_ten, max(1, n // 10)) / 10)
    floor = statistics.median(floor_rounds)
    figure = statistics.median(postline_rounds)
    row = {"name": item.name, "stream": stream, "iterations": n, "rounds": rounds,
           "mime_bytes": len(postline_one()), "html_source_bytes": len(item.html),
           "postline_ms": figure * 1000, "floor_ms": floor * 1000, "ratio": figure / floor}
    if stage:
        row["render_batch_ms"] = statistics.median(stage_rounds) * 1000
        row["render_batch_ratio"] = row["render_batch_ms"] / row["floor_ms"]
    return row


def _iterations_for(function, budget_seconds: float = 0.25) -> int:
    started = time.process_time()
    function()
    one = max(time.process_time() - started, 1e-5)
    return max(5, min(2000, int(budget_seconds / one)))


def _cpu_per_call(function, n: int) -> float:
    started = time.process_time()
    for _ in range(n):
        function()
    return (time.process_time() - started) / n


if __name__ == "__main__":
    for name, row in measure().items():
        print(f"{name:<20} {row['postline_ms']:7.3f} ms  floor {row['floor_ms']:7.3f} ms  x{row['ratio']:.2f}   "
              f"render_batch {row['render_batch_ms']:7.3f} ms x{row['render_batch_ratio']:.2f}  "
              f"({row['mime_bytes']} B MIME)")
