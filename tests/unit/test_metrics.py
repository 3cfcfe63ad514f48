"""DOMAIN_EVENTS["METRICS"]: Prometheus counters, histograms and outbox gauges, scraped from the
metrics view after real publishes and deliveries; events_status --prometheus and
relay_events --metrics-port."""

from __future__ import annotations

import datetime as dt
import gc
import io
import socket
import threading
import urllib.request
from collections.abc import Iterator

import pytest
from django.core.management import call_command
from django.test import Client, override_settings
from django.utils import timezone
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from django_domain_events import GiveUp, publish, receiver
from django_domain_events.checks import check_settings
from django_domain_events.declaration.registry import Registry
from django_domain_events.models import Delivery, DeliveryState
from django_domain_events.observability import metrics as metrics_module
from django_domain_events.testing import drain
from tests.imports_probe import imported_by_a_plain_publish
from tests.testapp.events import Pinged

pytestmark = pytest.mark.django_db(transaction=True)

ON = {"METRICS": True, "METRICS_CACHE_SECONDS": 0}


@pytest.fixture
def registry() -> Iterator[CollectorRegistry]:
    """A fresh registry per test, so counts never leak between tests."""
    with metrics_module.use_registry(CollectorRegistry()) as fresh:
        yield fresh


@pytest.fixture
def receivers(receiver_registry: Registry) -> None:
    receiver(Pinged, name="unit_metrics.ok")(lambda event: None)

    @receiver(Pinged, name="unit_metrics.flaky")
    def flaky(event: Pinged) -> None:
        if event.n % 2:
            raise ValueError("odd")

    @receiver(Pinged, name="unit_metrics.hopeless")
    def hopeless(event: Pinged) -> None:
        raise GiveUp("never")


def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = Client().get("/metrics/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


@pytest.mark.usefixtures("registry", "receivers")
@override_settings(DOMAIN_EVENTS=ON)
def test_counters_count_publishes_and_every_delivery_outcome() -> None:
    for n in (1, 2, 3):
        publish(Pinged(n=n))

    samples = scrape()
    assert value(samples, "domain_events_published_total", event_type="testapp.Pinged") == 3
    deliveries = "domain_events_deliveries_total"
    assert value(samples, deliveries, receiver="unit_metrics.ok", outcome="delivered") == 3
    assert value(samples, deliveries, receiver="unit_metrics.flaky", outcome="delivered") == 1
    assert value(samples, deliveries, receiver="unit_metrics.flaky", outcome="failed") == 2
    assert value(samples, deliveries, receiver="unit_metrics.hopeless", outcome="dead") == 3
    duration = "domain_events_delivery_duration_seconds_count"
    assert value(samples, duration, receiver="unit_metrics.ok") == 3
    assert value(samples, duration, receiver="unit_metrics.flaky") == 3
    latency = "domain_events_delivery_latency_seconds_count"
    assert value(samples, latency, dispatcher="sync") == 9


@pytest.mark.usefixtures("registry", "receivers")
@override_settings(DOMAIN_EVENTS=ON)
def test_gauges_read_the_outbox_on_scrape() -> None:
    publish(Pinged(n=1))
    # Full jitter can make the failed delivery's retry due within milliseconds: put it an hour
    # away, so the scrape below finds it waiting whatever the machine's speed.
    Delivery.objects.filter(state=DeliveryState.FAILED).update(
        next_attempt_at=timezone.now() + dt.timedelta(hours=1)
    )

    samples = scrape()
    state = "domain_events_outbox_deliveries"
    assert value(samples, state, state=DeliveryState.DELIVERED) == 1
    assert value(samples, state, state=DeliveryState.FAILED) == 1
    assert value(samples, state, state=DeliveryState.DEAD) == 1
    assert value(samples, "domain_events_outbox_dead_deliveries") == 1
    # The failed delivery's retry is not due yet: nothing is owed.
    assert value(samples, "domain_events_outbox_owed_deliveries") == 0
    assert value(samples, "domain_events_outbox_oldest_owed_age_seconds") == 0


@pytest.mark.usefixtures("registry", "receivers")
@override_settings(DOMAIN_EVENTS={"METRICS": True, "METRICS_CACHE_SECONDS": 3600})
def test_gauges_are_cached_between_scrapes() -> None:
    publish(Pinged(n=2))
    assert value(scrape(), "domain_events_outbox_dead_deliveries") == 1

    publish(Pinged(n=4))

    samples = scrape()
    assert value(samples, "domain_events_outbox_dead_deliveries") == 1
    assert value(samples, "domain_events_published_total", event_type="testapp.Pinged") == 2


@pytest.mark.usefixtures("registry", "receivers")
@override_settings(DOMAIN_EVENTS={**ON, "DISPATCHER": "deferred"})
def test_deliveries_run_later_are_counted_where_they_run() -> None:
    publish(Pinged(n=2))

    samples = scrape()
    deliveries = "domain_events_deliveries_total"
    assert value(samples, "domain_events_published_total", event_type="testapp.Pinged") == 1
    assert (deliveries, (("outcome", "delivered"), ("receiver", "unit_metrics.ok"))) not in samples

    drain()

    samples = scrape()
    assert value(samples, deliveries, receiver="unit_metrics.ok", outcome="delivered") == 1
    assert value(samples, deliveries, receiver="unit_metrics.hopeless", outcome="dead") == 1
    assert (
        value(samples, "domain_events_delivery_latency_seconds_count", dispatcher="deferred") == 3
    )


@pytest.mark.usefixtures("receivers")
def test_nothing_is_counted_when_metrics_are_off(registry: CollectorRegistry) -> None:
    publish(Pinged(n=1))

    assert (
        registry.get_sample_value("domain_events_published_total", {"event_type": "testapp.Pinged"})
        is None
    )
    assert metrics_module._instruments is None
    response = Client().get("/metrics/")
    assert response.status_code == 404
    assert b'DOMAIN_EVENTS["METRICS"]' in response.content


def test_enabled_follows_the_setting() -> None:
    with override_settings(DOMAIN_EVENTS={"METRICS": True}):
        assert metrics_module.enabled()
    assert not metrics_module.enabled()


@pytest.mark.usefixtures("registry", "receivers")
def test_events_status_prints_the_gauges_in_prometheus_format() -> None:
    publish(Pinged(n=2))
    out = io.StringIO()

    call_command("events_status", "--prometheus", stdout=out)

    families = {family.name: family for family in text_string_to_metric_families(out.getvalue())}
    assert families["domain_events_outbox_dead_deliveries"].samples[0].value == 1
    by_state = {
        sample.labels["state"]: sample.value
        for sample in families["domain_events_outbox_deliveries"].samples
    }
    assert by_state[DeliveryState.DELIVERED] == 2
    assert by_state[DeliveryState.PENDING] == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# The scrape runs in prometheus_client's own thread, which reads the gauges on a connection of
# its own and closes it; but Django never closes an in-memory SQLite database (closing would
# drop it), so on the SQLite pass that connection is only freed with its thread, which Python
# 3.13 reports as an unclosed database. The test waits for that thread, so the report lands
# here, where it is expected; file databases and PostgreSQL close it.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.usefixtures("registry", "receivers")
@override_settings(DOMAIN_EVENTS={**ON, "DISPATCHER": "deferred", "RELAY_GRACE": 0})
def test_relay_serves_metrics_on_its_port() -> None:
    publish(Pinged(n=2))
    # Left pending at commit; the relay hands them to the sync dispatcher, in this process.
    Delivery.objects.update(dispatcher="sync")
    port = free_port()

    call_command("relay_events", "--once", "--metrics-port", str(port), stdout=io.StringIO())

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as response:
        text = response.read().decode()
    for thread in threading.enumerate():
        if "process_request_thread" in thread.name:
            thread.join(timeout=5)
    gc.collect()
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    deliveries = "domain_events_deliveries_total"
    assert value(samples, deliveries, receiver="unit_metrics.ok", outcome="delivered") == 1
    assert value(samples, deliveries, receiver="unit_metrics.hopeless", outcome="dead") == 1
    assert value(samples, "domain_events_outbox_deliveries", state=DeliveryState.PENDING) == 0
    assert value(samples, "domain_events_outbox_deliveries", state=DeliveryState.DEAD) == 1


def test_relay_metrics_port_needs_metrics_on() -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match=r"set DOMAIN_EVENTS\['METRICS'\] = True"):
        call_command("relay_events", "--once", "--metrics-port", "0", stdout=io.StringIO())


