#!/usr/bin/env python
"""Django's command-line utility for the demo accounting service."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# The repository root: the demo runs this checkout's django_domain_events, installed or not.
REPO_ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    """Run an administrative task."""
    if str(REPO_ROOT) not in sys.path:
        # After sys.path[0] (this directory), so "consumerproject" stays the settings package.
        sys.path.insert(1, str(REPO_ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "consumerproject.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
