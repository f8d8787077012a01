"""The campaigns table: one item per campaign, its state moved only along ``MOVES`` by conditional writes, and the
fan-out's checkpoint (a byte offset in the audience, with a version every checkpoint write is conditional on).

Low-level DynamoDB calls on a client the caller passes (docs/campaigns-design.md gives the item's attributes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from ..dynamo import condition_failed
from ..records import attribute_value
from .windows import Window

DRAFT, SCHEDULED, RUNNING, WAITING, PAUSED, DONE, CANCELLED = (
    "draft",
    "scheduled",
    "running",
    "waiting",
    "paused",
    "done",
    "cancelled",
)
STATES = (DRAFT, SCHEDULED, RUNNING, WAITING, PAUSED, DONE, CANCELLED)
# state -> the states it may move to; anything else is refused.
MOVES: dict[str, tuple[str, ...]] = {
    DRAFT: (SCHEDULED, CANCELLED),
    SCHEDULED: (RUNNING, WAITING, PAUSED, CANCELLED),
    RUNNING: (WAITING, PAUSED, DONE, CANCELLED),
    WAITING: (RUNNING, PAUSED, CANCELLED),
    PAUSED: (SCHEDULED, RUNNING, CANCELLED),
    DONE: (PAUSED, CANCELLED),  # every recipient handed on, but their emails may still be queued: hold or drop them
    CANCELLED: (),
}
# What ``counts`` holds: handed to the marketing queue, skipped at fan-out (suppressed, repeated, refused by the
# queue), dropped by the send stage after a cancel, and rows refused at upload.
COUNTS = ("queued", "suppressed", "duplicate", "rejected", "cancelled", "invalid")


class CampaignExists(Exception):
    def __init__(self, campaign_id: str):
        super().__init__(f"a campaign named {campaign_id!r} exists already")
        self.campaign_id = campaign_id


class CampaignStateError(Exception):
    """A move the campaign's state does not allow; ``state`` is the state it is in."""

    def __init__(self, campaign_id: str, state: str | None, to: str):
        allowed = ", ".join(MOVES.get(state, ())) or "nothing"
        super().__init__(f"campaign {campaign_id!r} is {state}: it cannot become {to} (from {state}: {allowed})")
        self.campaign_id, self.state, self.to = campaign_id, state, to


class CampaignNotFound(CampaignStateError):
    def __init__(self, campaign_id: str, to: str):
        Exception.__init__(self, f"there is no campaign named {campaign_id!r}")
        self.campaign_id, self.state, self.to = campaign_id, None, to


@dataclass
class Campaign:
    campaign_id: str
    template: str
    audience_key: str
    start_at: float
    state: str = SCHEDULED
    data: dict[str, Any] = field(default_factory=dict)
    audience_bytes: int = 0
    audience_rows: int = 0
    window: Window | None = None
    state_at: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)  # [{"state": ..., "at": ...}]
    offset: int = 0  # byte offset in the audience of the next recipient to hand on
    position: int = 0  # recipients read so far
    version: int = 0  # the checkpoint's version
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))
    created_at: float = 0.0
    updated_at: float = 0.0
    # The control message (its SQS message id) whose run wrote the last checkpoint: that message, delivered again
    # after its run died, continues from the checkpoint rather than being taken for a stale one.
    run_by: str | None = None

    @property
    def external(self) -> bool:
        """A campaign an application names in its own messages (no audience here): its record exists only to hold
        its emails in the send stage while it is paused (postline.analytics.alerts)."""
        return not self.audience_key

    def to_item(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "campaign_id": attribute_value(self.campaign_id),
            "template": attribute_value(self.template),
            "data": attribute_value(json.dumps(self.data, separators=(",", ":"), ensure_ascii=False)),
            "audience_key": attribute_value(self.audience_key),
            "audience_bytes": attribute_value(self.audience_bytes),
            "audience_rows": attribute_value(self.audience_rows),
            "start_at": attribute_value(self.start_at),
            "state": attribute_value(self.state),
            "state_at": attribute_value(self.state_at),
            "history": {"L": [_history_entry(entry["state"], entry["at"]) for entry in self.history]},
            "offset": attribute_value(self.offset),
            "position": attribute_value(self.position),
            "version": attribute_value(self.version),
            "counts": {
                "M": {
                    name: attribute_value(value) for name, value in {**dict.fromkeys(COUNTS, 0), **self.counts}.items()
                }
            },
            "created_at": attribute_value(self.created_at),
            "updated_at": attribute_value(self.updated_at),
        }
        if self.window is not None:
            item["window"] = {"M": {name: attribute_value(value) for name, value in self.window.as_dict().items()}}
        if self.run_by is not None:
            item["run_by"] = attribute_value(self.run_by)
        return item

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Campaign:
        def number(name: str, default: float = 0) -> float:
            return float(item[name]["N"]) if name in item else default

        window = item.get("window", {}).get("M")
        return cls(
            campaign_id=item["campaign_id"]["S"],
            template=item["template"]["S"],
            audience_key=item["audience_key"]["S"],
            start_at=number("start_at"),
            state=item["state"]["S"],
            data=json.loads(item["data"]["S"]) if "data" in item else {},
            audience_bytes=int(number("audience_bytes")),
            audience_rows=int(number("audience_rows")),
            window=Window.from_dict({name: value["S"] for name, value in window.items()}) if window else None,
            state_at=number("state_at"),
            history=[
                {"state": e["M"]["state"]["S"], "at": float(e["M"]["at"]["N"])}
                for e in item.get("history", {}).get("L", [])
            ],
            offset=int(number("offset")),
            position=int(number("position")),
            version=int(number("version")),
            counts={
                **dict.fromkeys(COUNTS, 0),
                **{name: int(value["N"]) for name, value in item.get("counts", {}).get("M", {}).items()},
            },
            created_at=number("created_at"),
            updated_at=number("updated_at"),
            run_by=item.get("run_by", {}).get("S"),
        )


