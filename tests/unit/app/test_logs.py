"""JSON logs: one parseable object per record, extra fields kept."""

from __future__ import annotations

import json
import logging

import pytest

from lnvps.logs import JsonFormatter, setup_logging


def test_a_record_becomes_one_json_object_with_its_extra_fields() -> None:
    record = logging.LogRecord("lnvps.x", logging.WARNING, __file__, 1, "paid %s", ("ab",), None)
    record.payment_id = "ab"
    line = JsonFormatter().format(record)
    data = json.loads(line)
    assert data["level"] == "WARNING" and data["logger"] == "lnvps.x"
    assert data["message"] == "paid ab" and data["payment_id"] == "ab"
    assert data["time"].endswith("+00:00")


def test_exceptions_are_included() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    assert "RuntimeError: boom" in json.loads(JsonFormatter().format(record))["exception"]


def test_unknown_formats_are_refused() -> None:
    with pytest.raises(ValueError, match="text or json"):
        setup_logging("xml")
