"""Fixtures of the AWS deploy tests: one moto server per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aws_deploy_support import Moto


@pytest.fixture(scope="module")
def moto() -> Iterator[Moto]:
    server = Moto()
    try:
        yield server
    finally:
        server.stop()
