"""Audience files: CSV and JSONL checked row by row, normalised as the send message contract does, and read back
from a byte offset."""
from __future__ import annotations

import io
import json
import tracemalloc

import pytest

from postline.campaigns.audience import (
    MAX_PROBLEMS,
    AudienceError,
    Recipient,
    kind_of,
    normalise,
    read_recipients,
    recipient_id,
)
from postline.contract import validate_send_message


def normalised(text: str | bytes, kind: str = "csv", required=(), base_data=None, progress=None):
    out = io.BytesIO()
    source = io.BytesIO(text.encode() if isinstance(text, str) else text)
    report = normalise(source, kind=kind, required=required, base_data=base_data or {}, out=out, progress=progress)
    return report, [json.loads(line) for line in out.getvalue().splitlines()], out.getvalue()


def test_a_spreadsheets_csv_with_a_bom_crlf_and_quoted_fields():
    text = ("\ufeffEmail ,first_name,company\r\n"
            "ada@Example.COM,Ada,\"Analytical Engines, Ltd\"\r\n"
            " grace@example.com ,Grace,\"Navy\r\nReserve\"\r\n"
            "\r\n"
            "linus@example.org,,\r\n")
    report, rows, _ = normalised(text)
    assert rows == [{"email": "ada@example.com", "data": {"first_name": "Ada", "company": "Analytical Engines, Ltd"}},
                    {"email": "grace@example.com", "data": {"first_name": "Grace", "company": "Navy\r\nReserve"}},
                    {"email": "linus@example.org", "data": {}}]
    assert (report.rows, report.valid, report.invalid, report.duplicates) == (3, 3, 0, 0)


def test_invalid_addresses_are_counted_with_their_line_never_the_address():
    text = ("email,note\n"
            "ada@example.com,\"two\nlines\"\n"  # lines 2-3
            "not-an-address,x\n"  # line 4
            "jöhn@example.com,x\n"  # line 5
            ",x\n")  # line 6
    report, rows, _ = normalised(text)
    assert [row["email"] for row in rows] == ["ada@example.com"]
    assert (report.rows, report.valid, report.invalid) == (4, 1, 3)
    assert [line for line, _ in report.problems] == [4, 5, 6]
    assert report.problems[0][1] == "invalid address: An email address must have an @-sign."
    assert report.problems[1][1].startswith("invalid address: the part before the @-sign must be ASCII")
    assert report.problems[2][1] == "invalid address: is empty"
    assert not any("not-an-address" in reason or "jöhn" in reason for _, reason in report.problems)


def test_an_address_the_contract_would_refuse_for_length_is_refused_here():
    report, rows, _ = normalised(f"email\n{'x' * 320}@example.com\n")
    assert (report.invalid, rows) == (1, [])
    assert "longer than 320 characters" in report.problems[0][1]


def test_required_data_merged_from_the_campaigns_data():
    text = ("email,first_name,plan\n"
            "ada@example.com,Ada,pro\n"
            "grace@example.com,,pro\n"  # no name: the campaign's data gives one
            "linus@example.org,Linus,\n"  # no plan: missing
            "ken@example.org,Ken,  \n")  # a blank plan is no plan
    report, rows, _ = normalised(text, required=["first_name", "plan"], base_data={"first_name": "there"})
    assert [row["email"] for row in rows] == ["ada@example.com", "grace@example.com"]
    assert rows[1]["data"] == {"plan": "pro"}  # the campaign's data is merged at fan-out, not copied to each row
    assert (report.valid, report.invalid, report.missing_data) == (2, 2, 2)
    assert report.problems == [(4, "missing template data: plan"), (5, "missing template data: plan")]


def test_duplicates_are_sent_once_the_first_kept():
    text = ("email,n\n"
            "ada@example.com,1\n"
            "ada@EXAMPLE.com ,2\n"
            "grace@example.com,3\n"
            "ada@example.com,4\n")
    report, rows, _ = normalised(text)
    assert rows == [{"email": "ada@example.com", "data": {"n": "1"}},
                    {"email": "grace@example.com", "data": {"n": "3"}}]
    assert (report.rows, report.valid, report.duplicates, report.invalid) == (4, 2, 2, 0)


def test_a_row_refused_for_its_data_does_not_stop_the_same_address_later():
    text = "email,plan\nada@example.com,\nada@example.com,pro\n"
    report, rows, _ = normalised(text, required=["plan"])
    assert rows == [{"email": "ada@example.com", "data": {"plan": "pro"}}]
    assert (report.valid, report.invalid, report.duplicates) == (1, 1, 0)


def test_a_row_with_more_fields_than_the_header_is_refused():
    report, rows, _ = normalised("email,name\nada@example.com,Ada,extra\ngrace@example.com,Grace,\n")
    assert [row["email"] for row in rows] == ["grace@example.com"]  # a trailing empty field is harmless
    assert report.problems == [(2, "has 3 fields, the header names 2")]


@pytest.mark.parametrize("text, reason", [
    ("name,plan\nAda,pro\n", "no email column"),
    ("email,name,name\nada@example.com,a,b\n", "'name' more than once"),
    ("email,name\nada@example.com,M\xfcller\n".encode("latin-1"), "line 2 is not UTF-8"),
])
def test_a_file_that_is_not_an_audience_is_refused_whole(text, reason):
    with pytest.raises(AudienceError, match=reason):
        normalised(text)


