"""Testing tools for sls-py apps and providers.

:class:`AppClient` calls an app's functions and HTTP routes in this process,
with in-memory buckets, queues and tables: fast unit tests, no server.
"""

from __future__ import annotations

from .client import AppClient, ClientResponse

__all__ = ["AppClient", "ClientResponse"]
