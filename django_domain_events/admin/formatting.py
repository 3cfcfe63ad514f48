"""How the outbox lists keep narrow: dotted names that wrap at their dots, times to the second,
errors shortened with their full text a click away."""

from __future__ import annotations

import datetime as dt
import re

from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.text import Truncator
from django.utils.translation import gettext_lazy as _

# After a dot or an underscore: where a dotted Python name may wrap without cutting a word.
_NAME_PARTS = re.compile(r"(?<=[._])")

ERROR_PREVIEW_CHARS = 60
"""How much of a delivery's last error its list shows; the rest is one click away."""


def breakable_name(name: str) -> SafeString:
    """``name`` (a receiver or event type) escaped, with a line-break opportunity after each dot
    and underscore, so that a narrow column wraps it there and never mid-word."""
    parts = [part for part in _NAME_PARTS.split(name) if part]
    return format_html_join(SafeString("<wbr>"), "{}", ((part,) for part in parts))


def to_the_second(value: dt.datetime | None) -> str:
    """``value`` in the current time zone as ``YYYY-MM-DD HH:MM:SS``, or ``"-"``: to the second,
    since the order of attempts and deliveries within a minute matters."""
    if value is None:
        return "-"
    if timezone.is_aware(value):
        value = timezone.localtime(value)
    return value.strftime("%Y-%m-%d %H:%M:%S")


def error_preview(error: str) -> SafeString | str:
    """The start of ``error``; when it is longer, a disclosure that shows all of it on a click."""
    if len(error) <= ERROR_PREVIEW_CHARS:
        return error
    return format_html(
        '<details class="dde-error"><summary title="{}">{}</summary>{}</details>',
        _("Show the whole error"),
        Truncator(error).chars(ERROR_PREVIEW_CHARS),
        error,
    )
