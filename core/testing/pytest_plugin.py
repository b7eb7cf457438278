"""pytest fixtures for sls-py apps (registered through the ``pytest11`` entry point)."""

from __future__ import annotations
