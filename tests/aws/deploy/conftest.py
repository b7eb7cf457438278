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


@pytest.fixture
def aws_env(moto: Moto, monkeypatch: pytest.MonkeyPatch) -> Moto:
    """This process's boto3 pointed at the module's moto server (fake credentials)."""
    for name, value in moto.env().items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    return moto
