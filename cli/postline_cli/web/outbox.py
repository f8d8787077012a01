"""The outbox viewer: the emails the local stack sent (``outbox/*.eml``), listed, and each shown as its recipient
would see it, with its headers and text part.

The HTML part is shown in a sandboxed iframe (no scripts, no same-origin access) loaded from its own URL, whose
response carries its own Content-Security-Policy: no script, no form, and images from ``data:`` and ``cid:`` only.
Remote images are therefore not fetched unless the person asks (``?images=1``): the open pixel is a remote image,
and fetching it would record an open. The ``<img>`` tags' remote sources are also renamed before the browser sees
them, so the policy has nothing to refuse (and the console stays quiet) for an ordinary email. Links open in a new
tab, and only when clicked (a tracked link records a click then, as it would for the recipient).

The file's name is postline's message id. The stream, template and campaign are not in the email's headers; they
are read from the local SES's send log (its message tags), when that log is there.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from pathlib import Path

from .server import Request, Response, Route, escape, page, redirect, url_part

LIST_LIMIT = 500  # rows on the list page; the filter finds the rest
HEAD_BYTES = 64 * 1024  # the list reads only the headers, which sit well inside this
_EMAIL_ID = re.compile(r"^[A-Za-z0-9_@-][A-Za-z0-9_.@-]*$")  # what the local SES names its files (never "..")
_HEADER_END = re.compile(rb"\r?\n\r?\n")

# The email's own document: styles inline (as every mail client allows them), nothing that runs or sends.
_EMAIL_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; font-src data:; img-src {images}; "
    "form-action 'none'; frame-ancestors 'self'; sandbox allow-popups allow-popups-to-escape-sandbox"
)
LOCAL_IMAGES = "data: cid:"
REMOTE_IMAGES = "data: cid: http: https:"
IFRAME_SANDBOX = "allow-popups allow-popups-to-escape-sandbox"  # links may open a tab; no script, no same origin
TAGS = {"stream": "postline_stream", "template": "postline_template", "campaign": "postline_campaign"}


@dataclass(frozen=True)
class OutboxEmail:
    email_id: str  # the file's name without ``.eml``: postline's message id
    sent_at: datetime | None  # the Date header SES set
    sender: str
    to: str
    subject: str
    size: int
    stream: str = ""
    template: str = ""
    campaign: str = ""

    def matches(self, words: str) -> bool:
        haystack = " ".join(
            (self.email_id, self.sender, self.to, self.subject, self.stream, self.template, self.campaign)
        ).lower()
        return all(word in haystack for word in words.lower().split())


def _date(message) -> datetime | None:
    try:
        value = message["Date"]
        return value.datetime.astimezone(timezone.utc) if value and value.datetime else None
    except (TypeError, ValueError):
        return None


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else ""


def sent_tags(send_log: Path | None) -> dict[str, dict[str, str]]:
    """Each message id's tags from the local SES's send log (the last send of each); empty without a log."""
    tags: dict[str, dict[str, str]] = {}
    if send_log is None or not send_log.exists():
        return tags
    for line in send_log.read_text(encoding="utf-8").splitlines():
        try:
            entry_tags = json.loads(line).get("tags") or {}
        except ValueError:
            continue  # a line being written as we read
        if entry_tags.get("postline_message_id"):
            tags[entry_tags["postline_message_id"]] = entry_tags
    return tags


def list_outbox(outbox: Path, send_log: Path | None = None) -> list[OutboxEmail]:
    """Every email in ``outbox``, newest first."""
    tags = sent_tags(send_log)
    found = []
    for path in outbox.glob("*.eml"):
        try:
            with path.open("rb") as handle:
                head = handle.read(HEAD_BYTES)
            stat = path.stat()
        except OSError:
            continue  # emptied by a `local up` while we read
        end = _HEADER_END.search(head)
        headers = BytesHeaderParser(policy=email.policy.default).parsebytes(head[: end.start()] if end else head)
        own = tags.get(path.stem, {})
        found.append(
            (
                stat.st_mtime_ns,
                OutboxEmail(
                    path.stem,
                    _date(headers),
                    str(headers["From"] or ""),
                    str(headers["To"] or ""),
                    str(headers["Subject"] or ""),
                    stat.st_size,
                    **{field: own.get(tag, "") for field, tag in TAGS.items()},
                ),
            )
        )
    found.sort(key=lambda pair: (pair[1].sent_at or datetime.min.replace(tzinfo=timezone.utc), pair[0]), reverse=True)
    return [item for _, item in found]


def read_email(outbox: Path, email_id: str) -> EmailMessage | None:
    """The parsed email named ``email_id``, or None when there is none (or the name is not one of ours)."""
    if not _EMAIL_ID.match(email_id):
        return None
    path = outbox / f"{email_id}.eml"
    try:
        return email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    except OSError:
        return None


def _part(message: EmailMessage, kind: str) -> str | None:
    body = message.get_body(preferencelist=(kind,))
    return body.get_content() if body is not None else None


def _size(size: int) -> str:
    return f"{size} B" if size < 1024 else f"{size / 1024:.1f} KB"


_IMG_TAG = re.compile(r"<img\b[^>]*>", re.IGNORECASE)
_REMOTE_SOURCE = re.compile(r"""(?<![\w-])(src|srcset)(\s*=\s*["']?\s*(?:https?:)?//)""", re.IGNORECASE)


def _without_remote_images(html: str) -> str:
    """``html`` with its ``<img>`` tags' remote sources renamed (``data-blocked-src``), so the browser does not
    even try them. What this misses (CSS backgrounds, ``background=``) the email's policy still blocks."""
    return _IMG_TAG.sub(lambda tag: _REMOTE_SOURCE.sub(r"data-blocked-\1\2", tag.group()), html)


def _links_open_in_a_new_tab(html: str) -> str:
    """``html`` with a ``<base target="_blank">``, as mail clients open links: the iframe itself never navigates."""
    base = '<base target="_blank">'
    head = re.search(r"<head\b[^>]*>", html, re.IGNORECASE)
    return html[: head.end()] + base + html[head.end() :] if head else base + html


# ---------------------------------------------------------------- pages
def _list_page(request: Request, outbox: Path, send_log: Path | None) -> Response:
    words = request.query.get("q", "").strip()
    emails = list_outbox(outbox, send_log)
    shown = [item for item in emails if item.matches(words)] if words else emails
    rows = "".join(
        f'<tr><td class="nowrap">{escape(_when(item.sent_at))}</td><td>{escape(item.to)}</td>'
        f'<td><a href="/outbox/{url_part(item.email_id)}">{escape(item.subject or "(no subject)")}</a></td>'
        f"<td>{escape(item.stream)}</td><td>{escape(item.template)}</td><td>{escape(item.campaign)}</td>"
        f'<td class="number">{escape(_size(item.size))}</td></tr>'
        for item in shown[:LIST_LIMIT]
    )
    if not emails:
        summary = f"The outbox is empty. Emails the local stack sends are written to {escape(outbox)} and appear here."
    elif words:
        summary = f"{len(shown)} of {len(emails)} emails match “{escape(words)}”."
    else:
        summary = f"{len(emails)} emails, newest first."
    if len(shown) > LIST_LIMIT:
        summary += f" Showing the newest {LIST_LIMIT}: the filter finds the others."
    clear = ' <a href="/outbox">clear</a>' if words else ""
    table = (
        "<table><thead><tr><th>sent</th><th>to</th><th>subject</th><th>stream</th><th>template</th>"
        f'<th>campaign</th><th class="number">size</th></tr></thead><tbody>{rows}</tbody></table>'
        if shown
        else ""
    )
    body = (
        f'<header><h1>Outbox</h1><p class="muted">{summary}</p>'
        f'<form method="get" action="/outbox" role="search"><label for="q">Filter</label> '
        f'<input id="q" name="q" type="search" value="{escape(words)}" '
        f'placeholder="address, subject, template, stream, campaign"> <button>Filter</button>'
        f"{clear}</form></header><main>{table}</main>"
    )
    return page("Outbox", body)


def _email_page(request: Request, outbox: Path) -> Response:
    email_id = request.params["email_id"]
    message = read_email(outbox, email_id)
    if message is None:
        return _not_found(email_id)
    images = request.query.get("images") == "1"
    link = f"/outbox/{url_part(email_id)}"
    subject = str(message["Subject"] or "(no subject)")
    html, text = _part(message, "html"), _part(message, "plain")
    if images:
        toggle = (
            f'<p class="notice">Remote images are loaded: this fetched the open pixel and so recorded an open. '
            f'<a href="{link}">Block remote images</a></p>'
        )
    else:
        toggle = (
            f'<p class="notice">Remote images are blocked, so the open pixel was not fetched and no open was '
            f'recorded. <a href="{link}?images=1">Load remote images</a> (records an open)</p>'
        )
    html_section = (
        f'<section><h2>HTML part</h2>{toggle}<p class="muted">Links open in a new tab when you click '
        f"them; a tracked link records a click.</p>"
        f'<iframe class="email" title="The email&#39;s HTML part" sandbox="{IFRAME_SANDBOX}" '
        f'referrerpolicy="no-referrer" src="{link}/html{"?images=1" if images else ""}"></iframe>'
        f"</section>"
        if html is not None
        else "<section><h2>HTML part</h2><p>none</p></section>"
    )
    text_section = (
        f'<section><h2>Text part</h2><pre class="text-part">{escape(text)}</pre></section>'
        if text is not None
        else "<section><h2>Text part</h2><p>none</p></section>"
    )
    header_rows = "".join(
        f"<tr><th>{escape(name)}</th><td>{escape(value)}</td></tr>" for name, value in message.items()
    )
    body = (
        f'<header><p><a href="/outbox">← Outbox</a></p><h1>{escape(subject)}</h1>'
        f'<dl class="summary"><dt>From</dt><dd>{escape(message["From"])}</dd>'
        f"<dt>To</dt><dd>{escape(message['To'])}</dd><dt>Date</dt><dd>{escape(message['Date'])}</dd></dl>"
        f'<p><a href="{link}/raw" download="{escape(email_id)}.eml">Download the .eml</a></p></header>'
        f"<main>{html_section}{text_section}"
        f'<section><h2>Headers</h2><table class="headers"><tbody>{header_rows}</tbody></table></section></main>'
    )
    return page(subject, body)


def _email_html(request: Request, outbox: Path) -> Response:
    message = read_email(outbox, request.params["email_id"])
    html = _part(message, "html") if message is not None else None
    if html is None:
        return _not_found(request.params["email_id"])
    if request.query.get("images") == "1":
        images = REMOTE_IMAGES
    else:
        html, images = _without_remote_images(html), LOCAL_IMAGES
    return Response(
        _links_open_in_a_new_tab(html),
        headers={"Content-Security-Policy": _EMAIL_POLICY.format(images=images), "X-Frame-Options": "SAMEORIGIN"},
    )


def _email_raw(request: Request, outbox: Path) -> Response:
    email_id = request.params["email_id"]
    if not _EMAIL_ID.match(email_id) or not (outbox / f"{email_id}.eml").is_file():
        return _not_found(email_id)
    return Response(
        (outbox / f"{email_id}.eml").read_bytes(),
        content_type="message/rfc822",
        headers={"Content-Disposition": f'attachment; filename="{email_id}.eml"'},
    )


def _not_found(email_id: str) -> Response:
    return page(
        "Not in the outbox",
        f'<header><p><a href="/outbox">← Outbox</a></p><h1>Not in the outbox</h1>'
        f"<p>No email {escape(email_id)}: a new <code>postline local up</code> empties the outbox.</p>"
        f"</header>",
        status=404,
    )


def outbox_routes(outbox: Path, send_log: Path | None = None) -> list[Route]:
    """The viewer's pages: ``/outbox`` (the list, ``?q=`` filters), ``/outbox/ID`` (one email, ``?images=1``
    loads remote images), ``/outbox/ID/html`` (its HTML part, for the page's iframe) and ``/outbox/ID/raw``."""
    return [
        Route("GET", "/outbox", lambda request: _list_page(request, outbox, send_log)),
        Route("GET", "/outbox/{email_id}", lambda request: _email_page(request, outbox)),
        Route("GET", "/outbox/{email_id}/html", lambda request: _email_html(request, outbox)),
        Route("GET", "/outbox/{email_id}/raw", lambda request: _email_raw(request, outbox)),
    ]


def viewer_routes(outbox: Path, send_log: Path | None = None) -> list[Route]:
    """The viewer alone (``postline outbox serve``): its pages, with ``/`` leading to the list."""
    return [Route("GET", "/", lambda request: redirect("/outbox")), *outbox_routes(outbox, send_log)]
