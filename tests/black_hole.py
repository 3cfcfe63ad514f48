"""A TCP server in a thread that accepts connections and never answers: a broker that hangs."""

from __future__ import annotations

import contextlib
import socket
import threading

from tests.local_server import LocalServer


class BlackHole(LocalServer):
    """Listens on a free local port, accepts every connection, reads and discards what it is
    sent, and never writes a byte. ``accepted`` counts the connections it took."""

    def __init__(self) -> None:
        self.accepted = 0
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        super().__init__()

    def serve(self, client: socket.socket) -> None:
        with self._lock:
            self.accepted += 1
            self._sockets.append(client)
        threading.Thread(target=self._swallow, args=(client,), daemon=True).start()

    @staticmethod
    def _swallow(client: socket.socket) -> None:
        try:
            while client.recv(65536):
                pass
        except OSError:
            pass

    def close(self) -> None:
        """Stop listening and drop every connection."""
        self.stop_listening()
        with self._lock:
            for client in self._sockets:
                with contextlib.suppress(OSError):
                    client.close()
