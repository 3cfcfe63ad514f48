"""``manage.py events_catalogue``: every event type, its fields and receivers; ``--check``
compares it with a stored catalogue and fails on a breaking change."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_domain_events.catalogue.asyncapi import asyncapi_document
from django_domain_events.catalogue.building import Catalogue, build_catalogue
from django_domain_events.catalogue.comparing import compare_catalogues, read_catalogue
from django_domain_events.catalogue.json_schema import event_schema
from django_domain_events.catalogue.text import catalogue_text
from django_domain_events.declaration.registry import is_wildcard, pattern_matches
from django_domain_events.exceptions import CatalogueFileError

FORMATS = ("text", "json", "json-schema", "asyncapi")


class Command(BaseCommand):
    help = (
        "List every event type: its version, fields and their types, where it is published "
        "from (when declared), and its receivers with their dispatcher, queue, ordering and "
        "retry policy. --check FILE compares with a catalogue stored by --format json and "
        "exits with status 1 on a breaking change."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--format",
            choices=FORMATS,
            default="text",
            help="text (default); json, the catalogue to commit and --check against; "
            "json-schema, a JSON Schema per typed event; asyncapi, an AsyncAPI 3 document of "
            "the integration events.",
        )
        parser.add_argument(
            "--event-type",
            default=None,
            help="Only this event type, or the ones a pattern names ('billing.*').",
        )
        parser.add_argument("--output", default=None, help="Write to this file, not stdout.")
        parser.add_argument(
            "--check",
            metavar="FILE",
            default=None,
            help="Compare with the catalogue stored in FILE (--format json); exit 1 on a "
            "breaking change.",
        )
        parser.add_argument(
            "--title",
            default="Integration events",
            help="info.title of the AsyncAPI document (default: Integration events).",
        )
        parser.add_argument(
            "--api-version",
            default="1.0.0",
            help="info.version of the AsyncAPI document (default: 1.0.0).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        catalogue = build_catalogue()
        pattern = options["event_type"]
        if options["check"] is not None:
            if options["output"] is not None or options["format"] != "text":
                raise CommandError("--check prints its findings; drop --format and --output.")
            if pattern is not None:
                catalogue = catalogue.selected(pattern)
            self._check(catalogue, options["check"], pattern)
            return
        if pattern is not None:
            catalogue = _selected(catalogue, pattern)
        text = _rendered(catalogue, options)
        if options["output"] is None:
            self.stdout.write(text, ending="")
            return
        try:
            Path(options["output"]).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"--output {options['output']}: cannot be written ({exc}).") from exc
        self.stdout.write(f"Wrote {len(catalogue.events)} event types to {options['output']}.")

    def _check(self, catalogue: Catalogue, path: str, pattern: str | None) -> None:
        try:
            stored = read_catalogue(path)
        except CatalogueFileError as exc:
            raise CommandError(str(exc)) from exc
        current = catalogue.as_dict()
        if pattern is not None:
            # Only the event types asked about; the wildcard receivers are not compared.
            stored = {**stored, "events": _matching(stored["events"], pattern)}
            stored["wildcard_receivers"] = current["wildcard_receivers"]
        comparison = compare_catalogues(stored, current)
        for change in comparison.additive:
            self.stdout.write(f"  {change.event_type}: {change.message}")
        if comparison.breaking:
            found = "\n".join(
                f"  {change.event_type}: {change.message}" for change in comparison.breaking
            )
            raise CommandError(
                f"{len(comparison.breaking)} breaking change(s) against {path}:\n{found}\n"
                f"When the change is intended and handled, store the new catalogue: "
                f"manage.py events_catalogue --format json --output {path}",
                returncode=1,
            )
        changed = f", {len(comparison.additive)} additive change(s)" if comparison.changes else ""
        self.stdout.write(self.style.SUCCESS(f"No breaking change against {path}{changed}."))


def _selected(catalogue: Catalogue, pattern: str) -> Catalogue:
    chosen = catalogue.selected(pattern)
    if not chosen.events:
        known = ", ".join(entry.event_type for entry in catalogue.events) or "none"
        raise CommandError(f"--event-type {pattern!r} names no event type; known: {known}.")
    return chosen


def _matching(stored: list[dict[str, Any]], pattern: str) -> list[dict[str, Any]]:
    return [entry for entry in stored if pattern_matches(pattern, entry["event_type"])]


def _rendered(catalogue: Catalogue, options: dict[str, Any]) -> str:
    chosen = options["format"]
    if chosen == "text":
        return catalogue_text(catalogue)
    if chosen == "json":
        data: Any = catalogue.as_dict()
    elif chosen == "asyncapi":
        data = asyncapi_document(catalogue, title=options["title"], version=options["api_version"])
    else:
        data = _schemas(catalogue, options["event_type"])
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _schemas(catalogue: Catalogue, pattern: str | None) -> Any:
    schemas = {
        entry.event_type: event_schema(entry.event_class)
        for entry in catalogue.events
        if entry.event_class is not None
    }
    if pattern is not None and not is_wildcard(pattern):
        if not schemas:
            raise CommandError(
                f"{pattern} is a named event type: no class declares its fields, so it has "
                f"no JSON Schema. Declare it as a DomainEvent subclass to get one."
            )
        return schemas[pattern]
    return schemas
