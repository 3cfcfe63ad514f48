from django_domain_events import handles, receiver_class


@receiver_class
class Audit:
    """Discovered like function receivers: registered when autodiscovery imports this module."""

    @handles("autodiscover.classes.created")
    def on_created(self, event: object) -> None: ...

    @handles("autodiscover.classes.deleted")
    def on_deleted(self, event: object) -> None: ...
