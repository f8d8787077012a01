"""The local AWS endpoint: a moto server on loopback, plus what moto's SES leaves out.

moto's SESv2 accepts a send but ignores the configuration set and the message tags, keeps the email only in
memory, has no sending limits and no GetAccount. Here a send is refused, as SES refuses it, when a message tag
breaks SES's rule or the sender's identity is not verified, and every accepted send is also
- written as an RFC 5322 ``.eml`` file to the outbox, named by postline's message id (from the message tag), with
  the Message-ID and Date headers SES sets, and
- appended to a JSON-lines send log that the local stack turns into SES events (Send, Delivery, Bounce, ...).
The local SES also has an account's two sending limits (``SesSendingLimits``): a maximum sending rate (emails per
second, ``--ses-rate`` or ``POSTLINE_LOCAL_SES_RATE``, 14 by default as for a new production account) and a 24-hour
quota (``--ses-quota`` or ``POSTLINE_LOCAL_SES_QUOTA``, 50,000). A send over either is refused with SES's
``ThrottlingException`` and kept out of the outbox and the send log, but appended to ``ses-refusals.jsonl`` beside
the send log; GetAccount answers with both limits and the sends of the last 24 hours, which a restart reloads from
the send log.

Time here is the local stack's clock (``--clock-file``, ``postline local clock``): SQS's delays and visibility and
SES's windows follow it, so a day moved forward frees what waits for tomorrow on the queues, and SES's 24-hour
count with it.

Run as its own process (``python -m postline_cli.local.aws_endpoint``) so the endpoint's request handling does not
compete with the functions for the interpreter lock. moto is patched where it is unsafe across request threads
(DynamoDB) or where its cost grows with the data or with every request (SQS, DynamoDB's expressions, the server's
connections and dispatch, EventBridge's input paths, the list of every object moto ever made, SES's copy of every
email), each patch keeping moto's answers (tests/integration/test_local_endpoint.py runs the same scenarios on plain
and patched moto). Two patches correct moto where postline depends on AWS's answer: a PartiQL ``INSERT`` of a key
that exists is refused (``insert_as_dynamodb_does``), and a message is handed to one of two concurrent receives, not
both (``receive_each_message_once``).
"""

from __future__ import annotations

import argparse
import base64
import copy
import functools
import gc
import json
import math
import os
import re
import signal
import string
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import cast

from .clock import LocalClock
from .faults import DropConnection, FaultInjector

_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9_.@-]")
_SES_TAG = re.compile(r"[A-Za-z0-9_-]{1,256}")  # the SESv2 MessageTag rule, for names and values alike

SES_RATE_VARIABLE, SES_QUOTA_VARIABLE = "POSTLINE_LOCAL_SES_RATE", "POSTLINE_LOCAL_SES_QUOTA"
# A new production SES account's limits (docs.aws.amazon.com/ses/latest/dg/manage-sending-quotas.html).
DEFAULT_SES_RATE, DEFAULT_SES_QUOTA = 14.0, 50_000
REFUSAL_LOG = "ses-refusals.jsonl"
PAUSE_LOG = "endpoint-pauses.jsonl"
PAUSE_LOGGED_FROM_SECONDS = 0.05
RATE_EXCEEDED, QUOTA_EXCEEDED = "Maximum sending rate exceeded.", "Daily message quota exceeded."
_DAY = 86_400.0
_LOGGED_TIME = re.compile(r'"timestamp": ([-+.0-9eE]+)')


def parse_ses_rate(text: str) -> float:
    """A maximum sending rate: emails per second, a finite number greater than 0."""
    try:
        rate = float(text)
    except ValueError:
        rate = math.nan
    if not (math.isfinite(rate) and rate > 0):
        raise ValueError(f"must be a number of emails per second greater than 0, not {text!r}")
    return rate


def parse_ses_quota(text: str) -> int:
    """A 24-hour sending quota: a whole number of emails greater than 0."""
    try:
        quota = int(text)
    except ValueError:
        quota = 0
    if quota <= 0:
        raise ValueError(f"must be a whole number of emails greater than 0, not {text!r}")
    return quota


_SES_LIMITS = {
    SES_RATE_VARIABLE: (DEFAULT_SES_RATE, parse_ses_rate),
    SES_QUOTA_VARIABLE: (DEFAULT_SES_QUOTA, parse_ses_quota),
}


def ses_limit_from_environment(variable: str, environ=None) -> float | int:
    """The local SES's rate (``POSTLINE_LOCAL_SES_RATE``) or quota (``POSTLINE_LOCAL_SES_QUOTA``) from the
    environment, the default when unset or empty; a ValueError naming the variable for a value that is not one."""
    default, parse = _SES_LIMITS[variable]
    text = (os.environ if environ is None else environ).get(variable, "")
    try:
        return parse(text) if text.strip() else default
    except ValueError as error:
        raise ValueError(f"{variable} {error}") from None


def ses_limits_from_environment(environ=None) -> tuple[float, int]:
    # the rate's parser gives a float, the quota's an int
    return (
        cast(float, ses_limit_from_environment(SES_RATE_VARIABLE, environ)),
        cast(int, ses_limit_from_environment(SES_QUOTA_VARIABLE, environ)),
    )


def beside_send_log(send_log: str, name: str) -> str:
    """The endpoint's other logs (``REFUSAL_LOG``, ``PAUSE_LOG``) are written in the send log's folder."""
    return os.path.join(os.path.dirname(os.path.abspath(send_log)), name)


def log_own_pauses(
    send_log: str, clock: Callable[[], float], at_least: float = PAUSE_LOGGED_FROM_SECONDS
) -> Callable[[str, dict], None]:
    """Append each of this process's garbage collections that held it ``at_least`` seconds to ``endpoint-pauses.jsonl``
    beside the send log (when it ended, on the stack's clock, and how long): the endpoint answers nothing meanwhile,
    and moto keeps every item, object and message in this process, so its full collections grow with the state.
    The rate benchmark reads them to tell the emulator's stops from postline's pace; nothing is changed by it.
    Returns the callback installed (a test removes it)."""
    path = beside_send_log(send_log, PAUSE_LOG)
    started = [0.0]

    def on_collection(phase: str, info: dict) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
            return
        held = time.perf_counter() - started[0]
        if held >= at_least:
            entry = {"timestamp": clock(), "seconds": round(held, 4), "generation": info["generation"]}
            with open(path, "a", encoding="utf-8") as log:
                log.write(json.dumps(entry) + "\n")

    gc.callbacks.append(on_collection)
    return on_collection


