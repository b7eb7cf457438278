"""The inprocess provider runs sls-py's provider conformance suite: these lines are all it takes."""

from __future__ import annotations

import pytest

pytest.importorskip(
    "sls_py_inprocess", reason="install it: pip install -e examples/inprocess-provider"
)

from sls_py.testing.conformance import ProviderConformance


class TestInprocessConformance(ProviderConformance):
    provider = "inprocess"
