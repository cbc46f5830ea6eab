"""Static rules over the Lua sources (``lua/*.lua`` and ``lua/lib/*.lua``), read as text with
comments blanked out (so offsets and line numbers still match the file).

The rules are those of DESIGN.md section 2: every key comes through KEYS and is bound to a named
``*_key`` local before any logic; no key name is built in Lua; no ``KEYS``/``SCAN``/``EVAL``/
``FLUSH*`` commands; no cjson/cmsgpack; ``TIME`` is read once per script, in ``lib/now.lua``
only; and caller text never reaches an error reply. Each failure names the file and line.

This module also holds the helpers that read Lua sources for ``test_parity`` and ``test_ops``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from scheduler._scripts import PRODUCTION, TEST_BUILD, build_scripts

REPO_ROOT = Path(__file__).resolve().parents[2]
LUA_DIR = REPO_ROOT / "lua"

KEYLESS_COMMANDS = frozenset({"TIME"})
TEST_CLOCK_HELPER = "now_test"
"""The one helper that reads KEYS: the test build's clock (lib/now_test.lua) takes its key from
the slot the test build appends after the header's slots (see scheduler/_scripts.py)."""
FORBIDDEN_COMMAND = re.compile(r"^(KEYS|SCAN|EVAL\w*|FLUSH\w*)$", re.IGNORECASE)
KEY_NAME = re.compile(r"^[A-Za-z_]\w*_key$")
REDIS_CALL = re.compile(r"\bredis\.p?call\s*\(")
STRING_LITERAL = re.compile(r"""^(?:"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')$""")
LONG_BRACKET = re.compile(r"\[(=*)\[")
HEADER_KEY_LINE = re.compile(r"^KEYS\[(\d+)\]\s+(\w+)\s+\((\w+)\)", re.MULTILINE)


# -- reading Lua source --------------------------------------------------------------------------


def _long_bracket_end(text: str, start: int) -> int | None:
    """If a long bracket (``[[`` or ``[==[``) opens at ``start``, the offset just past its close."""
    match = LONG_BRACKET.match(text, start)
    if not match:
        return None
    close = "]" + match.group(1) + "]"
    end = text.find(close, match.end())
    return len(text) if end < 0 else end + len(close)


def _quoted_end(text: str, start: int) -> int:
    """The offset just past the quoted string that opens at ``start``."""
    quote, i = text[start], start + 1
    while i < len(text) and text[i] != quote and text[i] != "\n":
        i += 2 if text[i] == "\\" else 1
    return i + 1


def blank_strings(code: str) -> str:
    """``code`` with the inside of every quoted string blanked (offsets unchanged)."""
    quoted = r"""("(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')"""
    return re.sub(quoted, lambda m: _blank(m.group()), code)


def _blank(segment: str) -> str:
    """Spaces for every character of ``segment`` but its newlines (line numbers survive)."""
    return re.sub(r"[^\n]", " ", segment)


def strip_comments(text: str) -> str:
    """``text`` with every Lua comment (and a leading ``#!`` line) replaced by spaces."""
    out: list[str] = []
    i = 0
    if text.startswith("#!"):
        i = text.find("\n") if "\n" in text else len(text)
        out.append(_blank(text[:i]))
    while i < len(text):
        char = text[i]
        if text.startswith("--", i):
            end = _long_bracket_end(text, i + 2)
            if end is None:
                newline = text.find("\n", i)
                end = len(text) if newline < 0 else newline
            out.append(_blank(text[i:end]))
            i = end
        elif char in "\"'":
            end = _quoted_end(text, i)
            out.append(text[i:end])
            i = end
        else:
            end = _long_bracket_end(text, i) or i + 1
            out.append(text[i:end])
            i = end
    return "".join(out)


