"""The script loader (scheduler._scripts): the package's scripts load and expand fully, and the
loader refuses every malformed script folder with :class:`ConfigError` (fixture folders under
``tmp_path``; a ``pathlib.Path`` serves as the loader's Traversable root).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from scheduler._keys import KEY_PARTS
from scheduler._scripts import SCRIPT_NAMES, all_scripts, load_script, lua_root
from scheduler.errors import ConfigError

GOOD_HEADER = """#!lua
--[[
demo: a fixture script.

KEYS[1] clock  (STRING)  the clock
KEYS[2] meta   (HASH)    the records

ARGV[1] id     the job
--]]
"""


def write_lua_folder(root: Path, script: str, helpers: dict[str, str] | None = None) -> Path:
    """Write ``demo.lua`` (text ``script``) and ``lib/<name>.lua`` helpers under ``root``."""
    (root / "lib").mkdir(parents=True, exist_ok=True)
    (root / "demo.lua").write_text(script, encoding="utf-8")
    for name, body in (helpers or {}).items():
        (root / "lib" / f"{name}.lua").write_text(body, encoding="utf-8")
    return root


def assert_refused(root: Path, message: str) -> None:
    """Loading ``demo`` from ``root`` raises ConfigError whose text matches ``message``."""
    with pytest.raises(ConfigError, match=message):
        load_script("demo", root=root)


# -- the package's own scripts -------------------------------------------------------------------


@pytest.mark.parametrize("name", SCRIPT_NAMES)
def test_every_package_script_loads_fully_expanded(name: str) -> None:
    script = load_script(name)
    assert script.name == name
    assert script.text.startswith("#!lua")
    assert "@include" not in script.text
    assert script.key_parts, name
    assert set(script.key_parts) <= set(KEY_PARTS)
    assert len(set(script.key_parts)) == len(script.key_parts), "a key part named twice"


def test_all_scripts_holds_every_name_and_is_cached() -> None:
    scripts = all_scripts()
    assert tuple(scripts) == SCRIPT_NAMES
    assert all_scripts() is scripts


def test_lua_root_holds_every_script_and_the_lib_folder() -> None:
    root = lua_root()
    for name in SCRIPT_NAMES:
        assert (root / f"{name}.lua").is_file(), name
    assert (root / "lib").is_dir()


# -- the loader on fixture folders ---------------------------------------------------------------


def test_fixture_script_expands_its_helper_and_reads_its_keys(tmp_path: Path) -> None:
    script = GOOD_HEADER + "-- @include greet\nreturn greet()\n"
    root = write_lua_folder(tmp_path, script, {"greet": "local function greet() return 1 end\n"})
    loaded = load_script("demo", root=root)
    assert loaded.key_parts == ("clock", "meta")
    assert "local function greet() return 1 end" in loaded.text
    assert "-- begin greet" in loaded.text and "-- end greet" in loaded.text
    assert "@include" not in loaded.text
    assert loaded.text.index("local function greet") < loaded.text.index("return greet()")


def test_missing_script_is_refused(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    assert_refused(tmp_path, "not found")


def test_missing_helper_is_refused(tmp_path: Path) -> None:
    root = write_lua_folder(tmp_path, GOOD_HEADER + "-- @include nowhere\n")
    assert_refused(root, "unknown helper 'nowhere'")


@pytest.mark.parametrize("name", ["../demo", "lib/x", "Upper", "a-b", "x.lua"])
def test_helper_names_outside_the_allow_list_are_refused(tmp_path: Path, name: str) -> None:
    root = write_lua_folder(tmp_path, GOOD_HEADER + f"-- @include {name}\n")
    assert_refused(root, "invalid helper name")


def test_helper_included_twice_is_refused(tmp_path: Path) -> None:
    script = GOOD_HEADER + "-- @include greet\n-- @include greet\n"
    root = write_lua_folder(tmp_path, script, {"greet": "local x = 1\n"})
    assert_refused(root, "includes 'greet' twice")


def test_helper_that_includes_another_is_refused(tmp_path: Path) -> None:
    helpers = {"outer": "-- @include inner\nlocal y = 2\n", "inner": "local x = 1\n"}
    root = write_lua_folder(tmp_path, GOOD_HEADER + "-- @include outer\n", helpers)
    assert_refused(root, "do not nest")


def test_header_without_keys_is_refused(tmp_path: Path) -> None:
    root = write_lua_folder(tmp_path, "#!lua\n--[[\ndemo\n\nARGV[1] id  the job\n--]]\n")
    assert_refused(root, "names no KEYS")


@pytest.mark.parametrize(
    "key_lines",
    [
        "KEYS[2] meta (HASH)\nKEYS[1] clock (STRING)\n",  # swapped
        "KEYS[1] clock (STRING)\nKEYS[3] meta (HASH)\n",  # a gap
        "KEYS[1] clock (STRING)\nKEYS[1] meta (HASH)\n",  # repeated index
        "KEYS[0] clock (STRING)\n",  # Lua counts from 1
    ],
    ids=["swapped", "gap", "repeated", "zero"],
)
def test_keys_out_of_order_are_refused(tmp_path: Path, key_lines: str) -> None:
    root = write_lua_folder(tmp_path, f"#!lua\n--[[\n{key_lines}--]]\n")
    assert_refused(root, "out of order")


def test_unknown_key_part_is_refused(tmp_path: Path) -> None:
    script = "#!lua\n--[[\nKEYS[1] clock (STRING)\nKEYS[2] jobs (HASH)\n--]]\n"
    root = write_lua_folder(tmp_path, script)
    assert_refused(root, "unknown key part 'jobs'")


@pytest.mark.parametrize(
    "first_line",
    ["", "-- demo\n", " #!lua\n", "\n#!lua\n", "#!/usr/bin/lua\n"],
    ids=["none", "comment", "indented", "blank-first", "other-shebang"],
)
def test_missing_lua_shebang_is_refused(tmp_path: Path, first_line: str) -> None:
    root = write_lua_folder(tmp_path, first_line + GOOD_HEADER.removeprefix("#!lua\n"))
    assert_refused(root, "#!lua")
