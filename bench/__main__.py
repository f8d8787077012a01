"""``make bench``: print the figures table and write it to bench/results/latest.json.

    python -m bench [--newsletter N]
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

from . import pipeline

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--newsletter", type=int, default=1000, help="emails in the throughput run")
    args = parser.parse_args()

    figures = {"machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine()},
               "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    figures["aws_calls"] = pipeline.calls_per_email()
    with pipeline.RunningStack() as stack:
        figures["critical_latency"] = pipeline.critical_latency(stack)
        figures["newsletter_throughput"] = pipeline.newsletter_throughput(stack, args.newsletter)

    print("\nAWS calls per email (render + send, counted with a botocore before-call hook)")
    for label, row in figures["aws_calls"].items():
        detail = ", ".join(f"{name} {count}" for name, count in sorted(row["calls"].items()))
        print(f"  {label:<24} {row['per_email']:.2f} per email   ({detail})")
    latency = figures["critical_latency"]
    print(f"\nOne critical email, SendMessage -> .eml in the outbox, idle local stack ({latency['samples']} samples)")
    print(f"  median {latency['median_s'] * 1000:.0f} ms   p90 {latency['p90_s'] * 1000:.0f} ms   "
          f"min {latency['min_s'] * 1000:.0f} ms   max {latency['max_s'] * 1000:.0f} ms")
    run = figures["newsletter_throughput"]
    print(f"\nNewsletter of {run['emails']} through the whole local pipeline")
    print(f"  {run['emails_per_second']:.1f} emails/s   ({run['in_outbox']} in the outbox after {run['seconds']:.1f} s)")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(figures, indent=2))
    print(f"\nwritten to {RESULTS / 'latest.json'}")


if __name__ == "__main__":
    main()
