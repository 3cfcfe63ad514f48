"""Comparing the catalogue with a stored one: which changes break the contract of an event.

A change breaks it when payloads written to the old shape cannot be read as the new one, or
consumers lose what they read: a removed event type, a removed or retyped field, a new required
field, a lost enum value. It is allowed when the event's version was bumped and its class
defines ``upcast()``, which upgrades the old payloads. Everything else is listed for
information.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django_domain_events.catalogue.building import CATALOGUE_FORMAT
from django_domain_events.exceptions import CatalogueFileError

_HOW_TO_WRITE = "write it with: manage.py events_catalogue --format json --output {path}"

_RECEIVER_OPTIONS = ("dispatcher", "queue", "ordered", "on_dead", "retry", "timeout", "once")


@dataclass(frozen=True)
class Change:
    """One difference between the stored catalogue and the current one."""

    event_type: str
    message: str
    breaking: bool


@dataclass(frozen=True)
class Comparison:
    """The differences found, breaking ones first, each group in event-type order."""

    changes: tuple[Change, ...]

    @property
    def breaking(self) -> tuple[Change, ...]:
        """The changes that break an event's contract."""
        return tuple(change for change in self.changes if change.breaking)

    @property
    def additive(self) -> tuple[Change, ...]:
        """The changes that keep every contract."""
        return tuple(change for change in self.changes if not change.breaking)


