"""The SMTP transport on the local stack's relay: emails per second through postline.smtp.SmtpTransport against a
bare smtplib loop (one connection, AUTH once, then MAIL/RCPT/DATA per email) on the same relay, and connections
opened per 1,000 emails. The relay (cli/postline_cli/local/smtp_relay.py) runs in a process of its own and writes
each email to a scratch outbox, as it does in the stack, so both sides pay for the same relay. Figures only:
nothing passes or fails on time.

    python -m bench.smtp [--emails 2000] [--threads 10]

Three runs: the transport on one thread (its own cost per email beside the bare loop's), the transport on
``--threads`` threads as the send function sends a batch (send_concurrency, 10), and that again with every
connection left idle past the health check between batches of ten (a NOOP before each reuse).
"""
from __future__ import annotations

import argparse
import email.policy
import multiprocessing
import smtplib
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from pathlib import Path

from postline.smtp import PLAINTEXT, SmtpRelay, SmtpTransport
from postline.transports import Email
from postline_cli.local.smtp_relay import LocalSmtpRelay

from .support import free_port

CREDENTIALS = ("bench", "bench-password")
SENDER = "hello@mail.example.com"


class _Secret:
    """Secrets Manager's answer for the relay's credentials, without an endpoint."""

    def get_secret_value(self, SecretId: str) -> dict:  # noqa: N803 - boto3's name
        return {"SecretString": '{"username": "%s", "password": "%s"}' % CREDENTIALS}


def _mime(number: int) -> bytes:
    """An email the size of a rendered transactional one (about 8 KB: text and HTML)."""
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = SENDER, f"reader{number}@example.com", "Your receipt"
    message["X-Postline-Message-Id"] = f"bench{number:07d}"
    paragraph = "Thank you for your order. Your receipt and the details of your delivery follow.\n" * 12
    message.set_content(paragraph * 3)
    message.add_alternative(f"<html><body>{('<p>' + paragraph + '</p>') * 3}</body></html>", subtype="html")
    return message.as_bytes(policy=email.policy.SMTP)  # CRLF line ends, as smtplib sends bytes unchanged


def _emails(count: int) -> list[Email]:
    return [Email(message_id=f"bench{n:07d}", sender=SENDER, recipient=f"reader{n}@example.com", mime=_mime(n),
                  stream="critical", configuration_set="postline-critical", template="receipt") for n in range(count)]


def bare_loop(port: int, emails: list[Email]) -> float:
    """Seconds for the floor: one smtplib connection, AUTH once, then the emails one after another."""
    started = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as connection:
        connection.login(*CREDENTIALS)
        for item in emails:
            connection.sendmail(item.sender, [item.recipient], item.mime)
    return time.perf_counter() - started


def transport_run(port: int, emails: list[Email], threads: int, idle_between_batches: bool = False
                  ) -> tuple[float, int]:
    """Seconds and connections opened for the emails through one SmtpTransport, ``threads`` at a time."""
    now = [0.0]
    clock = (lambda: now[0]) if idle_between_batches else time.monotonic
    transport = SmtpTransport(SmtpRelay("127.0.0.1", port, PLAINTEXT, "bench-secret"), secrets=_Secret(),
                              clock=clock)
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for start in range(0, len(emails), threads):
            if idle_between_batches:
                now[0] += 2.0  # every connection idle past the health check: checked with NOOP before reuse
            answers = list(pool.map(transport.send, emails[start:start + threads]))
            refused = [answer for answer in answers if answer.kind != "sent"]
            if refused:
                raise RuntimeError(f"the relay refused an email: {refused[0].reason}")
    seconds = time.perf_counter() - started
    transport.close()
    return seconds, transport.connections_opened


def _serve_relay(port: int, outbox: str, ready, stop) -> None:
    """The relay in a process of its own, so it does not share the interpreter lock with the senders measured."""
    relay = LocalSmtpRelay("127.0.0.1", port, Path(outbox), CREDENTIALS)
    relay.start()
    ready.set()
    stop.wait()
    relay.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--emails", type=int, default=2000, help="emails in each run")
    parser.add_argument("--threads", type=int, default=10, help="sending threads (the send function's 10)")
    args = parser.parse_args()
    emails = _emails(args.emails)
    with tempfile.TemporaryDirectory() as outbox:
        port, ready, stop = free_port(), multiprocessing.Event(), multiprocessing.Event()
        relay = multiprocessing.Process(target=_serve_relay, args=(port, outbox, ready, stop))
        relay.start()
        try:
            if not ready.wait(30):
                raise RuntimeError("the relay did not start")
            bare_loop(port, emails[:50])  # warm both sides (imports, the relay's first connection)
            bare = bare_loop(port, emails)
            single, single_connections = transport_run(port, emails, 1)
            threaded, threaded_connections = transport_run(port, emails, args.threads)
            checked, checked_connections = transport_run(port, emails, args.threads, idle_between_batches=True)
        finally:
            stop.set()
            relay.join(10)
    per_thousand = 1000 / len(emails)
    rows = [
        ("bare smtplib loop, 1 connection", len(emails) / bare, 1.0, 1),
        ("SmtpTransport, 1 thread", len(emails) / single, bare / single, single_connections),
        (f"SmtpTransport, {args.threads} threads", len(emails) / threaded, bare / threaded, threaded_connections),
        (f"SmtpTransport, {args.threads} threads, NOOP before each reuse", len(emails) / checked, bare / checked,
         checked_connections),
    ]
    print(f"SMTP transport on the local relay, {len(emails)} emails of {len(emails[0].mime):,} bytes each")
    print(f"{'run':<58} {'emails/s':>9} {'vs bare':>8} {'connections per 1,000':>22}")
    for name, rate, ratio, connections in rows:
        print(f"{name:<58} {rate:>9.0f} {ratio:>8.2f} {connections * per_thousand:>22.1f}")


if __name__ == "__main__":
    main()
