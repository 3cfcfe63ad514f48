"""Sphinx configuration for the django-domain-outbox documentation."""

from __future__ import annotations

import os
import sys
from importlib import metadata
from pathlib import Path

import django
from django.conf import settings

# autodoc imports the package, and importing models needs a configured Django: the package and
# what it needs, nothing from the test suite, so that `pip install -e ".[docs]"` is enough.
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.pop("DJANGO_SETTINGS_MODULE", None)
settings.configure(
    INSTALLED_APPS=["django.contrib.contenttypes", "django_domain_events"],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    USE_TZ=True,
)
django.setup()

project = "django-domain-outbox"
author = "django-domain-outbox contributors"
copyright = "django-domain-outbox contributors"
release = metadata.version("django-domain-outbox")

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    # sphinx.ext.intersphinx stays off: it fetches inventories over the network at build time.
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build"]

myst_heading_anchors = 3
autodoc_member_order = "bysource"
autodoc_typehints = "description"
# The Celery dispatcher's page documents it without the celery extra installed.
autodoc_mock_imports = ["celery", "kombu"]
nitpicky = False
suppress_warnings: list[str] = []

html_theme = "furo"
html_title = "django-domain-outbox"