def read_catalogue(path: str | Path) -> dict[str, Any]:
    """The catalogue stored at ``path`` by ``events_catalogue --format json``."""
    how = _HOW_TO_WRITE.format(path=path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CatalogueFileError(f"{path}: no such file; {how}, and commit it.") from None
    except OSError as exc:
        raise CatalogueFileError(f"{path}: cannot be read ({exc}).") from exc
    try:
        stored = json.loads(text)
    except ValueError as exc:
        raise CatalogueFileError(f"{path}: not JSON ({exc}); {how}.") from None
    if not isinstance(stored, dict) or not isinstance(stored.get("events"), list):
        raise CatalogueFileError(f"{path}: not an event catalogue; {how}.")
    if stored.get("catalogue_format") != CATALOGUE_FORMAT:
        raise CatalogueFileError(
            f"{path}: catalogue_format is {stored.get('catalogue_format')!r}, this version "
            f"reads {CATALOGUE_FORMAT}; {how} from the code it describes."
        )
    return stored


def compare_catalogues(stored: Mapping[str, Any], current: Mapping[str, Any]) -> Comparison:
    """The changes from ``stored`` to ``current`` (both as ``Catalogue.as_dict()`` gives)."""
    before = {entry["event_type"]: entry for entry in stored["events"]}
    after = {entry["event_type"]: entry for entry in current["events"]}
    changes: list[Change] = []
    for event_type in sorted({*before, *after}):
        if event_type not in after:
            changes.append(_removed(before[event_type]))
        elif event_type not in before:
            kind = after[event_type]["kind"]
            changes.append(Change(event_type, f"new {kind} event type", breaking=False))
        else:
            changes.extend(_event_changes(before[event_type], after[event_type]))
            changes.extend(
                _receiver_changes(
                    event_type,
                    _own(event_type, before[event_type]["receivers"]),
                    _own(event_type, after[event_type]["receivers"]),
                )
            )
    changes.extend(
        _receiver_changes("*", stored.get("wildcard_receivers", []), current["wildcard_receivers"])
    )
    changes.sort(key=lambda change: not change.breaking)
    return Comparison(tuple(changes))


def _own(event_type: str, receivers: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    # Wildcard receivers are compared once, under "*", not under every event type they match.
    return [entry for entry in receivers if entry["receives"] == event_type]


def _removed(entry: Mapping[str, Any]) -> Change:
    event_type = entry["event_type"]
    if entry["kind"] == "named":
        return Change(event_type, "no receiver names it any more", breaking=False)
    return Change(
        event_type,
        f"event type removed (class {entry['class']}): stored rows and other services' "
        f"messages of it can no longer be read. Keep the class, or remove it from the stored "
        f"catalogue once no row or consumer needs it.",
        breaking=True,
    )


def _event_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[Change]:
    event_type = after["event_type"]
    if before["kind"] == "named" and after["kind"] == "named":
        return []
    if after["kind"] == "named":
        return [
            Change(
                event_type,
                f"its class {before['class']} is gone: receivers now get a plain NamedEvent. "
                f"Keep the class.",
                breaking=True,
            )
        ]
    if before["kind"] == "named":
        return [Change(event_type, f"now declared by class {after['class']}", breaking=False)]
    changes = []
    if before["kind"] != after["kind"]:
        changes.append(
            Change(event_type, f"kind {before['kind']} -> {after['kind']}", breaking=False)
        )
    old, new = before["version"], after["version"]
    if new < old:
        changes.append(
            Change(
                event_type,
                f"version went down from {old} to {new}: rows written at version {old} cannot "
                f"be read. Set {after['class']}.version back to {old} or above.",
                breaking=True,
            )
        )
    problems, additions = _shape_changes(before, after)
    upgraded = new > old and after["upcaster"]
    if problems and not upgraded:
        if new > old:
            fix = f"define {after['class']}.upcast() to upgrade payloads of version {old}"
        else:
            fix = (
                f"bump {after['class']}.version to {old + 1} and define upcast() to upgrade "
                f"payloads of version {old}"
            )
        changes.extend(
            Change(event_type, f"{problem}; {fix}.", breaking=True) for problem in problems
        )
    else:
        changes.extend(
            Change(event_type, f"{problem} (upcast() upgrades version {old})", breaking=False)
            for problem in problems
        )
    if new > old:
        changes.append(Change(event_type, f"version {old} -> {new}", breaking=False))
    changes.extend(Change(event_type, addition, breaking=False) for addition in additions)
    return changes


def _shape_changes(
    before: Mapping[str, Any], after: Mapping[str, Any]
) -> tuple[list[str], list[str]]:
    """What breaks old payloads, and what only adds, in the fields of the event and of the
    dataclasses and enums both catalogues name."""
    problems, additions = _field_changes("", before["fields"], after["fields"])
    old_types, new_types = before.get("types", {}), after.get("types", {})
    for name in sorted(set(old_types) & set(new_types)):
        old, new = old_types[name], new_types[name]
        if old["kind"] != new["kind"]:
            continue  # the fields naming it changed type too
        if old["kind"] == "enum":
            lost = [value for value in old["values"] if value not in new["values"]]
            gained = [value for value in new["values"] if value not in old["values"]]
            problems.extend(f"enum {name} lost value {value!r}" for value in lost)
            additions.extend(f"enum {name} gained value {value!r}" for value in gained)
        else:
            found, added = _field_changes(f"{name}.", old["fields"], new["fields"])
            problems.extend(found)
            additions.extend(added)
    return problems, additions


def _field_changes(
    prefix: str, before: list[Mapping[str, Any]], after: list[Mapping[str, Any]]
) -> tuple[list[str], list[str]]:
    old = {field["name"]: field for field in before}
    new = {field["name"]: field for field in after}
    problems, additions = [], []
    for name, field in old.items():
        if name not in new:
            problems.append(f"field {prefix}{name} removed")
        elif new[name]["type"] != field["type"]:
            problems.append(
                f"field {prefix}{name} changed type from {field['type']} to {new[name]['type']}"
            )
        elif new[name]["required"] and not field["required"]:
            problems.append(f"field {prefix}{name} lost its default")
    for name, field in new.items():
        if name in old:
            continue
        if field["required"]:
            problems.append(
                f"new required field {prefix}{name} ({field['type']}), without a default"
            )
        else:
            additions.append(f"new optional field {prefix}{name} ({field['type']})")
    return problems, additions


def _receiver_changes(
    event_type: str, before: list[Mapping[str, Any]], after: list[Mapping[str, Any]]
) -> list[Change]:
    old = {(entry["namespace"], entry["name"]): entry for entry in before}
    new = {(entry["namespace"], entry["name"]): entry for entry in after}
    changes = []
    for key in sorted({*old, *new}):
        namespace, name = key
        label = name if namespace == "default" else f"{name} (namespace {namespace})"
        if key not in new:
            changes.append(Change(event_type, f"receiver {label} removed", breaking=False))
        elif key not in old:
            changes.append(Change(event_type, f"new receiver {label}", breaking=False))
        else:
            changes.extend(
                Change(
                    event_type,
                    f"receiver {label}: {option} {old[key].get(option)!r} -> {new[key][option]!r}",
                    breaking=False,
                )
                for option in _RECEIVER_OPTIONS
                if old[key].get(option) != new[key][option]
            )
    return changes
