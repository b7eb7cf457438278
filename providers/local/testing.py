"""The conformance-suite harness for the local provider.

``LocalHarness`` drives the local provider through its hooks, as the CLI
does: ``invoke`` runs each call in a fresh worker process
(:func:`sls_py_local.oneshot.invoke_once`), HTTP goes to
``sls-py run --provider local --port 0`` started as a subprocess (its URL is
read from its output), API keys come from the ``api-keys`` hook, and the
server is started before triggers fire, because the local server is what
watches buckets and queues.

Use it from a test module::

    from sls_py.testing.conformance import ProviderConformance
    from sls_py_local.testing import LocalHarness

    class TestLocalConformance(ProviderConformance):
        provider = "local"

        def make_harness(self):
            return LocalHarness()
"""

from __future__ import annotations

import json
from typing import Any

from sls_py.plugins import Plugins
from sls_py.testing.conformance import STAGE, PluginHarness


class LocalHarness(PluginHarness):
    """:class:`~sls_py.testing.conformance.PluginHarness` for ``local``."""

    def __init__(self, plugins: Plugins | None = None) -> None:
        super().__init__("local", plugins, server_for_triggers=True)

    def dead_letters(self, function: str) -> list[Any]:
        """Payloads in ``sls-py-invoke-<function>-dlq`` of the stage's queue store."""
        from .invoking import invoke_queue
        from .queues import QueueStore, dead_letter_queue

        assert self.project is not None
        store = QueueStore(self.project.state_dir / "local" / STAGE / "queues.sqlite3")
        try:
            return [json.loads(m.body) for m in store.messages(dead_letter_queue(invoke_queue(function)))]
        finally:
            store.close()
