from django_domain_events import receiver


@receiver("autodiscover.broken", name="autodiscover.broken.registered_before_failure")
def registered_before_failure(event: object) -> None:
    """Registered before the import below fails: autodiscovery must roll it back."""


# Last, so the receiver above is already registered when the module fails.
import a_dependency_that_is_not_installed  # noqa: E402, F401
