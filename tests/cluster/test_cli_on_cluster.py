"""The command line on a Redis Cluster: ``--redis-url redis://host:port?cluster=yes`` gives a
cluster client to every command, and a worker started from the CLI runs the jobs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis.cluster

from scheduler import Queue, State
from scheduler._local_cluster import LocalCluster
from tests.cluster_fixture import cluster, cluster_client  # noqa: F401  (fixtures)

ROOT = Path(__file__).resolve().parents[2]
QUEUE = "clicluster"
TASKS = """
from scheduler.tasks import TaskRegistry

app = TaskRegistry()


@app.task(name="add")
def add(a, b):
    return a + b
"""


def run_cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m scheduler *args`` against ``url``, to the end."""
    env = dict(os.environ, REDIS_URL=url)
    return subprocess.run(
        [sys.executable, "-m", "scheduler", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_enqueue_stats_and_inspect_work_on_a_cluster_url(
    cluster: LocalCluster,  # noqa: F811
    cluster_client: redis.cluster.RedisCluster,  # noqa: F811
) -> None:
    added = run_cli(cluster.url, "enqueue", "add", "--args", "[1, 2]", "--queue", QUEUE,
                    "--id", "j1")  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == "j1 created (waiting)"
    assert Queue(cluster_client, QUEUE).inspect("j1").state is State.WAITING
    stats = run_cli(cluster.url, "stats", "--json")
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["queues"][QUEUE]["counts"]["waiting"] == 1  # found by SCAN
    shown = run_cli(cluster.url, "inspect", "j1", "--queue", QUEUE, "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["state"] == "waiting", shown.stderr


def test_a_cli_worker_runs_jobs_on_a_cluster(
    cluster: LocalCluster,  # noqa: F811
    cluster_client: redis.cluster.RedisCluster,  # noqa: F811
    tmp_path: Path,
) -> None:
    (tmp_path / "cluster_cli_tasks.py").write_text(TASKS)
    queue = Queue(cluster_client, QUEUE)
    for i in range(20):
        queue.enqueue({"task": "add", "args": [i, 1], "kwargs": {}}, id=f"job-{i}")
    env = dict(os.environ, REDIS_URL=cluster.url, PYTHONPATH=f"{tmp_path}{os.pathsep}{ROOT}")
    log_path = tmp_path / "worker.log"
    with log_path.open("w") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "scheduler", "worker", "cluster_cli_tasks:app", "--queue",
             QUEUE, "--max-idle-s", "0.2"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while queue.stats(active_limit=0).counts[State.COMPLETED] < 20:
            assert worker.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "the CLI worker did not finish the jobs"
            time.sleep(0.05)
        assert queue.inspect("job-7").result == 8
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=20) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)
