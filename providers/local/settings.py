"""Pool and gateway tuning from ``[tool.sls-py.providers.local]``, and the gateway's core.

Light on purpose (no asyncio): ``sls-py run`` reads these before it starts the
functions' template processes, which happens before the gateway's own imports
(see :mod:`.launch`).
"""

from __future__ import annotations

import contextlib
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
    # pin the gateway to one core and the workers to the other cores, so that they
    # never take turns on one core (see cpu_layout)
    pin_cpus: bool = True
    # workers under SCHED_BATCH: a woken worker does not preempt the process on its
    # core (see template.batch_scheduling); Linux only. Off by default: pinned, the
    # gateway has its core to itself, so it only made workers lose every wake-up to
    # whatever else runs on theirs (README, "Local gateway performance")
    sched_batch: bool = False
    # functions whose template environments are equal share one template process,
    # which forks the workers of each (see .launch.template_groups); false: one
    # template per function
    share_templates: bool = True
    # the gateway's patience with clients (connection.Timeouts; 0: for ever): a
    # request's head and body must all arrive within read_timeout_s of its first
    # byte (else 408, and the connection closes: slowloris), and a connection
    # with no request in progress is closed after keepalive_timeout_s
    read_timeout_s: float = 10.0
    keepalive_timeout_s: float = 30.0


