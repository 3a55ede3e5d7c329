"""The dev rail's journal lines: compact JSON with sorted keys, read back as written."""

from __future__ import annotations

import json
from typing import Any

from adapters.lightning.dev_journal import read_journal, record_line


def test_a_record_line_is_compact_sorted_json_of_the_record() -> None:
    record = {"memo": "VM 7 — renewal", "amount_msat": 1_320_000, "settled": False, "a": None}
    line = record_line("ab" * 32, record)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == {"hash": "ab" * 32, "record": record}
    assert b" " not in line.replace("VM 7 — renewal".encode(), b"")  # compact
    assert line.index(b'"a"') < line.index(b'"amount_msat"') < line.index(b'"memo"')


def test_what_the_fast_encoder_refuses_is_written_by_json() -> None:
    record = {"amount_msat": 2**70}  # beyond 64 bits
    assert json.loads(record_line("cd" * 32, record))["record"] == record


def test_a_journal_of_such_lines_reads_back_its_records() -> None:
    header = b'{"last_settle_index":0,"version":2}\n'
    records: dict[str, dict[str, Any]] = {
        "ab" * 32: {"memo": "ünïcode", "amount_msat": 5},
        "cd" * 32: {"n": 2**70},
    }
    text = header + b"".join(record_line(key, record) for key, record in records.items())
    assert read_journal(text).invoices == records
