"""``consume_events`` as a process stopped by real signals: the first SIGTERM lets the message
in hand finish and be acknowledged; a second one stops at once, and the message, never
acknowledged, is consumed once by the next process."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.utils import timezone

from django_domain_events.integration.inbox import InboxMessage, InboxOutcome
from django_domain_events.integration.messages import Message
from tests.file_transport import put_message
from tests.processes import ROOT, process_env, wait_until
from tests.testapp.models import Effect

pytestmark = [pytest.mark.server_db, pytest.mark.django_db(transaction=True)]

NAME = "integration.consume_process.record"

# consume_events in a process of its own, with a consumer that says when it started and then
# waits for the test to release it.
CONSUMING = f"""
import sys, time, django
from pathlib import Path
django.setup()
from django.conf import settings
from django.core.management import call_command
from django_domain_events import consumer
from tests.testapp.models import Effect

root, started, release = (Path(arg) for arg in sys.argv[1:4])
transport = {{"BACKEND": "tests.file_transport.FileTransport", "URL": str(root)}}
settings.DOMAIN_EVENTS = {{
    "TRANSPORTS": {{"default": transport}},
    "CONSUME": {{"QUEUE": "billing", "DESTINATIONS": [{{"NAME": "payments", "ROUTING_KEY": "#"}}]}},
}}

@consumer("integration_consume_process.settled", name={NAME!r})
def record(event, envelope):
    Effect.record({NAME!r}, envelope)
    started.touch()
    while not release.exists():
        time.sleep(0.02)

call_command("consume_events", *sys.argv[4:])
"""


def message(number: int) -> Message:
    return Message(
        id=str(uuid.uuid4()),
        source="//shop",
        type="integration_consume_process.settled",
        time=timezone.now(),
        data=json.dumps({"number": number}).encode(),
    )


def start(tmp_path: Path, *options: str) -> tuple[subprocess.Popen[str], Path]:
    """The consuming process, and the file its output goes to."""
    output = tmp_path / f"output-{len(list(tmp_path.glob('output-*')))}.txt"
    with open(output, "w") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                CONSUMING,
                str(tmp_path / "broker"),
                str(tmp_path / "started"),
                str(tmp_path / "release"),
                *options,
            ],
            cwd=ROOT,
            env=process_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    return process, output


def effects() -> int:
    return Effect.objects.filter(receiver=NAME).count()


def test_the_first_sigterm_drains_the_message_in_hand(tmp_path: Path) -> None:
    queue = tmp_path / "broker" / "billing"
    first, second = put_message(queue, message(1)), put_message(queue, message(2))
    process, output = start(tmp_path)
    try:
        wait_until(lambda: (tmp_path / "started").exists(), "the consumer to take a message")
        process.send_signal(signal.SIGTERM)
        (tmp_path / "release").touch()
        process.wait(timeout=60)
    finally:
        process.kill()
    printed = output.read_text()
    assert process.returncode == 0, printed
    assert "Consumer done: 1 messages (processed 1)" in printed
    assert effects() == 1
    assert InboxMessage.objects.get().outcome == InboxOutcome.PROCESSED
    left = sorted(path.name for path in queue.iterdir())
    assert first.name not in left, "acknowledged"
    assert left == [second.name], "the next message was not taken"


def test_a_second_sigterm_stops_at_once_and_the_message_is_consumed_once_later(
    tmp_path: Path,
) -> None:
    queue = tmp_path / "broker" / "billing"
    put_message(queue, message(1))
    process, output = start(tmp_path)
    try:
        wait_until(lambda: (tmp_path / "started").exists(), "the consumer to take a message")
        process.send_signal(signal.SIGTERM)
        wait_until(
            lambda: "a second signal stops at once" in output.read_text(),
            "the consumer to take the first signal",
        )
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    finally:
        process.kill()
    assert process.returncode == -signal.SIGTERM, output.read_text()
    assert effects() == 0, "its transaction never committed"

    (tmp_path / "release").touch()
    again, again_output = start(tmp_path, "--once")
    again.wait(timeout=60)

    assert again.returncode == 0, again_output.read_text()
    assert effects() == 1
    assert list(queue.iterdir()) == []