_FLAG_HINTS = {
    "pin_cpus": "pin_cpus = false lets the OS place the gateway and workers on any core",
    "sched_batch": "sched_batch = true runs workers under SCHED_BATCH (default: the normal policy)",
    "share_templates": "share_templates = false starts one template process per function",
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
    for flag in ("pin_cpus", "sched_batch", "share_templates"):
        if flag in conf:
            if not isinstance(conf[flag], bool):
                raise ConfigError(
                    f"[tool.sls-py.providers.local] {flag} = {conf[flag]!r} "
                    "is not true or false",
                    hint=_FLAG_HINTS[flag],
                )
            values[flag] = conf[flag]
    return PoolSettings(**values)


@dataclass(frozen=True)
class CpuLayout:
    """Where the gateway and the workers run: :func:`cpu_layout`'s decision."""

    #: the core the gateway is pinned to; ``None``: nothing is pinned
    gateway: int | None
    #: the workers' (and the cache servers') cores; ``()`` when nothing is pinned
    workers: tuple[int, ...]
    #: why, in a few words (``bench/machine.py`` prints it)
    reason: str
    #: the start-up line, when the decision is worth a line (else ``""``)
    note: str = ""

    def describe(self) -> str:
        """``gateway on 1, workers on 0`` or ``not pinned``, and the reason."""
        if self.gateway is None:
            return f"not pinned ({self.reason})"
        workers = ",".join(map(str, self.workers))
        return f"gateway on cpu {self.gateway}, workers on {workers} ({self.reason})"


def smt_siblings(cpus: list[int] | None = None) -> list[tuple[int, ...]]:
    """The usable logical CPUs grouped by physical core (Linux's
    ``/sys/devices/system/cpu/cpuN/topology/thread_siblings_list``): ``[(0,), (1,)]``
    for two cores, ``[(0, 1)]`` for two SMT siblings of one core. A CPU whose
    topology cannot be read is a core of its own."""
    if cpus is None:
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    usable = set(cpus)
    groups: dict[tuple[int, ...], None] = {}
    for cpu in sorted(usable):
        path = f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list"
        try:
            with open(path, encoding="ascii") as f:
                siblings = _cpu_list(f.read())
        except (OSError, ValueError):
            siblings = [cpu]
        groups[tuple(c for c in siblings if c in usable) or (cpu,)] = None
    return list(groups)


def _cpu_list(text: str) -> list[int]:
    """``"0-2,4"`` -> ``[0, 1, 2, 4]`` (the kernel's CPU list format)."""
    found: list[int] = []
    for part in text.strip().split(","):
        if "-" in part:
            low, high = part.split("-")
            found.extend(range(int(low), int(high) + 1))
        elif part:
            found.append(int(part))
    return found


def cpu_layout(
    settings: PoolSettings,
    *,
    cpus: list[int] | None = None,
    groups: list[tuple[int, ...]] | None = None,
    here: int | None = None,
) -> CpuLayout:
    """Decide where the gateway and the workers run (no side effect; the
    arguments default to this machine's usable CPUs, their SMT sibling groups
    and the CPU this process is on).

    Nothing is pinned with ``pin_cpus = false`` or fewer than two usable CPUs.
    Otherwise the gateway keeps the CPU it runs on (several servers on one
    machine do not all pile onto CPU 0) and the workers get the CPUs of the
    other physical cores: the gateway's SMT sibling is left to other work (the
    load generator, the OS), since a worker there would share the gateway's
    core. On two SMT siblings of one core (a typical 2-vCPU cloud VM) the
    workers get the sibling, the only other CPU, and the start-up line says so."""
    if cpus is None:
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if not settings.pin_cpus:
        return CpuLayout(None, (), "pin_cpus = false")
    if len(cpus) < 2:
        return CpuLayout(None, (), f"{len(cpus)} usable CPU")
    if groups is None:
        groups = smt_siblings(cpus)
    if here is None:
        here = current_cpu()
    gateway = here if here in cpus else cpus[0]
    core = next((g for g in groups if gateway in g), (gateway,))
    others = tuple(c for c in cpus if c not in core)
    if not others:
        others = tuple(c for c in cpus if c != gateway)
        reason = f"{len(cpus)} CPUs are SMT siblings of one core"
        note = (
            f"cpus: gateway on cpu {gateway}, workers on its SMT sibling "
            f"{','.join(map(str, others))}: {reason}, so they share it (pin_cpus = false: the OS places them)"
        )
        return CpuLayout(gateway, others, reason, note)
    if len(others) < len(cpus) - 1:
        sibling = ",".join(str(c) for c in core if c != gateway)
        return CpuLayout(gateway, others, f"SMT: the gateway's sibling {sibling} left to other work")
    return CpuLayout(gateway, others, "one core each")


def split_cpus(settings: PoolSettings) -> list[int]:
    """Pin this (gateway) process as :func:`cpu_layout` decides and return the
    workers' cores; ``[]`` when nothing is pinned.

    Left to itself, Linux often wakes a worker on the core of the gateway that
    wrote to its pipe, and then the two take turns on one core while another
    idles: unpinned runs of the same benchmark varied twofold with where the
    processes happened to settle (README, "Local gateway performance"). The
    cost: a pinned process cannot move away from a core that other programs keep
    busy, which is what ``pin_cpus = false`` is for.
    """
    return list(apply_layout(cpu_layout(settings)).workers)


#: this process's CPUs before apply_layout pinned it (for unpin)
_unpinned: set[int] | None = None


def apply_layout(layout: CpuLayout) -> CpuLayout:
    """Pin this process to ``layout.gateway``; the layout applied (nothing pinned
    when the kernel refuses)."""
    global _unpinned
    if layout.gateway is None or not hasattr(os, "sched_setaffinity"):
        return layout
    try:
        before = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {layout.gateway})
        _unpinned = _unpinned or before
    except OSError:
        return CpuLayout(None, (), f"cannot pin: {layout.reason}")
    return layout


def unpin() -> None:
    """Give this process back the CPUs it had before :func:`apply_layout` (before
    ``sls-py run`` restarts itself with ``exec``, which keeps the affinity: the new
    image decides its layout afresh)."""
    if _unpinned is not None:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, _unpinned)


def current_cpu() -> int | None:
    """The core this process last ran on (Linux's ``/proc/self/stat``), or ``None``."""
    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            stat = f.read()
        return int(stat[stat.rfind(")") + 2 :].split()[36])
    except (OSError, ValueError, IndexError):
        return None
