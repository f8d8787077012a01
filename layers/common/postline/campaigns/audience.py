"""A campaign's audience: the user's CSV or JSONL file checked, row by row, and written in the normalised form the
fan-out reads.

The normalised form is UTF-8 JSON lines ``{"email": "<normalised address>", "data": {...}}``, each ending in
``\\n``, unique addresses in the file's order. The fan-out reads it from a byte offset, so a checkpoint is an offset.

Both directions stream: memory stays flat whatever the file's size, but for the set of addresses seen (a 64-bit
hash of each, to drop repeats). Problems name the row by its line in the user's file and never hold an address.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, BinaryIO, Literal

from ..addresses import InvalidAddress, normalise_address
from ..contract import SCHEMA

Kind = Literal["csv", "jsonl"]
SUFFIXES: dict[str, Kind] = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
MAX_PROBLEMS = 20
# A recipient becomes one SQS message (256 KiB at most): a longer line could never be sent, and reading lines no
# longer than this keeps memory flat whatever the file holds.
MAX_LINE_BYTES = 256 * 1024
MAX_ADDRESS_LENGTH = SCHEMA["properties"]["to"]["maxLength"]  # as the send message contract checks it
PROGRESS_EVERY_BYTES = 1 << 20


class AudienceError(ValueError):
    """The file as a whole cannot be read as an audience: no email column, not UTF-8 text, not CSV."""


@dataclass(frozen=True, slots=True)
class Recipient:
    email: str  # normalised
    data: dict[str, Any]


@dataclass
class AudienceReport:
    rows: int = 0  # valid + invalid + duplicates (blank lines are not rows)
    valid: int = 0
    invalid: int = 0
    duplicates: int = 0  # rows whose address came earlier in the file: sent once
    missing_data: int = 0  # of the invalid rows, those without the template's required data
    problems: list[tuple[int, str]] = field(default_factory=list)  # the first MAX_PROBLEMS, as (line, reason)
    bytes_written: int = 0

    def refuse(self, line: int, reason: str, *, missing_data: bool = False) -> None:
        self.rows += 1
        self.invalid += 1
        self.missing_data += missing_data
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append((line, reason))


def kind_of(path: str | PurePath) -> Kind:
    suffix = PurePath(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise AudienceError(f"an audience file is .csv, .jsonl or .ndjson, not {suffix or 'without a suffix'}")
    return SUFFIXES[suffix]


def recipient_id(campaign_id: str, email: str) -> str:
    """The recipient's message id: stable across fan-outs (a repeat is a duplicate), never the address itself."""
    return f"campaign:{campaign_id}:{hashlib.sha256(email.encode()).hexdigest()[:24]}"


def normalise(
    source: BinaryIO,
    *,
    kind: Kind,
    required: Iterable[str],
    base_data: dict[str, Any],
    out: BinaryIO,
    progress: Callable[[int], None] | None = None,
) -> AudienceReport:
    """Check each row of ``source`` and write the valid, first-seen ones to ``out`` in the normalised form.

    A row is invalid when its address is not one the send message contract accepts, or when a ``required`` key is
    absent or empty once ``base_data`` is merged under the row's data. ``progress`` is called with the bytes of
    ``source`` read so far. An AudienceError when the file itself cannot be read."""
    if kind not in ("csv", "jsonl"):
        raise AudienceError(f"an audience is csv or jsonl, not {kind!r}")
    required = tuple(required)
    report = AudienceReport()
    seen: set[int] = set()
    lines = _Lines(source, progress)
    for line, row in (_csv_rows if kind == "csv" else _jsonl_rows)(lines):
        if isinstance(row, str):
            report.refuse(line, row)
            continue
        email, data = row
        try:
            address = _address(email)
        except InvalidAddress as error:
            report.refuse(line, f"invalid address: {error}")
            continue
        if missing := [key for key in required if _blank(data[key] if key in data else base_data.get(key))]:
            report.refuse(line, f"missing template data: {', '.join(missing)}", missing_data=True)
            continue
        digest = _hash(address)
        if digest in seen:
            report.rows += 1
            report.duplicates += 1
            continue
        try:
            encoded = (
                json.dumps({"email": address, "data": data}, ensure_ascii=False, separators=(",", ":")) + "\n"
            ).encode()
        except UnicodeEncodeError:  # JSON may escape half a surrogate pair, which no email can carry
            report.refuse(line, "holds a lone UTF-16 surrogate (not valid Unicode text)")
            continue
        seen.add(digest)
        out.write(encoded)
        report.rows += 1
        report.valid += 1
        report.bytes_written += len(encoded)
    lines.done()
    return report


def read_recipients(lines: Iterable[bytes], offset: int) -> Iterator[tuple[Recipient, int]]:
    """The recipients of the normalised form read from byte ``offset``, each with the offset of the line after it.

    ``lines`` come without their ending (as botocore's ``StreamingBody.iter_lines`` gives them); the normalised form
    ends every line with one ``\\n`` and holds no other line break (JSON escapes them)."""
    for line in lines:
        offset += len(line) + 1
        if line.strip():
            document = json.loads(line)
            yield Recipient(document["email"], document["data"]), offset


