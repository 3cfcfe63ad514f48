"""Bar charts laid out on the server, for a template to draw as SVG: no script, nothing
fetched, readable offline."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.translation import gettext


@dataclass(frozen=True)
class Series:
    """One stacked layer of a chart: a name, a CSS class for its colour, a value per column."""

    css_class: str
    label: str
    values: Sequence[int]


@dataclass(frozen=True)
class Bar:
    """One rectangle, in SVG user units, with the text of its tooltip."""

    x: float
    y: float
    width: float
    height: float
    css_class: str
    title: str


@dataclass(frozen=True)
class Tick:
    """A label on an axis, at ``position`` along it."""

    position: float
    label: str


@dataclass(frozen=True)
class BarChart:
    """Everything a template needs to draw a stacked bar chart."""

    title: str
    width: int
    height: int
    left: int
    top: int
    right: int
    bottom: int
    bars: tuple[Bar, ...]
    y_ticks: tuple[Tick, ...]
    x_ticks: tuple[Tick, ...]
    legend: tuple[Series, ...]
    total: int


def _nice_ceiling(value: int) -> int:
    """The smallest of 2, 4, 6, 8 or 10 times a power of ten that is at least ``value``: even,
    so that the middle tick of the axis is a whole number too."""
    if value <= 2:
        return 2
    power: int = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 4, 6, 8):
        if step * power >= value and step * power % 2 == 0:
            return step * power
    return 10 * power


def stacked_bar_chart(
    title: str,
    column_labels: Sequence[str],
    series: Sequence[Series],
    *,
    width: int = 720,
    height: int = 200,
    label_every: int = 3,
) -> BarChart:
    """Lay out one bar per column, its series stacked bottom-up in the order given."""
    left, right, top, bottom = 44, width - 8, 8, height - 22
    columns = len(column_labels)
    totals = [sum(s.values[i] for s in series) for i in range(columns)]
    peak = _nice_ceiling(max(totals, default=0))
    slot = (right - left) / max(columns, 1)
    bar_width = max(slot * 0.75, 1.0)
    scale = (bottom - top) / peak
    bars: list[Bar] = []
    for i, column in enumerate(column_labels):
        base = float(bottom)
        x = left + i * slot + (slot - bar_width) / 2
        for layer in series:
            value = layer.values[i]
            if not value:
                continue
            bar_height = value * scale
            base -= bar_height
            bars.append(
                Bar(
                    x=round(x, 1),
                    y=round(base, 1),
                    width=round(bar_width, 1),
                    height=round(bar_height, 1),
                    css_class=layer.css_class,
                    title=gettext("%(column)s: %(value)d %(series)s")
                    % {"column": column, "value": value, "series": layer.label},
                )
            )
    y_ticks = tuple(
        Tick(position=round(bottom - fraction * (bottom - top), 1), label=f"{peak * fraction:g}")
        for fraction in (0, 0.5, 1)
    )
    x_ticks = tuple(
        Tick(position=round(left + i * slot + slot / 2, 1), label=label)
        for i, label in enumerate(column_labels)
        if i % label_every == 0
    )
    return BarChart(
        title=title,
        width=width,
        height=height,
        left=left,
        top=top,
        right=right,
        bottom=bottom,
        bars=tuple(bars),
        y_ticks=y_ticks,
        x_ticks=x_ticks,
        legend=tuple(series),
        total=sum(totals),
    )
