"""Cells a spreadsheet shows rather than runs (CSV/XLSX formula injection): text starting
like a formula (= + - @, a tab or a carriage return) gets a leading single quote; numbers
and dates stay as they are. Every file we write that a person opens in a spreadsheet
(rejected import rows, flag exports) passes its cells through `spreadsheet_safe`."""

from __future__ import annotations

from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> Any:
    """A cell a spreadsheet shows rather than runs: text starting like a formula gets a
    leading single quote (numbers and dates stay as they are)."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value