def accepted_times(send_log: str) -> Iterable[float]:
    """The acceptance times in a send log, oldest first (as written); none when there is no log yet."""
    if not os.path.exists(send_log):
        return
    with open(send_log, encoding="utf-8") as handle:
        for line in handle:
            found = _LOGGED_TIME.search(line)  # the entry's first field after the id: cheaper than parsing it all
            if found:
                try:
                    yield float(found.group(1))
                except ValueError:
                    continue


class SesSendingLimits:
    """An SES account's maximum sending rate and 24-hour quota, as SES applies them to each send: one is refused
    when the sends accepted in the last second (a sliding window) number the rate or more, or those of the last 24
    hours the quota or more (docs.aws.amazon.com/ses/latest/dg/manage-sending-quotas-errors.html). Each SendEmail
    counts as one (SES counts recipients; postline sends each email to one). Not thread-safe: the caller holds one
    lock over the check, the send and ``record``, so concurrent sends never exceed the rate.

    Amortised O(1) per send, in little memory whatever the volume: the last second's acceptance times are kept
    exactly (at most the rate of them), the last 24 hours' as counts per whole second (at most 86,400), so the
    quota's window slides a second at a time, keeping a send up to a second longer than 24 hours."""

    def __init__(self, rate: float, quota: int, accepted: Iterable[float] = (), now: float | None = None):
        self.rate, self.quota = rate, quota
        self._second: deque[float] = deque()  # acceptance times within the last second
        self._days: deque[list] = deque()  # [whole second, sends accepted in it], oldest first
        self._in_day = 0
        now = time.time() if now is None else now
        for accepted_at in accepted:
            if accepted_at > now - _DAY - 1:
                self._count(accepted_at)
                if accepted_at > now - 1.0:
                    self._second.append(accepted_at)
        self._trim(now)

    def refusal(self, now: float) -> str | None:
        """SES's message if it would refuse a send now, else None. The quota first: waiting a second does not
        help a send that it refuses."""
        self._trim(now)
        if self._in_day >= self.quota:
            return QUOTA_EXCEEDED
        if len(self._second) >= self.rate:
            return RATE_EXCEEDED
        return None

    def record(self, accepted_at: float) -> None:
        self._second.append(accepted_at)
        self._count(accepted_at)

    def sent_last_24_hours(self, now: float) -> int:
        self._trim(now)
        return self._in_day

    def _count(self, accepted_at: float) -> None:
        second = int(accepted_at)
        if self._days and self._days[-1][0] >= second:  # the same second (or the clock stepped back)
            self._days[-1][1] += 1
        else:
            self._days.append([second, 1])
        self._in_day += 1

    def _trim(self, now: float) -> None:
        # Sends "after now" were made before the clock was moved back (postline local clock): forgotten, as if
        # they had not happened yet, so that they do not hold the rate or the quota until the clock catches up.
        while self._second and self._second[-1] > now:
            self._second.pop()
        while self._days and self._days[-1][0] > now:
            self._in_day -= self._days.pop()[1]
        while self._second and self._second[0] <= now - 1.0:
            self._second.popleft()
        while self._days and self._days[0][0] + 1 <= now - _DAY:  # every send of that second is 24 hours old
            self._in_day -= self._days.popleft()[1]


def install_ses_recorder(
    outbox: str,
    send_log: str,
    rate: float = DEFAULT_SES_RATE,
    quota: int = DEFAULT_SES_QUOTA,
    clock: Callable[[], float] = time.time,
) -> SesSendingLimits:
    """SESv2's SendEmail as SES answers it (tags checked, sending limits applied) with each accepted send in the
    outbox and the send log and each throttled one in the refusal log; and GetAccount, which moto lacks, with the
    limits and the sends of the last 24 hours (from the send log as well, so a restarted endpoint keeps them), all
    on ``clock``."""
    from moto.core.exceptions import JsonRESTError
    from moto.sesv2 import urls
    from moto.sesv2.responses import SESV2Response

    original = SESV2Response.send_email
    lock = threading.Lock()  # over the check, the send and its recording: the server answers on many threads
    limits = SesSendingLimits(rate, quota, accepted_times(send_log), clock())
    refusal_log = beside_send_log(send_log, REFUSAL_LOG)
    os.makedirs(outbox, exist_ok=True)

    def send_email(self) -> str:
        params = json.loads(self.body)
        _refuse_tags_ses_refuses(params.get("EmailTags", []))
        tags = {t["Name"]: t["Value"] for t in params.get("EmailTags", [])}
        with lock:
            now = clock()
            refusal = limits.refusal(now)
            if refusal is not None:
                with open(refusal_log, "a", encoding="utf-8") as log:
                    log.write(
                        json.dumps({"timestamp": now, "code": "ThrottlingException", "message": refusal, "tags": tags})
                        + "\n"
                    )
                raise JsonRESTError("ThrottlingException", refusal)
            answer = original(self)
            accepted_at = clock()
            limits.record(accepted_at)
            _record_send(self.region, params, tags, json.loads(answer)["MessageId"], accepted_at, outbox, send_log)
        return answer

    def get_account(self) -> str:
        with lock:
            sent = limits.sent_last_24_hours(clock())
        return json.dumps(
            {
                "SendQuota": {
                    "Max24HourSend": float(limits.quota),
                    "MaxSendRate": float(limits.rate),
                    "SentLast24Hours": float(sent),
                },
                "SendingEnabled": True,
                "ProductionAccessEnabled": True,
                "EnforcementStatus": "HEALTHY",
                "DedicatedIpAutoWarmupEnabled": False,
            }
        )

    SESV2Response.send_email = send_email
    SESV2Response.get_account = get_account  # type: ignore[attr-defined]  # moto's SESv2 has no GetAccount
    # moto routes no GET /v2/email/account (its "/v2/.*" path is taken literally), so the path is added to its
    # SESv2 routes, which the server reads when it first answers SESv2.
    urls.url_paths.setdefault("{0}/v2/email/account$", SESV2Response.dispatch)
    return limits


