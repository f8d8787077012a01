"""Each function's environment size as Lambda will count it (infra/stacks/environment_size.py estimates it), for a
synthesized stack of the infra tests.

Run as a script (``.venv/bin/python -m tests.infra.environment_size``) it prints the sizes for the example config,
the infra tests' ``warmed`` one and the largest one the config accepts (conftest.LARGEST_CONFIG).
"""
from __future__ import annotations

from typing import Any

from stacks.environment_size import ENVIRONMENT_BUDGET, LAMBDA_ENVIRONMENT_LIMIT, Resolver, environment_size

from . import conftest  # puts infra/ and the layer on the path, as for the tests

__all__ = ["ENVIRONMENT_BUDGET", "LAMBDA_ENVIRONMENT_LIMIT", "environment_sizes", "largest_values"]


def environment_sizes(synth: Any) -> dict[str, int]:
    """Function name -> resolved environment size, for a tests.infra.conftest.Synth."""
    resolver = Resolver(synth.template, synth.stack.stack_name)
    return {name: environment_size(synth.resource(function)["Properties"]["Environment"]["Variables"], resolver)
            for name, function in synth.stack.functions.functions.items()}


def largest_values(synth: Any) -> dict[str, tuple[str, int]]:
    """Function name -> its largest variable and that variable's resolved size (to say what to shrink)."""
    resolver = Resolver(synth.template, synth.stack.stack_name)
    largest = {}
    for name, function in synth.stack.functions.functions.items():
        variables = synth.resource(function)["Properties"]["Environment"]["Variables"]
        sizes = {v: len(v) + resolver.length(value) for v, value in variables.items()}
        top = max(sizes, key=sizes.__getitem__)
        largest[name] = (top, sizes[top])
    return largest


def main() -> None:
    import tempfile
    from pathlib import Path

    configs = {"example": conftest.load_config(conftest.EXAMPLE_CONFIG),
               "warmed": conftest.parse_config(conftest.WARMED_CONFIG, "warmed"),
               "largest": conftest.parse_config(conftest.LARGEST_CONFIG, "largest")}
    with tempfile.TemporaryDirectory() as out:
        for label, config in configs.items():
            synth = conftest._synthesize(config, Path(out) / label, context={"aws:cdk:bundling-stacks": []})
            print(f"{label} (stack {synth.stack.stack_name!r}, {len(synth.stack.stack_name)} characters):")
            for name, size in environment_sizes(synth).items():
                print(f"  {name:<12} {size:>5} bytes, {ENVIRONMENT_BUDGET - size:>5} under postline's budget, "
                      f"{LAMBDA_ENVIRONMENT_LIMIT - size:>5} under Lambda's limit")


if __name__ == "__main__":
    main()
