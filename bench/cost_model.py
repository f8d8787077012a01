"""What a million emails cost in AWS, from the measured figures and written-down list prices.

Inputs, all measured by ``bench.lifecycle`` over the real handlers (see docs/cost-model.md for the method):
AWS calls per email by service and operation and phase, the request details that decide billing units (items
per transaction, keys per read, payload bytes per queue write, entries per EventBridge call), CPU time per
phase, bytes logged per phase, and the size of a message record. Everything that is not measured is an
assumption, stated below with its value; change them here, the docs page explains each.

Scope: postline's own infrastructure for one email's life with tracking on (render, send, its SES events,
opens and clicks), per million emails, at steady volume. SES's own charge is shown for reference only.
Fixed monthly costs (alarms, dashboards, idle queue polling, Secrets Manager's secret) are listed apart.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

PRICES_AS_OF = "2026-11-27"
REGION = "us-east-1"
PRICE_NOTE = f"list prices as known on {PRICES_AS_OF}, verify before relying ({REGION})"
# How long message records and event rows are kept: the default of settings message_ttl_days and event_ttl_days
# (config keys of the same names). The optional line prices keeping them LONGER_RETENTION_DAYS instead.
RETENTION_DAYS = 30
LONGER_RETENTION_DAYS = 90
DAYS_PER_MONTH = 30.4


@dataclass(frozen=True)
class Prices:
    """US East (N. Virginia) list prices, in USD."""

    sqs_per_million_requests: float = 0.40          # standard queues; each 64 KB chunk of a payload is a request
    lambda_per_gb_second_arm: float = 0.0000133334  # arm64
    lambda_per_million_requests: float = 0.20
    dynamodb_per_million_wru: float = 0.625          # on-demand; transactional writes cost 2 WRU per KB
    dynamodb_per_million_rru: float = 0.125          # on-demand; eventually consistent reads 0.5 RRU per 4 KB
    dynamodb_storage_per_gb_month: float = 0.25
    dynamodb_pitr_per_gb_month: float = 0.20         # continuous backups (point-in-time recovery), on table size
    ses_events_on_default_bus: float = 0.00          # events AWS services put on the default bus are free
    sns_per_million_publishes: float = 0.50          # SES's events on the SNS route (deliveries to SQS are free)
    eventbridge_per_million_events: float = 1.00     # custom events; each 64 KB chunk is an event
    api_gateway_http_per_million: float = 1.00       # HTTP API, first 300 M requests a month
    cloudwatch_logs_per_gb: float = 0.50             # ingestion (standard class)
    xray_per_million_traces: float = 5.00            # traces recorded; first 100,000 a month free
    ses_per_thousand_emails: float = 0.10            # reference only: what SES itself charges


@dataclass(frozen=True)
class Assumptions:
    """What the model does not measure."""

    # Tracking hits per email delivered (all fetches, people and machines: mail privacy proxies open every
    # image, so opens per email are high; clicks are a few percent).
    opens_per_email: float = 0.5
    clicks_per_email: float = 0.05
    # How applications enqueue: a newsletter is fanned out by the campaign function in batches of 10.
    inbound_messages_per_request: int = 10
    # Lambda CPU: the functions get memory/1769 of a vCPU; this machine's core is taken as one such vCPU.
    lambda_full_vcpu_mb: int = 1769
    # Round trips as seen from Lambda in the same region (milliseconds, typical, not measured here).
    latency_ms: dict[str, float] = field(default_factory=lambda: {
        "dynamodb.BatchGetItem": 5, "dynamodb.TransactWriteItems": 12, "dynamodb.BatchWriteItem": 8,
        "dynamodb.BatchExecuteStatement": 8,
        "dynamodb.GetItem": 4, "dynamodb.PutItem": 6, "dynamodb.UpdateItem": 6, "dynamodb.Query": 6,
        "sqs.SendMessageBatch": 20, "sqs.SendMessage": 10, "sqs.ChangeMessageVisibilityBatch": 10,
        "sesv2.SendEmail": 60, "events.PutEvents": 15, "s3.PutObject": 25, "s3.GetObject": 20,
        "secretsmanager.GetSecretValue": 20,
    })
    default_latency_ms: float = 10
    send_concurrency: int = 10
    # Function memory (infra/stacks/constants.py FUNCTIONS).
    memory_mb: dict[str, int] = field(default_factory=lambda: {
        "render": 512, "send": 512, "ses_events": 256, "track_open": 256, "track_click": 256, "unsubscribe": 256})
    # Emails whose Delivery (or bounce) comes later than SES's Send event is held back (a minute): their Send
    # event writes ``sent`` (a write unit) instead of only reading the record, as the bench measures for the
    # rest. Greylisting and slow or deferring mail servers; SES delivers most emails within seconds.
    deliveries_later_than_send_events: float = 0.05
    # Every item of every TransactWriteItems call made is charged, cancelled attempts included (an upper
    # bound: AWS does not document what a cancelled attempt is charged).
    # CloudWatch Logs bills 26 bytes of overhead per log event; API Gateway access logs, about 350 B a hit.
    log_event_overhead_bytes: int = 26
    access_log_bytes_per_hit: int = 350
    # X-Ray is off by default (config ``tracing``); when on, the default sampling rule traces 1 request a
    # second per function plus 5 % of the rest, so what a trace costs per email depends on the monthly volume.
    tracing: bool = False
    monthly_emails: float = 10_000_000
    xray_reservoir_per_second: float = 1.0
    xray_fixed_rate: float = 0.05
    # Storage: email_events items live event_ttl_days (default 30), message records message_ttl_days (30);
    # point-in-time recovery on those two history tables only when config backup_history is true (the other
    # tables always have it, but they do not grow with the emails sent).
    backup_history: bool = False
    event_retention_months: float = RETENTION_DAYS / DAYS_PER_MONTH
    message_retention_months: float = RETENTION_DAYS / DAYS_PER_MONTH


# phase (as measured by bench.lifecycle) -> function
PHASE_FUNCTION = {"render": "render", "send": "send", "ses_events Send": "ses_events",
                  "ses_events Delivery": "ses_events", "track_open": "track_open", "track_click": "track_click"}
_CHUNK = 64 * 1024
# Queues a function consumes (infra: 3 inbound, 3 send, the SES events queue, and on the EventBridge route the
# SES Send events queue).
QUEUES_WITH_MAPPING = {"sns": 7, "eventbridge": 8}
# The figure each route is held to: issue 20 set the SNS route's (the default); the other is reported beside it.
TARGET_USD = {"sns": 6.0, "eventbridge": 6.0}


def _chunks(size: int) -> int:
    return max(1, math.ceil(size / _CHUNK))


def _kb_units(size: int) -> int:
    return max(1, math.ceil(size / 1024))


def model(scenario: dict[str, Any], prices: Prices = Prices(), assume: Assumptions = Assumptions()) -> dict[str, Any]:
    """Cost per million emails for one measured scenario (bench.lifecycle's row)."""
    emails = scenario["emails"]
    phases = scenario["phases"]
    # How often each phase happens per email: the pipeline phases once, the tracking hits at their rates.
    per_email = {name: 1 / emails for name in phases}
    per_email["track_open"] = assume.opens_per_email / phases["track_open"].get("hits", 1)
    per_email["track_click"] = assume.clicks_per_email / phases["track_click"].get("hits", 1)
    record_bytes = max(scenario.get("message_item_bytes") or [400])

    wru = rru = 0.0
    wru_by: dict[str, float] = {}
    sqs_requests: dict[str, float] = {}
    eventbridge_events = 0.0
    invocations: dict[str, float] = {}
    gb_seconds: dict[str, float] = {}
    log_bytes = 0.0
    for name, phase in phases.items():
        weight = per_email[name]
        function = PHASE_FUNCTION[name]
        batches = phase.get("batches", phase.get("hits", 1))  # invocations: a batch each, or a hit each
        invocations[function] = invocations.get(function, 0) + batches * weight
        # Lambda duration: CPU scaled to the function's share of a vCPU, plus the round trips it waits on.
        memory = assume.memory_mb[function]
        cpu_ms = phase["cpu_s"] * 1000 * assume.lambda_full_vcpu_mb / memory
        wait_ms = 0.0
        for request in phase["requests"]:
            op = request["op"]
            latency = assume.latency_ms.get(op, assume.default_latency_ms)
            wait_ms += latency / assume.send_concurrency if op == "sesv2.SendEmail" else latency
            # DynamoDB units
            if op == "dynamodb.TransactWriteItems":
                units = 0
                for item in request["items"]:
                    size = (record_bytes if item["table"].endswith("messages") and item["kind"] == "Update"
                            else item["bytes"])
                    units += 2 * _kb_units(size)
                wru += units * weight
                wru_by[name] = wru_by.get(name, 0) + units * weight
            elif op in ("dynamodb.BatchWriteItem", "dynamodb.BatchExecuteStatement"):  # 1 WRU per KB each
                units = sum(_kb_units(i["bytes"]) for i in request["items"])
                wru += units * weight
                wru_by[name] = wru_by.get(name, 0) + units * weight
            elif op in ("dynamodb.PutItem", "dynamodb.UpdateItem", "dynamodb.DeleteItem"):
                units = _kb_units(request.get("bytes", record_bytes))
                wru += units * weight
                wru_by[name] = wru_by.get(name, 0) + units * weight
            elif op == "dynamodb.BatchGetItem":  # a strongly consistent read costs twice an eventual one
                consistent = request.get("consistent", [])
                rru += sum((1.0 if table in consistent else 0.5) * keys
                           for table, keys in request["keys"].items()) * weight
            elif op in ("dynamodb.GetItem", "dynamodb.Query"):
                rru += 0.5 * weight
            elif op == "sqs.SendMessageBatch":
                sqs_requests["render -> send queue"] = (sqs_requests.get("render -> send queue", 0)
                                                        + _chunks(request["bytes"]) * weight)
            elif op == "sqs.SendMessage":
                sqs_requests[f"{name} SendMessage"] = (sqs_requests.get(f"{name} SendMessage", 0)
                                                       + _chunks(request["bytes"]) * weight)
            elif op == "events.PutEvents":
                eventbridge_events += request["entries"] * weight
        duration_s = (cpu_ms + wait_ms) / 1000
        gb_seconds[function] = gb_seconds.get(function, 0) + duration_s * memory / 1024 * weight
        log_bytes += (phase.get("log_bytes", 0) + phase.get("log_lines", 0) * assume.log_event_overhead_bytes) * weight
        # The event source mapping's receive (payload in 64 KB chunks) and delete, per batch.
        if "sqs_bytes_in" in phase:
            sqs_requests[f"{function} receive + delete"] = sqs_requests.get(f"{function} receive + delete", 0) + (
                _chunks(phase["sqs_bytes_in"] / batches) + 1) * batches * weight
    # The inbound queue: the application's write and the render mapping's receive + delete.
    inbound = scenario.get("inbound_bytes_per_email", 2000)
    per_request = assume.inbound_messages_per_request
    sqs_requests["application -> inbound queue"] = _chunks(inbound * per_request) / per_request
    sqs_requests["render receive + delete"] = (_chunks(inbound * emails) + 1) / emails
    hits = assume.opens_per_email + assume.clicks_per_email
    log_bytes += hits * assume.access_log_bytes_per_hit
    route = scenario.get("ses_event_route", "eventbridge")
    ses_events = sum(phases[n].get("events", 0) for n in phases if n.startswith("ses_events")) / emails
    sns_publishes = sum(phases[n].get("sns_publishes", 0) for n in phases if n.startswith("ses_events")) / emails
    # The delivery of each SES event into its queue (by the rule, or by SNS) is a SendMessage the queue's owner
    # pays for.
    sqs_requests["SES events -> events queues"] = ses_events
    if "ses_events Send" in phases:
        # The bench applies every Delivery before its Send event; for the late ones the Send event writes too.
        late_sends = assume.deliveries_later_than_send_events * _kb_units(record_bytes)
        wru += late_sends
        wru_by["ses_events Send (late deliveries)"] = late_sends

    # X-Ray: traces per function per month under the default rule.
    seconds_per_month = DAYS_PER_MONTH * 86_400
    traces = 0.0
    for _function, per in invocations.items():
        monthly = per * assume.monthly_emails
        reservoir = assume.xray_reservoir_per_second * seconds_per_month
        traces += min(monthly, reservoir) + assume.xray_fixed_rate * max(0.0, monthly - reservoir)
    traces = max(0.0, traces - 100_000)  # the free tier
    traces_per_email = traces / assume.monthly_emails
    # Every application event that exists but the default configuration does not publish, for the optional line.
    all_app_events = 2 + hits  # sent, delivered, and one per open or click

    # Storage accrued over the retention, per email.
    event_items = [i for n in phases for r in phases[n]["requests"] if r["op"] in ("dynamodb.BatchWriteItem",)
                   for i in r["items"]]
    event_rows = len(event_items) / emails + hits
    event_bytes = sum(i["bytes"] for i in event_items) / emails + hits * 190

    def stored_gb_months(message_months: float, event_months: float) -> float:
        return ((record_bytes + 100) * message_months + (event_bytes + 100 * event_rows) * event_months) / 1e9

    storage_gb_months = stored_gb_months(assume.message_retention_months, assume.event_retention_months)
    # Keeping both LONGER_RETENTION_DAYS, for the optional line (shown only when it is longer than what is assumed).
    longer = LONGER_RETENTION_DAYS / DAYS_PER_MONTH
    longer_gb_months = stored_gb_months(max(longer, assume.message_retention_months),
                                        max(longer, assume.event_retention_months))

    million = 1_000_000
    items = [
        ("DynamoDB writes", wru * prices.dynamodb_per_million_wru,
         f"{wru:.1f} WRU/email: " + ", ".join(f"{k} {v:.1f}" for k, v in
                                              sorted(wru_by.items(), key=lambda kv: -kv[1]))),
        ("DynamoDB reads", rru * prices.dynamodb_per_million_rru, f"{rru:.2f} RRU/email"),
        ("DynamoDB storage", storage_gb_months * million * prices.dynamodb_storage_per_gb_month,
         f"{storage_gb_months * 1e9 / 1024:.2f} KB-months/email (events "
         f"{assume.event_retention_months * DAYS_PER_MONTH:.0f} days, records "
         f"{assume.message_retention_months * DAYS_PER_MONTH:.0f})"),
        ("SNS (SES events)", sns_publishes * prices.sns_per_million_publishes,
         f"{sns_publishes:.1f} publishes/email by SES (every event but Send); deliveries to SQS are free")
        if route == "sns" else
        ("EventBridge (SES events, default bus)", ses_events * prices.ses_events_on_default_bus,
         f"{ses_events:.1f} events/email, published by SES: free"),
        ("EventBridge (application events)", eventbridge_events * prices.eventbridge_per_million_events,
         f"{eventbridge_events:.2f} events/email"),
        ("SQS", sum(sqs_requests.values()) * prices.sqs_per_million_requests,
         f"{sum(sqs_requests.values()):.2f} requests/email: " + ", ".join(
             f"{k} {v:.2f}" for k, v in sorted(sqs_requests.items(), key=lambda kv: -kv[1]))),
        ("Lambda duration", sum(gb_seconds.values()) * prices.lambda_per_gb_second_arm * million,
         f"{sum(gb_seconds.values()) * 1000:.2f} GB-ms/email: " + ", ".join(
             f"{k} {v * 1000:.2f}" for k, v in sorted(gb_seconds.items(), key=lambda kv: -kv[1]))),
        ("Lambda requests", sum(invocations.values()) * prices.lambda_per_million_requests,
         f"{sum(invocations.values()):.2f} invocations/email"),
        ("API Gateway (opens, clicks)", hits * prices.api_gateway_http_per_million, f"{hits:.2f} requests/email"),
        ("CloudWatch Logs", log_bytes / 1e9 * prices.cloudwatch_logs_per_gb * million,
         f"{log_bytes:.0f} B/email (function logs + access logs)"),
    ]
    xray = ("X-Ray traces (config tracing: true)", traces_per_email * prices.xray_per_million_traces,
            f"{traces_per_email:.3f} traces/email at {assume.monthly_emails / 1e6:g} M emails a month")
    announced = ("every application event (config app_events: all)",
                 max(0.0, all_app_events - eventbridge_events) * prices.eventbridge_per_million_events,
                 f"{all_app_events:.2f} events/email instead of {eventbridge_events:.2f}: sent, delivered, opens, "
                 "clicks")
    backups = ("DynamoDB point-in-time recovery of the history (config backup_history: true)",
               storage_gb_months * million * prices.dynamodb_pitr_per_gb_month,
               "continuous backups, billed on the same table size")
    # What keeping the history longer adds: its storage, and its backups too when backup_history is on.
    kept_longer = (f"history kept {LONGER_RETENTION_DAYS} days (config message_ttl_days/event_ttl_days: "
                   f"{LONGER_RETENTION_DAYS})",
                   (longer_gb_months - storage_gb_months) * million * (
                       prices.dynamodb_storage_per_gb_month
                       + (prices.dynamodb_pitr_per_gb_month if assume.backup_history else 0.0)),
                   f"{longer_gb_months * 1e9 / 1024:.2f} KB-months/email instead of "
                   f"{storage_gb_months * 1e9 / 1024:.2f}: postline status, the duplicate window and opens/clicks "
                   f"recorded for {LONGER_RETENTION_DAYS} days")
    items += [item for item, on in ((xray, assume.tracing), (backups, assume.backup_history)) if on]
    items.sort(key=lambda row: -row[1])
    total = sum(cost for _, cost, _ in items)
    optional = [announced] + [item for item, on in ((xray, assume.tracing), (backups, assume.backup_history))
                              if not on]
    if longer_gb_months > storage_gb_months:
        optional.append(kept_longer)
    ses = prices.ses_per_thousand_emails * 1000
    return {
        "per_million_emails": [{"item": name, "usd": cost, "detail": detail} for name, cost, detail in items],
        "total_usd": total, "ses_usd": ses, "share_of_ses": total / ses, "target_usd": TARGET_USD[route],
        "ses_event_route": route,
        "optional_per_million_emails": [{"item": name, "usd": cost, "detail": detail}
                                        for name, cost, detail in optional],
        "note": PRICE_NOTE, "prices": asdict(prices), "assumptions": asdict(assume),
    }


def fixed_monthly_costs(prices: Prices = Prices(), route: str = "sns") -> list[tuple[str, str]]:
    """Costs that do not grow with the number of emails (not in the per-email total)."""
    idle = QUEUES_WITH_MAPPING[route]
    idle_receives = idle * 5 * 3 * 60 * 24 * DAYS_PER_MONTH  # 5 pollers a queue, each a 20 s long poll
    return [
        ("idle queue polling", f"Lambda's SQS pollers long-poll every queue with a mapping ({idle} queues): about "
                               f"{idle_receives / 1e6:.1f} M empty receives a month, "
                               f"${idle_receives / 1e6 * prices.sqs_per_million_requests:.2f}"),
        ("Secrets Manager", "one secret, $0.40 a month, plus $0.05 per 10,000 reads (a read per container per 10 min)"),
        ("CloudWatch", "alarms ($0.10 each a month) and the dashboard ($3 a month)"),
        *([("KMS", "the SES events topic's key, $1 a month; SNS reuses a data key for up to 5 minutes, about 18,000 "
                   "requests a month for SES as the one publisher, within KMS's free 20,000")] if route == "sns"
          else []),
    ]