def refuse_unverified_as_ses_does() -> None:
    """moto refuses mail from an identity it does not hold in words of its own; SES's refusal names the identities
    that failed its check, and postline holds such mail on SES's words (``postline.ses``). Delete the sending
    domain's identity (``aws sesv2 delete-email-identity``) to see mail wait for it, as after a first deploy."""
    from email.utils import parseaddr

    from moto.ses.exceptions import MessageRejectedError
    from moto.ses.models import SESBackend

    send_raw_email = SESBackend.send_raw_email

    def refusing_unverified(self, source, destinations, raw_data):
        address = parseaddr(source or "")[1]
        if address and not self._is_verified_address(address):
            failed = source if source == address else f"{source}, {address}"
            raise MessageRejectedError(
                "Email address is not verified. The following identities failed the check "
                f"in region {self.region_name.upper()}: {failed}"
            )
        return send_raw_email(self, source, destinations, raw_data)

    SESBackend.send_raw_email = refusing_unverified


def answer_ses_setup_as_ses_does() -> None:
    """What ``postline doctor`` reads of an identity and its configuration sets, which moto's SESv2 lacks: a domain
    identity's Easy DKIM tokens (three, derived from its name) and status, its custom MAIL FROM domain
    (PutEmailIdentityMailFromAttributes; status SUCCESS), verified for sending while moto holds it, and each
    configuration set's event destinations (create, list, update, delete), kept on moto's SES backend so that they
    go with it."""
    import hashlib
    from urllib.parse import unquote

    from moto.ses.exceptions import NotFoundException
    from moto.sesv2 import urls
    from moto.sesv2.responses import SESV2Response

    get_email_identity = SESV2Response.get_email_identity

    def destinations_of(self) -> dict:
        backend = self.sesv2_backend.core_backend
        name = unquote(self._get_param("ConfigurationSetName"))
        if name not in backend.config_sets:
            raise NotFoundException(f"Configuration set <{name}> does not exist.")
        if not hasattr(backend, "postline_event_destinations"):
            backend.postline_event_destinations = {}
        return backend.postline_event_destinations.setdefault(name, {})

    def get_identity(self) -> str:
        answer = json.loads(get_email_identity(self))
        name = unquote(self._get_param("EmailIdentity"))
        backend = self.sesv2_backend.core_backend
        answer["VerifiedForSendingStatus"] = True  # moto holds it, and sends from it
        if answer.get("IdentityType") == "DOMAIN":
            digest = hashlib.sha256(name.encode()).hexdigest()
            answer["DkimAttributes"] = {
                **answer.get("DkimAttributes", {}),
                "SigningEnabled": True,
                "Status": "SUCCESS",
                "SigningAttributesOrigin": "AWS_SES",
                "Tokens": [digest[i * 20 : (i + 1) * 20] + "dkim" for i in range(3)],
            }
            mail_from = backend.identity_mail_from_domains.get(name)
            if mail_from:
                answer["MailFromAttributes"] = {
                    "MailFromDomain": mail_from["mail_from_domain"],
                    "MailFromDomainStatus": "SUCCESS",
                    "BehaviorOnMxFailure": mail_from["behavior_on_mx_failure"],
                }
        return json.dumps(answer)

    def put_mail_from(self) -> str:
        name, params = unquote(self._get_param("EmailIdentity")), json.loads(self.body or "{}")
        backend = self.sesv2_backend.core_backend
        if name not in backend.email_identities:
            raise NotFoundException(f"Identity {name} does not exist.")
        backend.identity_mail_from_domains[name] = {
            "mail_from_domain": params.get("MailFromDomain"),
            "behavior_on_mx_failure": params.get("BehaviorOnMxFailure", "USE_DEFAULT_VALUE"),
        }
        return "{}"

    def create_destination(self) -> str:
        params = json.loads(self.body or "{}")
        destinations_of(self)[params["EventDestinationName"]] = params["EventDestination"]
        return "{}"

    def list_destinations(self) -> str:
        return json.dumps(
            {
                "EventDestinations": [
                    {"Name": name, **{"Enabled": False, **value}} for name, value in destinations_of(self).items()
                ]
            }
        )

    def update_destination(self) -> str:
        destinations, name = destinations_of(self), unquote(self._get_param("EventDestinationName"))
        if name not in destinations:
            raise NotFoundException(f"Event destination {name} does not exist.")
        destinations[name] = json.loads(self.body or "{}")["EventDestination"]
        return "{}"

    def delete_destination(self) -> str:
        destinations_of(self).pop(unquote(self._get_param("EventDestinationName")), None)
        return "{}"

    SESV2Response.get_email_identity = get_identity
    # moto's SESv2 has none of these five actions: they are new methods of its class
    SESV2Response.put_email_identity_mail_from_attributes = put_mail_from  # type: ignore[attr-defined]
    SESV2Response.create_configuration_set_event_destination = create_destination  # type: ignore[attr-defined]
    SESV2Response.get_configuration_set_event_destinations = list_destinations  # type: ignore[attr-defined]
    SESV2Response.update_configuration_set_event_destination = update_destination  # type: ignore[attr-defined]
    SESV2Response.delete_configuration_set_event_destination = delete_destination  # type: ignore[attr-defined]
    for path in (
        "{0}/v2/email/identities/(?P<EmailIdentity>[^/]+)/mail-from$",
        "{0}/v2/email/configuration-sets/(?P<ConfigurationSetName>[^/]+)/event-destinations$",
        "{0}/v2/email/configuration-sets/(?P<ConfigurationSetName>[^/]+)/event-destinations/"
        "(?P<EventDestinationName>[^/]+)$",
    ):
        urls.url_paths.setdefault(path, SESV2Response.dispatch)


