"""Invocations between functions in :class:`~sls_py.testing.client.AppClient`.

``ctx.invoke`` runs the target in this process and returns its result;
``ctx.invoke_async`` runs it at once too (before returning), retrying a failure
twice as providers do, and records a payload that failed every attempt in
``client.dead_letters[function]``. Undeclared targets and payloads over the
limits are refused by the runtime exactly as on a provider.
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

from ..runtime import MemoryDriver, Payload

if TYPE_CHECKING:
    from .client import AppClient

#: attempts of an asynchronous invocation (providers: the first and two retries)
ATTEMPTS = 3


class ClientFunction:
    """A function of the client's app, as ``ctx.invoke`` sees it."""

    def __init__(self, client: AppClient, name: str) -> None:
        self.client, self.name = client, name

    def invoke(self, payload: str) -> dict[str, Any]:
        outcome = self.client.run(self.name, Payload(json.loads(payload)))
        return {"result": outcome.result, "error": outcome.error.to_wire() if outcome.error else None}

    def invoke_async(self, payload: str) -> str:
        for _ in range(ATTEMPTS):
            if self.client.run(self.name, Payload(json.loads(payload))).error is None:
                break
        else:
            self.client.dead_letters.setdefault(self.name, []).append(json.loads(payload))
        return str(uuid.uuid4())


class ClientDriver(MemoryDriver):
    """The client's in-memory resources, plus its app's functions."""

    def __init__(self, client: AppClient) -> None:
        super().__init__()
        self.client = client

    def function(self, name: str, physical: str) -> ClientFunction:
        return ClientFunction(self.client, name)
