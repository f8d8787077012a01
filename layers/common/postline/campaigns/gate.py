"""The send stage's campaign gate: whether a queued email of a campaign may go now.

The fan-out stops handing on when a campaign is paused, cancelled or outside its window, but up to a backlog of
its emails are on the queues by then; the send stage asks the gate for each and holds them (they wait on their
queue, unclaimed) or drops them (cancelled). Campaigns are read with one BatchGetItem for a batch's campaigns
and kept ``cache_seconds`` per container, so a pause reaches the send stage within about a minute.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..dynamo import batch_get
from ..retries import SQS_MAX_DELAY_SECONDS
from .store import CANCELLED, DONE, RUNNING, Campaign
from .windows import Window

SEND, HOLD, DROP = "send", "hold", "drop"
HOLD_SECONDS = 60  # a paused (or not yet started) campaign's email looks again this soon


@dataclass(frozen=True)
class _Seen:
    at: float
    state: str | None  # None: no such campaign (a name an application gave its own messages)
    window: Window | None


class CampaignGate:
    def __init__(self, client, table: str, clock: Callable[[], float], cache_seconds: float = 30):
        self.client, self.table, self.clock, self.cache_seconds = client, table, clock, cache_seconds
        self._seen: dict[str, _Seen] = {}

    def verdicts(self, campaign_ids: Iterable[str]) -> dict[str, str]:
        """Each campaign's verdict: "hold" (paused, waiting, scheduled or outside its window), "drop"
        (cancelled) or "send" (running, done, or no such campaign)."""
        self._refresh(set(campaign_ids))
        return {campaign_id: self._verdict(self._seen[campaign_id]) for campaign_id in campaign_ids}

    def verdict(self, campaign_id: str) -> str:
        return self.verdicts([campaign_id])[campaign_id]

    def hold_seconds(self, campaign_id: str) -> int:
        """How long a held email waits on its queue: until the window opens (at most SQS's longest delay), else
        ``HOLD_SECONDS``."""
        seen, now = self._seen.get(campaign_id), self.clock()
        if seen is not None and seen.window is not None and not seen.window.contains(now):
            return min(SQS_MAX_DELAY_SECONDS, max(1, math.ceil(seen.window.next_start(now) - now)))
        return HOLD_SECONDS

    def _verdict(self, seen: _Seen) -> str:
        if seen.state is None:
            return SEND
        if seen.state == CANCELLED:
            return DROP
        if seen.state in (RUNNING, DONE) and (seen.window is None or seen.window.contains(self.clock())):
            return SEND
        return HOLD

    def _refresh(self, campaign_ids: set[str]) -> None:
        now = self.clock()
        due = sorted(c for c in campaign_ids if c not in self._seen or now - self._seen[c].at >= self.cache_seconds)
        if not due:
            return
        items = batch_get(self.client, {self.table: [{"campaign_id": {"S": c}} for c in due]})[self.table]
        found = {campaign.campaign_id: campaign for campaign in map(Campaign.from_item, items)}
        for campaign_id in due:
            campaign = found.get(campaign_id)
            self._seen[campaign_id] = _Seen(
                now, campaign.state if campaign else None, campaign.window if campaign else None
            )
