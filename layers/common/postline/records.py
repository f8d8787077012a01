"""Message records: the conditional writes that move a message's status forward.

Every write here is a TransactWriteItems entry, so a whole SQS batch is recorded in one call (an ``Update``
entry's body is also a valid UpdateItem request, for writes that stand alone), and every write is conditional
on the status it expects, which is what makes redelivered and repeated messages harmless.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from .dynamo import condition_failed
from .models import Message, Suppression
from .suppression import ERASED, describe, is_erased_name, scopes_for


def attribute_value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, (int, float)):
        return {"N": repr(round(value, 3)) if isinstance(value, float) else str(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, dict):
        return {"M": {k: attribute_value(v) for k, v in value.items()}}
    if isinstance(value, (set, frozenset)) and value and all(isinstance(v, str) for v in value):
        return {"SS": sorted(value)}
    raise TypeError(f"cannot store {type(value).__name__}")


def mark_counted(dynamodb, table: str, message_id: str, marker: str) -> dict[str, Any] | None:
    """Add ``marker`` to the record's ``counted`` set (what postline.analytics counted of the message) unless it is
    there: the record as it is now, or None when the mark was there already, or there is no record."""
    try:
        return dynamodb.update_item(
            TableName=table,
            Key={"message_id": {"S": message_id}},
            UpdateExpression="ADD counted :marks",
            ReturnValues="ALL_NEW",
            ConditionExpression="attribute_exists(message_id) AND NOT contains(counted, :mark)",
            ExpressionAttributeValues={":marks": {"SS": [marker]}, ":mark": {"S": marker}},
        )["Attributes"]
    except ClientError as error:
        if condition_failed(error):
            return None
        raise


def put_new(
    table: str, record: Message, redelivery_replaces: tuple[str, ...] = (), retry: int | None = None
) -> dict[str, Any]:
    """Create the record unless it exists. A redelivery of the SQS message that wrote it (same ``rendered_by``)
    may replace it while its status is one of ``redelivery_replaces``; a repeat of the message (another SQS
    message with the same id) may not, so it is reported as a duplicate however the two were batched. Soft-bounce
    retry number ``retry`` replaces the record of the attempt that asked for it (``retry_requested``), once: a
    second copy of the retry finds the record already its own. A retry never creates a record: where there is
    none (erased, or expired) there is nothing to retry."""
    allowed = [] if retry else ["attribute_not_exists(message_id)"]
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    if redelivery_replaces:
        placeholders = [f":r{i}" for i in range(len(redelivery_replaces))]
        allowed.append(f"(#status IN ({', '.join(placeholders)}) AND rendered_by = :by)")
        names["#status"] = "status"
        values.update({n: {"S": s} for n, s in zip(placeholders, redelivery_replaces, strict=True)})
        values[":by"] = {"S": record.rendered_by}
    if retry:
        allowed.append("(retry_requested = :retry AND (attribute_not_exists(#retry) OR #retry < :retry))")
        names["#retry"] = "retry"
        values[":retry"] = {"N": str(retry)}
    condition = " OR ".join(allowed)
    entry = {
        "TableName": table,
        "Item": record.serialize(),
        "ConditionExpression": condition,
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }
    if values:
        entry["ExpressionAttributeNames"] = names
        entry["ExpressionAttributeValues"] = values
    return {"Put": entry}


def update(
    table: str,
    message_id: str,
    *,
    set_values: dict[str, Any],
    condition: str,
    condition_values: dict[str, Any] | None = None,
    add: dict[str, int | set[str]] | None = None,
    remove: tuple[str, ...] = (),
    set_once: dict[str, Any] | None = None,
    initial: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An Update entry; ``condition`` may name ``#status`` and the ``:c_*`` placeholders of ``condition_values``.
    ``set_once`` values are set only where the item has none yet (``if_not_exists``). With ``initial`` (the
    record's fields) the write may also create the record: the condition passes where no record exists, and
    ``initial`` values are set once, like ``set_once``."""
    if initial is not None:
        condition = f"attribute_not_exists(message_id) OR {condition}"
    names = {"#status": "status"} if "#status" in condition else {}
    values: dict[str, Any] = {}
    clauses = []
    for i, (name, value) in enumerate(set_values.items()):
        names[f"#s{i}"] = name
        values[f":s{i}"] = attribute_value(value)
        clauses.append(f"#s{i} = :s{i}")
    for i, (name, value) in enumerate({**(set_once or {}), **(initial or {})}.items()):
        names[f"#i{i}"] = name
        values[f":i{i}"] = attribute_value(value)
        clauses.append(f"#i{i} = if_not_exists(#i{i}, :i{i})")
    expression = "SET " + ", ".join(clauses)
    if add:
        parts = []
        for i, (name, amount) in enumerate(add.items()):
            names[f"#a{i}"] = name
            values[f":a{i}"] = attribute_value(amount)
            parts.append(f"#a{i} :a{i}")
        expression += " ADD " + ", ".join(parts)
    if remove:
        for i, name in enumerate(remove):
            names[f"#r{i}"] = name
        expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(remove)))
    values.update({k: attribute_value(v) for k, v in (condition_values or {}).items()})
    return {
        "Update": {
            "TableName": table,
            "Key": {"message_id": {"S": message_id}},
            "UpdateExpression": expression,
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
    }


def note_dead_lettered(dynamodb, table: str, outcomes: list[Any], now: float) -> None:
    """Best effort: the reason on the records of messages moved to a DLQ after their last receive (their status
    stays as it was, so a redrive carries on from there). The move already carries the reason; a record that
    cannot be written now (the usual cause of such a failure) keeps its status and older reason."""
    for outcome in outcomes:
        try:
            dynamodb.update_item(
                **update(
                    table,
                    outcome.message_id,
                    set_values={"reason": f"in the DLQ after its last receive: {outcome.reason}", "updated_at": now},
                    condition="attribute_exists(message_id)",
                )["Update"]
            )
        except Exception:  # noqa: BLE001, S110 - the DLQ message has the reason either way
            pass


def count_duplicates(table: str, repeats: list[tuple[str, str]], now: float) -> list[dict[str, Any]]:
    """Note on each record the repeats of it that were ignored (shown by ``postline status``), each repeat a
    ``(message id, the SQS message id the application sent it in)``: kept as a set, so a repeat SQS delivers
    twice, or that two stages see, counts once. One entry per message, as a transaction may touch an item once."""
    by_message: dict[str, set[str]] = {}
    for message_id, sqs_message_id in repeats:
        by_message.setdefault(message_id, set()).add(sqs_message_id)
    return [
        update(
            table,
            message_id,
            set_values={"last_duplicate_at": now},
            add={"repeats": sqs_message_ids},
            condition="attribute_exists(message_id)",
        )
        for message_id, sqs_message_ids in by_message.items()
    ]


def old_status(old: dict[str, Any] | None) -> str | None:
    return old.get("status", {}).get("S") if old else None


def rendered_from(old: dict[str, Any] | None) -> str | None:
    """The inbound SQS message a record was rendered from (``rendered_by``): a copy of that one message is SQS's
    redelivery, not the application sending the message again."""
    return old.get("rendered_by", {}).get("S") if old else None


# Streams whose suppression checks ride in the stage's transaction as ConditionChecks (2 write units per key)
# instead of a batched read before it (half a read unit per key): one round trip less in each stage for the mail
# where latency matters most (password resets, sign-in codes), at a price only low-volume mail should pay.
CHECKED_IN_TRANSACTION = frozenset({"critical"})


def recorded_at_claim(stream: str, retried_streams: tuple[str, ...], retry: int | None) -> bool:
    """Whether render leaves a message's record to the send stage's claim, which creates it.

    Saves a transactional write per email (render's), at the price of a record that appears only when the send
    stage takes the message, so a duplicate is caught at the claim instead of before rendering. Only for
    streams whose suppressions are read before the transaction (critical mail records them together) and whose
    soft bounces are not retried (a retry replaces a sent record, which render decides).
    """
    return stream not in CHECKED_IN_TRANSACTION and stream not in retried_streams and not retry


def not_suppressed(table: str, key: dict[str, Any], queued_at: float) -> dict[str, Any]:
    """A ConditionCheck entry that holds while no suppression has ``key``, or only an erasure's mark made after
    ``queued_at`` (it stops only what was queued before it, ``suppression.blocks``); when it fails, the
    transaction's cancellation reason for this entry carries the suppression."""
    return {
        "ConditionCheck": {
            "TableName": table,
            "Key": key,
            "ConditionExpression": "attribute_not_exists(#key) OR (#reason = :erased AND suppressed_at <= :queued)",
            "ExpressionAttributeNames": {"#key": next(iter(key)), "#reason": "reason"},
            "ExpressionAttributeValues": {":erased": {"S": ERASED}, ":queued": attribute_value(queued_at)},
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
    }


class SuppressionChecks:
    """The ConditionChecks that let a transaction's writes happen only while their recipients are not suppressed:
    one check per suppression key however many writes need it, numbered from ``first_index`` (they go after the
    transaction's writes), and ``dependents`` as ``transact_write`` takes them."""

    def __init__(self, table: str, first_index: int) -> None:
        self.table, self.first_index = table, first_index
        self.entries: list[dict[str, Any]] = []
        self.dependents: dict[int, list[int]] = {}
        self._index: dict[tuple[str, str], int] = {}

    def require(self, write: int, names: list[str], stream: str, queued_at: float | None) -> list[int]:
        """Make the write at index ``write`` depend on no suppression of ``names`` (an address, and its erased
        form where erasure applies) in the scopes of ``stream`` stopping a message queued at ``queued_at``
        (unknown: 0, stopped by any); returns the indexes of its checks. A check shared by several writes holds
        for the earliest of them."""
        indexes = []
        queued = round(queued_at or 0.0, 3)
        for scope in scopes_for(stream):  # "all" first: it is the stronger reason to report
            for name in names:
                if (name, scope) not in self._index:
                    self._index[(name, scope)] = self.first_index + len(self.entries)
                    self.entries.append(
                        not_suppressed(self.table, {"email": {"S": name}, "scope": {"S": scope}}, queued)
                    )
                index = self._index[(name, scope)]
                values = self.entries[index - self.first_index]["ConditionCheck"]["ExpressionAttributeValues"]
                if queued < float(values[":queued"]["N"]):
                    values[":queued"] = attribute_value(queued)
                self.dependents.setdefault(index, []).append(write)
                indexes.append(index)
        return indexes


def describe_suppression(item: dict[str, Any] | None) -> str:
    """The reason recorded for a message whose suppression check failed on ``item`` (the suppression)."""
    if item is None:  # DynamoDB returns the item that failed the check; without it, say what is known
        return "suppressed"
    return describe(Suppression.from_raw_data(item))


def erased_suppression(item: dict[str, Any] | None) -> bool:
    """Whether the suppression a check failed on is kept under an erased name: the record must not hold the
    address either."""
    return bool(item) and is_erased_name(item.get("email", {}).get("S", ""))
