"""Settings of the demo accounting service: a second Django project that consumes the shop's
integration events from the broker, through its own inbox, into its own database.

Not for production: the secret key is public and DEBUG is on.

Environment variables:

- ``ACCOUNTING_BROKER_URL``: the broker the shop sends to: RabbitMQ (default
  ``amqp://guest:guest@127.0.0.1:5672//``) or, with a ``redis://`` URL, Redis Streams;
  ``ACCOUNTING_TRANSPORT_OPTIONS``: the transport's ``OPTIONS``, as JSON.
- ``ACCOUNTING_DATABASE_PATH``: the SQLite file to use instead of ``consumerproject/db.sqlite3``;
  ``ACCOUNTING_POSTGRES_NAME``: a PostgreSQL database on 127.0.0.1:5432 (user ``postgres``)
  instead of SQLite.
- ``ACCOUNTING_CRASH_AFTER_COMMIT``: fault injection for tests, see ``ledger/receivers.py``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "django-insecure-demo-accounting-of-django-domain-events"
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_domain_events",
    "ledger",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "consumerproject.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "consumerproject.wsgi.application"

if os.environ.get("ACCOUNTING_POSTGRES_NAME"):
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": "127.0.0.1",
            "PORT": "5432",
            "USER": "postgres",
            "NAME": os.environ["ACCOUNTING_POSTGRES_NAME"],
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("ACCOUNTING_DATABASE_PATH") or BASE_DIR / "db.sqlite3",
            # The server and the consumer write at once: take the write lock at BEGIN, and
            # wait for it rather than fail.
            "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 60},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"

BROKER_URL = os.environ.get("ACCOUNTING_BROKER_URL") or "amqp://guest:guest@127.0.0.1:5672//"

DOMAIN_EVENTS: dict[str, Any] = {
    "TRANSPORTS": {
        "default": {
            "BACKEND": (
                "django_domain_events.transports.redis_streams.RedisStreamsTransport"
                if BROKER_URL.startswith(("redis://", "rediss://"))
                else "django_domain_events.transports.rabbitmq.RabbitMQTransport"
            ),
            "URL": BROKER_URL,
            "OPTIONS": json.loads(os.environ.get("ACCOUNTING_TRANSPORT_OPTIONS") or "{}"),
        }
    },
    # The shop sends to the destination "accounting" with the event type as routing key;
    # this service's queue takes every shop event sent there.
    "CONSUME": {
        "QUEUE": "accounting.ledger",
        "DESTINATIONS": [{"NAME": "accounting", "ROUTING_KEY": "shop.#"}],
    },
}

# celery -A consumerproject.celery worker: the worker's own broker is the messages' broker.
CELERY_BROKER_URL = BROKER_URL
CELERY_TASK_IGNORE_RESULT = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"console": {"format": "{levelname:<7} {name}: {message}", "style": "{"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "console"}},
    "loggers": {
        "django_domain_events": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "ledger": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}
