"""The Lua scripts and their Python layout (anomaly/scripts.py) agree: every generated
name is used, no position is read by number, and replies decode into the named tuples."""

from __future__ import annotations

import re
from typing import Any

import pytest

from anomaly import scripts
from anomaly.scripts import FlagArgs, FlagKeys, FlagReply, ScanArgs, ScanKeys, ScanReply
from domain.scans import SEVERITY_RANK, Severity

LAYOUTS = [
    ("scan.lua", ScanKeys, ScanArgs, ScanReply),
    ("flags.lua", FlagKeys, FlagArgs, FlagReply),
]


def generated_names(keys: Any, args: Any, reply: Any) -> list[str]:
    return re.findall(r"^local (\w+) =", scripts.prologue(keys, args, reply), flags=re.MULTILINE)


@pytest.mark.parametrize(("name", "keys", "args", "reply"), LAYOUTS)
def test_every_generated_name_is_used_by_the_script(name: str, keys: Any, args: Any, reply: Any) -> None:
    body = scripts.source(name)
    unused = [n for n in generated_names(keys, args, reply) if not re.search(rf"\b{n}\b", body)]
    assert unused == []


@pytest.mark.parametrize(("name", "keys", "args", "reply"), LAYOUTS)
def test_the_script_uses_no_name_the_layout_does_not_generate(
    name: str, keys: Any, args: Any, reply: Any
) -> None:
    body = scripts.source(name)
    used = set(re.findall(r"\b[KAR]_[A-Z_]+\b", body))
    assert used <= set(generated_names(keys, args, reply))


def test_the_scan_script_reads_no_key_argument_or_reply_position_by_number() -> None:
    body = scripts.source("scan.lua")
    assert re.findall(r"(?:KEYS|ARGV)\[\d+\]", body) == []
    assert "return reply" in body and re.search(r"return \{", body) is None


def test_the_flag_script_reads_only_its_per_flag_arguments_by_position() -> None:
    # Its fixed arguments are named; the (rule, severity, raised, payload) quadruples that
    # follow them are a variable-length list, read from FLAG_ARGS + 1 on.
    body = scripts.source("flags.lua")
    assert re.findall(r"KEYS\[\d+\]|ARGV\[\d+\]", body) == []
    assert "FLAG_ARGS + 1" in body


def test_the_prologue_names_each_position_once_in_field_order() -> None:
    lines = scripts.prologue(ScanKeys, ScanArgs, ScanReply).splitlines()
    assert lines[0] == "local K_STATE = KEYS[1]"
    assert "local A_NOW = ARGV[1]" in lines
    assert f"local A_PRODUCT_PREFIX = ARGV[{len(ScanArgs._fields)}]" in lines
    assert f"local R_NEED = {len(ScanReply._fields)}" in lines
    assert len(lines) == len(ScanKeys._fields) + len(ScanArgs._fields) + len(ScanReply._fields)


def test_the_flag_script_ranks_severities_as_the_domain_does() -> None:
    script = scripts.flag_script()
    assert f"local FLAG_ARGS = {len(FlagArgs._fields)}" in script
    table = ", ".join(f"{severity} = {rank}" for severity, rank in SEVERITY_RANK.items())
    assert f"local SEVERITY_RANK = {{{table}}}" in script
    assert set(SEVERITY_RANK) == set(Severity)


def test_a_scan_reply_decodes_into_the_named_tuple_with_every_field() -> None:
    raw = [
        3,
        1_700_000_000_000,
        b"Harbin",
        2,
        b"1700000000000,1",
        0,
        0,
        [],
        [],
        [],
        2,
        1,
        0,
        b"7",
        b"genuine",
        b"",
    ]
    reply = ScanReply._make(raw)
    assert len(ScanReply._fields) == 16
    assert (reply.scans, reply.first_city, reply.distinct, reply.identities) == (3, b"Harbin", 2, 2)
    assert reply.first_genuine == 1 and reply.limited == 0
    assert (reply.resolved, reply.verdict, reply.need) == (b"7", b"genuine", b"")


def test_a_reply_of_the_wrong_length_is_refused_rather_than_misread() -> None:
    with pytest.raises(TypeError):
        ScanReply._make([3, 0, b"", 1])
    with pytest.raises(TypeError):
        FlagReply._make([[], [], []])


def test_the_scripts_are_found_as_package_data() -> None:
    assert "redis.call" in scripts.scan_script()
    assert "redis.call" in scripts.flag_script()
    assert "redis.call" in scripts.gate_script()
