"""What a person can do to the outbox from the admin: retry deliveries, skip dead deliveries in
their ordering lines, cancel owed deliveries, and replay events. Each asks for confirmation
first, needs a permission, and is logged."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.models import CHANGE, LogEntry
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from django_domain_events.declaration.registry import Receiver, registry
from django_domain_events.models import CANCELLABLE_STATES, Delivery, DeliveryState, OutboxEvent
from django_domain_events.operations.cancelling import cancel_deliveries
from django_domain_events.operations.redelivery import (
    RETRYABLE_STATES,
    replay_events,
    retry_deliveries,
)
from django_domain_events.operations.skipping import skip_dead_deliveries

ACTION_ROW_LIMIT = 10_000
"""Most rows one admin action takes; more is a job for the management commands."""

SAMPLE_SIZE = 20
"""Rows named on a confirmation page; the rest are counted."""


def _over_limit(modeladmin: Any, request: HttpRequest, queryset: QuerySet[Any]) -> bool:
    selected = queryset.order_by()[: ACTION_ROW_LIMIT + 1].count()
    if selected <= ACTION_ROW_LIMIT:
        return False
    modeladmin.message_user(
        request,
        gettext(
            "More than %(limit)d rows are selected; narrow the selection with the filters "
            "(or use the management commands). Nothing was changed."
        )
        % {"limit": ACTION_ROW_LIMIT},
        messages.ERROR,
    )
    return True


def _confirmation_page(
    modeladmin: Any,
    request: HttpRequest,
    template: str,
    title: str,
    **context: Any,
) -> TemplateResponse:
    opts = modeladmin.model._meta
    request.current_app = modeladmin.admin_site.name
    return TemplateResponse(
        request,
        template,
        {
            **modeladmin.admin_site.each_context(request),
            "title": title,
            "opts": opts,
            "app_label": opts.app_label,
            "action": request.POST.get("action", ""),
            # Passed back unchanged, so that "select all" keeps meaning the filtered list.
            "selected": request.POST.getlist(ACTION_CHECKBOX_NAME),
            "select_across": request.POST.get("select_across", "0"),
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
            "media": modeladmin.media,
            **context,
        },
    )


def _log(request: HttpRequest, rows: Any, message: str) -> None:
    LogEntry.objects.log_actions(
        user_id=request.user.pk,  # type: ignore[arg-type]  # admin users are signed in
        queryset=rows,
        action_flag=CHANGE,
        change_message=message,
    )


@admin.action(description=_("Retry selected deliveries"), permissions=["retry"])
def retry_selected_deliveries(
    modeladmin: Any, request: HttpRequest, queryset: QuerySet[Delivery]
) -> TemplateResponse | None:
    """Run the selected failed and dead deliveries again, each with a fresh set of attempts."""
    if _over_limit(modeladmin, request, queryset):
        return None
    if request.POST.get("confirmed") != "yes":
        retryable = queryset.filter(state__in=RETRYABLE_STATES)
        count = retryable.count()
        return _confirmation_page(
            modeladmin,
            request,
            "django_domain_events/admin/retry_confirmation.html",
            gettext("Retry deliveries"),
            retryable_count=count,
            skipped_count=queryset.count() - count,
            ordered_count=retryable.exclude(ordering_key="").count() if count else 0,
            sample=list(retryable.order_by("-id")[:SAMPLE_SIZE]),
            sample_size=SAMPLE_SIZE,
        )
    rows = retry_deliveries(queryset.select_related(None).only("id"), using=queryset.db)
    if rows:
        _log(request, rows, gettext("Retried with a fresh set of attempts."))
    modeladmin.message_user(
        request,
        ngettext(
            "%(count)d delivery retried with a fresh set of attempts; it is being dispatched.",
            "%(count)d deliveries retried with a fresh set of attempts; they are being dispatched.",
            len(rows),
        )
        % {"count": len(rows)},
        messages.SUCCESS if rows else messages.WARNING,
    )
    return None


@admin.action(
    description=_("Skip selected dead deliveries in their ordering lines"), permissions=["retry"]
)
def skip_selected_in_lines(
    modeladmin: Any, request: HttpRequest, queryset: QuerySet[Delivery]
) -> TemplateResponse | None:
    """Take the selected dead ordered deliveries out of their ordering lines, so the deliveries
    waiting behind them go on; they stay dead, with their error, and can still be retried."""
    if _over_limit(modeladmin, request, queryset):
        return None
    skippable = queryset.filter(state=DeliveryState.DEAD).exclude(ordering_key="")
    if request.POST.get("confirmed") != "yes":
        count = skippable.count()
        return _confirmation_page(
            modeladmin,
            request,
            "django_domain_events/admin/skip_confirmation.html",
            gettext("Skip dead deliveries in their ordering lines"),
            skippable_count=count,
            skipped_count=queryset.count() - count,
            sample=list(skippable.order_by("-id")[:SAMPLE_SIZE]),
            sample_size=SAMPLE_SIZE,
        )
    result = skip_dead_deliveries(skippable.select_related(None).only("id"), using=queryset.db)
    taken, released = result.skipped, result.released
    if taken:
        _log(request, taken, gettext("Taken out of its ordering line."))
    modeladmin.message_user(
        request,
        ngettext(
            "%(count)d dead delivery taken out of its ordering line; ",
            "%(count)d dead deliveries taken out of their ordering lines; ",
            len(taken),
        )
        % {"count": len(taken)}
        + ngettext(
            "%(lines)d line released: its next delivery is being dispatched.",
            "%(lines)d lines released: their next deliveries are being dispatched.",
            released,
        )
        % {"lines": released},
        messages.SUCCESS if taken else messages.WARNING,
    )
    return None


@admin.action(description=_("Cancel selected deliveries"), permissions=["cancel"])
def cancel_selected_deliveries(
    modeladmin: Any, request: HttpRequest, queryset: QuerySet[Delivery]
) -> TemplateResponse | None:
    """Cancel the selected owed deliveries, so their receivers never run for them; they stay
    in the outbox as cancelled. Settled ones are left alone."""
    if _over_limit(modeladmin, request, queryset):
        return None
    if request.POST.get("confirmed") != "yes":
        cancellable = queryset.filter(state__in=CANCELLABLE_STATES)
        count = cancellable.count()
        return _confirmation_page(
            modeladmin,
            request,
            "django_domain_events/admin/cancel_confirmation.html",
            gettext("Cancel deliveries"),
            cancellable_count=count,
            skipped_count=queryset.count() - count,
            sample=list(cancellable.order_by("-id")[:SAMPLE_SIZE]),
            sample_size=SAMPLE_SIZE,
        )
    ids = list(queryset.order_by().values_list("pk", flat=True))
    result = cancel_deliveries(ids, using=queryset.db)
    if result.cancelled:
        rows = Delivery.objects.using(queryset.db).filter(pk__in=result.cancelled)
        _log(request, rows, gettext("Cancelled."))
    modeladmin.message_user(
        request,
        ngettext(
            "%(count)d delivery cancelled; ",
            "%(count)d deliveries cancelled; ",
            len(result.cancelled),
        )
        % {"count": len(result.cancelled)}
        + ngettext(
            "%(skipped)d skipped: settled already, or running.",
            "%(skipped)d skipped: settled already, or running.",
            result.skipped,
        )
        % {"skipped": result.skipped},
        messages.SUCCESS if result.cancelled else messages.WARNING,
    )
    return None


class ReplayForm(forms.Form):
    """The receivers to replay the selected events to: registered receivers of their types."""

    receivers = forms.MultipleChoiceField(
        label=_("Receivers"),
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": _("Choose at least one receiver.")},
    )

    def __init__(self, *args: Any, receivers: list[Receiver], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["receivers"].choices = [  # type: ignore[attr-defined]
            (receiver.name, f"{receiver.name} ({receiver.event_type})") for receiver in receivers
        ]


@admin.action(description=_("Replay selected events"), permissions=["replay"])
def replay_selected_events(
    modeladmin: Any, request: HttpRequest, queryset: QuerySet[OutboxEvent]
) -> TemplateResponse | None:
    """Write new deliveries of the selected events to the receivers chosen on a confirmation
    page, and dispatch them."""
    if _over_limit(modeladmin, request, queryset):
        return None
    event_types = sorted(queryset.order_by().values_list("event_type", flat=True).distinct())
    # A wildcard receiver receives several of the types: offered once.
    found = (r for event_type in event_types for r in registry.receivers_for(event_type))
    receivers = list({r.name: r for r in found}.values())
    if not receivers:
        modeladmin.message_user(
            request,
            gettext("No registered receiver receives these events' types; nothing to replay."),
            messages.WARNING,
        )
        return None
    form = ReplayForm(
        request.POST if request.POST.get("confirmed") == "yes" else None, receivers=receivers
    )
    if not form.is_valid():
        return _confirmation_page(
            modeladmin,
            request,
            "django_domain_events/admin/replay_confirmation.html",
            gettext("Replay events"),
            form=form,
            event_count=queryset.count(),
            sample=list(queryset.order_by("-occurred_at", "-id")[:SAMPLE_SIZE]),
            sample_size=SAMPLE_SIZE,
        )
    chosen = [r for r in receivers if r.name in form.cleaned_data["receivers"]]
    events = list(queryset.only("id", "event_type", "ordering_key"))
    created = replay_events(events, chosen, using=queryset.db)
    replayed_ids = {row.event_id for row in created}
    replayed = [event for event in events if event.pk in replayed_ids]
    if replayed:
        names = ", ".join(r.name for r in chosen)
        _log(request, replayed, gettext("Replayed to: %(receivers)s.") % {"receivers": names})
    modeladmin.message_user(
        request,
        ngettext(
            "%(events)d event replayed: %(deliveries)d new deliveries are being dispatched.",
            "%(events)d events replayed: %(deliveries)d new deliveries are being dispatched.",
            len(replayed),
        )
        % {"events": len(replayed), "deliveries": len(created)},
        messages.SUCCESS,
    )
    return None
