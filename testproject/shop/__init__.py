"""The demo shop: orders and payments that publish domain events."""
