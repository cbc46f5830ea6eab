"""``doctor``: what the server is, whether the scripts load, how far away it is, and what to
fix (the warnings of :func:`scheduler.check_server`)."""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from typing import Any

import redis

from ._cli_common import EXIT_ERROR, EXIT_OK, connect
from ._scripts import all_scripts
from ._server_checks import check_server
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
        f"script loads, the round-trip latency (median of {PINGS} PINGs) and what to fix.",
    )
    parser.set_defaults(run=run_doctor)


def _config(client: SyncClient, name: str) -> str:
    try:
        reply: dict[Any, Any] = client.config_get(name)
    except redis.ResponseError as exc:
        return f"unknown (CONFIG GET refused: {exc})"
    value = reply.get(name)
    return "unknown" if value is None else str(value)


def describe_persistence(client: SyncClient) -> str:
    """AOF and RDB settings in words."""
    appendonly, save = _config(client, "appendonly"), _config(client, "save")
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


def run_doctor(args: argparse.Namespace) -> int:
    """``doctor``: print the findings; exit 1 when a script fails to load or a check warns."""
    client = connect(args)
    try:
        info: dict[str, Any] = client.info("server")
        print(f"server:           Redis {info.get('redis_version', 'unknown')} at {args.redis_url}")
        print(f"maxmemory-policy: {_config(client, 'maxmemory-policy')}")
        print(f"persistence:      {describe_persistence(client)}")
        script_errors = load_scripts(client)
        loaded = "yes" if not script_errors else "NO: " + "; ".join(script_errors)
        print(f"scripts load:     {loaded} ({len(all_scripts())} scripts)")
        print(f"latency:          {median_ping_ms(client):.3f} ms (median of {PINGS} PINGs)")
        logging.getLogger("scheduler").disabled = True  # printed below instead
        warnings = check_server(client)
    finally:
        client.close()
    for text in warnings:
        print(f"WARNING: {text}")
    ok = not warnings and not script_errors
    print("all good" if ok else f"{len(warnings) + len(script_errors)} problem(s) to fix")
    return EXIT_OK if ok else EXIT_ERROR
