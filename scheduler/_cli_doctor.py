"""``doctor``: what the server is, whether the scripts load, how far away it is, and what to
fix (the warnings of :func:`scheduler.check_server`)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import statistics
import time
from collections.abc import Iterator
from typing import Any

import redis

from ._cli_common import EXIT_ERROR, EXIT_OK, PROG, connect, one_line, redacted, say
from ._scripts import all_scripts
from ._server_checks import Finding, server_findings
from .connection import SyncClient

Subparsers = Any  # argparse's _SubParsersAction, private in typeshed
PINGS = 20


def add_doctor_command(commands: Subparsers, common: argparse.ArgumentParser) -> None:
    """Register ``doctor`` on ``commands``."""
    parser = commands.add_parser(
        "doctor",
        parents=[common],
        help="check the Redis server; exit 1 if anything is wrong",
        description="Print the server version, maxmemory-policy, persistence, whether every "
        f"script loads, the round-trip latency (median of {PINGS} PINGs) and what to fix. "
        "A check this user may not run (INFO, CONFIG GET: a least-privilege ACL user, a "
        "managed Redis) is listed as NOT CHECKED and is not counted as a problem.",
    )
    parser.set_defaults(run=run_doctor)


def _config(client: SyncClient, name: str) -> str:
    try:
        reply: dict[Any, Any] = client.config_get(name)
    except redis.ResponseError as exc:  # NOPERM for a least-privilege user, or a renamed command
        return f"not checked (CONFIG GET refused: {one_line(str(exc))})"
    value = reply.get(name)
    return "unknown" if value is None else str(value)


def describe_version(client: SyncClient) -> str:
    """The server's version, or why it could not be read."""
    try:
        info: dict[str, Any] = client.info("server")
    except redis.ResponseError as exc:
        return f"version not checked (INFO refused: {one_line(str(exc))})"
    return f"Redis {info.get('redis_version', 'unknown')}"


def describe_persistence(client: SyncClient) -> str:
    """AOF and RDB settings in words."""
    appendonly, save = _config(client, "appendonly"), _config(client, "save")
    if appendonly.startswith("not checked"):
        return appendonly
    if appendonly != "yes" and not save.strip():
        return "off (appendonly no, no RDB save points)"
    rdb = f"RDB saves '{save}'" if save.strip() else "no RDB saves"
    return f"appendonly {appendonly}, {rdb}"


def load_scripts(client: SyncClient) -> list[str]:
    """SCRIPT LOAD every script; the errors (empty when all load)."""
    errors = []
    for name, source in all_scripts().items():
        try:
            client.script_load(source.text)
        except redis.ResponseError as exc:
            errors.append(f"{name}: {exc}")
    return errors


def median_ping_ms(client: SyncClient) -> float:
    """The median round trip of ``PINGS`` PINGs, in ms."""
    samples = []
    for _ in range(PINGS):
        start = time.perf_counter()
        client.ping()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


@contextlib.contextmanager
def quiet_scheduler_log() -> Iterator[None]:
    """Silence the ``scheduler`` logger for the block (doctor prints the findings itself)."""
    log = logging.getLogger("scheduler")
    before, log.disabled = log.disabled, True
    try:
        yield
    finally:
        log.disabled = before


def summary(problems: int, unchecked: int) -> str:
    """The last line: how many problems, and how many checks the user was not allowed."""
    if not problems and not unchecked:
        return "all good"
    text = f"{problems} problem(s) to fix" if problems else "no problem found"
    if unchecked:
        text += f"; {unchecked} check(s) not allowed to this user (see NOT CHECKED)"
    return text


def report(findings: list[Finding], script_errors: list[str]) -> tuple[int, str]:
    """Print each finding on a line of its own; the exit code (1 when anything needs fixing)
    and the summary."""
    for finding in findings:
        print(f"{'WARNING' if finding.checked else 'NOT CHECKED'}: {finding.text}")
    problems = sum(1 for f in findings if f.checked) + len(script_errors)
    unchecked = sum(1 for f in findings if not f.checked)
    return (EXIT_ERROR if problems else EXIT_OK), summary(problems, unchecked)


def run_doctor(args: argparse.Namespace) -> int:
    """``doctor``: print the findings; exit 1 when a script fails to load or a check warns.
    A check the user may not run (INFO, CONFIG GET) is listed as not checked and does not
    count as a problem."""
    client = connect(args)
    try:
        print(f"server:           {describe_version(client)} at {redacted(args.redis_url)}")
        print(f"maxmemory-policy: {_config(client, 'maxmemory-policy')}")
        print(f"persistence:      {describe_persistence(client)}")
        script_errors = load_scripts(client)
        loaded = "yes" if not script_errors else "NO: " + "; ".join(script_errors)
        print(f"scripts load:     {loaded} ({len(all_scripts())} scripts)")
        print(f"latency:          {median_ping_ms(client):.3f} ms (median of {PINGS} PINGs)")
        with quiet_scheduler_log():
            findings = server_findings(client)
    finally:
        client.close()
    code, summary = report(findings, script_errors)
    print(summary, flush=True)
    if code != EXIT_OK:
        say(f"{PROG} doctor", summary)
    return code
