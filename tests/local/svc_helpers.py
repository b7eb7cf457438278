"""Helpers for the local services tests: a spec and project without app code, polling."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sls_py.config import Project, ProjectConfig
from sls_py.spec import Spec


def make_project(root: Path) -> Project:
    """A project rooted at ``root`` (its state goes to ``root/.sls-py``)."""
    return Project(root=root, config=ProjectConfig(app="nowhere:app"), name="t")


def make_spec(**fields: Any) -> Spec:
    """A spec for app ``t``, stage ``dev``."""
    return Spec(app="t", stage="dev", app_ref="nowhere:app", **fields)


async def wait_for(check: Callable[[], Any], timeout: float = 20.0, step: float = 0.02) -> Any:
    """Poll ``check`` (in a thread) until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await asyncio.to_thread(check)
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {check}")
        await asyncio.sleep(step)
