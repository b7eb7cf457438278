"""Pool and gateway tuning from ``[tool.sls-py.providers.local]``, and the gateway's core.

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
    """Tuning shared by every pool, and the gateway's client timeouts
    (``[tool.sls-py.providers.local]``)."""

    max_workers: int = 0  # 0: as many as cores, unless the function sets concurrency
    queue_size: int = 256
    idle_timeout_s: float = 300.0
    start_timeout_s: float = 30.0
    # pin the gateway to one core and the workers to the others (2+ cores), so that
    # they never take turns on one core (see split_cpus)
    pin_cpus: bool = True
    # workers under SCHED_BATCH: a woken worker does not preempt the gateway
    # mid-turn (see template.batch_scheduling); Linux only
    sched_batch: bool = True
    # the gateway's patience with clients (connection.Timeouts; 0: for ever): a
    # request's head and body must all arrive within read_timeout_s of its first
    # byte (else 408, and the connection closes: slowloris), and a connection
    # with no request in progress is closed after keepalive_timeout_s
    read_timeout_s: float = 10.0
    keepalive_timeout_s: float = 30.0


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
        ("read_timeout_s", float),
        ("keepalive_timeout_s", float),
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
    """Pin this (gateway) process to the core it runs on and return the other
    cores, for the workers; ``[]`` (nothing pinned) with ``pin_cpus = false`` or
    fewer than two cores.

    Left to itself, Linux often wakes a worker on the core of the gateway that
    wrote to its pipe, and then the two take turns on one core while another
    idles: unpinned runs of the same benchmark varied twofold with where the
    processes happened to settle (README, "Local gateway performance"). The
    cost: a pinned process cannot move away from a core that other programs keep
    busy, which is what ``pin_cpus = false`` is for. The gateway keeps the core
    it happens to run on, so several servers on one machine do not all pile
    onto core 0.
    """
    if not settings.pin_cpus or not hasattr(os, "sched_getaffinity"):
        return []
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return []
    here = current_cpu()
    gateway = here if here in cpus else cpus[0]
    try:
        os.sched_setaffinity(0, {gateway})
    except OSError:
        return []
    return [c for c in cpus if c != gateway]


def current_cpu() -> int | None:
    """The core this process last ran on (Linux's ``/proc/self/stat``), or ``None``."""
    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            stat = f.read()
        return int(stat[stat.rfind(")") + 2 :].split()[36])
    except (OSError, ValueError, IndexError):
        return None