@dataclass(frozen=True)
class LuaFile:
    """One Lua source file: its raw text and its code (comments blanked)."""

    path: Path
    raw: str
    code: str

    @property
    def name(self) -> str:
        """``enqueue`` for ``lua/enqueue.lua``, ``now`` for ``lua/lib/now.lua``."""
        return self.path.stem

    @property
    def rel(self) -> str:
        """The path from the repository root, for messages."""
        return str(self.path.relative_to(REPO_ROOT))

    @property
    def is_lib(self) -> bool:
        """True for a helper in ``lua/lib``."""
        return self.path.parent.name == "lib"

    def where(self, offset: int) -> str:
        """``lua/x.lua:12`` for a character offset into the file."""
        return f"{self.rel}:{self.raw.count(chr(10), 0, offset) + 1}"

    @property
    def header(self) -> str:
        """The header comment: the first ``--[[ ... ]]`` block (empty if none)."""
        match = re.search(r"--\[(=*)\[(.*?)\]\1\]", self.raw, re.DOTALL)
        return match.group(2) if match else ""

    @property
    def includes(self) -> list[str]:
        """The helpers named by ``-- @include`` lines."""
        return re.findall(r"^-- @include (\w+)\s*$", self.raw, re.MULTILINE)


def read_lua(path: Path) -> LuaFile:
    """Read one Lua file."""
    raw = path.read_text(encoding="utf-8")
    return LuaFile(path, raw, strip_comments(raw))


@cache
def script_files() -> tuple[LuaFile, ...]:
    """Every ``lua/*.lua``, by name."""
    return tuple(read_lua(p) for p in sorted(LUA_DIR.glob("*.lua")))


@cache
def lib_files() -> tuple[LuaFile, ...]:
    """Every ``lua/lib/*.lua``, by name."""
    return tuple(read_lua(p) for p in sorted((LUA_DIR / "lib").glob("*.lua")))


def all_lua_files() -> tuple[LuaFile, ...]:
    """Scripts and helpers."""
    return script_files() + lib_files()


def script_file(name: str) -> LuaFile:
    """The script ``lua/<name>.lua``."""
    return read_lua(LUA_DIR / f"{name}.lua")


def header_key_parts(lua: LuaFile) -> tuple[str, ...]:
    """The key parts a script's header names, in the order written (``KEYS[i] part (TYPE)``)."""
    return tuple(m.group(2) for m in HEADER_KEY_LINE.finditer(lua.header))


def split_args(code: str, open_paren: int) -> tuple[list[str], int]:
    """The top-level, comma-separated expressions between ``code[open_paren]`` and its closing
    bracket (strings and nested brackets respected), and the offset just past the close."""
    args: list[str] = []
    depth, start, i = 0, open_paren + 1, open_paren
    while i < len(code):
        char = code[i]
        if char in "\"'":
            i = _quoted_end(code, i)
            continue
        if char in "({[":
            depth += 1
        elif char in ")}]":
            depth -= 1
            if depth == 0:
                args.append(code[start:i].strip())
                return [a for a in args if a], i + 1
        elif char == "," and depth == 1:
            args.append(code[start:i].strip())
            start = i + 1
        i += 1
    raise AssertionError(f"unbalanced bracket at offset {open_paren}")


@dataclass(frozen=True)
class RedisCall:
    """One ``redis.call``/``redis.pcall`` in the code of a file."""

    offset: int
    command: str | None  # None when the command is not a string literal
    args: list[str]


def redis_calls(lua: LuaFile) -> list[RedisCall]:
    """Every redis.call and redis.pcall of a file."""
    calls = []
    for match in REDIS_CALL.finditer(lua.code):
        args, _ = split_args(lua.code, match.end() - 1)
        command = args[0][1:-1].upper() if args and STRING_LITERAL.match(args[0]) else None
        calls.append(RedisCall(match.start(), command, args[1:]))
    return calls


def is_literal_or_concatenation(expression: str) -> bool:
    """True for a string literal, a number, or an expression joined with ``..``."""
    literal = STRING_LITERAL.match(expression) or re.fullmatch(r"[\d.]+", expression)
    return bool(literal) or ".." in blank_strings(expression)


# -- binding of *_key names ----------------------------------------------------------------------


def _table_values(constructor: str) -> list[str]:
    """The values of a table constructor ``{a, [k] = b, n = c}``."""
    items, _ = split_args(constructor, 0)
    return [item.split("=", 1)[1].strip() if "=" in item else item for item in items]