def test_jsonl_with_a_data_object_or_with_the_data_as_other_keys():
    text = ('{"email": "ada@example.com", "data": {"first_name": "Ada", "orders": [1, 2], "vip": true}}\n'
            '\n'
            '{"email": "grace@example.com", "first_name": "Grace", "score": 9.5}\r\n')
    report, rows, _ = normalised(text, kind="jsonl", required=["first_name"])
    assert rows == [{"email": "ada@example.com", "data": {"first_name": "Ada", "orders": [1, 2], "vip": True}},
                    {"email": "grace@example.com", "data": {"first_name": "Grace", "score": 9.5}}]
    assert (report.rows, report.valid) == (2, 2)


def test_jsonl_rows_that_are_refused_and_why():
    lines = ['{"email": "ada@example.com", "first_name": ""}',  # the row's empty value wins over the campaign's
             '{"email": "grace@example.com"',
             '["grace@example.com"]',
             '{"mail": "grace@example.com"}',
             '{"email": 42, "first_name": "x"}',
             '{"email": "grace@example.com", "data": {"first_name": "G"}, "plan": "pro"}',
             '{"email": "grace@example.com", "first_name": NaN}',
             '{"email": "grace@example.com", "first_name": "\\ud83d"}',
             '{"email": "grace@example.com", "first_name": "Grace"}']
    report, rows, _ = normalised("\n".join(lines), kind="jsonl", required=["first_name"],
                                 base_data={"first_name": "there"})
    assert rows == [{"email": "grace@example.com", "data": {"first_name": "Grace"}}]
    assert (report.rows, report.valid, report.invalid, report.missing_data) == (9, 1, 8, 1)
    reasons = dict(report.problems)
    assert reasons[1] == "missing template data: first_name"
    assert reasons[2].startswith("is not JSON")
    assert reasons[3] == "is not a JSON object but list"
    assert reasons[4] == "has no email"
    assert reasons[5] == "invalid address: must be a string"
    assert reasons[6].startswith('has both a "data" object and other keys')
    assert "NaN is not a JSON number" in reasons[7]
    assert "lone UTF-16 surrogate" in reasons[8]
    assert not any("grace@" in reason for reason in reasons.values())


def test_only_the_first_problems_are_kept_but_all_are_counted():
    report, _, _ = normalised("email\n" + "nobody\n" * 50)
    assert report.invalid == 50 and len(report.problems) == MAX_PROBLEMS
    assert report.problems[-1][0] == MAX_PROBLEMS + 1


def test_every_normalised_recipient_makes_a_send_message_the_contract_accepts():
    _, rows, _ = normalised("email,first_name\n Ada@Example.com ,Ada\n")
    message = validate_send_message({"template": "newsletter", "to": rows[0]["email"], "data": rows[0]["data"],
                                     "id": recipient_id("spring-sale", rows[0]["email"]), "campaign": "spring-sale"})
    assert message.to == rows[0]["email"] == "Ada@example.com"  # the contract keeps the local part's case


def test_recipient_ids_are_stable_and_never_the_address():
    first = recipient_id("spring-sale", "ada@example.com")
    assert first == recipient_id("spring-sale", "ada@example.com")
    assert first != recipient_id("spring-sale", "grace@example.com")
    assert first != recipient_id("autumn-sale", "ada@example.com")
    prefix, campaign, digest = first.split(":")
    assert (prefix, campaign, len(digest)) == ("campaign", "spring-sale", 24) and "ada" not in first


def test_progress_reports_the_bytes_read_up_to_the_whole_file():
    text = "email,note\n" + "".join(f"user{i}@example.com,{'x' * 1_000}\n" for i in range(3_000))
    seen: list[int] = []
    normalised(text, progress=seen.append)
    assert seen == sorted(seen) and len(seen) > 2
    assert seen[-1] == len(text.encode())


def test_reading_back_from_an_offset_resumes_at_the_next_recipient():
    _, _, body = normalised("email,n\nada@example.com,1\ngrace@example.com,ü\nlinus@example.org,3\n")
    lines = body.split(b"\n")[:-1]  # as StreamingBody.iter_lines gives them: without their endings
    everyone = list(read_recipients(lines, 0))
    assert [recipient for recipient, _ in everyone] == [Recipient("ada@example.com", {"n": "1"}),
                                                        Recipient("grace@example.com", {"n": "ü"}),
                                                        Recipient("linus@example.org", {"n": "3"})]
    assert everyone[-1][1] == len(body)
    after_ada = everyone[0][1]
    resumed = list(read_recipients(body[after_ada:].split(b"\n")[:-1], after_ada))
    assert resumed == everyone[1:]


def test_memory_stays_flat_but_for_the_duplicate_set():
    def peak(rows: int) -> int:
        lines = "".join(f"user{i}@example.com,{'x' * 4_000}\n" for i in range(rows))
        source = io.BytesIO(f"email,note\n{lines}".encode())
        tracemalloc.start()
        normalise(source, kind="csv", required=["note"], base_data={}, out=_Sink())
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    small, large = peak(300), peak(3_000)
    # rows of 4 KB; what grows is the set of addresses seen: a hash of each, under 200 bytes with the set's slack
    assert (large - small) / 2_700 < 250


class _Sink:
    """An upload that keeps nothing."""

    def write(self, data: bytes) -> int:
        return len(data)


def test_the_kind_of_file_is_known_by_its_suffix():
    assert kind_of("audience.csv") == kind_of("AUDIENCE.CSV") == "csv"
    assert kind_of("people.jsonl") == kind_of("/tmp/people.ndjson") == "jsonl"
    with pytest.raises(AudienceError, match=r"\.csv, \.jsonl or \.ndjson"):
        kind_of("people.xlsx")
