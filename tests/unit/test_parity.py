"""One source of truth, both sides agree: the closed vocabularies of ``lua/lib/status.lua`` and
``lua/lib/job.lua`` against ``scheduler._status``, every status a script returns against its
header, and the script set and key parts against ``scheduler._scripts`` and ``scheduler._keys``.
"""

from __future__ import annotations

import re
from enum import StrEnum

import pytest

from scheduler._keys import KEY_PARTS
from scheduler._scripts import SCRIPT_NAMES, load_script
from scheduler._status import JOB_FIELDS, Outcome, State, Status, Unreadable
from tests.unit.test_lua_static import (
    LUA_DIR,
    LuaFile,
    all_lua_files,
    blank_strings,
    header_key_parts,
    lib_files,
    read_lua,
    script_files,
    split_args,
)

STATUS_LUA = read_lua(LUA_DIR / "lib" / "status.lua")
JOB_LUA = read_lua(LUA_DIR / "lib" / "job.lua")
VOCABULARIES: dict[str, type[StrEnum]] = {
    "STATUS": Status,
    "STATE": State,
    "OUTCOME": Outcome,
    "UNREADABLE": Unreadable,
}


def lua_table_constructor(lua: LuaFile, name: str) -> str:
    """The text of ``local <name> = {...}`` in a file's code."""
    match = re.search(rf"\blocal\s+{name}\s*=\s*\{{", lua.code)
    assert match, f"{lua.rel} defines no table {name}"
    _, end = split_args(lua.code, match.end() - 1)
    return lua.code[match.end() - 1 : end]


def lua_string_table(lua: LuaFile, name: str) -> dict[str, str]:
    """The ``key = "value"`` entries of a Lua table, in order."""
    entries, _ = split_args(lua_table_constructor(lua, name), 0)
    table = {}
    for entry in entries:
        match = re.fullmatch(r'(\w+)\s*=\s*"([^"]*)"', entry)
        assert match, f'{lua.rel} {name}: entry {entry!r} is not key = "value"'
        assert match.group(1) not in table, f"{lua.rel} {name}: {match.group(1)} twice"
        table[match.group(1)] = match.group(2)
    return table


def enum_table(enum: type[StrEnum]) -> dict[str, str]:
    """An enum as the Lua table it mirrors: lower-case member name -> value."""
    return {member.name.lower(): member.value for member in enum}


def reply_section(lua: LuaFile) -> str:
    """The header's ``Reply:`` paragraph(s), up to ``Invariants:`` or the end of the header."""
    match = re.search(r"^Reply:(.*?)(?=^Invariants:|\Z)", lua.header, re.MULTILINE | re.DOTALL)
    assert match, f"{lua.rel}: the header has no Reply: section"
    return match.group(1)


def statuses_in_header(lua: LuaFile) -> set[str]:
    """The statuses a header's reply section names: ``STATUS.x`` or a bare status word."""
    text = reply_section(lua)
    named = set(re.findall(r"\bSTATUS\.(\w+)", text))
    words = {s.value for s in Status if re.search(rf"(?<![\w.]){s.value}\b", text)}
    return named | words


def statuses_in_code(lua: LuaFile) -> set[str]:
    """The ``STATUS.x`` a script's code (and the code of the helpers it includes) uses."""
    helpers = [read_lua(LUA_DIR / "lib" / f"{name}.lua") for name in lua.includes]
    return {s for f in (lua, *helpers) for s in re.findall(r"\bSTATUS\.(\w+)", f.code)}


def reply_heads(lua: LuaFile) -> list[tuple[str, str]]:
    """(where, first element) of every reply table a script builds: ``return {x, ...}`` and
    ``reply = {x, ...}``."""
    heads = []
    pattern = r"\breturn\s*\{|\breply\b[\w\s,]*=\s*\{"
    for match in re.finditer(pattern, lua.code):
        items, _ = split_args(lua.code, match.end() - 1)
        heads.append((lua.where(match.start()), items[0] if items else ""))
    return heads


@pytest.mark.parametrize(("table", "enum"), VOCABULARIES.items())
def test_lua_vocabulary_tables_equal_the_python_enums(table: str, enum: type[StrEnum]) -> None:
    assert lua_string_table(STATUS_LUA, table) == enum_table(enum)


def test_lua_job_fields_equal_python_job_fields_in_order() -> None:
    entries, _ = split_args(lua_table_constructor(JOB_LUA, "JOB_FIELDS"), 0)
    lua_fields = [re.fullmatch(r'"(\w+)"', entry) for entry in entries]
    assert all(lua_fields), entries
    assert tuple(m.group(1) for m in lua_fields if m) == JOB_FIELDS


