"""The demo shop's Django project."""
