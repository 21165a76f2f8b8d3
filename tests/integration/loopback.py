"""What the providers' emulators share: an HTTP server on loopback (a free port), served by a thread of its own,
whose request handlers reach the emulator as `self.server.emulator`."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

TIMEOUT = 10.0  # seconds to wait for the serving thread to end


class LoopbackEmulator:
    """An emulator's HTTP server on 127.0.0.1; `start` serves it, `stop` shuts it and its thread down."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], name: str) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.emulator = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=name, daemon=True)

    @property
    def host_port(self) -> str:
        """Where it listens, as host:port."""
        host, port = self._server.server_address[:2]
        return f"{host!s}:{port}"

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=TIMEOUT)