def _all_key_names(constructor: str) -> bool:
    values = _table_values(constructor)
    return bool(values) and all(KEY_NAME.match(value) for value in values)


def _local_tables(code: str) -> dict[str, str]:
    """``local name = {...}`` constructors of a file, by name."""
    tables = {}
    for match in re.finditer(r"\blocal\s+(\w+)\s*=\s*\{", code):
        _, end = split_args(code, match.end() - 1)
        tables[match.group(1)] = code[match.end() - 1 : end]
    return tables


def _expressions_until_line_end(code: str, start: int) -> list[str]:
    """The comma-separated expressions from ``start`` to the end of the statement: the first
    newline outside any bracket (so a table constructor may span lines)."""
    expressions: list[str] = []
    depth, begin, i = 0, start, start
    while i < len(code) and not (code[i] == "\n" and depth == 0):
        char = code[i]
        if char in "\"'":
            i = _quoted_end(code, i)
            continue
        if char in "({[":
            depth += 1
        elif char in ")}]":
            depth -= 1
        elif char == "," and depth == 0:
            expressions.append(code[begin:i].strip())
            begin = i + 1
        i += 1
    expressions.append(code[begin:i].strip())
    return expressions


def _local_statements(code: str) -> list[tuple[int, list[str], list[str]]]:
    """Every ``local a, b = x, y`` statement: (offset, names, expressions)."""
    statements = []
    for match in re.finditer(r"^[ \t]*local\s+(?!function)([\w \t,]+?)\s*=", code, re.M):
        names = [n.strip() for n in match.group(1).split(",")]
        statements.append((match.start(), names, _expressions_until_line_end(code, match.end())))
    return statements


def key_binding_problems(lua: LuaFile) -> list[str]:
    """Each ``*_key`` name of a script must be bound from ``KEYS[i]``, or from a lookup in (or a
    loop over) a local table that holds only ``*_key`` names."""
    problems, bound = [], set()
    tables = _local_tables(lua.code)
    for offset, names, expressions in _local_statements(lua.code):
        for index, name in enumerate(names):
            if not KEY_NAME.match(name):
                continue
            bound.add(name)
            value = expressions[index] if index < len(expressions) else ""
            lookup = re.fullmatch(r"(\w+)\[.+\]", value)
            from_table = lookup and _all_key_names(tables.get(lookup.group(1), "{}"))
            if not (re.fullmatch(r"KEYS\[\d+\]", value) or from_table):
                problems.append(f"{lua.where(offset)}: {name} is bound from {value!r}, not KEYS")
    for match in re.finditer(r"\bfor\s+([\w\s,]+?)\s+in\s+ipairs\s*\(\s*\{", lua.code):
        loop_keys = [n.strip() for n in match.group(1).split(",") if KEY_NAME.match(n.strip())]
        constructor_start = match.end() - 1
        _, end = split_args(lua.code, constructor_start)
        if loop_keys and not _all_key_names(lua.code[constructor_start:end]):
            problems.append(f"{lua.where(match.start())}: loop over a table of non-key values")
        bound.update(loop_keys)
    for match in re.finditer(r"\b\w+_key\b", lua.code):
        if match.group() not in bound:
            problems.append(f"{lua.where(match.start())}: {match.group()} is never bound")
    return problems


@cache
def lib_function_params() -> dict[str, list[str]]:
    """The parameter names of every helper function, by function name."""
    params = {}
    for lua in lib_files():
        for match in re.finditer(r"\blocal\s+function\s+(\w+)\s*\(([^)]*)\)", lua.code):
            params[match.group(1)] = [p.strip() for p in match.group(2).split(",") if p.strip()]
    return params


def lib_key_problems(lua: LuaFile) -> list[str]:
    """Every ``*_key`` name in a helper is a parameter of a helper function."""
    parameters = {p for names in lib_function_params().values() for p in names}
    return [
        f"{lua.where(m.start())}: {m.group()} is not a parameter of a helper function"
        for m in re.finditer(r"\b\w+_key\b", lua.code)
        if m.group() not in parameters
    ]


