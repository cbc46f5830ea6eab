"""A throwaway Redis Cluster on loopback: ``redis-server --cluster-enabled yes`` processes, each
on a free port whose bus port (port + 10000) is free too, each in a temporary folder of its own.

Three or more primaries are joined with ``redis-cli --cluster create``; fewer (which that tool
refuses) are given their slot ranges with ``CLUSTER ADDSLOTSRANGE`` and met with
``CLUSTER MEET``. Replicas are added with ``CLUSTER MEET`` + ``CLUSTER REPLICATE``. Start-up
waits until every node reports ``cluster_state:ok`` and agrees on the slot map; :meth:`stop`
ends every server by its process id. Used by the tests and the scaling benchmark.
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .errors import ConfigError

SLOTS = 16384
BUS_OFFSET = 10000
CLUSTER_HINT = (
    "redis-server and redis-cli are needed for a local cluster (Debian/Ubuntu: "
    "'sudo apt-get install redis-server redis-tools')"
)


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_cluster_port(taken: set[int]) -> int:
    """A loopback port that is free, with its cluster bus port (port + 10000) free too."""
    for _ in range(1000):
        port = random.randint(20000, 55000 - 1)
        bus = port + BUS_OFFSET
        if {port, bus} & taken:
            continue
        if _port_free(port) and _port_free(bus):
            return port
    raise ConfigError("found no free pair of loopback ports for a cluster node")


def command(client: redis.Redis, *args: Any) -> Any:
    """Send one command to one node and return its raw reply."""
    return client.execute_command(*args)  # type: ignore[no-untyped-call]


def wait_until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``check`` every 20 ms until it is true; ConfigError naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
            pass
        time.sleep(0.02)
    raise ConfigError(f"timed out after {timeout_s} s waiting for {what}")


@dataclass
class Node:
    """One ``redis-server`` of the cluster."""

    port: int
    folder: Path
    process: subprocess.Popen[bytes]

    @property
    def address(self) -> str:
        """``127.0.0.1:<port>``."""
        return f"127.0.0.1:{self.port}"

    def client(self, timeout_s: float = 5.0) -> redis.Redis:
        """A plain (non-cluster) client on this node alone; it does not retry."""
        return redis.Redis(
            port=self.port,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
        )

    def alive(self) -> bool:
        """True while the process runs."""
        return self.process.poll() is None


class LocalCluster:
    """A Redis Cluster of ``primaries`` local servers (see the module docstring).

    Args:
        primaries: how many primaries share the 16384 slots (evenly).
        node_timeout_ms: ``cluster-node-timeout``: how long a silent primary takes to be
            declared failed and replaced by its replica.
        start_timeout_s: the deadline of each start-up step.
    """

    def __init__(
        self, primaries: int = 3, *, node_timeout_ms: int = 1000, start_timeout_s: float = 30.0
    ) -> None:
        self.server = shutil.which("redis-server")
        self.cli = shutil.which("redis-cli")
        if self.server is None or self.cli is None:
            raise ConfigError(CLUSTER_HINT)
        if primaries < 1:
            raise ConfigError("a cluster needs at least one primary")
        self.primary_count = primaries
        self.node_timeout_ms = node_timeout_ms
        self.start_timeout_s = start_timeout_s
        self.nodes: list[Node] = []
        self.root = Path(tempfile.mkdtemp(prefix="scheduler-cluster-"))

    # -- start ---------------------------------------------------------------------------------

    def start(self) -> LocalCluster:
        """Start the primaries, join them, and wait until the cluster is ok everywhere."""
        try:
            for _ in range(self.primary_count):
                self._spawn()
            if self.primary_count >= 3:
                self._create_with_cli()
            else:
                self._create_by_hand()
            self.wait_ok()
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self) -> Node:
        taken = {n.port for n in self.nodes} | {n.port + BUS_OFFSET for n in self.nodes}
        port = free_cluster_port(taken)
        folder = self.root / str(port)
        folder.mkdir()
        process = subprocess.Popen(
            [
                str(self.server),
                "--port", str(port),
                "--bind", "127.0.0.1",
                "--dir", str(folder),
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(self.node_timeout_ms),
                "--cluster-replica-validity-factor", "0",
                "--save", "",
                "--appendonly", "no",
                "--daemonize", "no",
                "--logfile", str(folder / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        node = Node(port, folder, process)
        self.nodes.append(node)
        client = node.client(1.0)
        try:
            ready = f"{node.address} to start"
            wait_until(lambda: bool(client.ping()), self.start_timeout_s, ready)
        finally:
            client.close()
        return node

    def _create_with_cli(self) -> None:
        assert self.cli is not None
        command = [self.cli, "--cluster", "create", *(n.address for n in self.nodes)]
        done = subprocess.run(
            [*command, "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True,
            text=True,
            timeout=self.start_timeout_s,
            check=False,
        )
        if done.returncode != 0:
            raise ConfigError(f"redis-cli --cluster create failed: {done.stdout[-2000:]}")

    def _create_by_hand(self) -> None:
        count = len(self.nodes)
        for index, node in enumerate(self.nodes):
            first, last = SLOTS * index // count, SLOTS * (index + 1) // count - 1
            client = node.client()
            try:
                command(client, "CLUSTER", "ADDSLOTSRANGE", first, last)
                for other in self.nodes[index + 1 :]:
                    command(client, "CLUSTER", "MEET", "127.0.0.1", other.port)
            finally:
                client.close()

    def add_replica(self, primary: Node) -> Node:
        """Start one more server and make it a replica of ``primary``; wait until it is synced."""
        replica = self._spawn()
        client = replica.client()
        try:
            command(client, "CLUSTER", "MEET", "127.0.0.1", primary.port)
            primary_id = self.node_id(primary)
            wait_until(
                lambda: primary_id.encode() in command(client, "CLUSTER", "NODES"),
                self.start_timeout_s,
                "the replica to learn the primary",
            )
            command(client, "CLUSTER", "REPLICATE", primary_id)
            wait_until(
                lambda: client.info("replication").get("master_link_status") == "up",
                self.start_timeout_s,
                "the replica to sync",
            )
        finally:
            client.close()
        self.wait_ok()
        return replica

    # -- state ---------------------------------------------------------------------------------

    def node_id(self, node: Node) -> str:
        """The cluster node id of ``node``."""
        client = node.client()
        try:
            return str(command(client, "CLUSTER", "MYID").decode())
        finally:
            client.close()

    def _node_ok(self, node: Node, epochs: set[bytes]) -> bool:
        client = node.client(1.0)
        try:
            info = command(client, "CLUSTER", "INFO")
            if b"cluster_state:ok" not in info:
                return False
            slots = command(client, "CLUSTER", "SLOTS")
            epochs.add(repr(sorted((s[0], s[1], s[2][1]) for s in slots)).encode())
            known = command(client, "CLUSTER", "NODES").count(b" connected")
            return bool(known >= len(self.live_nodes()))
        finally:
            client.close()

    def wait_ok(self, timeout_s: float | None = None) -> None:
        """Wait until every live node reports ``cluster_state:ok``, sees every live node
        connected, and all agree on who owns which slot."""

        def all_ok() -> bool:
            views: set[bytes] = set()
            return all(self._node_ok(n, views) for n in self.live_nodes()) and len(views) == 1

        wait_until(all_ok, timeout_s or self.start_timeout_s, "cluster_state:ok on every node")

    def live_nodes(self) -> list[Node]:
        """The nodes whose process runs."""
        return [n for n in self.nodes if n.alive()]

    def primaries(self) -> list[Node]:
        """The live nodes that are primaries now."""
        found = []
        for node in self.live_nodes():
            client = node.client()
            try:
                if client.info("replication").get("role") == "master":
                    found.append(node)
            finally:
                client.close()
        return found

    def owner_of(self, slot: int) -> Node:
        """The live primary that serves ``slot`` now (as the first live node sees it)."""
        client = self.live_nodes()[0].client()
        try:
            for first, last, (_host, port, *_), *_ in command(client, "CLUSTER", "SLOTS"):
                if first <= slot <= last:
                    return next(n for n in self.nodes if n.port == int(port))
        finally:
            client.close()
        raise ConfigError(f"no node serves slot {slot}")

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        """``(host, port)`` of every node, for a cluster client."""
        return [("127.0.0.1", n.port) for n in self.nodes]

    @property
    def url(self) -> str:
        """A ``redis://`` URL of the first node with the cluster flag (``scheduler.connection``)."""
        return f"redis://127.0.0.1:{self.nodes[0].port}/0?cluster=yes"

    def flush(self) -> None:
        """``FLUSHALL`` on every live primary (replicas follow)."""
        for node in self.primaries():
            client = node.client()
            try:
                client.flushall()
            finally:
                client.close()

    # -- stop ----------------------------------------------------------------------------------

    def kill(self, node: Node) -> None:
        """SIGKILL one server (its process id) and wait for it to exit."""
        if node.alive():
            node.process.kill()
            node.process.wait(timeout=10)

    def stop(self) -> None:
        """Kill every server by its process id, then delete their folders."""
        for node in self.nodes:
            self.kill(node)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
