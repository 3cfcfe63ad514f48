"""The catalogue as text, for people."""

from __future__ import annotations

from collections.abc import Iterator

from django_domain_events.catalogue.building import Catalogue, EventEntry, ReceiverEntry


def catalogue_text(catalogue: Catalogue) -> str:
    """Every event type of ``catalogue``, a paragraph each, then the wildcard receivers."""
    lines: list[str] = []
    for entry in catalogue.events:
        lines.extend(_event_lines(entry))
        lines.append("")
    if catalogue.wildcard_receivers:
        lines.append("Wildcard receivers:")
        lines.extend(f"  {line}" for line in _receiver_lines(catalogue.wildcard_receivers))
        lines.append("")
    if not lines:
        return "No event types: no event class is defined and no receiver names one.\n"
    return "\n".join(lines)


def _event_lines(entry: EventEntry) -> Iterator[str]:
    if entry.event_class is None:
        yield f"{entry.event_type} (named event: no class, fields not declared)"
    else:
        cls = entry.event_class
        yield (
            f"{entry.event_type} ({entry.kind} event, version {entry.version}, "
            f"{cls.__module__}.{cls.__qualname__})"
        )
    if entry.description:
        yield f"  {entry.description}"
    if entry.fields:
        yield "  Fields:"
        for field in entry.fields:
            optional = "" if field.required else " (optional)"
            yield f"    {field.name}: {field.type}{optional}"
    for name, nested in entry.nested_types.items():
        if nested["kind"] == "enum":
            yield f"  {name}: one of {', '.join(repr(value) for value in nested['values'])}"
        else:
            parts = [f"{field['name']}: {field['type']}" for field in nested["fields"]]
            yield f"  {name}: {', '.join(parts)}"
    if entry.ordering_key:
        yield f"  Ordering key: {entry.ordering_key}"
    if entry.upcaster:
        yield "  Upcasts payloads of older versions (upcast())."
    if entry.publishers:
        yield f"  Published from: {', '.join(entry.publishers)}"
    if entry.receivers:
        yield "  Receivers:"
        yield from (f"    {line}" for line in _receiver_lines(entry.receivers))
    else:
        yield "  No receivers."


def _receiver_lines(receivers: tuple[ReceiverEntry, ...]) -> Iterator[str]:
    for receiver in receivers:
        details = [f"dispatcher {receiver.dispatcher}"]
        if receiver.queue:
            details.append(f"queue {receiver.queue}")
        if receiver.namespace != "default":
            details.append(f"namespace {receiver.namespace}")
        if "*" in receiver.receives:
            details.append(f"receives {receiver.receives}")
        if receiver.ordered:
            details.append(f"ordered (a dead delivery: {receiver.on_dead})")
        details.append(
            f"{receiver.max_attempts} attempts, backoff {receiver.retry_base_delay:g} s to "
            f"{receiver.retry_max_delay:g} s"
        )
        if receiver.timeout is not None:
            details.append(f"timeout {receiver.timeout:g} s")
        if receiver.once:
            details.append("once")
        if receiver.delay is not None:
            details.append(f"delayed {receiver.delay:g} s")
        if receiver.shares_commit:
            details.append("shares commits")
        if receiver.is_async:
            details.append("async")
        yield f"{receiver.name}: {', '.join(details)}"
