"""Publishing: ``publish()`` writes events and their deliveries in the caller's transaction and
hands them to dispatchers on commit; collecting, aggregates and in-process listeners build on
it. Import ``publish`` from ``django_domain_events``."""
