"""Names of sls-py's function processes, as ``ps -e``, ``top`` and
``/proc/<pid>/comm`` show them.

A process forked from ``sls-py`` itself rather than started as a new
interpreter (see :mod:`.blank`) keeps ``sls-py``'s command line; its name
says what it is: ``sls-py-template``, ``sls-py-worker`` or ``sls-py-oneshot``.
"""

from __future__ import annotations

import contextlib

#: the name of a template process (``/proc/<pid>/comm``)
TEMPLATE = "sls-py-template"
#: a worker forked from a template
WORKER = "sls-py-worker"
#: the process of a one-shot ``sls-py invoke``
ONESHOT = "sls-py-oneshot"


def name_process(name: str) -> None:
    """Name this process (its main thread): at most 15 characters are kept."""
    with contextlib.suppress(OSError), open("/proc/self/comm", "w", encoding="ascii") as f:
        f.write(name)