def constant_row_variables(code: str) -> set[str]:
    """Loop variables over a local table of constants (``spec`` in ``for _, spec in
    ipairs(OPTION_NAMES)``, where the table holds only literals and UPPER_CASE constants)."""
    tables = _local_tables(code)
    rows = set()
    for match in re.finditer(r"\bfor\s+\w+\s*,\s*(\w+)\s+in\s+ipairs\s*\(\s*(\w+)\s*\)", code):
        constructor = tables.get(match.group(2))
        if constructor is None:
            continue
        without_strings = re.sub(r'"(?:[^"\\]|\\.)*"', "", constructor)
        if not re.search(r"\b[a-z_][a-z0-9_]*\b", without_strings):
            rows.add(match.group(1))
    return rows


# -- the rules -----------------------------------------------------------------------------------


def assert_no_problems(problems: list[str]) -> None:
    """Fail with one line per problem."""
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("lua", all_lua_files(), ids=lambda f: f.rel)
def test_every_redis_call_takes_its_key_from_a_named_key_local(lua: LuaFile) -> None:
    problems = []
    for call in redis_calls(lua):
        if call.command is None:
            problems.append(f"{lua.where(call.offset)}: the command is not a string literal")
        elif call.command not in KEYLESS_COMMANDS:
            first = call.args[0] if call.args else "(nothing)"
            if not KEY_NAME.match(first):
                problems.append(
                    f"{lua.where(call.offset)}: {call.command} takes its key from {first!r}; "
                    "it must be a local named *_key"
                )
    assert_no_problems(problems)


@pytest.mark.parametrize("lua", script_files(), ids=lambda f: f.rel)
def test_every_key_local_of_a_script_is_bound_from_keys(lua: LuaFile) -> None:
    assert_no_problems(key_binding_problems(lua))


@pytest.mark.parametrize("lua", lib_files(), ids=lambda f: f.rel)
def test_helpers_take_keys_only_as_parameters_and_never_read_keys_or_argv(lua: LuaFile) -> None:
    if lua.name == TEST_CLOCK_HELPER:
        reads = re.findall(r"\b(?:KEYS|ARGV)\b.*", lua.code)
        assert reads == ["KEYS[#KEYS]"], reads  # the test build's extra slot, and nothing else
        return
    problems = lib_key_problems(lua)
    for match in re.finditer(r"\b(KEYS|ARGV)\b", lua.code):
        problems.append(f"{lua.where(match.start())}: a helper reads {match.group()}")
    assert_no_problems(problems)


@pytest.mark.parametrize("lua", all_lua_files(), ids=lambda f: f.rel)
def test_keys_passed_to_helpers_are_never_built(lua: LuaFile) -> None:
    problems = []
    for name, params in lib_function_params().items():
        for match in re.finditer(rf"(?<![\w.:]){name}\s*\(", lua.code):
            if re.search(r"\bfunction\s+$", lua.code[: match.start()]):
                continue  # the definition itself
            args, _ = split_args(lua.code, match.end() - 1)
            for param, arg in zip(params, args, strict=False):
                if KEY_NAME.match(param) and is_literal_or_concatenation(arg):
                    problems.append(f"{lua.where(match.start())}: {name}({param}={arg})")
    assert_no_problems(problems)


@pytest.mark.parametrize("lua", all_lua_files(), ids=lambda f: f.rel)
def test_no_forbidden_commands(lua: LuaFile) -> None:
    problems = [
        f"{lua.where(call.offset)}: redis command {call.command} is not allowed"
        for call in redis_calls(lua)
        if call.command and FORBIDDEN_COMMAND.match(call.command)
    ]
    assert_no_problems(problems)


@pytest.mark.parametrize("lua", all_lua_files(), ids=lambda f: f.rel)
def test_no_cjson_or_cmsgpack(lua: LuaFile) -> None:
    problems = [
        f"{lua.where(m.start())}: uses {m.group()}"
        for m in re.finditer(r"\b(cjson|cmsgpack)\b", blank_strings(lua.code))
    ]
    assert_no_problems(problems)