def test_job_format_has_a_version_byte_and_a_flags_byte_then_one_code_per_field() -> None:
    match = re.search(r'local JOB_FORMAT = "([^"]+)"', JOB_LUA.code)
    assert match, "lib/job.lua defines JOB_FORMAT"
    codes = re.findall(r"[iI]\d*|[bBhHlLsd]", match.group(1).lstrip("<"))
    assert codes[:2] == ["B", "B"]
    by_field = dict(zip(JOB_FIELDS, codes[2:], strict=True))
    assert {name for name, code in by_field.items() if code == "s"} == {"token", "worker"}
    assert by_field["state"] == by_field["outcome"] == "B"


def lua_code_table(name: str) -> dict[str, int]:
    """A table of job.lua mapping names (or ``[""]``) to small integer codes."""
    body = lua_table_constructor(JOB_LUA, name)
    pairs = re.findall(r'(?:\["(\w*)"\]|(\w+))\s*=\s*(\d+)', body)
    return {bracketed or bare: int(code) for bracketed, bare, code in pairs}


@pytest.mark.parametrize(("table", "enum"), [("STATE_CODE", State), ("OUTCOME_CODE", Outcome)])
def test_every_state_and_outcome_has_a_distinct_record_code(
    table: str, enum: type[StrEnum]
) -> None:
    codes = lua_code_table(table)
    assert set(codes) == {member.value for member in enum}
    assert len(set(codes.values())) == len(codes)
    assert all(0 <= code <= 255 for code in codes.values())


@pytest.mark.parametrize("lua", all_lua_files(), ids=lambda f: f.rel)
def test_every_vocabulary_reference_exists_in_its_table(lua: LuaFile) -> None:
    """Headers included: a header naming ``STATUS.gone`` is as wrong as code using it."""
    problems = []
    for match in re.finditer(r"\b(STATUS|STATE|OUTCOME|UNREADABLE)\.(\w+)", blank_strings(lua.raw)):
        if match.group(2) not in enum_table(VOCABULARIES[match.group(1)]):
            problems.append(f"{lua.where(match.start())}: {match.group()} is not in the table")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("lua", script_files(), ids=lambda f: f.rel)
def test_header_lists_exactly_the_statuses_the_script_returns(lua: LuaFile) -> None:
    in_header, in_code = statuses_in_header(lua), statuses_in_code(lua)
    assert in_header <= {s.value for s in Status}, in_header
    missing, unused = sorted(in_code - in_header), sorted(in_header - in_code)
    assert not missing, f"{lua.rel}: returned but not in the header: {missing}"
    assert not unused, f"{lua.rel}: in the header but never returned: {unused}"


@pytest.mark.parametrize("lua", script_files(), ids=lambda f: f.rel)
def test_every_reply_starts_with_a_status_from_the_table(lua: LuaFile) -> None:
    heads = reply_heads(lua)
    assert heads, f"{lua.rel} builds no reply"
    problems = [
        f"{where}: reply starts with {head!r}, not STATUS.<name>"
        for where, head in heads
        if not re.fullmatch(r"STATUS\.(\w+)", head) or head[7:] not in enum_table(Status)
    ]
    assert not problems, "\n".join(problems)


def test_no_status_literal_is_spelled_out_in_code() -> None:
    """Statuses go through the STATUS table: a bare "lease_lost" string would escape parity."""
    values = {s.value for s in Status}
    problems = [
        f"{lua.where(m.start())}: status literal {m.group()} (use STATUS.{m.group(1)})"
        for lua in all_lua_files()
        if lua.name != "status"
        for m in re.finditer(r'"(\w+)"', lua.code)
        if m.group(1) in values
    ]
    assert not problems, "\n".join(problems)


def test_script_names_equal_the_lua_files() -> None:
    assert set(SCRIPT_NAMES) == {lua.name for lua in script_files()}
    assert len(set(SCRIPT_NAMES)) == len(SCRIPT_NAMES)


def test_every_helper_is_used_by_some_script() -> None:
    used = {name for lua in script_files() for name in lua.includes} | {"now_test"}
    assert {lua.name for lua in lib_files()} - used == set()


@pytest.mark.parametrize("lua", script_files(), ids=lambda f: f.rel)
def test_header_key_parts_are_known_and_match_the_loader(lua: LuaFile) -> None:
    parts = header_key_parts(lua)
    assert parts, f"{lua.rel}: the header names no KEYS"
    assert set(parts) <= set(KEY_PARTS), set(parts) - set(KEY_PARTS)
    assert len(set(parts)) == len(parts), f"{lua.rel}: a key part named twice"
    assert load_script(lua.name).key_parts == parts
