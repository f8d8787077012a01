"""Emails as the local SES writes them to the outbox (``<message id>.eml``, with SES's Message-ID and Date), for the
outbox viewer's tests."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from postline.mime import build_mime
from postline_cli.local.aws_endpoint import as_ses_sends


def newsletter_html(pixel_url: str, link_url: str) -> str:
    """An email as postline renders one: inline styles, a tracked link, and the open pixel last."""
    return ('<html><head><meta charset="utf-8"></head><body style="margin:0;background:#f3f4f6">'
            '<table role="presentation" width="100%" style="background:#f3f4f6"><tr><td align="center">'
            '<table width="560" style="background:#ffffff;border-radius:8px;padding:24px;font-family:sans-serif">'
            '<tr><td><h1 style="color:#1f2937;font-size:22px">The December issue</h1>'
            '<p style="color:#374151">Hello Ada, three things we shipped this month.</p>'
            f'<p><a href="{link_url}" style="background:#2563eb;color:#fff;padding:8px 14px;border-radius:4px;'
            'text-decoration:none">Read the issue</a></p></td></tr></table></td></tr></table>'
            f'<img src="{pixel_url}" width="1" height="1" alt="" style="display:block"></body></html>')


def write_email(outbox: Path, email_id: str, *, to: str = "ada@example.com", subject: str = "The December issue",
                html: str | None = None, text: str = "Hello Ada, three things we shipped this month.",
                sent_at: datetime = datetime(2026, 12, 4, 9, 30, tzinfo=timezone.utc)) -> Path:
    """``outbox/<email_id>.eml``: postline's MIME as the local SES writes it (SES's Message-ID and Date)."""
    mime = build_mime(sender="Lumen <hello@mail.example.com>", recipient=to, subject=subject, text=text,
                      html=html if html is not None else newsletter_html("https://t.example.com/o/token",
                                                                          "https://t.example.com/c/token"),
                      list_headers={"X-Postline-Message-Id": [email_id]})
    outbox.mkdir(parents=True, exist_ok=True)
    path = outbox / f"{email_id}.eml"
    path.write_bytes(as_ses_sends(mime, f"0100-{email_id}", "us-east-1", sent_at.timestamp()))
    return path