def _record_send(
    region: str, params: dict, tags: dict[str, str], ses_message_id: str, accepted_at: float, outbox: str, send_log: str
) -> None:
    """An accepted send in the outbox (first: its SES events come from the send log) and the send log."""
    name = _UNSAFE_FILENAME.sub("_", tags.get("postline_message_id") or ses_message_id)
    raw = params.get("Content", {}).get("Raw", {}).get("Data")
    sent = as_ses_sends(base64.b64decode(raw), ses_message_id, region, accepted_at) if raw else b""
    if raw is not None:
        with open(os.path.join(outbox, f"{name}.eml"), "wb") as handle:
            handle.write(sent)
    destination = params.get("Destination", {})
    entry = {
        "ses_message_id": ses_message_id,
        "timestamp": accepted_at,
        "source": params.get("FromEmailAddress"),
        "destination": destination.get("ToAddresses", []) + destination.get("CcAddresses", []),
        "configuration_set": params.get("ConfigurationSetName"),
        "tags": tags,
        "headers": header_list(sent),  # SES's notifications carry them (with the identity's headers option)
    }
    with open(send_log, "a", encoding="utf-8") as log:
        log.write(json.dumps(entry) + "\n")


def as_ses_sends(raw: bytes, ses_message_id: str, region: str, accepted_at: float) -> bytes:
    """The raw email as SES sends it: SES sets its own Message-ID and Date headers, replacing any given
    (docs.aws.amazon.com/ses/latest/dg/header-fields.html)."""
    domain = "email.amazonses.com" if region == "us-east-1" else f"{region}.amazonses.com"
    return _set_headers(
        raw,
        {
            "Message-ID": f"<{ses_message_id}@{domain}>",
            "Date": format_datetime(datetime.fromtimestamp(accepted_at, timezone.utc)),
        },
    )


def _set_headers(raw: bytes, values: dict[str, str]) -> bytes:
    """``raw`` with one header per name in ``values``: the first field of that name replaced where it stands (with
    its folded lines), any later one dropped, a missing one put first. Every other byte stays as it was."""
    fields, rest = _header_fields(raw)
    line_end = b"\n" if fields and fields[0].endswith(b"\n") and not fields[0].endswith(b"\r\n") else b"\r\n"
    wanted = {
        name.lower().encode("ascii"): f"{name}: {value}".encode("ascii") + line_end for name, value in values.items()
    }
    placed, kept = set(), []
    for field in fields:
        name = field.split(b":", 1)[0].rstrip(b" \t").lower()
        if name not in wanted:
            kept.append(field)
        elif name not in placed:
            kept.append(wanted[name])
            placed.add(name)
    return b"".join([line for name, line in wanted.items() if name not in placed] + kept) + rest


def header_list(raw: bytes) -> list[dict[str, str]]:
    """The email's headers as SES's notifications list them (``mail.headers``): name and unfolded value."""
    fields, _ = _header_fields(raw)
    headers = []
    for field in fields:
        name, _, value = field.decode("ascii", "replace").partition(":")
        headers.append({"name": name.strip(), "value": " ".join(value.split())})
    return headers


def _header_fields(raw: bytes) -> tuple[list[bytes], bytes]:
    """The header fields of ``raw``, each with its folded continuation lines and line ends, and the rest (the blank
    line and the body)."""
    fields: list[bytes] = []
    start = 0
    while start < len(raw):
        end = raw.find(b"\n", start) + 1 or len(raw)
        line = raw[start:end]
        if not line.rstrip(b"\r\n"):  # the blank line: the body follows
            break
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line
        else:
            fields.append(line)
        start = end
    return fields, raw[start:]


def _refuse_tags_ses_refuses(tags: list[dict[str, str]]) -> None:
    """SES refuses a send whose message tags break its rule (moto takes anything): refused here too, so the
    local stack fails where AWS would."""
    from moto.core.exceptions import JsonRESTError

    for tag in tags:
        for part in ("Name", "Value"):
            if not _SES_TAG.fullmatch(tag.get(part, "")):
                raise JsonRESTError(
                    "BadRequestException",
                    f"Invalid tag {part.lower()} <{tag.get(part, '')}>: only "
                    "alphanumeric ASCII characters, '_', and '-' are allowed.",
                )


def serialise_dynamodb() -> None:
    """moto's DynamoDB is not safe across request threads, and a transaction deep-copies every table it touches
    (the whole table, each time) to roll back on failure: wrong under concurrent writes, and slower with every
    item stored. Here DynamoDB requests run one at a time (DynamoDB itself isolates them), and a transaction
    snapshots only the items it writes."""
    import types

    from moto.dynamodb import models
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.responses import DynamoHandler

    lock = threading.RLock()
    handle = DynamoHandler.call_action

    def call_action(self):
        with lock:
            return handle(self)

    DynamoHandler.call_action = call_action
    # The backend's whole-table snapshot becomes a no-op; the item snapshots below replace it. (The namespace
    # stands in for the copy module: moto's models use only its deepcopy.)
    models.copy = types.SimpleNamespace(  # type: ignore[assignment]
        deepcopy=lambda value, memo=None: value if isinstance(value, Table) else copy.deepcopy(value, memo)
    )
    transact = models.DynamoDBBackend.transact_write_items

    def transact_write_items(self, transact_items):
        snapshots = []
        for entry in transact_items:
            _, operation = next(iter(entry.items()))
            table = self.get_table(operation["TableName"])
            key = operation.get("Item") or operation["Key"]
            hash_key = DynamoType(key[table.hash_key_attr])
            range_key = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
            snapshots.append((table, hash_key, range_key, copy.deepcopy(table.get_item(hash_key, range_key))))
        try:
            return transact(self, transact_items)
        except Exception:
            for table, hash_key, range_key, item in reversed(snapshots):
                table.delete_item(hash_key, range_key)
                if item is not None:
                    if range_key is None:
                        table.items[hash_key] = item
                    else:
                        table.items[hash_key][range_key] = item
            raise

    models.DynamoDBBackend.transact_write_items = transact_write_items


_INSERT = re.compile(r"""\s*INSERT\s+INTO\s+"([^"]+)"\s+VALUE\s+\{(.*)\}\s*""", re.IGNORECASE | re.DOTALL)
_INSERTED_NAME = re.compile(r"\s*'([^']+)'\s*:\s*\?\s*(?:,|$)")


def parse_insert(statement: dict) -> tuple[str, dict] | None:
    """The table and the item (attribute names to their parameters) of a PartiQL ``INSERT`` whose values are all
    parameters, the kind ``postline.dynamo.insert_statement`` makes; None for any other statement."""
    match = _INSERT.fullmatch(statement["Statement"])
    parameters = statement.get("Parameters", [])
    names = _INSERTED_NAME.findall(match.group(2)) if match else []
    if not match or not names or len(names) != len(parameters) or _INSERTED_NAME.sub("", match.group(2)):
        return None
    return match.group(1), dict(zip(names, parameters, strict=True))


