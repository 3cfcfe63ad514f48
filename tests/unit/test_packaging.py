"""What the distribution says about itself: its license, where it lives, what it supports."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DISTRIBUTION = "django-domain-outbox"


@pytest.fixture(scope="module")
def project() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)["project"]


def test_the_license_file_is_the_one_the_spdx_expression_names(project: dict[str, Any]) -> None:
    assert project["license"] == "BSD-3-Clause"
    assert project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("BSD 3-Clause License\n")
    assert "Neither the name of the copyright holder" in text
    # PEP 639: a license expression replaces the License :: classifiers; PyPI refuses both.
    assert not [c for c in project["classifiers"] if c.startswith("License ::")]


def test_the_classifiers_name_the_supported_frameworks_and_pythons(
    project: dict[str, Any],
) -> None:
    classifiers = set(project["classifiers"])
    assert {
        "Framework :: Django",
        "Framework :: Django :: 5.2",
        "Framework :: Django :: 6.0",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
        "Typing :: Typed",
    } <= classifiers
    assert project["requires-python"] == ">=3.11"
    assert (ROOT / "django_domain_events" / "py.typed").exists()


def test_the_project_urls_say_where_the_source_docs_and_issues_are(
    project: dict[str, Any],
) -> None:
    urls = project["urls"]
    assert set(urls) >= {"Homepage", "Documentation", "Source", "Issues"}
    assert all(url.startswith("https://") for url in urls.values())


def test_the_installed_metadata_carries_the_license_and_urls() -> None:
    """What pip installed from pyproject.toml: the same metadata a wheel would carry."""
    installed = metadata.metadata(DISTRIBUTION)
    assert installed["License-Expression"] == "BSD-3-Clause"
    assert "LICENSE" in (installed.get_all("License-File") or [])
    assert any(url.startswith("Source, https://") for url in installed.get_all("Project-URL") or [])
    assert "Typing :: Typed" in (installed.get_all("Classifier") or [])
