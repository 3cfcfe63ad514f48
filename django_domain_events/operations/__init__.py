"""Operating the outbox: selecting rows, retrying, replaying and skipping deliveries, pruning
settled events and reporting health. The admin and the management commands call these."""
