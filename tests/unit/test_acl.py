"""The least-privilege ACL rule (``scheduler._server_checks.ACL_RULE``) allows every command the
Lua scripts run, read from ``lua/`` the way ``test_lua_static`` reads them (so a command a
script gains later fails here until the rule has it), grants nothing ``@dangerous`` or
``@admin`` by category, and is the rule the README prints. No Redis: the integration test
``tests/integration/test_least_privilege.py`` runs the package as a user with only this rule.
"""

from __future__ import annotations

import pytest

from scheduler._server_checks import ACL_COMMANDS, ACL_RULE, acl_rule
from scheduler.errors import ConfigError
from tests.unit.test_lua_static import REPO_ROOT, all_lua_files, redis_calls

README = REPO_ROOT / "README.md"


def allowed(command: str, args: list[str]) -> bool:
    """True when the rule allows ``command`` (with its subcommand, the first argument, if the
    rule names only some subcommands of it)."""
    name = command.lower()
    if name in ACL_COMMANDS:
        return True
    first = args[0].strip("\"'").lower() if args else ""
    return f"{name}|{first}" in ACL_COMMANDS


def test_the_scripts_run_commands_at_all() -> None:
    commands = {call.command for lua in all_lua_files() for call in redis_calls(lua)}
    assert {"ZADD", "HSET", "TIME"} <= commands  # the reader finds them


def test_the_rule_allows_no_data_command_the_scripts_do_not_run() -> None:
    """Least privilege both ways: the commands listed for the scripts (those before the
    clients' own, which start at EVALSHA) are exactly the ones the scripts run."""
    for_scripts = set(ACL_COMMANDS[: ACL_COMMANDS.index("evalsha")])
    run = {(call.command or "").lower() for lua in all_lua_files() for call in redis_calls(lua)}
    assert for_scripts == run


def test_every_command_a_script_runs_is_allowed_by_the_rule() -> None:
    problems = []
    for lua in all_lua_files():
        for call in redis_calls(lua):
            if call.command is None:
                problems.append(f"{lua.where(call.offset)}: a command that is not a literal")
            elif not allowed(call.command, call.args):
                problems.append(
                    f"{lua.where(call.offset)}: {call.command} is not in ACL_COMMANDS "
                    "(scheduler/_server_checks.py); add it there and to the README"
                )
    assert not problems, "\n".join(problems)


def test_the_rule_names_commands_one_by_one_and_no_category() -> None:
    words = ACL_RULE.split()
    assert words[:4] == ["resetkeys", "~scheduler:*", "resetchannels", "-@all"]
    granted = words[4:]
    assert granted == [f"+{name}" for name in ACL_COMMANDS]
    assert not any("@" in word or "*" in word for word in granted)
    assert len(set(ACL_COMMANDS)) == len(ACL_COMMANDS)


def test_the_rule_for_another_prefix_only_changes_the_key_pattern() -> None:
    assert acl_rule("app:jobs") == ACL_RULE.replace("~scheduler:*", "~app:jobs:*")
    with pytest.raises(ConfigError):
        acl_rule("jobs*")  # a glob would widen the key pattern


def test_the_readme_gives_the_rule() -> None:
    assert f"ACL SETUSER scheduler on >CHANGE-ME {ACL_RULE}" in README.read_text()
