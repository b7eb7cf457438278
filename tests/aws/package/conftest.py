"""Fixtures of the package tests: one moto server per module (the deploy tests'
helpers, ``tests/aws/deploy/aws_deploy_support.py``, are shared)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "deploy"))

from aws_deploy_support import Moto


@pytest.fixture(scope="module")
def moto() -> Iterator[Moto]:
    server = Moto()
    try:
        yield server
    finally:
        server.stop()
