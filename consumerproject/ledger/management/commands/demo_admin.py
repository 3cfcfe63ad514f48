"""``manage.py demo_admin``: the accounting service's admin user for the demo (created, or its
password reset), as the shop's ``seed_demo`` makes the shop's."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the demo's superuser (or reset its password) and print its credentials."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--username", default="admin", help="its username (default admin)")
        parser.add_argument("--password", default="admin", help="its password (default admin)")

    def handle(self, *args: Any, username: str, password: str, **options: Any) -> None:
        user_model = get_user_model()
        user = user_model._default_manager.filter(username=username).first()
        if user is None:
            user_model._default_manager.db_manager().create_superuser(
                username=username, email=f"{username}@accounting.example", password=password
            )
        else:
            user.set_password(password)
            user.is_active = user.is_staff = user.is_superuser = True
            user.save()
        self.stdout.write(f"Accounting admin: Username: {username}  Password: {password}")
