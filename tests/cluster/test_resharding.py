"""Moving a queue's slot to another primary while workers run: no job lost, none run twice,
none unexpected. The slot is moved by hand, the way ``redis-cli --cluster reshard`` does it
(``SETSLOT IMPORTING``/``MIGRATING``, ``MIGRATE ... KEYS`` a key at a time, then
``SETSLOT NODE`` everywhere), so that for a moment the queue's keys are split over two nodes:
scripts then get ``TRYAGAIN`` (some keys here, some there) or ``ASK`` (all gone), which redis-py
and the workers handle. Runs on a cluster of its own."""

from __future__ import annotations

import threading
from collections.abc import Callable

from scheduler import Queue, State
from scheduler._local_cluster import LocalCluster, Node, command
from scheduler.connection import connect
from tests.cluster.history import History, Producer, running_workers, wait_for


def errorstats(node: Node) -> dict[str, object]:
    """The node's ``INFO errorstats`` (TRYAGAIN, ASK and MOVED replies it sent)."""
    client = node.client()
    try:
        return dict(client.info("errorstats"))
    finally:
        client.close()


def migrate_slot(cluster: LocalCluster, slot: int, source: Node, target: Node) -> None:
    """Move ``slot`` from ``source`` to ``target``, one key per MIGRATE with a pause between."""
    src, tgt = source.client(), target.client()
    src_id, tgt_id = cluster.node_id(source), cluster.node_id(target)
    pause = threading.Event()
    try:
        command(tgt, "CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
        command(src, "CLUSTER", "SETSLOT", slot, "MIGRATING", tgt_id)
        while keys := command(src, "CLUSTER", "GETKEYSINSLOT", slot, 1):
            command(src, "MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys)
            pause.wait(0.02)
        for node in [
            target,
            source,
            *(n for n in cluster.primaries() if n not in (source, target)),
        ]:
            client = node.client()
            try:
                command(client, "CLUSTER", "SETSLOT", slot, "NODE", tgt_id)
            finally:
                client.close()
    finally:
        src.close()
        tgt.close()


def test_moving_a_queues_slot_while_workers_run_loses_and_repeats_nothing(
    own_cluster: Callable[..., LocalCluster],
) -> None:
    cluster = own_cluster(3)
    client = connect(cluster.startup_nodes)
    queue = Queue(client, "moving")
    slot = client.keyslot(queue.ops.keys.key("meta"))
    source = cluster.owner_of(slot)
    target = next(n for n in cluster.primaries() if n is not source)
    history = History()
    worker_clients = [connect(cluster.startup_nodes) for _ in range(2)]
    queues = [Queue(c, "moving") for c in worker_clients]
    with running_workers(queues, history, concurrency=4, max_idle_s=0.5):
        with Producer(Queue(connect(cluster.startup_nodes), "moving"), history, "m", limit=1500):
            wait_for(lambda: len(history.ran()) >= 200, 30, "the first jobs to run")
            migrate_slot(cluster, slot, source, target)
            wait_for(lambda: len(history.enqueued) == 1500, 60, "the producer to finish")
        wait_for(lambda: history.ran() >= history.enqueued, 60, "every job to run")
        wait_for(lambda: queue.stats().counts[State.COMPLETED] == 1500, 30, "every completion")
    assert cluster.owner_of(slot) is target
    assert len(history.enqueued) == 1500
    assert history.repeated() == {}, "a job ran twice"
    assert history.unexpected() == set()
    counts = queue.stats().counts
    assert counts[State.COMPLETED] == 1500 and counts[State.ACTIVE] == counts[State.WAITING] == 0
    redirects = {k: v for n in (source, target) for k, v in errorstats(n).items()}
    print(f"slot {slot} moved {source.port} -> {target.port}; replies: {redirects}")
    for c in [client, *worker_clients]:
        c.close()
