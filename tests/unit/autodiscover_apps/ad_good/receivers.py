from django_domain_events import receiver


@receiver("autodiscover.good", name="autodiscover.good.from_receivers")
def from_receivers(event: object) -> None:
    """Registered when autodiscovery imports this app's ``receivers`` module."""
