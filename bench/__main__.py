"""``make bench``: measure every figure beside its floor, print one figures table (figure, floor, ratio, target)
and the cost breakdown, and write it all to bench/results/latest.json. Benchmarks never pass or fail on time.

    python -m bench [--only calls,cpu,cold,stack,rate,campaigns] [--newsletter 5000] [--backlog 1000] [--cold-runs 7]

  calls  AWS calls per email over the real handlers (bench.lifecycle), and the cost model built on them
  cpu    CPU per rendered email against bare Jinja2 + stdlib MIME (bench.cpu), for the sample templates and
         the corpus of tests/fixtures/templates; and the time to publish that corpus
  cold   handler import time against boto3 + its clients, fresh processes (bench.coldstart); and the import
         from the layer as Lambda mounts it, with and without the bytecode compiled at deploy
  stack  the whole local stack: newsletter throughput against bare SendEmail, critical latency idle and under
         a marketing backlog (bench.pipeline)
  rate   the shared sending-rate limiter on the whole local stack with the local SES at 50/s: rate utilisation
         under a backlog, seconds over the rate, SES's throttles, critical latency, limiter writes per email, and
         the same beside another sender taking 30 % of the rate, nothing lost or sent twice (bench.rate)
  campaigns  a campaign's fan-out on the local AWS endpoint, in a process of its own: recipients per second,
         runs and checkpoints, AWS calls per recipient, peak memory for 10,000 and 100,000 recipients, and a run
         whose process is killed several times, every id on the marketing queue checked (bench.campaigns;
         10 million recipients in AWS on paper: docs/campaigns-at-scale.md)
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
SECTIONS = ("calls", "cpu", "cold", "stack", "rate", "campaigns")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections to run")
    parser.add_argument("--newsletter", type=int, default=5000, help="emails in the throughput run")
    parser.add_argument("--backlog", type=int, default=1000, help="marketing emails queued for the latency run")
    parser.add_argument("--floor-sends", type=int, default=1000, help="bare SendEmail calls in the floor run")
    parser.add_argument("--cold-runs", type=int, default=7, help="fresh processes per cold-start figure")
    parser.add_argument("--ses-route", choices=("sns", "eventbridge"), default="sns",
                        help="how SES's events reach the local stack in the stack section")
    parser.add_argument("--rate-backlog", type=int, default=10_000,
                        help="marketing emails in the rate section's backlog, postline the only sender")
    parser.add_argument("--rate-outside-backlog", type=int, default=5_000,
                        help="marketing emails in the rate section's run beside another sender")
    parser.add_argument("--rate-ses-rate", type=float, default=50.0,
                        help="the local SES's sending rate in the rate section (emails/s; the issue's target is at 50)")
    parser.add_argument("--rate-send-pollers", type=int, default=2,
                        help="send pollers per send queue in the rate section (the local stack's default: 2)")
    parser.add_argument("--campaign-audiences", default="10000,100000",
                        help="recipients of the campaigns section's fan-out runs (peak memory compared between them)")
    parser.add_argument("--campaign-kill-audience", type=int, default=10_000,
                        help="recipients of the campaigns section's run whose fan-out process is killed")
    parser.add_argument("--campaign-kills", type=int, default=3, help="SIGKILLs in that run (at most 4: the "
                        "control message is received once more each time, within the redrive policy's 5)")
    parser.add_argument("--out", default="latest.json", help="file name in bench/results/")
    args = parser.parse_args()
    sections = [s for s in args.only.split(",") if s]

    figures: dict = {"machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine(),
                                 "cores": os.cpu_count()},
                     "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                     "command": "make bench  (.venv/bin/python -m bench " + " ".join(sys.argv[1:]) + ")"}
    if "calls" in sections:
        from . import cost_model, lifecycle

        _progress("AWS calls per email over the real handlers, SES's events through SNS (the default route)")
        figures["lifecycle"] = lifecycle.measure("sns")
        figures["cost"] = cost_model.model(figures["lifecycle"]["marketing, batch of 10"])
        figures["cost"]["fixed_monthly"] = cost_model.fixed_monthly_costs(route="sns")
        _progress("the same, SES's events through EventBridge (ses_event_route: eventbridge)")
        eventbridge = lifecycle.measure("eventbridge")
        figures["cost_eventbridge"] = cost_model.model(eventbridge["marketing, batch of 10"])
        figures["cost_eventbridge"]["fixed_monthly"] = cost_model.fixed_monthly_costs(route="eventbridge")
    if "cpu" in sections:
        from . import cpu

        _progress("CPU per rendered email")
        figures["cpu"] = cpu.measure()
        _progress("the template corpus (tests/fixtures/templates): publish time and CPU per rendered email")
        figures["cpu_corpus"] = cpu.measure_corpus()
    if "cold" in sections:
        from . import coldstart

        _progress("cold start, fresh processes")
        figures["cold_start"] = coldstart.measure(runs=args.cold_runs)
        _progress("cold start from the layer as Lambda mounts it, with and without its bytecode")
        figures["layer_bytecode"] = coldstart.layer_bytecode(runs=max(3, args.cold_runs // 2))
    if "stack" in sections:
        figures["stack"] = _stack(args)
    if "rate" in sections:
        from . import rate

        figures["rate"] = rate.measure(args.rate_backlog, args.rate_outside_backlog, args.rate_send_pollers,
                                        args.rate_ses_rate)
    if "campaigns" in sections:
        from . import campaigns

        audiences = tuple(int(n) for n in args.campaign_audiences.split(",") if n)
        figures["campaigns"] = campaigns.measure(audiences, args.campaign_kill_audience, args.campaign_kills)

    rows = table(figures)
    figures["table"] = rows
    print_table(rows)
    if "rate" in figures:
        from . import rate

        print()
        print("\n".join(rate.report(figures["rate"])))
    if "campaigns" in figures:
        from . import campaigns

        print()
        print("\n".join(campaigns.report(figures["campaigns"])))
    if "cost" in figures:
        print_cost(figures["cost"])
    if "cost_eventbridge" in figures:
        print_cost(figures["cost_eventbridge"])
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / args.out).write_text(json.dumps(figures, indent=2, default=str))
    print(f"\nwritten to {RESULTS / args.out}")


def _progress(what: str) -> None:
    print(f"... {what}", file=sys.stderr, flush=True)


def _stack(args) -> dict:
    from . import pipeline

    out = {}
    with pipeline.RunningStack(args.ses_route) as stack:
        _progress("local stack: critical latency, idle")
        out["critical_idle"] = pipeline.critical_latency(stack, samples=30)
        stack.wait_idle()
        _progress(f"local stack: critical latency under a backlog of {args.backlog} marketing emails")
        out["critical_backlog"] = pipeline.critical_latency_under_backlog(stack, args.backlog)
        stack.wait_idle(timeout=max(600, args.backlog * 2))
        width = int(os.environ.get("POSTLINE_SEND_CONCURRENCY", "10"))

        def measured(what: str, emails: int, run):
            """``run()``'s figure, and the endpoint's CPU per email until the stack is idle again."""
            _progress(f"local stack: {what}")
            cpu_before = stack.endpoint_cpu_seconds()
            figure = run()
            stack.wait_idle(timeout=max(600, emails))  # the SES events of these sends included
            cpu_after = stack.endpoint_cpu_seconds()
            cpu = None if cpu_before is None or cpu_after is None else (cpu_after - cpu_before) * 1000 / emails
            return figure, cpu

        def floor(when: str):
            return measured(f"floor {when}, {args.floor_sends} bare SendEmail calls, {width} at a time",
                            args.floor_sends, lambda: pipeline.send_floor(stack, args.floor_sends, width))

        # The floor on both sides of the newsletter, so that a machine slowing down or speeding up between the
        # two measurements moves the floor with it.
        before, before_cpu = floor("before")
        out["newsletter"], newsletter_cpu = measured(f"newsletter of {args.newsletter}", args.newsletter,
                                                     lambda: pipeline.newsletter_throughput(stack, args.newsletter))
        after, after_cpu = floor("after")
        rates = [before["emails_per_second"], after["emails_per_second"]]
        out["floor"] = {**before, "emails_per_second": statistics.mean(rates),
                        "before_and_after": [round(rate, 1) for rate in rates]}
        if None not in (newsletter_cpu, before_cpu, after_cpu):
            out["endpoint_cpu_ms_per_email"] = {"newsletter": newsletter_cpu,
                                                "floor": statistics.mean([before_cpu, after_cpu])}
    return out


def table(figures: dict) -> list[dict]:
    """One row per figure: what, measured, floor, ratio, target (units in the text)."""
    rows = []

    def row(figure, measured, floor, ratio, target, unit=""):
        rows.append({"figure": figure, "measured": measured, "floor": floor, "ratio": ratio, "target": target,
                     "unit": unit})

    for label, scenario in figures.get("lifecycle", {}).items():
        calls = ", ".join(f"{k.split('.')[1]} {v}" for k, v in sorted(scenario["calls"].items(), key=lambda kv: -kv[1]))
        target = "<= 2.0" if scenario["emails"] > 1 else "<= 5"
        # Floor: one SESv2 SendEmail per email, the one call nothing can remove.
        row(f"AWS calls per email, {label} ({calls})", round(scenario["per_email"], 2), 1.0,
            round(scenario["per_email"], 2), target)
    for name, r in figures.get("cpu", {}).items():
        row(f"CPU per rendered email, {name} ({r['mime_bytes'] // 1000} KB MIME)", round(r["postline_ms"], 2),
            round(r["floor_ms"], 2), round(r["ratio"], 2), "<= 2x", "ms")
    if corpus := figures.get("cpu_corpus"):
        worst = corpus["emails"][corpus["worst"]]
        row(f"CPU per rendered email, the {corpus['templates']}-template corpus, mean of one email each (floor: the "
            "same bare Jinja2 + MIME)", round(corpus["mean_postline_ms"], 2), round(corpus["mean_floor_ms"], 2),
            round(corpus["mean_ratio"], 2), "<= 2x", "ms")
        row(f"  its highest ratio, {corpus['worst']} ({worst['mime_bytes'] // 1000} KB MIME)",
            round(worst["postline_ms"], 2), round(worst["floor_ms"], 2), round(worst["ratio"], 2), "<= 2x", "ms")
        row(f"publish the {corpus['templates']}-template corpus, templates push --dry-run's path: load, lint, "
            "prepare (floor: compiling its files with bare Jinja2)", round(corpus["publish_ms"]),
            round(corpus["publish_floor_ms"]), round(corpus["publish_ms"] / corpus["publish_floor_ms"], 1),
            "(no target)", "ms")
    for name, r in figures.get("cold_start", {}).items():
        row(f"cold start, {name} (import; floor: boto3 + {', '.join(r['clients'])})", round(r["handler_ms"]),
            round(r["floor_ms"]), round(r["ratio"], 2), "<= 1.3x", "ms")
    for name, r in figures.get("cold_start", {}).items():
        row(f"cold start, {name}, against the same floor built without garbage collection, as the functions build "
            "their cold start (postline/init_phase.py)", round(r["handler_ms"]), round(r["floor_paused_ms"]),
            round(r["ratio_same_collector"], 2), "(the overhead alone)", "ms")
    for name, r in figures.get("layer_bytecode", {}).items():
        row(f"cold start, {name}, from the read-only layer with the bytecode compiled at deploy (floor column: the "
            "same layer without it, as shipped before)", round(r["with_ms"]), round(r["without_ms"]),
            round(r["with_ms"] / r["without_ms"], 2), "(the compiler's effect)", "ms")
    stack = figures.get("stack")
    if stack:
        n, f = stack["newsletter"], stack["floor"]
        row(f"local throughput, {n['emails']:,}-email newsletter, SendMessage -> outbox (floor: bare SendEmail, "
            f"{f['width']} at a time, mean of before {f['before_and_after'][0]} and after {f['before_and_after'][1]})",
            round(n["emails_per_second"], 1), round(f["emails_per_second"], 1),
            round(n["emails_per_second"] / f["emails_per_second"], 2), ">= 0.4", "emails/s")
        cpu = stack.get("endpoint_cpu_ms_per_email")
        if cpu:
            row("local AWS endpoint CPU per newsletter email, its SES events included (floor: per bare SendEmail "
                "and its events)", round(cpu["newsletter"], 1), round(cpu["floor"], 1),
                round(cpu["newsletter"] / cpu["floor"], 2), "(explains the throughput)", "ms")
        idle, busy = stack["critical_idle"], stack["critical_backlog"]
        row(f"critical email p99, SendMessage -> outbox, while {busy['backlog']:,} marketing drain "
            f"(floor: idle p99, same run)", round(busy["p99_s"] * 1000), round(idle["p99_s"] * 1000),
            round(busy["p99_s"] / idle["p99_s"], 1), "(no target yet)", "ms")
    rate = figures.get("rate")
    if rate:
        a, b, idle, limit = rate["alone"], rate["outside"], rate["critical_idle"], rate["ses_rate"]
        row(f"sending rate used while a {a['emails']:,}-email backlog drains, postline alone, local SES at {limit:g}/s "
            f"(floor: the rate; ramp-up left out: until {rate['ramp_up_excluded_s']:g} s after it is all enqueued)",
            round(a["utilisation"]["per_second"], 1), limit, round(a["utilisation"]["utilisation"], 3), ">= 0.95",
            "emails/s")
        alone = a["after_render"]
        busy = "-" if alone["cpu_busy"] is None else f"{alone['cpu_busy']:.0%}"
        row(f"  the same once render had emptied the inbound queue ({alone['seconds']:.0f} s; machine CPU busy "
            f"{busy} of {os.cpu_count()} cores)", round(alone["per_second"], 1), limit,
            round(alone["utilisation"], 3), ">= 0.95", "emails/s")
        for label, figure in (("the backlog", a["utilisation"]), ("after render", alone)):
            stops = figure.get("endpoint_pauses")
            if stops and figure["utilisation_while_answering"] is not None:
                row(f"  {label}, the local endpoint's own garbage-collection stops ({stops['seconds']:.1f} s) left out",
                    round(figure["utilisation_while_answering"] * limit, 1), limit,
                    round(figure["utilisation_while_answering"], 3), "(reading aid)", "emails/s")
        row("busiest one-second window of accepted sends, sliding (floor: the rate)", a["windows"]["sliding_max"],
            limit, round(a["windows"]["sliding_max"] / limit, 2), "<= 1.0")
        row("calendar seconds with more accepted sends than the rate", a["windows"]["calendar_over"], 0, "-", "0")
        row("SES throttling errors while the backlog drains, postline alone", a["throttles"], 0, "-", "0")
        if "p99_s" in a["critical_backlog"] and "p99_s" in idle:
            row("critical email p99, SendMessage -> SES accepts, during that backlog (floor: idle p99, same run)",
                round(a["critical_backlog"]["p99_s"] * 1000), round(idle["p99_s"] * 1000),
                round(a["critical_backlog"]["p99_s"] / idle["p99_s"], 1), "< 2000 ms", "ms")
        row("limiter DynamoDB writes per email (floor: one per batch of 10)", round(a["writes_per_email"], 3), 0.1,
            round(a["writes_per_email"] / 0.1, 2), "<= 0.15")
        row(f"sending rate used beside another sender at {b['outside_rate']:g}/s, both senders (floor: the rate)",
            round(b["total"]["per_second"], 1), limit, round(b["total"]["utilisation"], 3), "(no target yet)",
            "emails/s")
        row(f"  of which postline's, {b['emails']:,}-email backlog (floor: the rate less the other sender's "
            f"{b['outside_rate']:g}/s)", round(b["postline"]["per_second"], 1), limit - b["outside_rate"],
            round(b["postline"]["per_second"] / (limit - b["outside_rate"]), 3), "(no target yet)", "emails/s")
        row("emails lost or sent twice, beside another sender", b["once"]["lost"] + b["once"]["sent_twice"], 0, "-",
            "0")
    campaigns = figures.get("campaigns")
    if campaigns:
        floor, runs = campaigns["floor"], campaigns["fan_out"]
        for r in runs.values():
            row(f"campaign fan-out, {r['recipients']:,} recipients -> marketing queue, local endpoint, one process "
                f"({r['runs']} runs; floor: the same messages by bare SendMessageBatch, 10 a call, one at a time)",
                round(r["recipients_per_second"]), round(floor["per_second"]),
                round(r["recipients_per_second"] / floor["per_second"], 2), "(no target)", "recipients/s")
        largest = runs[max(runs, key=int)]
        calls = ", ".join(f"{op.split('.')[1]} {n:.3f}".rstrip("0")
                          for op, n in largest["calls_per_recipient_by_operation"].items() if n >= 0.001)
        row(f"AWS calls per recipient, fan-out of {largest['recipients']:,} ({calls}; floor: one SendMessageBatch "
            "per 10)", round(largest["calls_per_recipient"], 3), 0.1, round(largest["calls_per_recipient"] / 0.1, 2),
            "<= 0.25")
        row(f"checkpoints, fan-out of {largest['recipients']:,} (floor: one per page of {campaigns['page']})",
            largest["checkpoints"], largest["recipients"] // campaigns["page"],
            round(largest["checkpoints"] / (largest["recipients"] / campaigns["page"]), 2), "= 1 per page")
        if len(runs) > 1:
            smallest = runs[min(runs, key=int)]
            row(f"fan-out process peak memory while fanning out {largest['recipients']:,} recipients (floor: the "
                f"same for {smallest['recipients']:,})", round(largest["peak_rss_mb"], 1),
                round(smallest["peak_rss_mb"], 1), round(largest["peak_rss_mb"] / smallest["peak_rss_mb"], 3),
                "<= 1.1", "MB")
        kill = campaigns["kill"]
        row(f"recipients skipped, {kill['recipients']:,} recipients, the fan-out process killed {kill['kills']} "
            "times (ids on the marketing queue)", kill["skipped"], 0, "-", "0")
        row("  ids on the marketing queue not in the audience", kill["not_in_audience"], 0, "-", "0")
        row("  ids repeated by the kills (pages sent again; render takes a repeated id for a duplicate: no second "
            "email)", kill["repeated_ids"], 0, "-", "(no email twice)")
    for key, route in (("cost", "SNS route, the default"), ("cost_eventbridge", "EventBridge route")):
        cost = figures.get(key)
        if cost:
            row(f"cost per million emails in AWS, tracking on, SES's events by the {route} (floor: SES's own $100)",
                round(cost["total_usd"], 2), cost["ses_usd"], round(cost["share_of_ses"], 3),
                f"<= ${cost['target_usd']:.0f} ({cost['target_usd'] / cost['ses_usd']:.2f})", "$")
    return rows


def print_table(rows: list[dict]) -> None:
    width = max((len(r["figure"]) for r in rows), default=10)
    print(f"\n{'figure':<{width}}  {'measured':>10}  {'floor':>9}  {'ratio':>7}  target")
    for r in rows:
        unit = f" {r['unit']}" if r["unit"] and r["unit"] != "$" else ""
        measured = f"${r['measured']}" if r["unit"] == "$" else f"{r['measured']}{unit}"
        floor = f"${r['floor']}" if r["unit"] == "$" else f"{r['floor']}"
        print(f"{r['figure']:<{width}}  {measured:>10}  {floor:>9}  {r['ratio']:>7}  {r['target']}")


def print_cost(cost: dict) -> None:
    print(f"\nCost per million emails with tracking on, SES's events by {cost['ses_event_route']} ({cost['note']}), "
          "biggest first:")
    for item in cost["per_million_emails"]:
        print(f"  ${item['usd']:6.2f}  {item['item']:<34} {item['detail']}")
    print(f"  ${cost['total_usd']:6.2f}  total = {cost['share_of_ses']:.1%} of SES's ${cost['ses_usd']:.0f} "
          f"(target ${cost['target_usd']:.0f}, {cost['target_usd'] / cost['ses_usd']:.0%})")
    for item in cost.get("optional_per_million_emails", []):
        print(f"  +${item['usd']:5.2f}  if turned on: {item['item']}: {item['detail']}")
    for name, text in cost.get("fixed_monthly", []):
        print(f"  fixed, not per email: {name}: {text}")


if __name__ == "__main__":
    main()
