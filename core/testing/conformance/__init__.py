"""The provider conformance suite.

A provider plugin checks itself against sls-py's neutral semantics from its
own test suite::

    # tests/test_conformance.py of your provider
    from sls_py.testing.conformance import ProviderConformance

    class TestConformance(ProviderConformance):
        provider = "mycloud"          # your provider's name

That runs every check whose capabilities your provider declares against the
conformance app (shipped in this package), through :class:`PluginHarness`.
Override ``make_harness()`` to return your own :class:`Harness` if your
provider needs setup (credentials, an emulator, a deploy).
"""

from __future__ import annotations

import pytest

# the checks' plain asserts report the values compared, as in a test module
pytest.register_assert_rewrite("sls_py.testing.conformance.contracts", "sls_py.testing.conformance.suite")

from .harness import STAGE, Harness, HttpResult, PluginHarness, ServerProcess, prepare_project  # noqa: E402
from .suite import ProviderConformance  # noqa: E402

__all__ = [
    "STAGE",
    "Harness",
    "HttpResult",
    "PluginHarness",
    "ProviderConformance",
    "ServerProcess",
    "prepare_project",
]
