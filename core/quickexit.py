"""Ending a process as the interpreter would, less its teardown.

At exit, CPython waits for the non-daemon threads, runs the ``atexit``
handlers, flushes the standard streams, and then tears down every module and
object it holds: for a command that has done its work (``sls-py invoke``
after printing the result) that last part is pure CPU the user waits for
(some 10-25 ms here), and a process forked from ``sls-py`` (see
``sls_py_local.blank``) must not unwind into its parent's code at all.
:func:`exit_now` does the first three and ends the process.

Standard library only.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import NoReturn


def exit_now(code: int) -> NoReturn:
    """Wait for this process's other non-daemon threads, run its ``atexit``
    handlers, flush its standard streams, and exit with ``code``."""
    try:
        threading = sys.modules.get("threading")
        if threading is not None:
            for thread in threading.enumerate():
                if thread is not threading.main_thread() and not thread.daemon:
                    with contextlib.suppress(Exception):
                        thread.join()
        import atexit

        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                if stream is not None:
                    stream.flush()
    finally:
        os._exit(code)