# -- reading the user's file ------------------------------------------------------------------------------------

Row = tuple[str, dict[str, Any]] | str  # (email as given, data), or why the row is refused


class _Lines:
    """The lines of ``source`` (with their endings), numbered from 1; None for a line over MAX_LINE_BYTES (read
    past, never held)."""

    def __init__(self, source: BinaryIO, progress: Callable[[int], None] | None):
        self.source, self.progress = source, progress
        self.bytes_read, self.reported = 0, 0

    def __iter__(self) -> Iterator[tuple[int, bytes | None]]:
        number = 0
        while line := self.source.readline(MAX_LINE_BYTES + 1):
            number += 1
            self._count(len(line))
            if len(line) > MAX_LINE_BYTES:
                while not line.endswith(b"\n") and (line := self.source.readline(MAX_LINE_BYTES)):
                    self._count(len(line))
                yield number, None
            else:
                yield number, line

    def _count(self, size: int) -> None:
        self.bytes_read += size
        if self.progress and self.bytes_read - self.reported >= PROGRESS_EVERY_BYTES:
            self.reported = self.bytes_read
            self.progress(self.bytes_read)

    def done(self) -> None:
        if self.progress and self.reported != self.bytes_read:
            self.progress(self.bytes_read)


def _text(number: int, line: bytes | None) -> str:
    if line is None:
        raise AudienceError(f"line {number} is longer than {MAX_LINE_BYTES // 1024} KiB: is this an audience file?")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise AudienceError(f"line {number} is not UTF-8 text: save the file as UTF-8") from None
    return text.removeprefix("\ufeff") if number == 1 else text  # the BOM spreadsheet programs write


def _csv_rows(lines: _Lines) -> Iterator[tuple[int, Row]]:
    """Rows of a CSV file with a header row; empty cells are left out of the data (so ``base_data`` fills them)."""
    # Strict: a quote never closed is an error, not the rest of the file read as one field.
    reader = csv.reader((_text(number, line) for number, line in lines), strict=True)
    header: list[str] | None = None
    first_line = 1
    try:
        for fields in reader:
            line, first_line = first_line, reader.line_num + 1  # a quoted field may span lines: name its first
            if not any(value.strip() for value in fields):
                continue  # a blank line, or one of empty cells (spreadsheets end files with them)
            if header is None:
                header = _header(fields)
                email_column = header.index("email")
                continue
            if len(fields) > len(header) and any(value.strip() for value in fields[len(header) :]):
                yield line, f"has {len(fields)} fields, the header names {len(header)}"
                continue
            email = fields[email_column] if email_column < len(fields) else ""
            yield (
                line,
                (
                    email,
                    {
                        name: value
                        for column, (name, value) in enumerate(zip(header, fields, strict=False))
                        if name and column != email_column and value != ""
                    },
                ),
            )
    except csv.Error as error:
        if str(error) == "unexpected end of data":
            raise AudienceError(f'line {first_line}: a quoted field is never closed (a " missing?)') from None
        raise AudienceError(f"line {reader.line_num} is not CSV: {error}") from None


def _header(fields: list[str]) -> list[str]:
    names = [name.strip() for name in fields]
    names = ["email" if name.lower() == "email" else name for name in names]
    if "email" not in names:
        raise AudienceError(
            "the first row has no email column: a CSV audience starts with a header row naming its "
            "columns, one of them email"
        )
    if repeated := sorted({name for name in names if name and names.count(name) > 1}):
        raise AudienceError(f"the header row names {', '.join(repr(name) for name in repeated)} more than once")
    return names


def _jsonl_rows(lines: _Lines) -> Iterator[tuple[int, Row]]:
    """Rows of a JSONL file: ``{"email": ..., "data": {...}}``, or ``{"email": ..., <data keys>}``."""
    for number, line in lines:
        if line is None:
            yield number, f"is longer than {MAX_LINE_BYTES // 1024} KiB"
            continue
        text = _text(number, line).strip()
        if not text:
            continue
        try:
            document = json.loads(text, parse_constant=_not_a_number, parse_float=_finite)
        except ValueError as error:
            yield number, f"is not JSON: {error}"
            continue
        except RecursionError:
            yield number, "is nested too deeply"
            continue
        if not isinstance(document, dict):
            yield number, f"is not a JSON object but {type(document).__name__}"
        elif "email" not in document:
            yield number, "has no email"
        elif isinstance(document.get("data"), dict):
            if set(document) - {"email", "data"}:
                yield number, 'has both a "data" object and other keys: give the data one way'
            else:
                yield number, (document["email"], document["data"])
        else:
            yield number, (document["email"], {key: value for key, value in document.items() if key != "email"})


def _not_a_number(text: str) -> Any:
    raise ValueError(f"{text} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError("a number beyond a double's range")
    return value


def _address(value: Any) -> str:
    if isinstance(value, str) and len(value) > MAX_ADDRESS_LENGTH:
        raise InvalidAddress(f"longer than {MAX_ADDRESS_LENGTH} characters")
    return normalise_address(value)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _hash(address: str) -> int:
    return int.from_bytes(hashlib.blake2b(address.encode(), digest_size=8).digest(), "big")
