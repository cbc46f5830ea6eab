"""A throwaway ``redis-server`` on a free loopback port, in a temporary folder of its own.

Used by the demo (when no Redis URL is given) and by the test suite. The server is a child
process: it is stopped by :meth:`LocalRedis.stop` (or on leaving the ``with`` block) and never
outlives its folder.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .errors import ConfigError

INSTALL_HINT = (
    "redis-server was not found on PATH. Install it (Debian/Ubuntu: "
    "'sudo apt-get install redis-server redis-tools'), or point REDIS_URL at a Redis you own."
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LocalRedis:
    """Start ``redis-server`` on a free loopback port; ``url`` is where it listens.

    Args:
        extra_args: more ``redis-server`` options, e.g. ``["--appendonly", "yes"]``.
        start_timeout_s: how long to wait for the server to answer PING.
    """

    def __init__(self, extra_args: list[str] | None = None, start_timeout_s: float = 10.0) -> None:
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            raise ConfigError(INSTALL_HINT)
        self.extra_args = list(extra_args or [])
        self.start_timeout_s = start_timeout_s
        self.port = 0
        self.folder: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The ``redis://`` URL of the running server."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> LocalRedis:
        """Start the server and wait until it answers; retries on a port taken meanwhile."""
        self.folder = Path(tempfile.mkdtemp(prefix="scheduler-redis-"))
        for _ in range(5):
            self.port = free_port()
            if self._spawn():
                return self
            self._kill()
        self._cleanup_folder()
        raise ConfigError(f"redis-server did not start; see its log in {self.folder}")

    def _spawn(self) -> bool:
        """Run redis-server on ``self.port`` in ``self.folder``; True once it answers PING."""
        assert self.folder is not None
        self.process = subprocess.Popen(
            [
                str(self.binary),
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.folder),
                "--save", "",
                "--appendonly", "no",
                "--daemonize", "no",
                "--logfile", str(self.folder / "redis.log"),
                *self.extra_args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        return self._wait_ready()

    def crash_and_restart(self) -> None:
        """Kill the server with SIGKILL, then start it again on the same port and folder (with
        ``--appendonly yes`` among ``extra_args`` it comes back with its data)."""
        self._kill()
        if not self._spawn():
            raise ConfigError(f"redis-server did not restart; see its log in {self.folder}")

    def _wait_ready(self) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + self.start_timeout_s
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5, socket_timeout=1.0)
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    return False
                try:
                    if client.ping():
                        return True
                except (redis.ConnectionError, redis.TimeoutError):
                    time.sleep(0.02)
            return False
        finally:
            client.close()

    def _kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def _cleanup_folder(self) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)

    def stop(self) -> None:
        """Shut the server down (no save), wait for it, and delete its folder."""
        if self.process is not None and self.process.poll() is None:
            # A client that does not retry: the server closing the connection is the success.
            client = redis.Redis(port=self.port, socket_timeout=2.0, retry=Retry(NoBackoff(), 0))
            try:
                client.shutdown(nosave=True)
            except (redis.RedisError, OSError):
                pass
            finally:
                client.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._kill()
        self._cleanup_folder()

    def __enter__(self) -> LocalRedis:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
