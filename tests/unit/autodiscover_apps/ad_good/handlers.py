from django_domain_events import receiver


@receiver("autodiscover.good", name="autodiscover.good.from_handlers")
def from_handlers(event: object) -> None:
    """Registered when autodiscovery imports this app's ``handlers`` module."""
