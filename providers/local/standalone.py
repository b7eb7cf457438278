"""Run only the local services (buckets, schedules, queues) of a project, without HTTP.

    python -m sls_py_local.standalone --project PATH [--stage dev] [--clock START@SPEED]

Each invocation runs in a fresh process (no warm pool). ``sls-py run`` is the
everyday way to run an app; this runner serves scripts and tests that need
the non-HTTP triggers alone. The servers the app's functions use (its caches'
and its PostgreSQL server, migrations applied) are served for as long as it
runs, as for a one-off ``sls-py trigger``. It prints ``ready`` on stderr once
the bucket watcher is live, and stops cleanly on SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from sls_py.config import load_project
from sls_py.errors import SlsPyError
from sls_py.ui import PlainUI

from .caches import serving_caches
from .dbservice import database_server
from .invokers import oneshot_invoker
from .services import LocalServices


async def serve(project_path: str, stage: str | None, clock: str | None) -> None:
    """Start the services and run until SIGINT/SIGTERM."""
    ui = PlainUI(sys.stderr)
    project = load_project(project_path)
    spec = project.spec(stage)
    with serving_caches(spec, project), database_server(spec, project):
        services = LocalServices(spec, project, oneshot_invoker(spec, project, ui), ui, clock=clock)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await services.start()
        ui.info("ready")
        try:
            await stop.wait()
        finally:
            await services.stop()
            ui.info("stopped")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m sls_py_local.standalone", description=__doc__)
    parser.add_argument("--project", default=".")
    parser.add_argument("--stage", default=None)
    parser.add_argument("--clock", default=None)
    args = parser.parse_args(argv)
    try:
        asyncio.run(serve(args.project, args.stage, args.clock))
    except SlsPyError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
