"""The payload codec: exact round trips, and every error a bad payload or field type raises."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import math
import types
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

import msgspec
import pytest
from django.db import transaction
from django.test import override_settings
from hypothesis import given, settings
from hypothesis import strategies as st

from django_domain_events import (
    DomainEvent,
    EventDefinitionError,
    NamedEvent,
    PayloadError,
)
from django_domain_events.declaration.codec import (
    check_event_class,
    decode_event,
    decode_json,
    encode_event,
    encode_payload,
)
from django_domain_events.declaration.registry import registry
from django_domain_events.models import Delivery, OutboxEvent
from django_domain_events.publishing.publisher import publish, publish_many
from tests.testapp.events import OrderPlaced

NO_LIMIT = 10**9
PLUS_TWO = dt.timezone(dt.timedelta(hours=2))
NIL_UUID = uuid.UUID(int=0)


class Colour(enum.Enum):
    RED = "red"
    GREEN = "green"


class Priority(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Level(enum.Enum):
    DEBUG = 10
    INFO = 20


class Money:
    """A plain class: not something JSON can carry."""


@dataclass(frozen=True)
class Line:
    sku: str
    quantity: int
    price: Decimal


@dataclass(frozen=True)
class BadLine:
    tags: set[str]


@dataclass(frozen=True)
class Rich(DomainEvent):
    """One field of every supported kind."""

    event_type = "unit_serialization.rich"

    text: str
    count: int
    ratio: float
    flag: bool
    amount: Decimal
    ident: uuid.UUID
    aware: dt.datetime
    naive: dt.datetime
    day: dt.date
    clock: dt.time
    colour: Colour
    priority: Priority
    level: Level
    tags: list[str]
    pair: tuple[int, str]
    amounts: tuple[Decimal, ...]
    prices: dict[str, Decimal]
    line: Line
    lines: list[Line]
    maybe: Decimal | None
    either: int | str
    kind: Literal["a", "b"]
    nothing: None
    extra: Any


@dataclass(frozen=True)
class Checked(DomainEvent):
    """Defaults everywhere, so each error test sets only the field it breaks."""

    event_type = "unit_serialization.checked"

    count: int = 0
    ratio: float = 0.0
    amount: Decimal = Decimal(0)
    ident: uuid.UUID = NIL_UUID
    day: dt.date = dt.date(2024, 1, 1)
    at: dt.datetime = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    clock: dt.time = dt.time(12)
    text: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    colour: Colour = Colour.RED
    pair: tuple[int, str] = (0, "")
    amounts: tuple[Decimal, ...] = ()
    tags: list[str] = field(default_factory=list)
    maybe: Decimal | None = None
    kind: Literal["a", "b"] = "a"
    extra: Any = None
    loose: tuple = ()  # type: ignore[type-arg]


@dataclass(frozen=True)
class Cart(DomainEvent):
    event_type = "unit_serialization.cart"

    lines: list[Line]


RICH = Rich(
    text='naïve ☃ \u2028 "quoted"',
    count=2**70,
    ratio=0.1,
    flag=True,
    amount=Decimal("10.10"),
    ident=uuid.UUID("12345678-1234-5678-1234-567812345678"),
    aware=dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=PLUS_TWO),
    naive=dt.datetime(2024, 5, 6, 7, 8, 9),
    day=dt.date(2024, 2, 29),
    clock=dt.time(23, 59, 59, 999999, tzinfo=dt.timezone(dt.timedelta(hours=-5, minutes=-30))),
    colour=Colour.GREEN,
    priority=Priority.HIGH,
    level=Level.INFO,
    tags=["a", "b"],
    pair=(1, "one"),
    amounts=(Decimal("1.50"), Decimal("-0"), Decimal("1E+3")),
    prices={"tea": Decimal("3.00"), "": Decimal("0.001")},
    line=Line(sku="x", quantity=1, price=Decimal("9.90")),
    lines=[Line(sku="y", quantity=2, price=Decimal("0.10"))],
    maybe=None,
    either="7",
    kind="b",
    nothing=None,
    extra={"nested": [1, 2.5, None, True, {"k": "v"}]},
)


def round_trip(event: DomainEvent) -> DomainEvent | NamedEvent:
    """Encode as publish() does, decode as a delivery does."""
    return decode_event(event.event_type, event.version, decode_json(encode_event(event, NO_LIMIT)))


def assert_identical(restored: Any, original: Any, path: str = "event") -> None:
    """Equal, and of the same type all the way down; Decimal scale and UTC offsets kept."""
    assert type(restored) is type(original), f"{path}: {type(restored)} is not {type(original)}"
    if isinstance(original, Decimal):
        assert restored.as_tuple() == original.as_tuple(), f"{path}: {restored!r} != {original!r}"
    elif isinstance(original, float):
        assert repr(restored) == repr(original), f"{path}: {restored!r} != {original!r}"
    elif isinstance(original, dt.datetime | dt.time):
        assert restored == original, f"{path}: {restored!r} != {original!r}"
        assert (restored.tzinfo is None) == (original.tzinfo is None), path
        assert restored.utcoffset() == original.utcoffset(), path
    elif isinstance(original, list | tuple):
        assert len(restored) == len(original), path
        for index, (a, b) in enumerate(zip(restored, original, strict=True)):
            assert_identical(a, b, f"{path}[{index}]")
    elif isinstance(original, dict):
        # Key order is not kept: PostgreSQL's jsonb stores object keys sorted.
        assert sorted(restored) == sorted(original), path
        for key in original:
            assert_identical(restored[key], original[key], f"{path}[{key!r}]")
    elif dataclasses.is_dataclass(original):
        for dc_field in dataclasses.fields(original):
            name = dc_field.name
            assert_identical(getattr(restored, name), getattr(original, name), f"{path}.{name}")
    else:
        assert restored == original, f"{path}: {restored!r} != {original!r}"


# Exact round trips ----------------------------------------------------------------------------


def test_rich_event_round_trips_exactly() -> None:
    restored = round_trip(RICH)

    assert restored == RICH
    assert_identical(restored, RICH)


def test_decimal_scale_is_kept() -> None:
    data = encode_event(OrderPlaced(order_id=1, total=Decimal("10.10")), NO_LIMIT)

    assert msgspec.json.decode(data) == {"order_id": 1, "total": "10.10"}
    restored = decode_event("testapp.OrderPlaced", 1, decode_json(data))
    assert isinstance(restored, OrderPlaced)
    assert str(restored.total) == "10.10"


def test_aware_datetime_keeps_its_offset() -> None:
    restored = round_trip(Checked(at=dt.datetime(2024, 1, 1, 12, tzinfo=PLUS_TWO)))

    assert isinstance(restored, Checked)
    assert restored.at.utcoffset() == dt.timedelta(hours=2)
    assert restored.at.isoformat() == "2024-01-01T12:00:00+02:00"


def test_naive_datetime_stays_naive() -> None:
    restored = round_trip(dataclasses.replace(RICH, naive=dt.datetime(2024, 1, 1, 12)))

    assert isinstance(restored, Rich)
    assert restored.naive == dt.datetime(2024, 1, 1, 12)
    assert restored.naive.tzinfo is None


def test_time_keeps_its_offset() -> None:
    restored = round_trip(Checked(clock=dt.time(8, 30, tzinfo=PLUS_TWO)))

    assert isinstance(restored, Checked)
    assert restored.clock.isoformat() == "08:30:00+02:00"


def test_tuple_stays_tuple_and_enum_stays_enum() -> None:
    restored = round_trip(Checked(pair=(1, "a"), amounts=(Decimal("1.0"),), colour=Colour.GREEN))

    assert isinstance(restored, Checked)
    assert restored.pair == (1, "a")
    assert type(restored.amounts) is tuple
    assert restored.colour is Colour.GREEN


def test_int_is_accepted_for_a_float_field_and_read_back_as_float() -> None:
    restored = round_trip(Checked(ratio=3))

    assert isinstance(restored, Checked)
    assert restored.ratio == 3.0
    assert type(restored.ratio) is float


def test_union_members_come_back_as_their_own_type() -> None:
    as_int = round_trip(dataclasses.replace(RICH, either=7))
    as_str = round_trip(dataclasses.replace(RICH, either="7"))

    assert isinstance(as_int, Rich)
    assert isinstance(as_str, Rich)
    assert as_int.either == 7
    assert as_str.either == "7"


def finite_floats() -> st.SearchStrategy[float]:
    return st.floats(allow_nan=False, allow_infinity=False)


def decimals() -> st.SearchStrategy[Decimal]:
    return st.decimals(allow_nan=False, allow_infinity=False)


# Strings PostgreSQL's JSON can hold: no NUL (refused at publish, tested below) and no lone
# surrogates (not encodable as UTF-8, also refused).
texts = st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)))

# Offsets in whole minutes: the ones ISO 8601 (and so JSON) can write.
offsets = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(
    lambda minutes: dt.timezone(dt.timedelta(minutes=minutes))
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | finite_floats() | texts,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(texts, children, max_size=3),
    max_leaves=6,
)
lines = st.builds(Line, sku=texts, quantity=st.integers(), price=decimals())
rich_events = st.builds(
    Rich,
    text=texts,
    count=st.integers(),
    ratio=finite_floats(),
    flag=st.booleans(),
    amount=decimals(),
    ident=st.uuids(),
    aware=st.datetimes(timezones=offsets),
    naive=st.datetimes(),
    day=st.dates(),
    clock=st.times(timezones=st.none() | offsets),
    colour=st.sampled_from(Colour),
    priority=st.sampled_from(Priority),
    level=st.sampled_from(Level),
    tags=st.lists(texts, max_size=3),
    pair=st.tuples(st.integers(), texts),
    amounts=st.lists(decimals(), max_size=3).map(tuple),
    prices=st.dictionaries(texts, decimals(), max_size=3),
    line=lines,
    lines=st.lists(lines, max_size=3),
    maybe=st.none() | decimals(),
    either=st.integers() | texts,
    kind=st.sampled_from(["a", "b"]),
    nothing=st.none(),
    extra=json_values,
)


@settings(max_examples=60, deadline=None)
@given(rich_events)
def test_any_valid_event_round_trips_exactly(event: Rich) -> None:
    restored = round_trip(event)

    assert restored == event
    assert_identical(restored, event)


@settings(max_examples=40, deadline=None)
@given(json_values.map(lambda value: {"value": value}))
def test_any_json_named_payload_round_trips(payload: dict[str, Any]) -> None:
    restored = decode_event(
        "unit_serialization.named",
        1,
        decode_json(encode_payload("unit_serialization.named", payload, NO_LIMIT)),
    )

    assert restored == NamedEvent("unit_serialization.named", payload)
    assert_identical(restored, NamedEvent("unit_serialization.named", payload))


@settings(max_examples=25, deadline=None)
@given(finite_floats())
def test_any_float_in_a_decimal_field_is_refused_with_a_hint(value: float) -> None:
    with pytest.raises(PayloadError, match=r"OrderPlaced\.total: Decimal expected, got float"):
        encode_event(OrderPlaced(order_id=1, total=value), NO_LIMIT)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "event",
    [
        pytest.param(
            Checked(at=dt.datetime(2024, 1, 1, tzinfo=dt.timezone(dt.timedelta(seconds=30)))),
            id="datetime-with-sub-minute-offset",
        ),
        pytest.param(
            # Europe/Amsterdam's offset until 1937 (zoneinfo gives such offsets for old dates).
            Checked(clock=dt.time(12, tzinfo=dt.timezone(dt.timedelta(minutes=19, seconds=32)))),
            id="time-with-sub-minute-offset",
        ),
        pytest.param(Checked(extra=(1, 2)), id="tuple-in-any-field"),
        pytest.param(Checked(loose=((1, 2),)), id="tuple-in-bare-tuple-field"),
    ],
)
def test_a_value_the_codec_accepts_comes_back_unchanged(event: Checked) -> None:
    # Refusing the value at publish time would be correct too; storing something that reads
    # back different is not.
    try:
        restored = round_trip(event)
    except PayloadError:
        return
    assert_identical(restored, event)


def test_a_string_json_cannot_encode_is_a_payload_error_naming_the_field() -> None:
    with pytest.raises(PayloadError, match=r"Checked\.text"):
        encode_event(Checked(text="lone surrogate \ud800"), NO_LIMIT)


# Errors at publish time -----------------------------------------------------------------------


def test_float_in_a_decimal_field_names_field_type_value_and_fix() -> None:
    with pytest.raises(PayloadError) as excinfo:
        encode_event(OrderPlaced(order_id=1, total=10.1), NO_LIMIT)  # type: ignore[arg-type]

    assert str(excinfo.value) == (
        "OrderPlaced.total: Decimal expected, got float 10.1 — pass Decimal('10.1')."
    )


def test_error_in_a_nested_dataclass_names_the_full_path() -> None:
    cart = Cart(
        lines=[
            Line(sku="a", quantity=1, price=Decimal("1.00")),
            Line(sku="b", quantity=1, price=Decimal("2.00")),
            Line(sku="c", quantity=1, price=2.5),  # type: ignore[arg-type]
        ]
    )

    with pytest.raises(PayloadError) as excinfo:
        encode_event(cart, NO_LIMIT)

    assert str(excinfo.value) == (
        "Cart.lines[2].price: Decimal expected, got float 2.5 — pass Decimal('2.5')."
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"count": True}, "Checked.count: int expected, got bool True."),
        ({"count": 1.0}, "Checked.count: int expected, got float 1.0."),
        ({"count": "1"}, "Checked.count: int expected, got str '1'."),
        (
            {"ratio": math.nan},
            "Checked.ratio: finite float expected, got float nan — JSON has no NaN or infinity.",
        ),
        (
            {"ratio": math.inf},
            "Checked.ratio: finite float expected, got float inf — JSON has no NaN or infinity.",
        ),
        (
            {"ratio": -math.inf},
            "Checked.ratio: finite float expected, got float -inf — JSON has no NaN or infinity.",
        ),
        ({"ratio": False}, "Checked.ratio: float expected, got bool False."),
        (
            {"ratio": Decimal("1.5")},
            "Checked.ratio: float expected, got Decimal Decimal('1.5') — pass float(value), "
            "or declare the field as Decimal.",
        ),
        (
            {"amount": Decimal("NaN")},
            "Checked.amount: finite Decimal expected, got Decimal Decimal('NaN').",
        ),
        (
            {"amount": Decimal("-Infinity")},
            "Checked.amount: finite Decimal expected, got Decimal Decimal('-Infinity').",
        ),
        (
            {"amount": "1.50"},
            "Checked.amount: Decimal expected, got str '1.50' — pass Decimal('1.50').",
        ),
        ({"amount": 3}, "Checked.amount: Decimal expected, got int 3 — pass Decimal('3')."),
        (
            {"ident": "12345678-1234-5678-1234-567812345678"},
            "Checked.ident: UUID expected, got str '12345678-1234-5678-1234-567812345678' — "
            "pass uuid.UUID('12345678-1234-5678-1234-567812345678').",
        ),
        (
            {"day": dt.datetime(2024, 1, 1, 12)},
            "Checked.day: date expected, got datetime datetime.datetime(2024, 1, 1, 12, 0) — "
            "pass value.date().",
        ),
        (
            {"at": dt.date(2024, 1, 1)},
            "Checked.at: datetime expected, got date datetime.date(2024, 1, 1).",
        ),
        ({"at": "2024-01-01T00:00:00Z"}, "Checked.at: datetime expected, got str "),
        ({"clock": "12:00"}, "Checked.clock: time expected, got str '12:00'."),
        (
            {"counts": {1: 2}},
            "Checked.counts[1]: str key expected, got int 1 — JSON object keys are strings.",
        ),
        ({"counts": {"a": "2"}}, "Checked.counts['a']: int expected, got str '2'."),
        ({"counts": [("a", 1)]}, "Checked.counts: dict expected, got list [('a', 1)]."),
        ({"colour": "red"}, "Checked.colour: Colour expected, got str 'red'."),
        ({"pair": [1, "a"]}, "Checked.pair: tuple of 2 expected, got list [1, 'a']."),
        ({"pair": (1, "a", "b")}, "Checked.pair: tuple of 2 expected, got tuple (1, 'a', 'b')."),
        ({"pair": (1, 2)}, "Checked.pair[1]: str expected, got int 2."),
        (
            {"amounts": [Decimal("1")]},
            "Checked.amounts: tuple expected, got list [Decimal('1')].",
        ),
        ({"tags": ("a",)}, "Checked.tags: list expected, got tuple ('a',)."),
        ({"tags": ["a", None]}, "Checked.tags[1]: str expected, got NoneType None."),
        ({"maybe": 1.5}, "Checked.maybe: Decimal | "),
        ({"kind": "c"}, "Checked.kind: one of ('a', 'b') expected, got str 'c'."),
        ({"extra": Decimal("1")}, "Checked.extra: JSON value expected, got Decimal"),
        ({"extra": {"k": {1, 2}}}, "Checked.extra['k']: JSON value expected, got set {1, 2}"),
        (
            {"extra": {1: "v"}},
            "Checked.extra[1]: str key expected, got int 1 — JSON object keys are strings.",
        ),
        ({"text": 5}, "Checked.text: str expected, got int 5."),
    ],
    ids=lambda value: next(iter(value)) if isinstance(value, dict) else "",
)
def test_wrong_value_is_a_payload_error_naming_path_type_and_value(
    fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(PayloadError) as excinfo:
        encode_event(Checked(**fields), NO_LIMIT)

    assert str(excinfo.value).startswith(message)


def test_long_values_are_shortened_in_the_message() -> None:
    with pytest.raises(PayloadError) as excinfo:
        encode_event(Checked(count="x" * 500), NO_LIMIT)  # type: ignore[arg-type]

    message = str(excinfo.value)
    assert message.startswith("Checked.count: int expected, got str 'xxxx")
    assert "..." in message
    assert len(message) < 120


@pytest.mark.usefixtures("disposable_classes")
@pytest.mark.parametrize(
    ("annotation", "message"),
    [
        (set[int], "x: field type set cannot round-trip through JSON"),
        (frozenset[str], "x: field type frozenset cannot round-trip through JSON"),
        (bytes, "x: field type bytes cannot round-trip through JSON"),
        (dt.timedelta, "x: field type timedelta cannot round-trip through JSON"),
        (Money, "x: field type Money cannot round-trip through JSON"),
        (list[Money], "x: field type Money cannot round-trip through JSON"),
        (dict[int, str], "x: dict keys must be str"),
        (BadLine, "BadLine.tags: field type set cannot round-trip through JSON"),
        (str | Decimal, "Type unions may not contain more than one str-like type"),
    ],
    ids=str,
)
def test_unsupported_field_type_is_a_definition_error(annotation: Any, message: str) -> None:
    unsupported = dataclass(frozen=True)(
        types.new_class(
            "Unsupported",
            (DomainEvent,),
            exec_body=lambda ns: ns.update(
                __module__=__name__,
                event_type="unit_serialization.unsupported",
                __annotations__={"x": annotation},
            ),
        )
    )

    with pytest.raises(EventDefinitionError, match=message.replace("[", r"\[")):
        check_event_class(unsupported)
    with pytest.raises(EventDefinitionError, match=message.replace("[", r"\[")):
        encode_event(unsupported(x=None), NO_LIMIT)


@pytest.mark.usefixtures("disposable_classes")
def test_unresolvable_annotation_is_a_definition_error() -> None:
    @dataclass(frozen=True)
    class Dangling(DomainEvent):
        event_type = "unit_serialization.dangling"

        x: NotDefinedAnywhere  # type: ignore[name-defined]  # noqa: F821

    with pytest.raises(EventDefinitionError, match="Dangling: its field annotations cannot be"):
        check_event_class(Dangling)


@pytest.mark.usefixtures("disposable_classes")
def test_event_class_that_is_not_a_dataclass_is_a_definition_error() -> None:
    class NotADataclass(DomainEvent):
        event_type = "unit_serialization.not_a_dataclass"

    with pytest.raises(EventDefinitionError, match=r"NotADataclass must be a dataclass"):
        check_event_class(NotADataclass)
    with pytest.raises(EventDefinitionError, match=r"@dataclass\(frozen=True\)"):
        encode_event(NotADataclass(), NO_LIMIT)


def test_supported_classes_pass_the_definition_check() -> None:
    for event_class in (Rich, Checked, Cart, OrderPlaced):
        check_event_class(event_class)


def test_payload_above_the_size_cap_is_a_payload_error() -> None:
    event = OrderPlaced(order_id=1, total=Decimal("1.00"))
    size = len(msgspec.json.encode(event))

    assert encode_event(event, size) == msgspec.json.encode(event)
    with pytest.raises(PayloadError) as excinfo:
        encode_event(event, size - 1)

    assert str(excinfo.value).startswith(
        f"OrderPlaced: payload is {size} bytes encoded, above the limit of {size - 1} "
        f"(DOMAIN_EVENTS['MAX_PAYLOAD_BYTES'])."
    )


def test_named_payload_above_the_size_cap_is_a_payload_error() -> None:
    with pytest.raises(PayloadError, match=r"billing\.note: payload is 1,011 bytes encoded"):
        encode_payload("billing.note", {"text": "x" * 1000}, 1000)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (
            {"amount": Decimal("1.5")},
            "billing.paid payload['amount']: JSON value expected, got Decimal Decimal('1.5') — "
            "pass str(value), or declare a DomainEvent class with a Decimal field.",
        ),
        (
            {"items": [{"id": uuid.UUID(int=1)}]},
            "billing.paid payload['items'][0]['id']: JSON value expected, got UUID "
            "UUID('00000000-0000-0000-0000-000000000001') — pass str(value), or declare a "
            "DomainEvent class with a UUID field.",
        ),
        (
            {"at": dt.datetime(2024, 1, 1)},
            "billing.paid payload['at']: JSON value expected, got datetime ",
        ),
        (
            {1: "a"},
            "billing.paid payload[1]: str key expected, got int 1 — JSON object keys are strings.",
        ),
        ({"x": math.nan}, "billing.paid payload['x']: finite float expected, got float nan"),
        (
            {"x": {1, 2}},
            "billing.paid payload['x']: JSON value expected, got set {1, 2} — pass "
            "sorted(value) (a list), or declare a DomainEvent class with a list field.",
        ),
    ],
    ids=["decimal", "uuid-nested", "datetime", "int-key", "nan", "set"],
)
def test_named_payload_with_a_non_json_value_is_a_payload_error(
    payload: dict[Any, Any], message: str
) -> None:
    with pytest.raises(PayloadError) as excinfo:
        encode_payload("billing.paid", payload, NO_LIMIT)

    assert str(excinfo.value).startswith(message)


@pytest.mark.parametrize("payload", [[1, 2], "text", None, 7])
def test_named_payload_that_is_not_a_dict_is_a_payload_error(payload: Any) -> None:
    with pytest.raises(PayloadError, match=r"^billing\.paid: the payload must be a dict, got "):
        encode_payload("billing.paid", payload, NO_LIMIT)


def test_named_payload_may_be_any_mapping() -> None:
    data = encode_payload("billing.paid", types.MappingProxyType({"invoice_id": 7}), NO_LIMIT)

    assert decode_json(data) == {"invoice_id": 7}


# Through publish() ----------------------------------------------------------------------------


def rows() -> tuple[int, int]:
    return OutboxEvent.objects.count(), Delivery.objects.count()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        (
            (OrderPlaced(order_id=1, total=10.1),),  # type: ignore[arg-type]
            PayloadError,
            "OrderPlaced.total: Decimal expected, got float 10.1",
        ),
        (
            ("billing.paid", {"amount": Decimal("1")}),
            PayloadError,
            r"billing\.paid payload\['amount'\]: JSON value expected",
        ),
        (("billing.paid", {"x": math.inf}), PayloadError, "finite float expected"),
        (
            (NamedEvent("billing.paid", [1, 2]),),  # type: ignore[arg-type]
            PayloadError,
            "the payload must be a dict",
        ),
        (
            ("testapp.OrderPlaced", {"order_id": 1, "total": "1.00"}),
            PayloadError,
            r"publish OrderPlaced\(\.\.\.\) instead",
        ),
        ((Checked(extra=Money()),), PayloadError, "Checked.extra: JSON value expected"),
    ],
    ids=["typed", "named", "named-inf", "named-not-a-dict", "named-typed-type", "any-field"],
)
def test_publish_with_a_bad_payload_raises_and_writes_nothing(
    args: tuple[Any, ...], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        publish(*args)

    assert rows() == (0, 0)


@pytest.mark.django_db
@pytest.mark.parametrize("payload", [[1, 2], "ab", [("invoice_id", 7)]], ids=repr)
def test_publish_with_a_named_payload_that_is_not_a_dict_is_a_payload_error(
    payload: Any,
) -> None:
    with pytest.raises(PayloadError, match="the payload must be a dict"):
        publish("billing.paid", payload)

    assert rows() == (0, 0)


@pytest.mark.django_db
@pytest.mark.usefixtures("disposable_classes")
def test_publish_of_an_unsupported_event_class_raises_and_writes_nothing() -> None:
    @dataclass(frozen=True)
    class WithSet(DomainEvent):
        event_type = "unit_serialization.with_set"

        ids: set[int]

    with pytest.raises(EventDefinitionError, match=r"WithSet\.ids: field type set"):
        publish(WithSet(ids={1}))

    assert rows() == (0, 0)


@pytest.mark.django_db
def test_publish_many_validates_every_event_before_writing_any() -> None:
    good = OrderPlaced(order_id=1, total=Decimal("1.00"))
    bad = OrderPlaced(order_id=2, total=2.5)  # type: ignore[arg-type]

    with pytest.raises(PayloadError, match=r"OrderPlaced\.total"):
        publish_many([good, good, bad])

    assert rows() == (0, 0)


@pytest.mark.django_db
def test_publish_above_the_configured_size_cap_raises_and_writes_nothing() -> None:
    event = OrderPlaced(order_id=1, total=Decimal("1" * 120))
    size = len(msgspec.json.encode(event))

    with override_settings(DOMAIN_EVENTS={"MAX_PAYLOAD_BYTES": 100}):
        with pytest.raises(PayloadError) as excinfo:
            publish(event)

        assert rows() == (0, 0)
        with pytest.raises(PayloadError, match=r"billing\.note: payload is \d+ bytes"):
            publish("billing.note", {"text": "x" * 100})

    message = str(excinfo.value)
    assert f"payload is {size} bytes encoded, above the limit of 100" in message
    assert "DOMAIN_EVENTS['MAX_PAYLOAD_BYTES']" in message
    assert rows() == (0, 0)
    # The cap is read on every publish: without the override the same event goes through.
    publish(event)
    assert rows()[0] == 1


@pytest.mark.django_db
def test_bad_payload_leaves_the_callers_transaction_usable() -> None:
    deliveries_per_event = len(registry.receivers_for("testapp.OrderPlaced"))

    with transaction.atomic():
        with pytest.raises(PayloadError):
            publish(OrderPlaced(order_id=1, total=1.5))  # type: ignore[arg-type]
        publish(OrderPlaced(order_id=2, total=Decimal("1.50")))

    assert rows() == (1, deliveries_per_event)


@pytest.mark.django_db
def test_payload_round_trips_exactly_through_the_database() -> None:
    event_id = publish(RICH)

    stored = OutboxEvent.objects.get(pk=event_id)
    restored = decode_event(stored.event_type, stored.version, stored.payload)

    assert restored == RICH
    assert_identical(restored, RICH)


@pytest.mark.django_db
def test_string_with_a_nul_character_is_stored_or_refused_before_the_database() -> None:
    # PostgreSQL's jsonb has no \u0000; SQLite stores it. Either way publish() must not fail
    # inside the database with an error that names no field.
    event = Checked(text="before\x00after")
    try:
        event_id = publish(event)
    except PayloadError:
        return

    stored = OutboxEvent.objects.get(pk=event_id)
    assert decode_event(stored.event_type, stored.version, stored.payload) == event
