"""``inprocess``: an sls-py provider that runs functions in the calling process.

It is the example of a third-party provider (see sls-py's docs/providers.md):
a distribution of its own, registered under the ``sls_py`` entry-point group,
written only against sls-py's public API. It is also useful: invocations cost
microseconds instead of a process start, for fast tests.

What it does: ``invoke``, ``run`` (an HTTP gateway on uvicorn with API keys
and CORS), ``trigger`` (upload, schedule, queue), buckets, queues and tables
kept under ``.sls-py/inprocess/<stage>/``, and ``plan``/``deploy``/``remove``
that record which functions are "deployed". What it does not: isolate
functions from each other or enforce memory limits; a timed-out function's
thread cannot be stopped, only abandoned (the caller gets the timeout error).
"""

from __future__ import annotations

__version__ = "0.1.0"
