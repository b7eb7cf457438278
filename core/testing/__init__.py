"""Testing tools for sls-py apps and providers.

- :class:`AppClient` calls an app's functions and HTTP routes in this process,
  with in-memory buckets, queues and tables: fast unit tests, no server.
- :func:`start_local_server` / :class:`LocalServer` run the app with the local
  provider on a free port, for end-to-end tests.
- :mod:`sls_py.testing.pytest_plugin` gives both as pytest fixtures
  (``sls_app``, ``sls_local_server``); it is registered automatically.
- :mod:`sls_py.testing.conformance` is the provider conformance suite.
"""

from __future__ import annotations

from .client import AppClient, ClientResponse
from .local_server import LocalServer, start_local_server

__all__ = ["AppClient", "ClientResponse", "LocalServer", "start_local_server"]
