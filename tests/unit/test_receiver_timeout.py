"""Receiver time limits in this process: a receiver that runs past its timeout is interrupted
where it can be (sync in the main thread, async anywhere), its work rolled back and the run
recorded as a failed attempt, and the relay goes on with the other deliveries."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest
from django.test import override_settings

from django_domain_events import Envelope, NamedEvent, publish, receiver, use_dispatcher
from django_domain_events.checks import check_settings
from django_domain_events.declaration.registry import Registry, time_limit_for
from django_domain_events.delivery import time_limit
from django_domain_events.delivery.relay import Relay, RelayTotals
from django_domain_events.models import Delivery, DeliveryState
from tests.testapp.models import Effect

# pytest-timeout's default method takes SIGALRM for itself, and a receiver's time limit does
# not take it from its owner: these tests use pytest-timeout's thread method instead.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(300, method="thread")]

STUCK = "unit_timeout.stuck"


def sleep_for_ever() -> None:
    deadline = time.monotonic() + 3600
    while time.monotonic() < deadline:
        time.sleep(3600)


@pytest.fixture
def stuck_and_fine(receiver_registry: Registry) -> Registry:
    @receiver(STUCK, name="unit_timeout.hangs", timeout=0.2, max_attempts=2)
    def hangs(event: NamedEvent, envelope: Envelope) -> None:
        Effect.objects.create(receiver="hangs", event_id=envelope.event_id, attempt=1)
        sleep_for_ever()

    @receiver(STUCK, name="unit_timeout.hangs_async", timeout=0.2, max_attempts=2)
    async def hangs_async(event: NamedEvent) -> None:
        await asyncio.sleep(3600)

    @receiver(STUCK, name="unit_timeout.fine")
    def fine(event: NamedEvent, envelope: Envelope) -> None:
        Effect.objects.create(receiver="fine", event_id=envelope.event_id, attempt=1)

    return receiver_registry


def publish_owed(count: int) -> list[uuid.UUID]:
    with use_dispatcher("deferred"):
        return [publish(STUCK, {"n": n}) for n in range(count)]


@pytest.mark.usefixtures("stuck_and_fine")
@override_settings(DOMAIN_EVENTS={"RELAY_GRACE": 0, "RETRY_BASE_DELAY": 0, "RETRY_MAX_DELAY": 0})
def test_a_hung_receiver_times_out_and_the_relay_serves_the_others() -> None:
    events = publish_owed(2)

    relay, totals = Relay(), RelayTotals()
    while (found := relay.run_pass()).claimed:  # a pass per retry, until the hung ones are dead
        totals.add(found)

    fine = Delivery.objects.filter(receiver="unit_timeout.fine")
    assert set(fine.values_list("state", flat=True)) == {DeliveryState.DELIVERED}
    for name in ("unit_timeout.hangs", "unit_timeout.hangs_async"):
        hung = list(Delivery.objects.filter(receiver=name))
        assert [(row.state, row.attempts) for row in hung] == [(DeliveryState.DEAD, 2)] * 2
        for row in hung:
            assert row.last_error.startswith(
                f"ReceiverTimedOut: Receiver {name} timed out after 0.2 s"
            )
    # The hung receiver's work was rolled back with its attempt; the others' committed.
    assert sorted(Effect.objects.values_list("receiver", flat=True)) == ["fine", "fine"]
    assert set(Effect.objects.values_list("event_id", flat=True)) == set(events)
    assert totals.delivered == 2
    assert time_limit.can_interrupt()  # the alarm was put back as it was


def test_a_sync_receiver_in_another_thread_cannot_be_interrupted() -> None:
    answers: list[bool] = []
    thread = threading.Thread(target=lambda: answers.append(time_limit.can_interrupt()))
    thread.start()
    thread.join()

    assert answers == [False]
    assert time_limit.can_interrupt()


def test_the_limit_is_the_receiver_s_own_else_the_setting(receiver_registry: Registry) -> None:
    own = receiver(STUCK, name="unit_timeout.own", timeout=3)(print)
    receiver(STUCK, name="unit_timeout.default")(print)
    del own
    mine, default = (receiver_registry.get(n) for n in ("unit_timeout.own", "unit_timeout.default"))

    assert time_limit_for(mine) == 3.0
    assert time_limit_for(default) == 300.0
    with override_settings(DOMAIN_EVENTS={"RECEIVER_TIMEOUT": None}):
        assert time_limit_for(default) is None
        assert time_limit_for(mine) == 3.0


@pytest.mark.parametrize("timeout", [0, -1, True, "5", float("inf")])
def test_a_timeout_that_can_never_be_right_is_refused(timeout: object) -> None:
    with pytest.raises(ValueError, match="give a number of seconds above 0"):
        receiver(STUCK, name="unit_timeout.bad", timeout=timeout)(print)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [0, -5, "60", True])
def test_e002_a_bad_receiver_timeout_setting(value: object) -> None:
    with override_settings(DOMAIN_EVENTS={"RECEIVER_TIMEOUT": value}):
        [error] = check_settings(None)

    assert error.id == "django_domain_events.E002"
    assert "RECEIVER_TIMEOUT" in error.msg


def test_a_run_inside_a_run_leaves_the_alarm_to_the_outer_one() -> None:
    with time_limit.interrupting_after(60, "outer"):
        assert not time_limit.can_interrupt()
        with time_limit.interrupting_after(1, "inner"):
            pass
        remaining, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 1 < remaining <= 60  # still the outer run's limit
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert time_limit.can_interrupt()


AFTER_A_RUN = """
import os, signal, sys, time
import django

django.setup()
from django_domain_events.delivery import time_limit

if sys.argv[1] == "ignored":
    signal.signal(signal.SIGALRM, signal.SIG_IGN)
with time_limit.interrupting_after(60, "a receiver"):
    pass
os.kill(os.getpid(), signal.SIGALRM)
time.sleep(0.5)
print("still running")
"""


@pytest.mark.parametrize(("before", "returncode"), [("default", -signal.SIGALRM), ("ignored", 0)])
def test_outside_a_run_sigalrm_does_what_it_did_before(before: str, returncode: int) -> None:
    # The handler a limited run installs stays for the next run; outside a run it must not
    # change what the signal does to the process.
    done = subprocess.run(
        [sys.executable, "-c", AFTER_A_RUN, before],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"},
        capture_output=True,
        timeout=120,
    )

    assert done.returncode == returncode, done.stderr.decode()