def insert_as_dynamodb_does() -> None:
    """moto's PartiQL ``INSERT`` overwrites an item whose key exists (and copies the whole table to do it).
    DynamoDB refuses it: ``DuplicateItem`` in a ``BatchExecuteStatement`` response. postline's first claims depend
    on that refusal (``postline.send``), so ``INSERT``s whose values are all parameters, the only kind postline
    makes, are done here as DynamoDB does them; every other statement goes to moto."""
    from moto.dynamodb import models
    from moto.dynamodb.models.dynamo_type import DynamoType

    batch = models.DynamoDBBackend.batch_execute_statement

    def insert(backend, statement: dict) -> dict | None:
        parsed = parse_insert(statement)
        if parsed is None:
            return None
        table_name, item = parsed
        if table_name not in backend.tables:
            return {"Error": {"Code": "ResourceNotFound", "Message": "Requested resource not found"}}
        table = backend.tables[table_name]
        keys = [item.get(table.hash_key_attr)] + ([item.get(table.range_key_attr)] if table.range_key_attr else [])
        if any(key is None for key in keys):
            return {
                "Error": {
                    "Code": "ValidationError",
                    "Message": "One or more parameter values were invalid: missing the key",
                }
            }
        if table.get_item(*[DynamoType(key) for key in keys]) is not None:
            return {
                "TableName": table.name,
                "Error": {"Code": "DuplicateItem", "Message": "Duplicate primary key exists in table"},
            }
        table.put_item(item)
        return {"TableName": table.name}

    def batch_execute_statement(self, statements):
        answers = [insert(self, statement) for statement in statements]
        others = [statement for statement, answer in zip(statements, answers, strict=True) if answer is None]
        from_moto = iter(batch(self, others) if others else [])
        return [answer if answer is not None else next(from_moto) for answer in answers]

    models.DynamoDBBackend.batch_execute_statement = batch_execute_statement


def lighten_dynamodb_expressions() -> None:
    """moto's DynamoDB parses an UpdateExpression two or three times per item written (to check its names, then to
    run it), lexes a ConditionExpression with a regular-expression cache lookup per pattern per token, and walks
    each expression tree about ten times, rebuilding for every node it visits the table of what to do with it:
    most of what a write cost the endpoint. Here a parsed UpdateExpression is kept by its text (every use either
    only reads it or deep-copies it before changing it), a condition's tokens likewise (immutable tuples that the
    parser never changes), and the tree walks are lightened (below)."""
    from collections import deque

    # moto's modules under dynamodb.parsing start with ``# type: ignore``, so mypy sees none of their names.
    from moto.dynamodb.comparisons import ConditionExpressionParser
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser  # type: ignore[attr-defined]  # untyped

    UpdateExpressionParser.make = staticmethod(functools.lru_cache(maxsize=1024)(UpdateExpressionParser.make))

    lex = ConditionExpressionParser._lex_condition_expression
    lexed: dict[str, tuple] = {}

    def lex_condition_expression(self):
        tokens = lexed.get(self.condition_expression)
        if tokens is None:
            tokens = tuple(lex(self))
            if len(lexed) < 1024:
                lexed[self.condition_expression] = tokens
        return deque(tokens)

    ConditionExpressionParser._lex_condition_expression = lex_condition_expression

    _walk_by_node_type()
    _check_update_expressions_once()
    _copy_trees_directly()
    _validate_created_items_once()


def _walk_by_node_type() -> None:
    """moto's tree walker rebuilds, for every node it visits, its table of what to do with each node class, and
    asks ``isinstance`` against each: abstract-base-class checks, millions of them for a long UpdateExpression.
    Here a walker builds its table once, and the answer (which handler, if any) is looked up by the node's
    concrete type and kept, the same answer moto's loop finds."""
    from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser, Node  # type: ignore[attr-defined]  # untyped

    is_node: dict[type, bool] = {}

    def handler_for(self, node_type: type):
        try:
            handlers = self._postline_handlers
        except AttributeError:
            handlers = self._postline_handlers = {}
            self._postline_table = tuple(self._processing_map().items())
        if node_type not in handlers:
            handlers[node_type] = next(
                (handler for node_class, handler in self._postline_table if issubclass(node_type, node_class)), None
            )
        return handlers[node_type]

    def traverse_node_recursively(self, node, child_id=-1):
        node_type = type(node)
        if node_type not in is_node:
            is_node[node_type] = issubclass(node_type, Node)
        if not is_node[node_type]:
            return node
        parent_node = node.parent
        if node.children is not None:
            for i, child_node in enumerate(node.children):
                self.pre_processing_of_child(node, i)
                self.traverse_node_recursively(child_node, i)
        handler = handler_for(self, node_type)
        if handler is not None:
            node = handler(node)
            node.parent = parent_node
            if parent_node:
                parent_node.children[child_id] = node
        return node

    DepthFirstTraverser.traverse_node_recursively = traverse_node_recursively


def _check_update_expressions_once() -> None:
    """moto counts an UpdateExpression's clauses and compares its paths at every nested expression node, each
    time collecting the clauses of the whole subtree below it: quadratic in the number of actions. The root's
    subtree holds every clause and path, so checking the root alone finds every error moto would."""
    from moto.dynamodb.parsing.ast_nodes import UpdateExpression  # type: ignore[attr-defined]  # untyped
    from moto.dynamodb.parsing.validators import ActionCountValidator, OverlappingPathsValidator

    for validator, check in (
        (ActionCountValidator, ActionCountValidator.verify_action_counts),
        (OverlappingPathsValidator, OverlappingPathsValidator.check_for_overlapping_paths),
    ):
        walk = validator.traverse

        def traverse(self, node, walk=walk, check=check):
            return check(self, node) if isinstance(node, UpdateExpression) else walk(self, node)

        validator.traverse = traverse


