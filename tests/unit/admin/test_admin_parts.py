"""The admin's building blocks: the JSON highlighter, the chart layout, the counting paginator
and the distinct-values reader. Its estimates on PostgreSQL are in
``tests/integration/test_postgres_admin.py``."""

from __future__ import annotations

import pytest
from django.test import override_settings

from django_domain_events import publish
from django_domain_events.admin.charts import Series, stacked_bar_chart
from django_domain_events.admin.distinct import distinct_values
from django_domain_events.admin.highlighting import highlight_json
from django_domain_events.admin.pagination import EstimatedCountPaginator, bounded_count
from django_domain_events.checks import check_settings
from django_domain_events.models import OutboxEvent


def test_highlighted_json_escapes_every_token() -> None:
    html = highlight_json({"<b>": ["</pre><script>", 1.5, True, None, -2]})

    assert "<script>" not in html
    assert "</pre><" not in html.removesuffix("</pre>")
    assert '<span class="json-key">&quot;&lt;b&gt;&quot;</span>:' in html
    assert '<span class="json-string">&quot;&lt;/pre&gt;&lt;script&gt;&quot;</span>' in html
    assert '<span class="json-number">1.5</span>' in html
    assert '<span class="json-number">-2</span>' in html
    assert '<span class="json-literal">true</span>' in html
    assert '<span class="json-literal">null</span>' in html


def test_highlighted_json_keeps_escaped_quotes_inside_strings() -> None:
    html = highlight_json({"quote": 'say "hi": true'})

    assert '<span class="json-string">&quot;say \\&quot;hi\\&quot;: true&quot;</span>' in html
    assert "json-literal" not in html


def test_a_stacked_chart_puts_each_series_on_the_one_below() -> None:
    chart = stacked_bar_chart(
        "t",
        ["a", "b"],
        [Series("low", "low", [3, 0]), Series("high", "high", [1, 2])],
        width=200,
        height=100,
    )

    first_low, first_high, second_high = chart.bars
    assert first_low.css_class == "low"
    assert first_high.y + first_high.height == pytest.approx(first_low.y, abs=0.2)
    assert first_low.y + first_low.height == chart.bottom
    assert second_high.height == pytest.approx(first_high.height * 2, abs=0.2)
    assert first_high.y == chart.top  # the tallest column, 4, reaches the top of the axis
    assert chart.total == 6
    assert [tick.label for tick in chart.y_ticks] == ["0", "2", "4"]
    assert first_low.title == "a: 3 low"


def test_an_empty_chart_has_no_bars() -> None:
    chart = stacked_bar_chart("t", ["a"], [Series("x", "x", [0])])

    assert chart.bars == ()
    assert chart.total == 0


@pytest.mark.django_db(transaction=True)
def test_small_results_are_counted_exactly() -> None:
    for n in range(3):
        publish("unit_admin.counted", {"n": n})

    queryset = OutboxEvent.objects.all()

    assert bounded_count(queryset) == (3, False)
    assert EstimatedCountPaginator(queryset, 2).num_pages == 2


@pytest.mark.django_db(transaction=True)
def test_distinct_values_are_sorted_and_unique() -> None:
    for event_type in ("b.second", "a.first", "b.second", "c.third"):
        publish(event_type, {})

    assert distinct_values(OutboxEvent, "event_type", using="default") == [
        "a.first",
        "b.second",
        "c.third",
    ]
    assert distinct_values(OutboxEvent, "event_type", using="default", limit=2) == [
        "a.first",
        "b.second",
    ]


def test_admin_allow_delete_must_be_a_boolean() -> None:
    with override_settings(DOMAIN_EVENTS={"ADMIN_ALLOW_DELETE": 1}):
        [error] = check_settings()

    assert error.id == "django_domain_events.E002"
    assert error.msg == "DOMAIN_EVENTS['ADMIN_ALLOW_DELETE'] is 1; it must be True or False."
