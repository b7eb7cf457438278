"""Fixtures of the package tests: one moto server per module; the deploy and
runtime tests' helpers (``aws_deploy_support``, and ``aws_runtime_support`` for
the Lambda runtime fixture ``start_lambda``) are shared."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "deploy"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))

from aws_deploy_support import Moto
from aws_runtime_support import start_lambda

__all__ = ["moto", "start_lambda"]


@pytest.fixture(scope="module")
def moto() -> Iterator[Moto]:
    server = Moto()
    try:
        yield server
    finally:
        server.stop()
