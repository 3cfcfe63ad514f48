"""Settings of the demo shop: a small project using django_domain_events as a real one would.

Not for production: the secret key is public and DEBUG is on.

Environment variables:

- ``DOMAIN_EVENTS_DISPATCHER``: the default dispatcher (``sync`` unless set; ``deferred`` leaves
  every delivery pending for the relay).
- ``DEMO_DATABASE_PATH``: the SQLite file to use instead of ``testproject/db.sqlite3``;
  ``DEMO_POSTGRES_NAME``: a PostgreSQL database on 127.0.0.1:5432 (user ``postgres``) instead.
- ``DEMO_CELERY_BROKER_URL``: the broker of the Celery app in ``testproject/celery.py``, which
  the ``celery`` dispatcher then uses, on the queue ``DEMO_CELERY_QUEUE`` (``scripts/demo.py
  --celery`` sets them and ``DOMAIN_EVENTS_DISPATCHER=celery``).
- ``DEMO_BROKER_URL``: a RabbitMQ broker (``amqp://guest:guest@127.0.0.1:5672//``) that
  ``shop.PaymentSettled`` is sent to as a CloudEvent, on the exchange ``accounting`` with its
  event type as routing key (a ``redis://`` URL sends them to Redis Streams instead); unset, no
  event leaves the project. ``DEMO_TRANSPORT_OPTIONS``: the transport's ``OPTIONS``, as JSON.
  The accounting service in ``consumerproject/`` consumes them (``scripts/demo.py
  --consumer`` runs both).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "django-insecure-demo-shop-of-django-domain-events"
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
    "shop",
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

ROOT_URLCONF = "testproject.urls"

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

WSGI_APPLICATION = "testproject.wsgi.application"
ASGI_APPLICATION = "testproject.asgi.application"

if os.environ.get("DEMO_POSTGRES_NAME"):
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": "127.0.0.1",
            "PORT": "5432",
            "USER": "postgres",
            "NAME": os.environ["DEMO_POSTGRES_NAME"],
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("DEMO_DATABASE_PATH") or BASE_DIR / "db.sqlite3",
            # The server, the relay and a worker write at once: take the write lock at BEGIN,
            # and wait for it rather than fail.
            "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 20},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"

DOMAIN_EVENTS: dict[str, Any] = {"DISPATCHER": os.environ.get("DOMAIN_EVENTS_DISPATCHER", "sync")}

if os.environ.get("DEMO_BROKER_URL"):
    # The accounting service hears of settled payments through the broker; the relay sends.
    # amqp:// is RabbitMQ, redis:// Redis Streams.
    DOMAIN_EVENTS["TRANSPORTS"] = {
        "default": {
            "BACKEND": (
                "django_domain_events.transports.redis_streams.RedisStreamsTransport"
                if os.environ["DEMO_BROKER_URL"].startswith(("redis://", "rediss://"))
                else "django_domain_events.transports.rabbitmq.RabbitMQTransport"
            ),
            "URL": os.environ["DEMO_BROKER_URL"],
            "OPTIONS": json.loads(os.environ.get("DEMO_TRANSPORT_OPTIONS") or "{}"),
        }
    }
    DOMAIN_EVENTS["ROUTES"] = {"shop.PaymentSettled": {"DESTINATION": "accounting"}}
    DOMAIN_EVENTS["INTEGRATION_SOURCE"] = "/shop"

# The shop's @consumer receivers take the warehouse service's messages. seed_demo hands them a
# few directly; to consume from a broker, declare DOMAIN_EVENTS["TRANSPORTS"] and
# DOMAIN_EVENTS["CONSUME"] (docs/consuming.md), and this warning no longer applies.
SILENCED_SYSTEM_CHECKS = ["django_domain_events.W114"]

if os.environ.get("DEMO_CELERY_BROKER_URL"):
    DOMAIN_EVENTS["CELERY_APP"] = "testproject.celery.app"
    DOMAIN_EVENTS["CELERY_QUEUE"] = os.environ.get("DEMO_CELERY_QUEUE", "celery")
    CELERY_BROKER_URL = os.environ["DEMO_CELERY_BROKER_URL"]
    # Deliveries keep their own state in the outbox; the tasks need no result backend.
    CELERY_TASK_IGNORE_RESULT = True

# The outbox logs failed and dead deliveries (with tracebacks) under "django_domain_events";
# the shop's receivers log what they do under "shop".
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"console": {"format": "{levelname:<7} {name}: {message}", "style": "{"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "console"}},
    "loggers": {
        "django_domain_events": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "shop": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}
