"""What every outbox admin shares: read-only pages, and typing aliases for Django's classes."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from django.contrib import admin
from django.db.models import Model, Q, QuerySet
from django.http import HttpRequest

from django_domain_events.conf import settings

# django-stubs makes the admin classes generic; at run time Django's are not subscriptable.
if TYPE_CHECKING:
    ModelAdmin = admin.ModelAdmin[Any]
    TabularInline = admin.TabularInline[Any, Any]
else:
    ModelAdmin = admin.ModelAdmin
    TabularInline = admin.TabularInline


def short_uuid(value: uuid.UUID) -> str:
    """The last 8 hex digits of a UUID, to tell rows apart in a list. Not the first ones: a
    UUIDv7 begins with its timestamp, which every id made in the same minute shares."""
    return value.hex[-8:]


M = TypeVar("M", bound=Model)


def search_exactly(
    queryset: QuerySet[M], search_term: str, *, uuids: Sequence[str], text: str
) -> tuple[QuerySet[M], bool]:
    """An admin search by exact matches only, each served by an index: a term that reads as a
    UUID matches the ``uuids`` fields, and ``text`` in either spelling; any other term matches
    ``text``. Django's ``=`` search compares ``UPPER(column::text)``, which reads every row."""
    term = search_term.strip()
    if not term:
        return queryset, False
    try:
        as_uuid = uuid.UUID(term)
    except ValueError:
        return queryset.filter(**{text: term}), False
    condition = Q(**{f"{text}__in": {term, str(as_uuid)}})
    for field in uuids:
        condition |= Q(**{field: as_uuid})
    return queryset.filter(condition), False


MEDIA_CSS = {"all": ("django_domain_events/admin.css",)}
"""The stylesheet of the outbox pages (badges, highlighted JSON, charts)."""


class ReadOnlyAdmin(ModelAdmin):
    """Shows rows, never edits them: the outbox is written only by publishing and delivery.

    Deleting is refused too, unless ``DOMAIN_EVENTS["ADMIN_ALLOW_DELETE"]`` is on and the user
    has the model's delete permission.
    """

    # Facet counts are one COUNT(*) per filter choice over the whole table: never offered.
    show_facets = admin.ShowFacets.NEVER

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return settings.ADMIN_ALLOW_DELETE and super().has_delete_permission(request, obj)
