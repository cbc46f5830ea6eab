"""A small loopback TCP proxy for fault tests: clients connect to it instead of Redis, and the
test switches what it does to the traffic at run time.

Modes (:meth:`Proxy.set_mode`):

* ``pass``: bytes go through untouched;
* ``latency``: each chunk, either way, is held ``latency_s`` first;
* ``cut``: with probability ``ratio`` per request, the request goes to Redis, Redis runs it and
  answers, and the proxy drops the answer and closes both connections: the client sees a
  dropped connection for a command that ran (a lost reply);
* ``blackhole``: requests are read and thrown away, nothing is answered; leaving this mode
  closes the connections that lost data (a network that comes back either delivers late or
  resets; it never silently forgets bytes of a live TCP connection).

One thread accepts, two threads pump each connection. :meth:`Proxy.close` closes everything and
joins the threads (bounded).
"""

from __future__ import annotations

import contextlib
import random
import socket
import threading
from dataclasses import dataclass, field
from types import TracebackType

MODES = ("pass", "latency", "cut", "blackhole")
CHUNK = 65536
JOIN_S = 5.0


@dataclass
class _Link:
    """One client connection and its upstream twin."""

    client: socket.socket
    upstream: socket.socket
    cut_pending: bool = False
    lost_data: bool = False
    closed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


class Proxy:
    """Listen on a free loopback port and forward to ``127.0.0.1:upstream_port``.

    Args:
        upstream_port: where Redis listens.
        seed: seeds the choice of which requests a ``cut`` mode cuts.
    """

    def __init__(self, upstream_port: int, seed: int = 0) -> None:
        self.upstream_port = upstream_port
        self._rng = random.Random(seed)
        self._mode = "pass"
        self._latency_s = 0.0
        self._ratio = 1.0
        self._lock = threading.Lock()
        self._links: list[_Link] = []
        self._threads: list[threading.Thread] = []
        self._closing = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port: int = self._listener.getsockname()[1]
        self.cuts = 0
        """Requests whose reply was dropped so far."""
        self.swallowed = 0
        """Chunks (requests or replies) a blackhole threw away so far."""

    @property
    def url(self) -> str:
        """The ``redis://`` URL clients should use."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Proxy:
        """Start accepting connections."""
        self._spawn(self._accept_loop, "proxy-accept")
        return self

    def set_mode(
        self, mode: str, *, latency_s: float = 0.0, ratio: float = 1.0, reset: bool = True
    ) -> None:
        """Switch what happens to traffic from now on (see the module docstring). With
        ``reset=False``, leaving ``blackhole`` keeps the connections that lost data open: a
        half-open connection, as after a NAT or firewall forgot it."""
        if mode not in MODES:
            raise ValueError(f"unknown proxy mode {mode!r}")
        with self._lock:
            leaving_blackhole = self._mode == "blackhole" and mode != "blackhole"
            self._mode, self._latency_s, self._ratio = mode, latency_s, ratio
            links = list(self._links)
        if leaving_blackhole and reset:
            for link in links:
                if link.lost_data:
                    link.close()

    def close(self) -> None:
        """Stop accepting, close every connection and join the threads."""
        self._closing.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            links, threads = list(self._links), list(self._threads)
        for link in links:
            link.close()
        for thread in threads:
            thread.join(JOIN_S)

    def __enter__(self) -> Proxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals -----------------------------------------------------------------------------

    def _spawn(self, target: object, name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)  # type: ignore[arg-type]
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            link = _Link(client, upstream)
            with self._lock:
                self._links = [old for old in self._links if not old.closed] + [link]
                self._threads = [t for t in self._threads if t.is_alive()]
            self._spawn(self._requests, "proxy-requests", link)
            self._spawn(self._replies, "proxy-replies", link)

    def _settings(self) -> tuple[str, float, float]:
        with self._lock:
            return self._mode, self._latency_s, self._ratio

    def _requests(self, link: _Link) -> None:
        """Client to Redis."""
        pause = threading.Event()
        while True:
            try:
                data = link.client.recv(CHUNK)
            except OSError:
                data = b""
            if not data:
                link.close()
                return
            mode, latency_s, ratio = self._settings()
            if mode == "blackhole":
                link.lost_data = True
                self.swallowed += 1
                continue
            if mode == "latency":
                pause.wait(latency_s)
            elif mode == "cut":
                with self._lock:
                    link.cut_pending = link.cut_pending or self._rng.random() < ratio
            try:
                link.upstream.sendall(data)
            except OSError:
                link.close()
                return

    def _replies(self, link: _Link) -> None:
        """Redis to client."""
        pause = threading.Event()
        while True:
            try:
                data = link.upstream.recv(CHUNK)
            except OSError:
                data = b""
            if not data:
                link.close()
                return
            mode, latency_s, _ = self._settings()
            if link.cut_pending:  # the request ran; its reply is lost with the connection
                self.cuts += 1
                link.close()
                return
            if mode == "blackhole":
                link.lost_data = True
                self.swallowed += 1
                continue
            if mode == "latency":
                pause.wait(latency_s)
            try:
                link.client.sendall(data)
            except OSError:
                link.close()
                return
