"""The client an application installs (`pip install postline`) imports only the contract and the standard library:
none of the CLI's, the local stack's or the functions' dependencies, which that install does not have."""
from __future__ import annotations

import json
import subprocess
import sys

# Top-level modules of the `cli` extra (pyproject.toml) and of the rest of the library.
NOT_FOR_THE_CLIENT = ("click", "rich", "moto", "pygal", "aiosmtpd", "jinja2", "pynamodb", "aws_lambda_powertools",
                      "css_inline", "inscriptis", "dns", "postline_cli")

PROBE = """
import json, sys, time
start = time.perf_counter()
from postline.client import PostlineClient
elapsed = time.perf_counter() - start
print(json.dumps({"seconds": elapsed, "modules": sorted({name.split(".")[0] for name in sys.modules})}))
"""


def test_the_client_imports_nothing_the_cli_extra_brings():
    probe = json.loads(subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                                      check=True).stdout)
    print(f"import postline.client: {probe['seconds'] * 1000:.0f} ms in a fresh interpreter")  # a figure, not a test
    assert sorted(set(NOT_FOR_THE_CLIENT) & set(probe["modules"])) == []
    assert "boto3" not in probe["modules"]  # loaded only when the client makes its own SQS client
