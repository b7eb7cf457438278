"""Pool tuning from ``[tool.sls-py.providers.local]``, and the gateway's core.

Light on purpose (no asyncio): ``sls-py run`` reads these before it starts the
functions' template processes, which happens before the gateway's own imports
(see :mod:`.launch`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from sls_py.errors import ConfigError
from sls_py.spec import Spec


@dataclass(frozen=True)
class PoolSettings:
    """Tuning shared by every pool (``[tool.sls-py.providers.local]``)."""

    max_workers: int = 0  # 0: as many as cores, unless the function sets concurrency
    queue_size: int = 256
    idle_timeout_s: float = 300.0
    start_timeout_s: float = 30.0
    # pin the gateway to one core and the workers to the others (2+ cores): faster
    # on a quiet machine, much slower when other programs keep those cores busy
    pin_cpus: bool = False
    # workers under SCHED_BATCH: a woken worker does not preempt the gateway
    # mid-turn (see template.batch_scheduling); Linux only
    sched_batch: bool = True


_FLAG_HINTS = {
    "pin_cpus": "pin_cpus = false lets the OS place the gateway and workers on any core",
    "sched_batch": "sched_batch = false runs workers under the normal scheduling policy",
}


def pool_settings(spec: Spec) -> PoolSettings:
    """Pool tuning from ``[tool.sls-py.providers.local]``."""
    conf = spec.provider_settings("local")
    values: dict[str, Any] = {}
    for name, kind in (
        ("max_workers", int),
        ("queue_size", int),
        ("idle_timeout_s", float),
        ("start_timeout_s", float),
    ):
        if name in conf:
            try:
                values[name] = kind(conf[name])
                if values[name] < 0:
                    raise ValueError
            except (TypeError, ValueError):
                raise ConfigError(
                    f"[tool.sls-py.providers.local] {name} = {conf[name]!r} "
                    "is not a non-negative number",
                    hint=f"for example: {name} = {getattr(PoolSettings, name)!r}",
                ) from None
    for flag in ("pin_cpus", "sched_batch"):
        if flag in conf:
            if not isinstance(conf[flag], bool):
                raise ConfigError(
                    f"[tool.sls-py.providers.local] {flag} = {conf[flag]!r} "
                    "is not true or false",
                    hint=_FLAG_HINTS[flag],
                )
            values[flag] = conf[flag]
    return PoolSettings(**values)


def split_cpus(settings: PoolSettings) -> list[int]:
    """Pin this (gateway) process to one core and return the cores for workers.

    The gateway and the workers then never take turns on one core, which costs
    a context switch and cold caches per request; but a pinned process cannot
    move away from a core that other programs keep busy, so this is opt-in
    (``pin_cpus = true``). Nothing is pinned on a single-core machine (then ``[]``).
    """
    if not settings.pin_cpus or not hasattr(os, "sched_getaffinity"):
        return []
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return []
    try:
        os.sched_setaffinity(0, {cpus[0]})
    except OSError:
        return []
    return cpus[1:]