def _copy_trees_directly() -> None:
    """Every validation of an UpdateExpression starts from a deep copy of its tree, which the standard library
    makes through the pickle protocol for each node. Here a node copies its own attributes (the same result,
    through the same memo, so a node's parent is the copy of its parent)."""
    from moto.dynamodb.parsing.ast_nodes import Node  # type: ignore[attr-defined]  # untyped

    def node_deepcopy(self, memo):
        new = self.__class__.__new__(self.__class__)
        memo[id(self)] = new
        for name, value in self.__dict__.items():
            if name == "children" and value is not None:
                value = [child if isinstance(child, str) else copy.deepcopy(child, memo) for child in value]
            elif not isinstance(value, str):
                value = copy.deepcopy(value, memo)
            new.__dict__[name] = value
        return new

    Node.__deepcopy__ = node_deepcopy


def _validate_created_items_once() -> None:
    """moto validates the UpdateExpression of an update that creates its item twice: against an empty item first
    (so that an invalid expression creates nothing), then against the created item, which holds only its key, and
    keeps the second answer. Here the first validation is made against the item as it will be created, its key
    alone, and the second is given that answer: the same tree, for half the work on every write that creates an
    item (each marketing claim). DynamoDB requests run one at a time (``serialise_dynamodb``), so the two
    validations of one update follow each other; an answer is only reused for the same update of the same key."""
    from moto.dynamodb import models
    from moto.dynamodb.models.dynamo_type import Item

    validator_class = models.UpdateExpressionValidator
    kept: list[tuple] = []  # at most one: (which update, its validated tree)

    class Answered:
        def __init__(self, tree):
            self.tree = tree

        def validate(self):
            return self.tree

    def validator(expression, expression_attribute_names, expression_attribute_values, item, table):
        update = (
            id(expression),
            id(expression_attribute_names),
            id(expression_attribute_values),
            id(table),
            item.hash_key,
            item.range_key,
        )
        earlier = kept.pop() if kept else None
        arguments = dict(
            expression=expression,
            expression_attribute_names=expression_attribute_names,
            expression_attribute_values=expression_attribute_values,
            table=table,
        )
        if table.get_item(item.hash_key, item.range_key) is None:  # before creating it
            key = {table.hash_key_attr: {item.hash_key.type: item.hash_key.value}}
            if item.range_key is not None:
                key[table.range_key_attr] = {item.range_key.type: item.range_key.value}
            tree = validator_class(item=Item(item.hash_key, item.range_key, attrs=key), **arguments).validate()
            kept.append((update, tree))
            return Answered(tree)
        if (
            earlier is not None
            and earlier[0] == update
            and set(item.attrs) <= {table.hash_key_attr, table.range_key_attr}
        ):
            return Answered(earlier[1])
        return validator_class(item=item, **arguments)

    models.UpdateExpressionValidator = validator  # type: ignore[misc, assignment]  # moto only calls the class


def lighten_dispatch() -> None:
    """For every request moto lists the answering class's members with ``inspect`` (hundreds of them) to find the
    action's method, and draws the 52-letter request id one random letter per call. A class's methods do not
    change once the server runs, and ``random.choices`` draws the letters from the same pool in one call."""
    from moto.core import responses, utils
    from moto.moto_api._internal.moto_random import MotoRandom

    responses.method_names_from_class = functools.lru_cache(maxsize=None)(utils.method_names_from_class)

    def get_random_string(self, length: int = 20, include_digits: bool = True, lower_case: bool = False) -> str:
        pool = string.ascii_letters + (string.digits if include_digits else "")
        drawn = "".join(self.choices(pool, k=length))
        return drawn.lower() if lower_case else drawn

    MotoRandom.get_random_string = get_random_string


def speed_up_sqs() -> None:
    """moto's SQS makes every queue operation cost time proportional to the queue's depth, so a backlog drains
    in quadratic time (a 5,000-message queue cost it about 0.5 s per message sent and 3 s per ReceiveMessage):
    - it derives a queue's state by scanning all its messages, reading the clock (a datetime computation of
      several µs) once or twice per message;
    - it computes every queue attribute, the three approximate counts included (four such scans), for each
      message sent (to read ContentBasedDeduplication) and three times for each message received (to read the
      MessageRetentionPeriod), and GetQueueAttributes computes them all again for each name asked;
    - a delete scans and copies the whole message list (and swapping in the copy can drop a message another
      request thread appended meanwhile).
    - a receive checks each message's retention period by computing every queue attribute again, and
      deep-copies each message it returns.
    Here, with moto's answers unchanged: a scan reads the clock once; within one send, receive or
    GetQueueAttributes the attributes are computed once, and send and receive, which never read the counts,
    leave them out; a received message is copied shallowly; a delete removes its message in place, under the
    queue's lock. Two constant costs go too: each attribute name was turned into a Python name by a regular
    expression every time, and each receipt handle drew its 185 letters one call at a time (it is now 185 random
    hex digits)."""
    from moto.sqs import models

    models.camelcase_to_underscores = functools.lru_cache(maxsize=256)(models.camelcase_to_underscores)
    models.generate_receipt_handle = lambda: os.urandom(93).hex()[:185]
    # The copy of a received message only gets its own attribute dict (rebound, never changed in place).
    models.deepcopy = lambda value, memo=None: (  # type: ignore[misc, assignment]  # deepcopy's stand-in
        copy.copy(value) if isinstance(value, models.Message) else copy.deepcopy(value, memo)
    )

    queue_class, backend_class = models.Queue, models.SQSBackend
    counts = (
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesDelayed",
        "ApproximateNumberOfMessagesNotVisible",
    )
    scope = threading.local()  # memo: {id(queue): attributes} while a wrapped call runs; counted: bool

    def skipped() -> bool:
        return getattr(scope, "memo", None) is not None and not scope.counted

    # Message.visible is ``now > visible_at``, Message.delayed is ``now < delayed_until``: one ``now`` per scan.
    def messages(self):
        now = models.unix_time_millis()  # (looked up at each call: it follows the local clock)
        return [m for m in self._messages if now > m.visible_at and not now < m.delayed_until]

    def delayed(self):
        if skipped():
            return None
        now = models.unix_time_millis()
        return sum(1 for m in self._messages if now < m.delayed_until)

    def not_visible(self):
        if skipped():
            return None
        now = models.unix_time_millis()
        return sum(1 for m in self._messages if not now > m.visible_at)

    # moto's are properties too, but mypy types a property read from its class as its getter: hence the ignores.
    queue_class.messages = property(messages)  # type: ignore[assignment]
    queue_class.approximate_number_of_messages = property(  # type: ignore[assignment]
        lambda self: None if skipped() else len(self.messages)
    )
    queue_class.approximate_number_of_messages_delayed = property(delayed)  # type: ignore[assignment]
    queue_class.approximate_number_of_messages_not_visible = property(not_visible)  # type: ignore[assignment]

    every_attribute = queue_class.attributes.fget  # type: ignore[attr-defined]

    def attributes(self):
        memo = getattr(scope, "memo", None)
        if memo is None:
            return every_attribute(self)
        if id(self) not in memo:
            memo[id(self)] = every_attribute(self)
            if not scope.counted:
                for name in counts:
                    del memo[id(self)][name]
        return memo[id(self)]

    queue_class.attributes = property(attributes)  # type: ignore[assignment]

    def attributes_once(method, counted: bool):
        @functools.wraps(method)
        def wrapper(*args, **kwargs):
            if getattr(scope, "memo", None) is not None:  # nested: the outer call's scope holds
                return method(*args, **kwargs)
            scope.memo, scope.counted = {}, counted
            try:
                return method(*args, **kwargs)
            finally:
                scope.memo = None

        return wrapper

    backend_class.send_message = attributes_once(backend_class.send_message, counted=False)
    backend_class.send_message_batch = attributes_once(backend_class.send_message_batch, counted=False)
    backend_class.is_message_valid_based_on_retention_period = attributes_once(
        backend_class.is_message_valid_based_on_retention_period, counted=False
    )
    backend_class.receive_message = attributes_once(backend_class.receive_message, counted=False)
    backend_class.get_queue_attributes = attributes_once(backend_class.get_queue_attributes, counted=True)

    def delete_message(self, receipt_handle: str) -> None:
        if receipt_handle in self.deleted_messages:  # already deleted: as moto, accepted again
            return
        with self._messages_lock:  # add_message appends under it
            for message in self._messages:
                if message.had_receipt_handle(receipt_handle):
                    self._messages.remove(message)  # by identity; moto's dead-letter move removes unlocked
                    self.pending_messages.discard(message)
                    self.deleted_messages.update(message.all_receipt_handles)
                    return
        raise models.ReceiptHandleIsInvalid()

    queue_class.delete_message = delete_message


