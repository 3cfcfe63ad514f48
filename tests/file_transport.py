"""A transport for tests across processes: a queue is a folder, a message a JSON file in it.

Taking a message renames its file (``.taken``), atomically, so one consumer has it; ``ack``
deletes it, ``reject(requeue=True)`` and a consumer that stops without settling put it back
marked redelivered. Files still taken when a consumer starts belong to one that died: they
are put back too. For one consumer process at a time; routing keys are not looked at."""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from django_domain_events.exceptions import MessageFormatError
from django_domain_events.integration.messages import Message, from_wire, to_binary
from django_domain_events.transports.base import Destination, Received, Transport

TAKEN = ".taken"


def put(folder: Path, headers: dict[str, Any], body: bytes, *, redelivered: bool = False) -> Path:
    """Write one message into the queue ``folder``, after those already there."""
    folder.mkdir(parents=True, exist_ok=True)
    number = len(list(folder.iterdir()))
    path = folder / f"{number:06d}-{uuid.uuid4().hex[:8]}.json"
    document = {
        "headers": headers,
        "body": base64.b64encode(body).decode(),
        "redelivered": redelivered,
    }
    path.write_text(json.dumps(document))
    return path


def put_message(folder: Path, message: Message) -> Path:
    """Write ``message`` into the queue ``folder``."""
    headers, body = to_binary(message)
    return put(folder, headers, body)


class FileReceived(Received):
    """A message taken from a queue folder."""

    def __init__(self, path: Path) -> None:
        self.path = path
        document = json.loads(path.read_text())
        self.raw_headers = document["headers"]
        self.raw_body = base64.b64decode(document["body"])
        self.redelivered = bool(document["redelivered"])
        self.settled = False
        try:
            self.message: Message | None = from_wire(self.raw_headers, self.raw_body)
            self.error: MessageFormatError | None = None
        except MessageFormatError as exc:
            self.message, self.error = None, exc

    def ack(self) -> None:
        self.settled = True
        self.path.unlink()

    def reject(self, requeue: bool) -> None:
        self.settled = True
        self.give_back() if requeue else self.path.unlink()

    def give_back(self) -> None:
        put_back(self.path)


def put_back(taken: Path) -> None:
    """Return a taken message to its queue, marked redelivered."""
    document = json.loads(taken.read_text())
    document["redelivered"] = True
    original = taken.with_name(taken.name[: -len(TAKEN)])
    original.write_text(json.dumps(document))
    taken.unlink()


class FileTransport(Transport):
    """Queues as folders under ``url``."""

    name: ClassVar[str] = "file"

    def __init__(self, alias: str, url: str, options: Mapping[str, Any]) -> None:
        super().__init__(alias, url, options)
        self.root = Path(url)

    def send(self, destination: Destination, messages: Sequence[Message]) -> None:
        for message in messages:
            put_message(self.root / destination.name, message)

    def consume(
        self,
        destinations: Sequence[Destination],
        queue: str,
        handle: Callable[[Received], None],
        stop: threading.Event,
    ) -> None:
        folder = self.root / queue
        folder.mkdir(parents=True, exist_ok=True)
        for taken in folder.glob(f"*{TAKEN}"):
            put_back(taken)
        while not stop.is_set():
            waiting = sorted(path for path in folder.glob("*.json"))
            if not waiting:
                stop.wait(0.05)
                continue
            taken = waiting[0].with_name(waiting[0].name + TAKEN)
            waiting[0].rename(taken)
            received = FileReceived(taken)
            try:
                handle(received)
            finally:
                if not received.settled:
                    received.give_back()

    def close(self) -> None:
        pass
