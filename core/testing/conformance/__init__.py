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

from .harness import STAGE, Harness, HttpResult, PluginHarness, ServerProcess, prepare_project
from .suite import ProviderConformance

__all__ = [
    "STAGE",
    "Harness",
    "HttpResult",
    "PluginHarness",
    "ProviderConformance",
    "ServerProcess",
    "prepare_project",
]
