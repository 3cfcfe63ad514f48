"""A TCP proxy in threads that a test can cut and restore, to take a database or a broker away
from the processes connected through it and give it back."""

from __future__ import annotations

import contextlib
import socket
import threading

from tests.local_server import LocalServer


class TCPProxy(LocalServer):
    """Forwards connections from a free local port to ``host:port``. ``cut()`` drops every
    connection it carries and resets new ones until ``restore()``."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._down = False
        self.forwarded = 0
        """Connections it has forwarded so far."""
        super().__init__()

    def serve(self, client: socket.socket) -> None:
        with self._lock:
            down = self._down
        if down:
            client.close()
            return
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        with self._lock:
            self._sockets |= {client, upstream}
            self.forwarded += 1
        threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()
        threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Drop the open connections and refuse new ones."""
        with self._lock:
            self._down = True
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def restore(self) -> None:
        """Accept connections again."""
        with self._lock:
            self._down = False

    def close(self) -> None:
        """Cut everything and stop listening, as a server going down would."""
        self.cut()
        self.stop_listening()