def test_time_is_read_only_in_lib_now() -> None:
    readers = {
        lua.where(call.offset)
        for lua in all_lua_files()
        for call in redis_calls(lua)
        if call.command == "TIME"
    }
    files = {reader.split(":")[0] for reader in readers}
    assert files == {"lua/lib/now.lua", "lua/lib/now_test.lua"} and len(readers) == 2, readers


def test_the_production_build_never_reads_a_clock_key() -> None:
    """The test clock is compiled into the test build only: no production script takes a clock
    key or reads one; every test-build script that reads the time takes it as its last slot."""
    production, test = build_scripts(PRODUCTION), build_scripts(TEST_BUILD)
    for name, source in production.items():
        assert "clock" not in source.key_parts, name
        assert "clock_key" not in source.text and "KEYS[#KEYS]" not in source.text, name
        reads_time = "now_ms()" in source.text
        expected = (*source.key_parts, "clock") if reads_time else source.key_parts
        assert test[name].key_parts == expected, name
        assert ("KEYS[#KEYS]" in test[name].text) is reads_time, name


def test_no_helper_but_now_calls_now_ms() -> None:
    problems = [
        f"{lua.where(m.start())}: a helper calls now_ms (scripts call it, once)"
        for lua in lib_files()
        for m in re.finditer(r"(?<!function )\bnow_ms\s*\(", lua.code)
    ]
    assert_no_problems(problems)


@pytest.mark.parametrize("lua", script_files(), ids=lambda f: f.rel)
def test_a_script_that_includes_now_calls_now_ms_exactly_once(lua: LuaFile) -> None:
    calls = [m.start() for m in re.finditer(r"\bnow_ms\s*\(", lua.code)]
    if "now" not in lua.includes:
        assert not calls, f"{lua.rel} calls now_ms without including lib/now.lua"
        return
    where = ", ".join(lua.where(offset) for offset in calls)
    assert len(calls) == 1, f"{lua.rel} calls now_ms {len(calls)} times: {where}"


@pytest.mark.parametrize("lua", script_files(), ids=lambda f: f.rel)
def test_keys_slots_are_bound_to_locals_before_any_logic(lua: LuaFile) -> None:
    header_count = len(header_key_parts(lua))
    bindings: dict[int, str] = {}
    binding_offsets: set[int] = set()
    last_binding = -1
    for offset, names, expressions in _local_statements(lua.code):
        for name, value in zip(names, expressions, strict=False):
            slot = re.fullmatch(r"KEYS\[(\d+)\]", value)
            if slot:
                assert int(slot.group(1)) not in bindings, f"{lua.where(offset)}: bound twice"
                bindings[int(slot.group(1))] = name
                binding_offsets.add(lua.code.index(value, offset))
                last_binding = max(last_binding, offset)
    assert sorted(bindings) == list(range(1, header_count + 1)), (
        f"{lua.rel}: KEYS slots bound {sorted(bindings)}, header names {header_count}"
    )
    stray = [
        f"{lua.where(m.start())}: KEYS used outside the slot bindings"
        for m in re.finditer(r"\bKEYS\b", blank_strings(lua.code))
        if m.start() not in binding_offsets
    ]
    assert_no_problems(stray)
    logic = re.search(r"\bredis\.p?call\b|\bARGV\b|\breturn\b|\bnow_ms\s*\(", lua.code)
    assert logic is not None and logic.start() > last_binding, (
        f"{lua.where(logic.start() if logic else 0)}: logic before the KEYS bindings end"
    )


@pytest.mark.parametrize("lua", all_lua_files(), ids=lambda f: f.rel)
def test_error_replies_hold_only_fixed_text(lua: LuaFile) -> None:
    problems = []
    for match in re.finditer(
        r"(?:\bredis\.(?:error_reply|status_reply)|(?<![\w.])error)\s*\(", lua.code
    ):
        args, _ = split_args(lua.code, match.end() - 1)
        if not (len(args) == 1 and STRING_LITERAL.match(args[0])):
            problems.append(f"{lua.where(match.start())}: error text {args!r} is not a literal")
    fixed_rows = constant_row_variables(lua.code)
    for match in re.finditer(r"\{\s*STATUS\.bad_arg\b", lua.code):
        args, _ = split_args(lua.code, match.start())
        name = args[1] if len(args) == 2 else ""
        row = re.fullmatch(r"(\w+)\[\d+\]", name)
        if not (STRING_LITERAL.match(name) or (row and row[1] in fixed_rows)):
            problems.append(f"{lua.where(match.start())}: bad_arg reply {args!r} is not fixed")
    assert_no_problems(problems)


