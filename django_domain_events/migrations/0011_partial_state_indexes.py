"""The two delivery state indexes become partial, holding only deliveries that need attention
(failed, scheduled, waiting, dead, cancelled): publishing and settling stop writing to them, and
they stop growing with the outbox. They are renamed for what they hold.

On PostgreSQL the new indexes are built ``CONCURRENTLY`` before the old ones are dropped, so
publishing is never blocked and the relay's queries always have an index. MySQL and MariaDB have
no partial indexes (Django creates full ones there): their indexes are only renamed.
"""

from collections.abc import Callable, Sequence
from typing import Any

from django.db import migrations, models

NEEDS_ATTENTION = models.Q(
    ("state", "failed"),
    ("state", "scheduled"),
    ("state", "waiting"),
    ("state", "dead"),
    ("state", "cancelled"),
    _connector="OR",
)

FULL = (
    models.Index(fields=["state", "next_attempt_at"], name="dde_delivery_owed_idx"),
    models.Index(fields=["receiver", "state"], name="dde_delivery_receiver_idx"),
)

PARTIAL = (
    models.Index(
        condition=NEEDS_ATTENTION,
        fields=["state", "next_attempt_at"],
        name="dde_delivery_attention_idx",
    ),
    models.Index(
        condition=NEEDS_ATTENTION,
        fields=["receiver", "state"],
        name="dde_delivery_rcv_attention_idx",
    ),
)


def replacing(old: Sequence[models.Index], new: Sequence[models.Index]) -> Callable[..., None]:
    """A migration function that puts the indexes ``new`` in place of ``old``."""

    def replace(apps: Any, schema_editor: Any) -> None:
        delivery = apps.get_model("django_domain_events", "Delivery")
        features = schema_editor.connection.features
        if not features.supports_partial_indexes:
            for before, after in zip(old, new, strict=True):
                schema_editor.rename_index(delivery, before, after)
            return
        concurrently = (
            {"concurrently": True} if schema_editor.connection.vendor == "postgresql" else {}
        )
        for index in new:
            schema_editor.add_index(delivery, index, **concurrently)
        for index in old:
            schema_editor.remove_index(delivery, index, **concurrently)

    return replace


class Migration(migrations.Migration):
    # CREATE INDEX CONCURRENTLY cannot run inside a transaction.
    atomic = False

    dependencies = [
        ("django_domain_events", "0010_inbox"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                *(
                    migrations.RemoveIndex(model_name="delivery", name=index.name)
                    for index in FULL
                ),
                *(migrations.AddIndex(model_name="delivery", index=index) for index in PARTIAL),
            ],
            database_operations=[
                migrations.RunPython(replacing(FULL, PARTIAL), replacing(PARTIAL, FULL)),
            ],
        ),
    ]
