"""The outbox admin in a real browser: sign in, browse and filter, open an event whose payload
holds a script, retry a dead delivery through its confirmation page, see the dashboard."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from django_domain_events import GiveUp, publish, receiver
from django_domain_events.declaration.registry import Registry
from django_domain_events.models import Delivery, DeliveryState

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

HOSTILE = "<script>alert('owned')</script>"
EVENT_TYPE = "browser.order_placed"


@pytest.fixture
def shop(receiver_registry: Registry) -> dict[str, bool]:
    """Two receivers in the test's registry; ``browser.erp`` gives up while ``failing``."""
    switches = {"failing": True}

    @receiver(EVENT_TYPE, name="browser.mailer")
    def mailer(event: Any) -> None:
        pass

    @receiver(EVENT_TYPE, name="browser.erp")
    def erp(event: Any) -> None:
        if switches["failing"]:
            raise GiveUp("ERP unreachable")

    return switches


def sign_in(browser: Any, live_admin: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    User.objects.create_superuser("root", "root@example.com", "pw")
    browser.get(f"{live_admin}/admin/login/?next=/admin/")
    browser.find_element(By.NAME, "username").send_keys("root")
    browser.find_element(By.NAME, "password").send_keys("pw")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    # The login page has the same header as the index: wait for the redirect away from it, or
    # the next page may be asked for before the session cookie is set.
    WebDriverWait(browser, 10).until(lambda driver: "/login/" not in driver.current_url)
    assert browser.find_element(By.ID, "site-name")


def assert_no_alert(browser: Any) -> None:
    from selenium.common.exceptions import NoAlertPresentException

    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018 - reading it is what raises


def test_browse_filter_and_open_an_event_whose_payload_holds_a_script(
    browser: Any, live_admin: str, shop: dict[str, bool], screenshots: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.expected_conditions import url_contains
    from selenium.webdriver.support.ui import WebDriverWait

    publish(EVENT_TYPE, {"order_id": 1, "note": HOSTILE})
    publish(EVENT_TYPE, {"order_id": 2, "note": "fine"})
    Delivery.objects.filter(event__payload__order_id=2, receiver="browser.erp").update(
        state=DeliveryState.DELIVERED
    )
    sign_in(browser, live_admin)

    browser.get(f"{live_admin}/admin/django_domain_events/outboxevent/")
    browser.find_element(By.LINK_TEXT, "dead").click()
    WebDriverWait(browser, 10).until(url_contains("delivery_state=dead"))
    rows = browser.find_elements(By.CSS_SELECTOR, "#result_list tbody tr")
    assert len(rows) == 1
    assert "1 dead" in rows[0].text
    browser.save_screenshot(str(screenshots / "events-changelist.png"))

    rows[0].find_element(By.CSS_SELECTOR, "th a").click()
    payload = browser.find_element(By.CSS_SELECTOR, "pre.dde-json")
    assert HOSTILE in payload.text  # shown as text, never run
    assert_no_alert(browser)
    browser.save_screenshot(str(screenshots / "event-change-page.png"))


def test_retry_a_dead_delivery_through_the_confirmation_page(
    browser: Any, live_admin: str, shop: dict[str, bool], screenshots: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    publish(EVENT_TYPE, {"order_id": 1})
    dead = Delivery.objects.get(receiver="browser.erp")
    assert dead.state == DeliveryState.DEAD
    shop["failing"] = False
    sign_in(browser, live_admin)

    browser.get(f"{live_admin}/admin/django_domain_events/delivery/?state__exact=dead")
    browser.find_element(By.CSS_SELECTOR, "#result_list tbody input.action-select").click()
    Select(browser.find_element(By.NAME, "action")).select_by_value("retry_selected_deliveries")
    browser.find_element(By.CSS_SELECTOR, "button[name=index]").click()
    # Found once the confirmation page has loaded (the driver waits for it).
    browser.find_element(By.CSS_SELECTOR, "input[name=confirmed]")
    assert "1 failed or dead delivery will be dispatched again" in browser.page_source
    browser.save_screenshot(str(screenshots / "retry-confirmation.png"))
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()

    message = browser.find_element(By.CSS_SELECTOR, "ul.messagelist li.success").text
    assert "1 delivery retried" in message
    dead.refresh_from_db()
    assert dead.state == DeliveryState.DELIVERED


def test_retry_a_dead_delivery_from_its_own_page(
    browser: Any, live_admin: str, shop: dict[str, bool], screenshots: Path
) -> None:
    from selenium.webdriver.common.by import By

    publish(EVENT_TYPE, {"order_id": 1})
    dead = Delivery.objects.get(receiver="browser.erp")
    shop["failing"] = False
    sign_in(browser, live_admin)

    browser.get(f"{live_admin}/admin/django_domain_events/delivery/{dead.pk}/change/")
    browser.save_screenshot(str(screenshots / "dead-delivery-page.png"))
    browser.find_element(By.CSS_SELECTOR, ".object-tools .dde-page-action button").click()
    browser.find_element(By.CSS_SELECTOR, "input[name=confirmed]")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()

    assert "1 delivery retried" in browser.find_element(By.CSS_SELECTOR, "li.success").text
    dead.refresh_from_db()
    assert dead.state == DeliveryState.DELIVERED


def test_the_dashboard_draws_its_charts(
    browser: Any, live_admin: str, shop: dict[str, bool], screenshots: Path
) -> None:
    from selenium.webdriver.common.by import By

    for order_id in range(3):
        publish(EVENT_TYPE, {"order_id": order_id})
    sign_in(browser, live_admin)

    browser.get(f"{live_admin}/admin/django_domain_events/")
    browser.find_element(By.PARTIAL_LINK_TEXT, "Outbox dashboard").click()
    browser.find_element(By.CSS_SELECTOR, "body.dde-dashboard")

    assert len(browser.find_elements(By.CSS_SELECTOR, "figure.dde-chart svg")) == 2
    assert browser.find_element(By.ID, "dde-published").text == "3"
    assert browser.find_element(By.ID, "dde-dead").text == "3"
    assert "browser.erp" in browser.find_element(By.CSS_SELECTOR, ".dde-failing").text
    browser.save_screenshot(str(screenshots / "dashboard.png"))


# What a real project's rows look like: long dotted receiver names, long errors, task ids.
WIDE_RECEIVERS = (
    "shop.handlers.CustomerEmails.send_cancellation_notice",
    "shop.handlers.sync_order_status_to_crm",
    "shop.handlers.push_payment_to_legacy_erp",
)
WIDE_ERROR = (
    "ConnectionError: legacy ERP at erp.internal:8443 refused the connection (payment 123456) "
    "after 3 attempts over 45 seconds; the last answer was a TLS handshake timeout"
)


@pytest.fixture
def wide_rows(receiver_registry: Registry) -> None:
    """Deliveries whose every column is as wide as in a real project: a task id, an ordering
    key, a long receiver name and error, on an event type with a long name."""
    for name in WIDE_RECEIVERS:

        @receiver("shop.integration.order_status_changed", name=name, ordered=True)
        def fail(event: Any) -> None:
            raise GiveUp(WIDE_ERROR)

    for order_id in range(5):
        publish(
            "shop.integration.order_status_changed",
            {"order_id": order_id},
            ordering_key=f"order:{order_id:08d}",
        )
    for index, delivery in enumerate(Delivery.objects.all()):
        Delivery.objects.filter(pk=delivery.pk).update(
            task_id=f"01a23838-6c3c-7181-bd44-{index:012d}", dispatcher="celery"
        )


def horizontal_overflow(browser: Any) -> dict[str, int]:
    """How many pixels the page and the changelist's table scroll sideways (0 when they fit)."""
    return dict(
        browser.execute_script(
            "const results = document.querySelector('#changelist .results');"
            "const page = document.documentElement;"
            "return {page: page.scrollWidth - page.clientWidth,"
            " results: results ? results.scrollWidth - results.clientWidth : 0};"
        )
    )


@pytest.mark.parametrize("width", [1280, 1920])
def test_the_lists_fit_the_window_without_scrolling_sideways(
    browser: Any, live_admin: str, wide_rows: None, screenshots: Path, width: int
) -> None:
    sign_in(browser, live_admin)
    browser.set_window_size(width, 1000)
    for name in ("delivery", "outboxevent"):
        browser.get(f"{live_admin}/admin/django_domain_events/{name}/")
        browser.save_screenshot(str(screenshots / f"{name}-changelist-{width}.png"))
        assert horizontal_overflow(browser) == {"page": 0, "results": 0}, (
            f"the {name} list scrolls sideways at {width} px; see {screenshots}"
        )


@pytest.mark.parametrize("width", [1280, 1920])
def test_a_delivery_page_with_its_attempt_history_fits_the_window(
    browser: Any, live_admin: str, receiver_registry: Registry, screenshots: Path, width: int
) -> None:
    from selenium.webdriver.common.by import By

    from django_domain_events.delivery.attempts import running_in_task
    from django_domain_events.delivery.runner import owed_delivery, run_delivery

    @receiver("shop.integration.payment_captured", name=WIDE_RECEIVERS[2], max_attempts=10)
    def fail(event: Any) -> None:
        raise ConnectionError(WIDE_ERROR.removeprefix("ConnectionError: "))

    publish("shop.integration.payment_captured", {"payment_id": 123456})
    delivery = Delivery.objects.get()
    for attempt in range(3):
        with running_in_task(f"01a23838-6c3c-7181-bd44-{attempt:012d}"):
            run_delivery(owed_delivery(Delivery.objects.get(pk=delivery.pk), "default"))
    sign_in(browser, live_admin)
    browser.set_window_size(width, 1000)

    browser.get(f"{live_admin}/admin/django_domain_events/delivery/{delivery.pk}/change/")
    for summary in browser.find_elements(By.CSS_SELECTOR, ".dde-traceback summary"):
        summary.click()  # unfolded, the tracebacks must wrap too
    browser.save_screenshot(str(screenshots / f"delivery-attempts-{width}.png"))

    assert len(browser.find_elements(By.CSS_SELECTOR, ".dde-traceback[open]")) == 5
    assert horizontal_overflow(browser) == {"page": 0, "results": 0}, (
        f"the delivery page scrolls sideways at {width} px; see {screenshots}"
    )