# -- the helpers themselves ----------------------------------------------------------------------


def test_strip_comments_keeps_strings_and_line_numbers() -> None:
    text = '#!lua\n--[[ a\nb ]]\nlocal s = "-- not a comment" -- gone\nx = [[--kept]] --[==[\n]==]y'
    stripped = strip_comments(text)
    assert len(stripped) == len(text) and stripped.count("\n") == text.count("\n")
    assert '"-- not a comment"' in stripped and "[[--kept]]" in stripped
    assert "gone" not in stripped and "a" not in stripped.split("\n")[1]
    assert stripped.rstrip().endswith("y") and "lua" not in stripped


def test_split_args_respects_nesting_and_strings() -> None:
    code = 'f(a, g(b, c), "x,)", {d, e}, t[1])'
    assert split_args(code, 1) == (["a", "g(b, c)", '"x,)"', "{d, e}", "t[1]"], len(code))


def test_the_key_rules_catch_built_keys() -> None:
    """The checks above must actually fail on a script that builds a key."""
    code = strip_comments(
        'local meta_key = KEYS[1]\nlocal bad_key = "q:" .. ARGV[1]\n'
        'redis.call("GET", "literal")\nredis.call("GET", meta_key .. ":x")\n'
    )
    lua = LuaFile(LUA_DIR / "fake.lua", code, code)
    assert len(key_binding_problems(lua)) == 1
    assert [c.args[0] for c in redis_calls(lua)] == ['"literal"', 'meta_key .. ":x"']
    assert is_literal_or_concatenation('"a" .. b') and not is_literal_or_concatenation("a_key")


# -- the order of helpers in an expanded script ---------------------------------------------------


@cache
def helper_names() -> dict[str, str]:
    """Every name a helper file defines at its top level (``local function f``, ``local X =``),
    with the file that defines it."""
    names = {}
    for lua in lib_files():
        for match in re.finditer(r"^local\s+(?:function\s+)?(\w+)", lua.code, re.MULTILINE):
            names[match.group(1)] = lua.name
    return names


@pytest.mark.parametrize("build", [PRODUCTION, TEST_BUILD])
@pytest.mark.parametrize("lua", script_files(), ids=lambda f: f.rel)
def test_every_helper_name_is_defined_before_it_is_used(lua: LuaFile, build: str) -> None:
    """A Lua local is visible only after its definition: a helper used before its file is
    included (or never included) compiles as a global, and fails only when that line runs,
    perhaps on a rare branch. So in each expanded script, every name a helper defines must be
    defined above its first use."""
    text = build_scripts(build)[lua.name].text
    assert_no_problems(order_problems(text, f"{lua.rel} ({build})"))


def order_problems(text: str, label: str) -> list[str]:
    """The helper names an expanded script uses before, or without, their definition."""
    code = blank_strings(strip_comments(text))
    problems = []
    for name, helper in helper_names().items():
        uses = [m.start() for m in re.finditer(rf"(?<![\w.]){name}\b", code)]
        if not uses:
            continue
        definition = re.search(rf"^local\s+(?:function\s+)?{name}\b", code, re.MULTILINE)
        if definition is None:
            problems.append(f"{label}: uses {name} but does not include {helper}")
        elif uses[0] < definition.start():
            problems.append(f"{label}: uses {name} before {helper} is included")
    return problems


def test_the_order_check_catches_a_helper_used_too_early_or_never_included() -> None:
    early = "local function f() return jobs_read(k, {}) end\nlocal function jobs_read() end\n"
    assert order_problems(early, "x") == ["x: uses jobs_read before records is included"]
    assert order_problems("local x = plan_new()\n", "y") == [
        "y: uses plan_new but does not include plan"
    ]
