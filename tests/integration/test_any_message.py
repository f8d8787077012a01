"""Property: whatever JSON an application puts on an inbound queue (any Unicode, lone surrogates included, any
nesting and number size the grammar allows), the good messages beside it in the batch are rendered, and it is
either rendered or rejected with a reason that can be stored and read again, never retried forever."""
from __future__ import annotations

import itertools
import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from postline.batch import QueueRecord
from postline.render import render_batch

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = sorted(folder.name for folder in (ROOT / "templates").iterdir() if folder.is_dir())
STREAM_QUEUE = "postline-transactional"
ids = itertools.count()


def example(template: str) -> dict:
    return json.loads((ROOT / "templates" / template / "example.json").read_text())


# Any character, lone UTF-16 surrogates too (json.dumps writes them as \udXXX escapes, as JavaScript does).
any_text = st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=()), max_size=40)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | any_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=25,
)
# Number and nesting tokens json.dumps never writes but the JSON grammar allows.
raw_tokens = st.one_of(
    st.integers(1, 6000).map(lambda digits: "9" * digits),
    st.sampled_from(["1e400", "-1e400", "1e-400", "-0", "0.000000000000000000000000001", "12345678901234567890e-5"]),
    st.integers(1, 20_000).map(lambda depth: "[" * depth + "]" * depth),
    st.integers(1, 5_000).map(lambda depth: '{"a":' * depth + "1" + "}" * depth),
)


@st.composite
def send_messages(draw) -> str:
    template = draw(st.sampled_from(TEMPLATES + ["nope"]))
    document = {
        "template": template,
        "to": draw(st.sampled_from(["reader@example.com", "Odd.Case@Example.COM"]) | any_text),
        "data": {**(example(template) if template in TEMPLATES else {}),
                 **draw(st.dictionaries(any_text | st.sampled_from(["name", "subject", "articles", "items"]),
                                        json_values, max_size=4))},
    }
    for field in draw(st.sets(st.sampled_from(["id", "campaign", "tags", "reply_to", "locale", "extra"]))):
        document[field] = draw(json_values)
    raw = draw(st.none() | raw_tokens)
    if raw is not None:
        document["data"]["raw"] = "RAW-TOKEN"
    return json.dumps(document).replace('"RAW-TOKEN"', raw or '"RAW-TOKEN"')


def good(n: int) -> str:
    return json.dumps({"template": "welcome", "to": f"good{n}@example.com", "data": example("welcome"),
                       "id": f"good-{n}"})


def queue_record(body: str, now: float) -> QueueRecord:
    return QueueRecord(f"r{next(ids)}", body, STREAM_QUEUE, now, 1)


def test_any_message_never_fails_the_good_ones_beside_it(pipeline):
    ctx = pipeline.render_context()

    @settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                      HealthCheck.too_slow,
                                                                      HealthCheck.data_too_large])
    @given(body=send_messages())
    def check(body: str) -> None:
        n = next(ids)
        batch = [queue_record(good(n), pipeline.clock()), queue_record(body, pipeline.clock()),
                 queue_record(good(n + 100_000), pipeline.clock())]
        result = render_batch(batch, ctx)
        outcomes = [result.outcomes[record.record_id] for record in batch]
        assert [outcomes[0].result, outcomes[2].result] == ["rendered", "rendered"]
        assert not result.failed
        anything = outcomes[1]
        assert anything.result in ("rendered", "rejected"), anything
        if anything.result == "rejected":
            assert anything.reason and anything.reason.encode("utf-8")

    check()