def create(client, table: str, campaign: Campaign) -> None:
    """Write a new campaign; ``CampaignExists`` if the name is taken. Its history starts with its state."""
    item = campaign.to_item()
    if not campaign.history:
        item["history"] = {"L": [_history_entry(campaign.state, campaign.state_at or campaign.created_at)]}
    try:
        client.put_item(TableName=table, Item=item, ConditionExpression="attribute_not_exists(campaign_id)")
    except ClientError as error:
        if condition_failed(error):
            raise CampaignExists(campaign.campaign_id) from None
        raise


def external(campaign_id: str, now: float, state: str) -> Campaign:
    """The record of a campaign an application runs itself (``Campaign.external``), in ``state``."""
    return Campaign(
        campaign_id,
        template="",
        audience_key="",
        start_at=now,
        state=state,
        state_at=now,
        created_at=now,
        updated_at=now,
    )


def get(client, table: str, campaign_id: str) -> Campaign | None:
    item = client.get_item(TableName=table, Key=_key(campaign_id), ConsistentRead=True).get("Item")
    return Campaign.from_item(item) if item else None


def list_all(client, table: str) -> list[Campaign]:
    campaigns = []
    for page in client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        campaigns += [Campaign.from_item(item) for item in page.get("Items", [])]
    return sorted(campaigns, key=lambda campaign: (campaign.created_at, campaign.campaign_id))


def move(client, table: str, campaign_id: str, to: str, *, now: float) -> Campaign:
    """Move the campaign to ``to`` if its state allows it (one conditional write), appending to its history;
    returns the campaign as it now is. ``CampaignStateError`` says which state it is in otherwise."""
    sources = [state for state, targets in MOVES.items() if to in targets]
    if to not in STATES or not sources:
        raise ValueError(f"unknown target state {to!r}")
    values = {f":from{i}": attribute_value(state) for i, state in enumerate(sources)}
    try:
        answer = client.update_item(
            TableName=table,
            Key=_key(campaign_id),
            UpdateExpression="SET #state = :to, state_at = :now, updated_at = :now, "
            "history = list_append(history, :entry)",
            ConditionExpression=f"attribute_exists(campaign_id) AND #state IN ({', '.join(values)})",
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues={
                ":to": attribute_value(to),
                ":now": attribute_value(now),
                ":entry": {"L": [_history_entry(to, now)]},
                **values,
            },
            ReturnValues="ALL_NEW",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    except ClientError as error:
        if not condition_failed(error):
            raise
        old = error.response.get("Item")
        current = Campaign.from_item(old) if old else get(client, table, campaign_id)
        if current is None:
            raise CampaignNotFound(campaign_id, to) from None
        raise CampaignStateError(campaign_id, current.state, to) from None
    return Campaign.from_item(answer["Attributes"])


def checkpoint(
    client,
    table: str,
    campaign_id: str,
    *,
    seen_version: int,
    offset: int,
    position: int,
    counts: dict[str, int],
    now: float,
    run_by: str | None = None,
) -> bool:
    """Record the fan-out's progress and add ``counts``, if the checkpoint is still at ``seen_version`` and the
    campaign still running; False otherwise (another run moved on, or it was paused, cancelled, ...), and nothing
    is written."""
    names = {"#offset": "offset", "#position": "position", "#version": "version", "#state": "state"}
    values: dict[str, Any] = {
        ":offset": attribute_value(offset),
        ":position": attribute_value(position),
        ":now": attribute_value(now),
        ":one": attribute_value(1),
        ":seen": attribute_value(seen_version),
        ":running": attribute_value(RUNNING),
    }
    assignments = ["#offset = :offset", "#position = :position", "updated_at = :now"]
    if run_by is not None:
        assignments.append("run_by = :run_by")
        values[":run_by"] = attribute_value(run_by)
    additions = ["#version :one", *_count_additions(counts, names, values)]
    return _update_if(
        client,
        TableName=table,
        Key=_key(campaign_id),
        UpdateExpression=f"SET {', '.join(assignments)} ADD {', '.join(additions)}",
        ConditionExpression="#version = :seen AND #state = :running",
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=values,
    )


def add_counts(client, table: str, campaign_id: str, counts: dict[str, int]) -> bool:
    """Add to the campaign's ``counts``; False when there is no such campaign."""
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    additions = _count_additions(counts, names, values)
    if not additions:
        return True
    return _update_if(
        client,
        TableName=table,
        Key=_key(campaign_id),
        UpdateExpression="ADD " + ", ".join(additions),
        ConditionExpression="attribute_exists(campaign_id)",
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=values,
    )


def _count_additions(counts: dict[str, int], names: dict[str, str], values: dict[str, Any]) -> list[str]:
    """``ADD`` clauses for the non-zero ``counts`` (their placeholders go into ``names`` and ``values``)."""
    additions = []
    for i, (name, amount) in enumerate(sorted((n, a) for n, a in counts.items() if a)):
        names[f"#c{i}"] = name
        values[f":c{i}"] = attribute_value(amount)
        additions.append(f"counts.#c{i} :c{i}")
    return additions


def _update_if(client, **request: Any) -> bool:
    """One conditional UpdateItem; False when its condition does not hold."""
    try:
        client.update_item(**request)
    except ClientError as error:
        if condition_failed(error):
            return False
        raise
    return True


def _key(campaign_id: str) -> dict[str, Any]:
    return {"campaign_id": attribute_value(campaign_id)}


def _history_entry(state: str, at: float) -> dict[str, Any]:
    return {"M": {"state": attribute_value(state), "at": attribute_value(at)}}