def receive_each_message_once() -> None:
    """moto's ReceiveMessage checks that a message is visible and marks it received without a lock, so two
    pollers receiving from one queue at the same moment are both handed the same message (the local stack saw
    one rendered twice 8 ms apart): SQS hides a message from other receives once one has it. Here each pass over
    the queue runs under the queue's own lock (the one its sends append under), and a long poll waits outside it,
    for a message or its deadline, as moto's own loop does."""
    from moto.sqs import models

    receive = models.SQSBackend.receive_message

    def receive_message(
        self, queue_name, count, wait_seconds_timeout, visibility_timeout, message_attribute_names=None
    ):
        queue = self.get_queue(queue_name)
        polling_end = models.unix_time() + wait_seconds_timeout
        while True:
            with queue._messages_lock:  # noqa: SLF001 - moto's lock over the queue's messages
                result = receive(self, queue_name, count, 0, visibility_timeout, message_attribute_names)
            if result or not wait_seconds_timeout or models.unix_time() > polling_end:
                return result
            queue.wait_for_messages(1)

    models.SQSBackend.receive_message = receive_message


def sqs_on_clock(clock: Callable[[], float]) -> None:
    """moto's SQS tells the time (a message's delay, its visibility, a queue's retention) with two functions of
    its own: here they read ``clock``, so moving the local clock moves them too."""
    from moto.core.utils import unix_time
    from moto.sqs import models

    models.unix_time = lambda dt=None: clock() if dt is None else unix_time(dt)
    models.unix_time_millis = lambda dt=None: 1000.0 * models.unix_time(dt)


def read_raw_email_headers_only() -> None:
    """moto's SES parses every raw email whole (the standard library's pure-Python parser, a tenth of the
    endpoint's CPU during a newsletter) to read four headers: From, To, Cc and Bcc. Here it parses the headers
    alone, and the body stays text it never looks at."""
    from email.parser import HeaderParser
    from types import SimpleNamespace

    from moto.ses import models

    # stands in for the email module: moto's SES uses only its message_from_string
    models.email = SimpleNamespace(message_from_string=HeaderParser().parsestr)  # type: ignore[assignment]


def keep_no_list_of_every_object() -> None:
    """moto lists every object of its models it ever makes, one list per class (``instances_tracked``), for its
    server's dashboard (``/moto-api/data.json``, which postline never reads): every DynamoDB item written, read or
    copied, every SQS message, every SES email. Nothing ever takes them off, so the endpoint's memory grows with
    every request, deleted messages and replaced items included, and so does each of its full garbage collections,
    which walk them all and hold every request meanwhile: after 10,000 emails, 1.5 million objects of which two
    thirds were only listed, and stops of a second every half minute. Here a new object is no longer listed (an S3
    key closes its temporary file when freed, as moto's reset would have closed it)."""
    from moto.core.common_models import BaseModel

    def new(cls, *args, **kwargs):
        return super(BaseModel, cls).__new__(cls)  # as moto's own __new__, less the listing

    BaseModel.__new__ = staticmethod(new)  # a class's __new__ is a static method


def keep_no_copy_of_sent_emails() -> None:
    """moto's SES keeps every email it accepts, whole, in a list that only its internal API reads. The endpoint has
    each one in the outbox and the send log already (``install_ses_recorder``), so that list, about 27 KB an email
    of a newsletter and never emptied, half the endpoint's memory after 15,000 emails, gives each one up as soon as
    SES has taken it; SES's count of sends stays moto's."""
    from moto.ses import models

    def given_up(send):
        @functools.wraps(send)
        def sending(self, *args, **kwargs):
            message = send(self, *args, **kwargs)
            # SESv2's sends come one at a time (the recorder's lock); one that another overtook is only kept
            if self.sent_messages and self.sent_messages[-1] is message:
                self.sent_messages.pop()
            return message

        return sending

    for name in ("send_email", "send_raw_email", "send_templated_email"):
        setattr(models.SESBackend, name, given_up(getattr(models.SESBackend, name)))


