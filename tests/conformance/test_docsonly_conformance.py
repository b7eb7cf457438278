"""Issue 14's goal: a provider written from docs/providers.md alone, in 300 lines
or fewer, passes the conformance suite (whose contract checks fail a wrong guess
at any answer of the gateway table).

``docsonly/sls_py_docsonly.py`` is that provider (an HTTP gateway on the standard
library's ``http.server``). It is "installed" for this module only: a
``.dist-info`` with its ``sls_py`` entry point in a temporary folder on
``sys.path`` and ``PYTHONPATH`` (for the ``sls-py run`` subprocess), removed
again when the harness stops.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest
from sls_py.plugins import load_plugins
from sls_py.testing.conformance import Harness, PluginHarness, ProviderConformance

PROVIDER = Path(__file__).with_name("docsonly") / "sls_py_docsonly.py"


class DocsOnlyHarness(PluginHarness):
    """:class:`PluginHarness` for ``docsonly``, with the provider put on the path first."""

    def __init__(self) -> None:
        site = Path(tempfile.mkdtemp(prefix="docsonly-site-"))
        info = site / "sls_py_docsonly-0.1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: sls-py-docsonly\nVersion: 0.1.0\n")
        (info / "entry_points.txt").write_text("[sls_py]\ndocsonly = sls_py_docsonly\n")
        self.paths = [str(site), str(PROVIDER.parent)]
        self.saved_pythonpath = os.environ.get("PYTHONPATH")
        sys.path[:0] = self.paths
        os.environ["PYTHONPATH"] = os.pathsep.join(
            [*self.paths, *([self.saved_pythonpath] if self.saved_pythonpath else [])]
        )
        super().__init__("docsonly", load_plugins())

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            for path in self.paths:
                if path in sys.path:
                    sys.path.remove(path)
            if self.saved_pythonpath is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = self.saved_pythonpath


def test_the_provider_is_300_lines_or_fewer() -> None:
    assert len(PROVIDER.read_text(encoding="utf-8").splitlines()) <= 300


@pytest.mark.slow
class TestDocsOnlyConformance(ProviderConformance):
    provider = "docsonly"

    def make_harness(self) -> Harness:
        return DocsOnlyHarness()
