"""The local provider against the provider conformance suite.

Capabilities whose machinery is not on this branch yet are excluded with the
reason (and so reported as skipped): HTTP needs ``sls_py_run`` (the gateway),
triggers need ``sls_py_trigger``, resources need ``sls_py_local.resources``.
Once those land, the exclusions disappear by themselves and the whole suite runs.
"""

from __future__ import annotations

from importlib.util import find_spec

import pytest
from sls_py.plugins import Plugins, load_plugins
from sls_py.testing.conformance import Harness, ProviderConformance
from sls_py_local.testing import LocalHarness


def _exclusions(plugins: Plugins) -> dict[str, str]:
    local = plugins.provider("local")
    out: dict[str, str] = {}
    if not local.implements("sls_py_run"):
        why = "the local provider does not implement `run` (sls_py_run) in this build"
        out.update({cap: why for cap in ("trigger.http", "http.api_key", "http.cors")})
    if not local.implements("sls_py_trigger"):
        why = "the local provider does not implement `trigger` (sls_py_trigger) in this build"
        out.update({cap: why for cap in ("trigger.upload", "trigger.schedule", "trigger.queue")})
    if find_spec("sls_py_local.resources") is None:
        why = "sls_py_local.resources (the local resource driver) is not in this build"
        out.update({cap: why for cap in ("resource.bucket", "resource.queue", "resource.table")})
    return out


@pytest.mark.slow
class TestLocalConformance(ProviderConformance):
    provider = "local"
    exclude = _exclusions(load_plugins())

    def make_harness(self) -> Harness:
        return LocalHarness()
