"""Where the gateway and the workers run: settings.cpu_layout's decisions for
machines described by their CPUs and SMT sibling groups (a pure function), and
the real machine's topology as Linux reports it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sls_py_local.settings import (
    PoolSettings,
    _cpu_list,
    cpu_layout,
    smt_siblings,
)

AUTO, NOPIN = PoolSettings(), PoolSettings(pin_cpus=False)


def test_two_cores_quiet_machine_pins_gateway_where_it_runs() -> None:
    layout = cpu_layout(AUTO, cpus=[0, 1], groups=[(0,), (1,)], here=1)
    assert (layout.gateway, layout.workers, layout.note) == (1, (0,), "")


def test_two_smt_siblings_of_one_core_are_pinned_apart_and_said_so() -> None:
    layout = cpu_layout(AUTO, cpus=[0, 1], groups=[(0, 1)], here=0)
    assert (layout.gateway, layout.workers) == (0, (1,))
    assert "SMT siblings of one core" in layout.note and "pin_cpus = false" in layout.note


def test_smt_machine_keeps_workers_off_the_gateways_sibling() -> None:
    # 2 cores x 2 threads, numbered as Linux usually does: siblings 0/2 and 1/3
    layout = cpu_layout(AUTO, cpus=[0, 1, 2, 3], groups=[(0, 2), (1, 3)], here=2)
    assert (layout.gateway, layout.workers, layout.note) == (2, (1, 3), "")
    assert "sibling 0" in layout.describe()


def test_pin_cpus_false_and_one_cpu_pin_nothing() -> None:
    assert cpu_layout(NOPIN, cpus=[0, 1], groups=[(0,), (1,)], here=0).gateway is None
    one = cpu_layout(AUTO, cpus=[3], groups=[(3,)], here=3)
    assert (one.gateway, one.workers) == (None, ())


def test_gateway_cpu_outside_the_allowed_set_falls_back_to_the_first() -> None:
    layout = cpu_layout(AUTO, cpus=[2, 3], groups=[(2,), (3,)], here=0)
    assert (layout.gateway, layout.workers) == (2, (3,))


def test_kernel_cpu_lists() -> None:
    assert _cpu_list("0-2,4\n") == [0, 1, 2, 4]
    assert _cpu_list("5") == [5]


@pytest.mark.skipif(not Path("/sys/devices/system/cpu/cpu0/topology").is_dir(), reason="Linux sysfs")
def test_smt_siblings_cover_every_usable_cpu_once() -> None:
    cpus = sorted(os.sched_getaffinity(0))
    groups = smt_siblings(cpus)
    assert sorted(c for g in groups for c in g) == cpus
    for group in groups:
        text = Path(f"/sys/devices/system/cpu/cpu{group[0]}/topology/thread_siblings_list").read_text()
        assert set(group) == set(_cpu_list(text)) & set(cpus)