def remember_event_paths() -> None:
    """moto's EventBridge, for each event it delivers to a target, compiles the target's eight JSONPath
    expressions anew, building a parser (its grammar tables included) for each: milliseconds per event.
    Compiled expressions are immutable, so here each is compiled once."""
    import jsonpath_ng.ext

    jsonpath_ng.ext.parse = functools.lru_cache(maxsize=1024)(jsonpath_ng.ext.parse)


def remember_backends() -> None:
    """moto's server finds the service of every request under one lock for all requests, by listing and
    stat-ing the ~200 folders of moto's package and then matching URL patterns: milliseconds per request, one
    request at a time. The answer depends only on the host name, so here it is looked up once per host."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    look_up = DomainDispatcherApplication.get_backend_for_host
    found: dict = {}

    def get_backend_for_host(self, host):
        if host not in found:  # called under the dispatcher's lock
            found[host] = look_up(self, host)
        return found[host]

    DomainDispatcherApplication.get_backend_for_host = get_backend_for_host


def keep_alive_server(host: str, port: int, faults=None):
    """moto's server (werkzeug's development server) closes the connection after every response, since it
    cannot tell where a request body it did not read ends: every AWS call cost a new TCP connection on both
    sides and a new thread here, and the answering thread then waited 10 ms for stray bytes. Here moto's
    request handler reads the request body whole before moto runs and sends the response whole, with its
    length, in one write, so a connection carries request after request (HTTP/1.1 keep-alive). ``faults`` (a
    ``faults.FaultInjector``) wraps moto in its middleware."""
    import io
    import traceback

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    class KeepAliveHandler(MotoRequestHandler):
        protocol_version = "HTTP/1.1"

        def run_wsgi(self) -> None:
            if self.headers.get("Expect", "").lower().strip(" \t") == "100-continue":
                self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.environ = environ = self.make_environ()
            status, headers = "500 INTERNAL SERVER ERROR", []
            chunks: list[bytes] = []

            def start_response(status_, headers_, exc_info=None):
                nonlocal status, headers
                status, headers = status_, list(headers_)
                return chunks.append

            try:
                if environ.get("wsgi.input_terminated"):  # a chunked body: werkzeug's reader finds its end
                    environ["wsgi.input"] = io.BytesIO(environ["wsgi.input"].read())
                else:
                    environ["wsgi.input"] = io.BytesIO(self.rfile.read(int(environ.get("CONTENT_LENGTH") or 0)))
                answer = self.server.app(environ, start_response)
                try:
                    for chunk in answer:
                        chunks.append(chunk)
                finally:
                    if hasattr(answer, "close"):
                        answer.close()
            except DropConnection:  # an injected lost reply: the request was applied, nothing is answered
                self.close_connection = True
                return
            except Exception:  # noqa: BLE001 - as werkzeug: a 500, logged; and this connection ends
                self.close_connection = True
                status, headers, chunks = (
                    "500 INTERNAL SERVER ERROR",
                    [("Content-Type", "text/plain")],
                    [b"Internal Server Error"],
                )
                self.server.log("error", f"Error on request:\n{traceback.format_exc()}")
            code, _, reason = status.partition(" ")
            head = environ["REQUEST_METHOD"] == "HEAD"
            body = b"" if head else b"".join(chunks)
            self.send_response(int(code), reason)
            for name, value in headers:
                if not (name.lower() == "content-length" and not head):  # a HEAD's tells the GET's length
                    self.send_header(name, value)
            if not head and int(code) >= 200 and int(code) not in (204, 304):
                self.send_header("Content-Length", str(len(body)))
            self._headers_buffer.extend([b"\r\n", body])
            self.flush_headers()  # status line, headers and body: one write

    app = DomainDispatcherApplication(create_backend_app)
    return make_server(
        host, port, faults.middleware(app) if faults else app, threaded=True, request_handler=KeepAliveHandler
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4566)
    parser.add_argument("--outbox", required=True)
    parser.add_argument("--send-log", required=True)
    parser.add_argument(
        "--ses-rate",
        type=_option(parse_ses_rate),
        metavar="EMAILS_PER_SECOND",
        help=f"SES's maximum sending rate (default: ${SES_RATE_VARIABLE}, else {DEFAULT_SES_RATE:g})",
    )
    parser.add_argument(
        "--ses-quota",
        type=_option(parse_ses_quota),
        metavar="EMAILS",
        help=f"SES's 24-hour sending quota (default: ${SES_QUOTA_VARIABLE}, else {DEFAULT_SES_QUOTA})",
    )
    parser.add_argument("--clock-file", help="the local stack's clock (postline local clock); default: real time")
    args = parser.parse_args()
    try:
        rate = args.ses_rate if args.ses_rate is not None else ses_limit_from_environment(SES_RATE_VARIABLE)
        quota = (
            args.ses_quota if args.ses_quota is not None else cast(int, ses_limit_from_environment(SES_QUOTA_VARIABLE))
        )
        faults = FaultInjector.from_environment(os.path.dirname(os.path.abspath(args.send_log)))
    except ValueError as error:
        parser.error(str(error))

    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request drowns the functions' logs

    clock = LocalClock(args.clock_file) if args.clock_file else time.time
    install_ses_recorder(args.outbox, args.send_log, rate, quota, clock)
    log_own_pauses(args.send_log, clock)
    keep_no_list_of_every_object()
    keep_no_copy_of_sent_emails()
    refuse_unverified_as_ses_does()
    answer_ses_setup_as_ses_does()
    sqs_on_clock(clock)
    serialise_dynamodb()
    insert_as_dynamodb_does()
    lighten_dynamodb_expressions()
    lighten_dispatch()
    speed_up_sqs()
    receive_each_message_once()
    read_raw_email_headers_only()
    remember_backends()
    remember_event_paths()
    server = keep_alive_server(args.host, args.port, faults)
    threading.Thread(target=server.serve_forever, name="moto-server", daemon=True).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.shutdown()


def _option(parse):
    """An argparse type from a parser that raises ValueError: its message, not argparse's generic one."""

    def convert(text: str):
        try:
            return parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return convert


if __name__ == "__main__":
    main()
