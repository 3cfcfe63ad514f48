"""A TCP server on a free local port that hands each connection it accepts to a method: the
shared part of the test doubles that stand in for a broker or a database (``tests.black_hole``,
``tests.tcp_proxy``)."""

from __future__ import annotations

import socket
import threading


class LocalServer:
    """Listens on a free port of 127.0.0.1 (``port``) and passes every connection it accepts
    to ``serve()``, in the accepting thread. Subclasses set their own attributes before calling
    ``__init__()``, which starts accepting."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            self.serve(client)

    def serve(self, client: socket.socket) -> None:
        """Take over ``client``, a connection just accepted."""
        raise NotImplementedError

    def stop_listening(self) -> None:
        """Accept no more connections (those already open are the subclass's to close)."""
        self._listener.close()