@pytest.mark.parametrize(
    ("configured", "fragment"),
    [
        ({"METRICS": "yes"}, "DOMAIN_EVENTS['METRICS'] is 'yes'; it must be True or False."),
        ({"TRACING": 1}, "DOMAIN_EVENTS['TRACING'] is 1; it must be True or False."),
        (
            {"METRICS_CACHE_SECONDS": -1},
            "DOMAIN_EVENTS['METRICS_CACHE_SECONDS'] is -1; it must be a finite number >= 0.",
        ),
    ],
)
def test_bad_observability_settings_are_check_errors(
    configured: dict[str, object], fragment: str
) -> None:
    with override_settings(DOMAIN_EVENTS=configured):
        errors = check_settings()
    assert [error.id for error in errors] == ["django_domain_events.E002"]
    assert errors[0].msg == fragment


def test_with_metrics_and_tracing_off_neither_library_is_imported() -> None:
    assert imported_by_a_plain_publish(["prometheus_client", "opentelemetry"]) == "[]"


@pytest.mark.parametrize(
    ("key", "module", "extra"),
    [("METRICS", "prometheus_client", "prometheus"), ("TRACING", "opentelemetry.trace", "otel")],
)
def test_turning_on_an_extra_that_is_not_installed_is_a_check_error(
    monkeypatch: pytest.MonkeyPatch, key: str, module: str, extra: str
) -> None:
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == module else real_find_spec(name, *args),
    )
    with override_settings(DOMAIN_EVENTS={key: True}):
        errors = check_settings()

    assert [error.id for error in errors] == ["django_domain_events.E002"]
    assert errors[0].msg == (
        f"DOMAIN_EVENTS[{key!r}] is True, but {module.split('.')[0]} is not installed."
    )
    assert f'pip install "django-domain-outbox[{extra}]"' in (errors[0].hint or "")
