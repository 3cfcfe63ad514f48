"""The event catalogue: what ``events_catalogue`` lists, its JSON Schema and AsyncAPI
renderings (validated by a real JSON Schema validator), and ``--check`` against a stored
catalogue."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import io
import json
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import jsonschema
import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from django_domain_events import DomainEvent, IntegrationEvent, Namespace, receiver
from django_domain_events.catalogue.asyncapi import SCHEMA_FORMAT, asyncapi_document
from django_domain_events.catalogue.building import build_catalogue
from django_domain_events.catalogue.comparing import compare_catalogues
from django_domain_events.catalogue.json_schema import event_schema
from django_domain_events.declaration.codec import decode_event, encode_event
from django_domain_events.declaration.registry import Registry
from django_domain_events.exceptions import EventDefinitionError
from django_domain_events.testing import disposable_event_classes

PREFIX = "unit_catalogue"


class Size(enum.Enum):
    SMALL = "s"
    LARGE = "l"


@dataclass(frozen=True)
class Address:
    street: str
    zip_code: str | None = None


@dataclass(frozen=True)
class Node:
    label: str
    children: list[Node] = field(default_factory=list)


def noop(event: Any) -> None:
    """A receiver that does nothing."""


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("events_catalogue", *args, stdout=out)
    return out.getvalue()


def check(stored: Path) -> str:
    return run("--check", str(stored), "--event-type", f"{PREFIX}.*")


def refused(*args: str) -> CommandError:
    with pytest.raises(CommandError) as raised:
        run(*args)
    return raised.value


@pytest.fixture
def events(receiver_registry: Registry, disposable_classes: None) -> Registry:
    return receiver_registry


def shipped_v1() -> type[DomainEvent]:
    @dataclass(frozen=True)
    class Shipped(DomainEvent):
        """An order left the warehouse.

        Longer text that the catalogue leaves out.
        """

        event_type = f"{PREFIX}.Shipped"
        publishers = ("shop.services", "shop.admin")
        ordering_key = "order_id"

        order_id: int
        carrier: str
        note: str = ""

    return Shipped


# Building ---------------------------------------------------------------------------------------


def test_an_event_type_lists_its_version_fields_publishers_and_receivers(events: Registry) -> None:
    shipped = shipped_v1()
    receiver(shipped, name="unit.catalogue.email")(noop)
    receiver(
        shipped,
        name="unit.catalogue.crm",
        dispatcher="celery",
        queue="crm",
        max_attempts=10,
        ordered=True,
        on_dead="skip",
        timeout=30,
        shares_commit=True,
    )(noop)

    [entry] = build_catalogue([shipped], events).as_dict()["events"]

    assert entry["event_type"] == f"{PREFIX}.Shipped"
    assert entry["kind"] == "domain"
    assert entry["version"] == 1
    assert entry["class"] == f"{__name__}.{shipped.__qualname__}"
    assert entry["description"] == "An order left the warehouse."
    assert entry["fields"] == [
        {"name": "order_id", "type": "int", "required": True},
        {"name": "carrier", "type": "str", "required": True},
        {"name": "note", "type": "str", "required": False},
    ]
    assert entry["publishers"] == ["shop.admin", "shop.services"]
    assert entry["ordering_key"] == "order_id"
    assert entry["upcaster"] is False
    crm, email = entry["receivers"]
    assert crm == {
        "name": "unit.catalogue.crm",
        "namespace": "default",
        "receives": f"{PREFIX}.Shipped",
        "dispatcher": "celery",
        "queue": "crm",
        "ordered": True,
        "on_dead": "skip",
        "retry": {"max_attempts": 10, "base_delay": 2.0, "max_delay": 3600.0},
        "timeout": 30.0,
        "once": False,
        "async": False,
        "delay": None,
        "shares_commit": True,
    }
    assert email["dispatcher"] == "sync"
    assert email["shares_commit"] is False
    assert email["ordered"] is False
    assert email["on_dead"] is None
    assert email["retry"]["max_attempts"] == 5


@override_settings(
    DOMAIN_EVENTS={"DISPATCHER": "deferred", "MAX_ATTEMPTS": 7, "RETRY_BASE_DELAY": 1.5}
)
def test_receivers_without_options_show_the_project_settings(events: Registry) -> None:
    shipped = shipped_v1()
    receiver(shipped, name="unit.catalogue.email")(noop)

    [entry] = build_catalogue([shipped], events).as_dict()["events"]

    [email] = entry["receivers"]
    assert email["dispatcher"] == "deferred"
    assert email["retry"] == {"max_attempts": 7, "base_delay": 1.5, "max_delay": 3600.0}
    assert email["delay"] is None


def test_a_delayed_receiver_shows_its_delay(events: Registry) -> None:
    shipped = shipped_v1()
    receiver(shipped, name="unit.catalogue.survey", delay=dt.timedelta(days=2))(noop)

    [entry] = build_catalogue([shipped], events).as_dict()["events"]
    output = run("--event-type", f"{PREFIX}.Shipped")

    assert entry["receivers"][0]["delay"] == 172800.0
    assert "unit.catalogue.survey: dispatcher" in output
    assert ", delayed 172800 s" in output


def test_a_receiver_that_shares_commits_says_so(events: Registry) -> None:
    shipped = shipped_v1()
    receiver(shipped, name="unit.catalogue.tally", shares_commit=True)(noop)

    output = run("--event-type", f"{PREFIX}.Shipped")

    assert "unit.catalogue.tally: dispatcher" in output
    assert ", shares commits" in output


def test_named_wildcard_and_namespaced_receivers_are_listed(events: Registry) -> None:
    shipped = shipped_v1()
    receiver(f"{PREFIX}.invoice_paid", name="unit.catalogue.ledger")(noop)
    receiver(f"{PREFIX}.*", name="unit.catalogue.audit")(noop)
    Namespace("unit_catalogue_ns").receiver(shipped, name="unit.catalogue.tenant")(noop)

    catalogue = build_catalogue([shipped], events).as_dict()

    ship, paid = catalogue["events"]
    assert paid["event_type"] == f"{PREFIX}.invoice_paid"
    assert paid["kind"] == "named"
    assert (paid["version"], paid["class"], paid["fields"]) == (None, None, [])
    assert [r["name"] for r in paid["receivers"]] == [
        "unit.catalogue.audit",
        "unit.catalogue.ledger",
    ]
    assert [(r["namespace"], r["name"], r["receives"]) for r in ship["receivers"]] == [
        ("default", "unit.catalogue.audit", f"{PREFIX}.*"),
        ("unit_catalogue_ns", "unit.catalogue.tenant", f"{PREFIX}.Shipped"),
    ]
    assert [r["name"] for r in catalogue["wildcard_receivers"]] == ["unit.catalogue.audit"]


def test_nested_dataclasses_and_enums_are_described_once(events: Registry) -> None:
    @dataclass(frozen=True)
    class Packed(DomainEvent):
        event_type = f"{PREFIX}.Packed"

        to: Address
        size: Size
        tree: Node
        # Named "int | None" whichever way round it is written.
        maybe: None | int = None  # noqa: RUF036

    [entry] = build_catalogue([Packed], events).as_dict()["events"]

    assert [(f["name"], f["type"]) for f in entry["fields"]] == [
        ("to", "Address"),
        ("size", "Size"),
        ("tree", "Node"),
        ("maybe", "None | int"),
    ]
    assert entry["types"] == {
        "Address": {
            "kind": "dataclass",
            "fields": [
                {"name": "street", "type": "str", "required": True},
                {"name": "zip_code", "type": "None | str", "required": False},
            ],
        },
        "Node": {
            "kind": "dataclass",
            "fields": [
                {"name": "label", "type": "str", "required": True},
                {"name": "children", "type": "list[Node]", "required": False},
            ],
        },
        "Size": {"kind": "enum", "values": ["s", "l"]},
    }


def test_the_json_catalogue_is_sorted_and_the_same_every_time(events: Registry) -> None:
    shipped = shipped_v1()
    receiver(f"{PREFIX}.b_named", name="unit.catalogue.zeta")(noop)
    receiver(shipped, name="unit.catalogue.zeta2")(noop)
    receiver(shipped, name="unit.catalogue.alpha")(noop)

    first = run("--format", "json", "--event-type", f"{PREFIX}.*")
    second = run("--format", "json", "--event-type", f"{PREFIX}.*")

    assert first == second
    data = json.loads(first)
    assert [e["event_type"] for e in data["events"]] == [f"{PREFIX}.Shipped", f"{PREFIX}.b_named"]
    assert [r["name"] for r in data["events"][0]["receivers"]] == [
        "unit.catalogue.alpha",
        "unit.catalogue.zeta2",
    ]
    assert first == json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def test_publishers_must_be_a_tuple_of_module_paths(disposable_classes: None) -> None:
    with pytest.raises(EventDefinitionError, match=r"publishers must be a tuple of non-empty"):

        @dataclass(frozen=True)
        class Wrong(DomainEvent):
            event_type = f"{PREFIX}.Wrong"
            publishers = "shop.services"  # type: ignore[assignment]


# Text and files ------------------------------------------------------------------------------


def test_text_lists_fields_receivers_and_their_policies(events: Registry) -> None:
    shipped = shipped_v1()
    receiver(shipped, name="unit.catalogue.crm", dispatcher="celery", queue="crm")(noop)
    receiver(f"{PREFIX}.paid", name="unit.catalogue.ledger")(noop)

    output = run("--event-type", f"{PREFIX}.*")

    assert f"{PREFIX}.Shipped (domain event, version 1, {__name__}." in output
    assert "    order_id: int\n" in output
    assert "    note: str (optional)\n" in output
    assert "  Published from: shop.admin, shop.services\n" in output
    assert "  Ordering key: order_id\n" in output
    assert "unit.catalogue.crm: dispatcher celery, queue crm, 5 attempts" in output
    assert f"{PREFIX}.paid (named event: no class, fields not declared)" in output


def test_output_writes_the_file(events: Registry, tmp_path: Path) -> None:
    _shipped = shipped_v1()  # held: an event class nothing refers to is collected
    target = tmp_path / "catalogue.json"

    output = run("--format", "json", "--event-type", f"{PREFIX}.*", "--output", str(target))

    assert f"Wrote 1 event types to {target}." in output
    assert json.loads(target.read_text())["events"][0]["event_type"] == f"{PREFIX}.Shipped"


def test_an_event_type_nothing_declares_is_refused(events: Registry) -> None:
    error = refused("--event-type", f"{PREFIX}.nothing")

    assert f"--event-type '{PREFIX}.nothing' names no event type; known:" in str(error)


def test_a_named_event_type_has_no_json_schema(events: Registry) -> None:
    receiver(f"{PREFIX}.paid", name="unit.catalogue.ledger")(noop)

    error = refused("--format", "json-schema", "--event-type", f"{PREFIX}.paid")

    assert "is a named event type: no class declares its fields" in str(error)


# JSON Schema ------------------------------------------------------------------------------------


def everything_event() -> type[DomainEvent]:
    @dataclass(frozen=True)
    class Everything(DomainEvent):
        """Every field type the codec carries."""

        event_type = f"{PREFIX}.Everything"

        text: str
        count: int
        ratio: float
        flag: bool
        amount: Decimal
        ident: uuid.UUID
        at: dt.datetime
        day: dt.date
        clock: dt.time
        size: Size
        mode: Literal["a", "b"]
        to: Address
        tree: Node
        tags: list[str]
        pair: tuple[int, str]
        many: tuple[int, ...]
        extra: dict[str, int]
        anything: Any
        loose: list  # type: ignore[type-arg]
        maybe: int | None = None
        label: str = "none"

    return Everything


def sample(cls: type[DomainEvent]) -> Any:
    return cls(
        text="t",
        count=3,
        ratio=0.5,
        flag=True,
        amount=Decimal("-12.50"),
        ident=uuid.UUID(int=7),
        at=dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        day=dt.date(2025, 1, 2),
        clock=dt.time(3, 4, 5),
        size=Size.LARGE,
        mode="b",
        to=Address("Main street 1"),
        tree=Node("root", [Node("leaf")]),
        tags=["x"],
        pair=(1, "one"),
        many=(1, 2, 3),
        extra={"k": 1},
        anything={"free": [1, None]},
        loose=[1, "two"],
    )


def stored_payload(event: DomainEvent) -> Any:
    return json.loads(encode_event(event, max_bytes=1_000_000))


def validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


@pytest.mark.usefixtures("disposable_classes")
def test_the_json_schema_is_valid_and_accepts_what_publish_writes() -> None:
    everything = everything_event()
    schema = event_schema(everything)
    payload = stored_payload(sample(everything))

    validator(schema).validate(payload)

    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == f"{PREFIX}.Everything"
    assert schema["description"] == "Every field type the codec carries."
    assert schema["x-event-version"] == 1
    assert "maybe" not in schema["required"]
    assert "text" in schema["required"]
    assert schema["properties"]["label"]["default"] == "none"
    # What the schema accepts, the codec reads back.
    assert decode_event(everything.event_type, 1, payload) == sample(everything)


@pytest.mark.usefixtures("disposable_classes")
@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"count": "3"}, "'3' is not of type 'integer'"),
        ({"amount": 1.5}, "1.5 is not of type 'string'"),
        ({"amount": "ten"}, "'ten' does not match"),
        ({"size": "m"}, "'m' is not one of ['s', 'l']"),
        ({"mode": "c"}, "'c' is not one of ['a', 'b']"),
        ({"to": {"zip_code": "1"}}, "'street' is a required property"),
        ({"tree": {"label": "r", "children": [{"label": 1}]}}, "1 is not of type 'string'"),
        ({"pair": [1, "one", 2]}, "Expected at most 2 items"),
        ({"extra": {"k": "v"}}, "'v' is not of type 'integer'"),
        ({"ident": "not-a-uuid"}, "is not a 'uuid'"),
        ({"day": "yesterday"}, "is not a 'date'"),
    ],
)
def test_the_json_schema_refuses_payloads_publish_never_writes(
    change: dict[str, Any], problem: str
) -> None:
    everything = everything_event()
    payload = {**stored_payload(sample(everything)), **change}

    with pytest.raises(jsonschema.ValidationError, match=problem.replace("[", r"\[")):
        validator(event_schema(everything)).validate(payload)


@pytest.mark.usefixtures("disposable_classes")
def test_a_missing_required_field_is_refused_an_unknown_one_allowed() -> None:
    everything = everything_event()
    payload = stored_payload(sample(everything))
    checker = validator(event_schema(everything))

    checker.validate({**payload, "added_later": 1})
    del payload["text"]
    with pytest.raises(jsonschema.ValidationError, match="'text' is a required property"):
        checker.validate(payload)


def test_json_schema_format_gives_one_schema_per_typed_event(events: Registry) -> None:
    _shipped = shipped_v1()  # held: an event class nothing refers to is collected
    _everything = everything_event()
    receiver(f"{PREFIX}.paid", name="unit.catalogue.ledger")(noop)

    schemas = json.loads(run("--format", "json-schema", "--event-type", f"{PREFIX}.*"))
    one = json.loads(run("--format", "json-schema", "--event-type", f"{PREFIX}.Shipped"))

    assert sorted(schemas) == [f"{PREFIX}.Everything", f"{PREFIX}.Shipped"]
    assert one == schemas[f"{PREFIX}.Shipped"]
    for schema in schemas.values():
        jsonschema.Draft202012Validator.check_schema(schema)


# AsyncAPI ---------------------------------------------------------------------------------------


def resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/")
    found: Any = document
    for part in ref[2:].split("/"):
        found = found[part]
    return found


def test_asyncapi_has_a_channel_per_integration_event_and_its_schema(events: Registry) -> None:
    _shipped = shipped_v1()  # held: an event class nothing refers to is collected

    @dataclass(frozen=True)
    class InvoiceIssued(IntegrationEvent):
        """An invoice was issued to a customer."""

        event_type = f"{PREFIX}.InvoiceIssued"
        version = 2
        publishers = ("billing.services",)

        invoice_id: int
        amount: Decimal

        @classmethod
        def upcast(cls, payload: dict[str, Any], from_version: int) -> dict[str, Any]:
            return payload

    document = json.loads(
        run("--format", "asyncapi", "--event-type", f"{PREFIX}.*", "--title", "Billing")
    )

    assert document["asyncapi"] == "3.0.0"
    assert document["info"] == {"title": "Billing", "version": "1.0.0"}
    key = f"{PREFIX}.InvoiceIssued"
    assert list(document["channels"]) == [key]  # the domain event is not in it
    channel = document["channels"][key]
    assert channel["address"] == key
    assert channel["description"] == "An invoice was issued to a customer."
    [operation] = document["operations"].values()
    assert operation["action"] == "send"
    assert resolve(document, operation["channel"]["$ref"]) is channel
    [message_ref] = operation["messages"]
    message = resolve(document, resolve(document, message_ref["$ref"])["$ref"])
    assert message["name"] == key
    assert message["contentType"] == "application/json"
    assert message["x-event-version"] == 2
    payload = resolve(document, message["payload"]["$ref"])
    assert payload["schemaFormat"] == SCHEMA_FORMAT
    validator(payload["schema"]).validate(
        stored_payload(InvoiceIssued(invoice_id=1, amount=Decimal("9.99")))
    )


def test_asyncapi_of_no_integration_event_is_an_empty_document(events: Registry) -> None:
    shipped = shipped_v1()

    document = asyncapi_document(build_catalogue([shipped], events))

    assert document["channels"] == {}
    assert document["operations"] == {}
    assert document["components"] == {"messages": {}, "schemas": {}}


# --check ----------------------------------------------------------------------------------------


@pytest.fixture
def stored(events: Registry, tmp_path: Path) -> Path:
    """The catalogue of ``Shipped`` version 1, with one receiver, stored as a file; the class
    is retired afterwards, so the test declares the current shape."""
    path = tmp_path / "events.json"
    with disposable_event_classes():
        receiver(shipped_v1(), name="unit.catalogue.email")(noop)
        run("--format", "json", "--event-type", f"{PREFIX}.*", "--output", str(path))
    events.unregister("unit.catalogue.email")
    return path


def declare(*fields: tuple[str, Any, Any], version: int = 1, upcast: bool = False) -> type:
    """``Shipped`` with ``fields`` (name, type, default or MISSING), and a receiver."""
    namespace: dict[str, Any] = {"event_type": f"{PREFIX}.Shipped", "version": version}
    if upcast:
        namespace["upcast"] = classmethod(lambda cls, payload, from_version: payload)
    made = dataclasses.make_dataclass(
        "Shipped",
        [
            (name, tp) if default is dataclasses.MISSING else (name, tp, default)
            for name, tp, default in fields
        ],
        bases=(DomainEvent,),
        namespace=namespace,
        frozen=True,
    )
    receiver(made, name="unit.catalogue.email")(noop)
    return made


NONE = dataclasses.MISSING
V1 = [("order_id", int, NONE), ("carrier", str, NONE), ("note", str, "")]


def breaking(stored: Path) -> str:
    with pytest.raises(CommandError) as raised:
        check(stored)
    assert raised.value.returncode == 1
    return str(raised.value)


def test_the_same_declarations_pass(stored: Path) -> None:
    declare(*V1)

    output = check(stored)

    assert f"No breaking change against {stored}." in output


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        (V1[:1] + V1[2:], "field carrier removed"),
        ([V1[0], ("carrier", int, NONE), V1[2]], "field carrier changed type from str to int"),
        (
            [*V1[:2], ("weight", Decimal, NONE), V1[2]],
            "new required field weight (Decimal), without a default",
        ),
        ([*V1[:2], ("note", str, NONE)], "field note lost its default"),
    ],
)
def test_a_breaking_change_without_a_version_bump_fails(
    stored: Path, fields: list[tuple[str, Any, Any]], problem: str
) -> None:
    shipped = declare(*fields)

    message = breaking(stored)

    assert "1 breaking change(s) against" in message
    path = f"{shipped.__module__}.{shipped.__qualname__}"
    assert (
        f"{PREFIX}.Shipped: {problem}; bump {path}.version to 2 and define upcast() to upgrade "
        f"payloads of version 1." in message
    )
    assert f"--format json --output {stored}" in message


def test_a_version_bump_without_an_upcaster_still_fails(stored: Path) -> None:
    declare(*V1[:2], version=2)

    message = breaking(stored)

    assert "field note removed; define" in message
    assert ".upcast() to upgrade payloads of version 1." in message


def test_a_version_bump_with_an_upcaster_passes_and_is_listed(stored: Path) -> None:
    declare(("order_id", str, NONE), *V1[1:], version=2, upcast=True)

    output = check(stored)

    assert "field order_id changed type from int to str (upcast() upgrades version 1)" in output
    assert f"{PREFIX}.Shipped: version 1 -> 2" in output
    assert "No breaking change" in output


def test_an_upcaster_without_a_version_bump_fails(stored: Path) -> None:
    declare(*V1[:2], upcast=True)

    assert "field note removed; bump" in breaking(stored)


def test_a_version_going_down_fails(stored: Path, tmp_path: Path) -> None:
    declare(*V1, version=3, upcast=True)
    newer = tmp_path / "v3.json"
    run("--format", "json", "--event-type", f"{PREFIX}.*", "--output", str(newer))

    data = json.loads(stored.read_text())
    data["events"][0]["version"] = 4
    stored.write_text(json.dumps(data))

    assert "version went down from 4 to 3" in breaking(stored)


def test_additive_changes_pass_and_are_listed(stored: Path, events: Registry) -> None:
    shipped = declare(*V1, ("weight", Decimal | None, None))
    receiver(shipped, name="unit.catalogue.crm", dispatcher="deferred")(noop)
    receiver(f"{PREFIX}.returned", name="unit.catalogue.returns")(noop)

    output = check(stored)

    assert f"{PREFIX}.Shipped: new optional field weight (Decimal | None)" in output
    assert f"{PREFIX}.Shipped: new receiver unit.catalogue.crm" in output
    assert f"{PREFIX}.returned: new named event type" in output
    assert "No breaking change against" in output
    assert "3 additive change(s)" in output


def test_a_removed_event_type_fails(stored: Path) -> None:
    message = breaking(stored)

    assert f"{PREFIX}.Shipped: event type removed (class {__name__}." in message


def test_nested_field_and_enum_changes_are_found(events: Registry) -> None:
    @dataclass(frozen=True)
    class Packed(DomainEvent):
        event_type = f"{PREFIX}.Packed"
        to: Address
        size: Size

    before = build_catalogue([Packed], events).as_dict()
    after = json.loads(json.dumps(before))
    after["events"][0]["types"]["Address"]["fields"].pop()
    after["events"][0]["types"]["Size"]["values"] = ["s", "xl"]

    comparison = compare_catalogues(before, after)

    assert [change.message.split(";")[0] for change in comparison.breaking] == [
        "field Address.zip_code removed",
        "enum Size lost value 'l'",
    ]
    assert [change.message for change in comparison.additive] == ["enum Size gained value 'xl'"]


def test_check_reports_a_missing_or_unreadable_file(events: Registry, tmp_path: Path) -> None:
    _shipped = shipped_v1()  # held: an event class nothing refers to is collected
    missing = tmp_path / "absent.json"
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    other = tmp_path / "other.json"
    other.write_text('{"events": []}')

    assert f"{missing}: no such file; write it with: manage.py events_catalogue --format json" in (
        str(refused("--check", str(missing)))
    )
    assert f"{garbage}: not JSON" in str(refused("--check", str(garbage)))
    assert "catalogue_format is None, this version reads 1" in str(refused("--check", str(other)))
    assert "--check prints its findings" in str(refused("--check", str(other), "--format", "json"))
