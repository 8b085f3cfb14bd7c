"""The HTTP servers the tests stand up on loopback: one lifecycle for every fake peer."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOST = "127.0.0.1"


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that keeps the test output clean (no access log lines)."""

    def log_message(self, *args: object) -> None:
        """Log nothing."""


class _Server(ThreadingHTTPServer):
    # socketserver's listen backlog is 5: more clients connecting at once than that see
    # their SYN dropped and retried a second later, which no real peer would make them wait.
    request_queue_size = 128


class LoopbackHTTPServer:
    """A ThreadingHTTPServer on 127.0.0.1 (a free port), served by a daemon thread."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._httpd = _Server((HOST, 0), handler)
        self._httpd.daemon_threads = True
        # A short poll interval: shutdown() waits for it, once a test.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{HOST}:{self._httpd.server_address[1]}"

    def start(self) -> None:
        """Serve requests from now on."""
        self._thread.start()

    def close(self) -> None:
        """Stop serving and release the port."""
        self._httpd.shutdown()
        self._httpd.server_close()
