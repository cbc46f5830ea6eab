"""The built wheel is complete: built with ``python -m build``, unzipped, and imported from that
folder alone in a fresh interpreter, every script loads with its helpers and key parts. This
catches Lua files left out of the package (the ``scheduler/lua`` symlink, ``lib/``). No Redis.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# Run in the fresh interpreter: where scheduler came from, and every script's key parts.
PROBE = """
import json, sys
import scheduler
from scheduler import _scripts
scripts = _scripts.all_scripts()
print(json.dumps({
    "sys_path": sys.path,
    "module": scheduler.__file__,
    "lua_root": str(_scripts.lua_root()),
    "names": list(_scripts.SCRIPT_NAMES),
    "scripts": {
        name: {"key_parts": list(s.key_parts), "text": s.text} for name, s in scripts.items()
    },
}))
"""


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run ``command``; fail the test with its output unless it exits 0. Returns stdout."""
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, (
        f"{command} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    )
    return done.stdout


@pytest.fixture(scope="module")
def unpacked_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built now and unzipped into a fresh folder."""
    dist = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist)], cwd=REPO_ROOT)
    wheels = list(dist.glob("scheduler-*.whl"))
    assert len(wheels) == 1, wheels
    site = tmp_path_factory.mktemp("site")
    with zipfile.ZipFile(wheels[0]) as wheel:
        wheel.extractall(site)
    return site


@pytest.fixture(scope="module")
def probe(unpacked_wheel: Path) -> dict[str, object]:
    """What a fresh interpreter sees, importing scheduler from the unzipped wheel only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = str(unpacked_wheel)
    env["PYTHONNOUSERSITE"] = "1"
    # -P: no script or working folder on sys.path; -s: no user site. (-I would drop PYTHONPATH.)
    stdout = run([sys.executable, "-P", "-s", "-c", PROBE], cwd=unpacked_wheel.parent, env=env)
    result: dict[str, object] = json.loads(stdout)
    return result


def test_scheduler_is_imported_from_the_unzipped_wheel(
    unpacked_wheel: Path, probe: dict[str, object]
) -> None:
    sys_path = probe["sys_path"]
    assert isinstance(sys_path, list)
    module, lua_root = Path(str(probe["module"])), Path(str(probe["lua_root"]))
    assert module.is_relative_to(unpacked_wheel), (module, sys_path)
    assert lua_root.is_relative_to(unpacked_wheel), (lua_root, sys_path)
    assert not lua_root.is_symlink(), "the wheel must hold the Lua files, not a link"
    # The venv's editable install may put the source tree on sys.path too, but after the wheel.
    assert sys_path[0] == str(unpacked_wheel), sys_path


def test_every_script_loads_from_the_wheel(probe: dict[str, object]) -> None:
    names, scripts = probe["names"], probe["scripts"]
    assert isinstance(names, list) and isinstance(scripts, dict)
    assert names and sorted(scripts) == sorted(names)
    for name in names:
        script = scripts[name]
        assert script["key_parts"], f"{name}: no key parts"
        assert script["text"].startswith("#!lua"), name
        assert "@include" not in script["text"], name


def test_the_wheel_holds_every_lua_file_of_the_source_tree(unpacked_wheel: Path) -> None:
    source = {p.relative_to(REPO_ROOT / "lua") for p in (REPO_ROOT / "lua").rglob("*.lua")}
    packed = {
        p.relative_to(unpacked_wheel / "scheduler" / "lua")
        for p in (unpacked_wheel / "scheduler" / "lua").rglob("*.lua")
    }
    assert packed == source
    for relative in source:
        packed_text = (unpacked_wheel / "scheduler" / "lua" / relative).read_bytes()
        assert packed_text == (REPO_ROOT / "lua" / relative).read_bytes(), relative
