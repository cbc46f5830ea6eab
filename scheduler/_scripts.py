"""Loading the Lua scripts from the package's ``lua/`` folder.

Each ``lua/<name>.lua`` is one state change. A line ``-- @include <helper>`` is replaced by
``lua/lib/<helper>.lua``; helpers include nothing, and each is inlined at most once per script.
The header's ``KEYS[i] <part> (TYPE)`` lines name the keys the script takes, in order: the
client passes exactly those (see :mod:`scheduler._keys`), so the header is the one source of the
script's key contract.

**Two builds.** :data:`PRODUCTION` is what every client loads: a script reads the time from
Redis ``TIME`` only (``lib/now.lua``). :data:`TEST_BUILD` inlines ``lib/now_test.lua`` instead,
which also reads the queue's test clock (``scheduler.testing``) from one more key, appended to
the script's KEYS: so no production call ever reads a clock key. Only
:func:`scheduler.testing.use_test_build` switches a process to the test build.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable

from ._keys import KEY_PARTS
from .errors import ConfigError

SCRIPT_NAMES: tuple[str, ...] = (
    "enqueue",
    "claim",
    "complete",
    "fail",
    "heartbeat",
    "release",
    "reap",
    "cancel",
    "requeue",
    "purge",
    "inspect",
    "stats",
)
"""Every script of the package, one per state change (``inspect`` and ``stats`` only read)."""

PRODUCTION = "production"
"""The build every client loads."""
TEST_BUILD = "test"
"""The build with the test clock (see the module docstring); tests only."""
BUILDS = (PRODUCTION, TEST_BUILD)
CLOCK_HELPER = "now"
"""The helper the test build replaces, and the part its extra key is."""

_build = PRODUCTION

_INCLUDE = re.compile(r"^-- @include (\S+)\s*$")
_KEY_LINE = re.compile(r"^KEYS\[(\d+)\]\s+(\w+)\s+\((\w+)\)")


@dataclass(frozen=True, slots=True)
class ScriptSource:
    """One script, ready to send: its expanded text and the key parts its KEYS are."""

    name: str
    text: str
    key_parts: tuple[str, ...]


def lua_root() -> Traversable:
    """The folder holding the scripts, inside the installed package."""
    return files("scheduler") / "lua"


def expand(name: str, text: str, read_helper: _HelperReader, build: str = PRODUCTION) -> str:
    """Return ``text`` with each ``-- @include`` line replaced by the helper's text (in the
    test build, ``now`` by ``now_test``)."""
    seen: set[str] = set()
    lines = []
    for line in text.splitlines():
        match = _INCLUDE.match(line)
        if not match:
            lines.append(line)
            continue
        helper = match.group(1)
        if build == TEST_BUILD and helper == CLOCK_HELPER:
            helper = "now_test"
        if helper in seen:
            raise ConfigError(f"{name}.lua includes {helper!r} twice")
        seen.add(helper)
        body = read_helper(helper)
        if any(_INCLUDE.match(inner) for inner in body.splitlines()):
            raise ConfigError(f"helper {helper!r} includes another helper; helpers do not nest")
        lines.append(f"-- begin {helper}")
        lines.extend(body.rstrip("\n").splitlines())
        lines.append(f"-- end {helper}")
    return "\n".join(lines) + "\n"


def parse_key_parts(name: str, text: str) -> tuple[str, ...]:
    """Read the ``KEYS[i] part (TYPE)`` lines of a script's header, checking they run 1..n."""
    parts: list[str] = []
    for line in text.splitlines():
        match = _KEY_LINE.match(line)
        if not match:
            continue
        index, part = int(match.group(1)), match.group(2)
        if index != len(parts) + 1:
            raise ConfigError(f"{name}.lua: KEYS[{index}] is out of order in the header")
        if part not in KEY_PARTS:
            raise ConfigError(f"{name}.lua: KEYS[{index}] names unknown key part {part!r}")
        parts.append(part)
    if not parts:
        raise ConfigError(f"{name}.lua: the header names no KEYS")
    return tuple(parts)


class _HelperReader:
    def __init__(self, root: Traversable) -> None:
        self._root = root

    def __call__(self, helper: str) -> str:
        if not re.fullmatch(r"[a-z_]+", helper):
            raise ConfigError(f"invalid helper name {helper!r}")
        path = self._root / "lib" / f"{helper}.lua"
        if not path.is_file():
            raise ConfigError(f"unknown helper {helper!r}")
        return path.read_text(encoding="utf-8")


def load_script(
    name: str, root: Traversable | None = None, build: str = PRODUCTION
) -> ScriptSource:
    """Read, expand and parse the script ``name`` from ``root`` (default: the package's), in
    ``build``: the test build appends the clock key to a script that reads the time."""
    if build not in BUILDS:
        raise ConfigError(f"unknown script build {build!r}")
    root = root if root is not None else lua_root()
    path = root / f"{name}.lua"
    if not path.is_file():
        raise ConfigError(f"script {name!r} not found in {root}")
    raw = path.read_text(encoding="utf-8")
    if not raw.startswith("#!lua"):
        raise ConfigError(f"{name}.lua must start with a #!lua line")
    parts = parse_key_parts(name, raw)
    if build == TEST_BUILD and f"-- @include {CLOCK_HELPER}" in raw.splitlines():
        parts = (*parts, "clock")
    return ScriptSource(name, expand(name, raw, _HelperReader(root), build), parts)


@cache
def build_scripts(build: str) -> dict[str, ScriptSource]:
    """Every script of the package in ``build``, loaded once per process."""
    return {name: load_script(name, build=build) for name in SCRIPT_NAMES}


def all_scripts() -> dict[str, ScriptSource]:
    """Every script of the package, in this process's build (production unless
    :func:`scheduler.testing.use_test_build` was called)."""
    return build_scripts(_build)


def current_build() -> str:
    """The build this process loads: :data:`PRODUCTION` or :data:`TEST_BUILD`."""
    return _build


def select_build(build: str) -> None:
    """Make ``build`` the one every queue made from now on loads (tests only; see
    :mod:`scheduler.testing`)."""
    global _build
    if build not in BUILDS:
        raise ConfigError(f"unknown script build {build!r}")
    _build = build
