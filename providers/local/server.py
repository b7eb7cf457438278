"""``sls-py run --provider local``: the gateway, the worker pools, reload, shutdown.

One uvloop event loop in the ``sls-py`` process runs the HTTP gateway
(:mod:`.connection` + :mod:`.gateway`), talks to every function's workers
(:mod:`.workers`), forked from the template process its group of functions
shares (:mod:`.group`), watches the source for changes (restarting itself in place
when the spec changes) and runs the non-HTTP triggers
(:class:`~.services.LocalServices`) with the pools' ``invoke``. SIGINT and SIGTERM stop it
all; templates and workers are killed, and would die with the gateway anyway
(PR_SET_PDEATHSIG, closed pipes).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib.util
import json
import os
import signal
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sls_py.project import Project
from sls_py.provider import RunOptions
from sls_py.runtime import Outcome
from sls_py.runtime.errors import ErrorInfo
from sls_py.spec import Spec
from sls_py.ui import UI

from .bytecode import project_bytecode
from .clock import SimulatedClock, iso_utc
from .connection import HttpConnection, Timeouts
from .gateway import Gateway, Route
from .group import TemplateGroup
from .handles import Template, TemplateFailed
from .keys import KeyChecker, UsageLimiter, keys_file, load_api_keys
from .launch import LISTEN_FD_ENV, Prepared, listen_error, prepare
from .logs import LogSink, log_dir
from .runfile import running_instance
from .settings import PoolSettings, pool_settings, split_cpus, unpin
from .workers import FunctionPool

if TYPE_CHECKING:
    from .invoke_server import InvokeServer
    from .services import LocalServices

__all__ = ["LocalServer", "pool_settings", "read_server_url", "serve", "split_cpus"]


class LocalServer:
    """Everything ``sls-py run`` serves, in one event loop."""

    def __init__(
        self,
        spec: Spec,
        project: Project,
        options: RunOptions,
        ui: UI,
        prepared: Prepared | None = None,
    ) -> None:
        self.spec, self.project, self.options, self.ui = spec, project, options, ui
        self.prepared = prepared
        self.stop_event = asyncio.Event()
        self.pools: dict[str, FunctionPool] = {}
        #: the template processes the functions share (see .launch.template_groups)
        self.groups: list[TemplateGroup] = []
        self.url = ""
        self.services: LocalServices | None = None
        self.invoke_server: InvokeServer | None = None
        #: set when a source change altered the spec: serve() then re-executes
        #: ``sls-py run`` in place, handing over the listening socket and the
        #: simulated clock's time (``--clock``)
        self.restart = False
        self.can_restart = False
        #: the spec a reload's new code builds, in JSON form (see _keep_new_spec)
        self.new_spec: dict[str, Any] | None = None
        self.handoff_fd: int | None = None
        self.resume_clock: str | None = None
        self.spec_json: dict[str, Any] | None = None
        #: where function processes cache their bytecode (``PYTHONPYCACHEPREFIX``),
        #: if not beside the sources (see .bytecode)
        self.pycache_prefix: str | None = None

    def _stop_requested(self) -> None:
        """SIGINT/SIGTERM (or the end of the run): stop. A terminal's Ctrl-C, or a
        SIGTERM to the whole process group, reaches the templates too: their exit
        from now on is part of stopping, not a crash to report and restart."""
        for pool in self.pools.values():
            pool.stopping = True
        self.stop_event.set()

    async def invoke(self, function: str, event_wire: dict[str, Any]) -> Outcome:
        """Run ``function`` for an event in wire form on its worker pool."""
        pool = self.pools.get(function)
        if pool is None:
            return Outcome(error=ErrorInfo("NotFound", f"no function {function!r}", 404))
        return await pool.invoke(event_wire)

    async def run(self) -> int:
        """Serve until SIGINT/SIGTERM."""
        loop = asyncio.get_running_loop()
        spec, project, options = self.spec, self.project, self.options
        own_prepared = self.prepared is None
        if self.prepared is None:  # checks the options and takes the lock; starts no template
            self.prepared = prepare(spec, project, options, launch=False)
        prepared = self.prepared
        settings = prepared.settings
        logs = LogSink(log_dir(project.state_dir, spec.stage), json_lines=options.json_logs)
        logs.attach(loop)
        self.logs = logs
        functions = {fn.name: fn for fn in spec.functions}
        for shared in prepared.groups:
            group = TemplateGroup(shared, project.root, settings, loop)
            group.prestarted = prepared.take(shared.name)
            self.groups.append(group)
            for name in shared.functions:
                fn = functions[name]
                env = prepared.envs[name]
                self.pools[name] = FunctionPool(fn, env, project.root, logs, settings, loop, group)
        http_pools = [self.pools[fn.name] for fn in spec.functions if fn.http_triggers()]
        starting = [loop.create_task(p.start(prewarm=1)) for p in http_pools]
        databases = None
        if spec.databases:  # PostgreSQL starts beside the gateway (see .dbservice), once
            from .dbservice import DatabaseService  # the HTTP functions' templates are ready

            databases = DatabaseService(spec, project, logs.gateway)
            databases.start(wait=bool(starting))
        server: asyncio.Server | None = None
        tasks: list[asyncio.Task[Any]] = []
        caches = None
        try:
            prepared.start_caches(spec, project)  # started by prepare() already, beside the templates
            caches, prepared.caches = prepared.caches, None  # this run stops them
            if caches is not None:
                caches.report_to(_threadsafe(loop, logs.gateway))
            keys = load_api_keys(spec, project)
            limiter = UsageLimiter(spec.gateway.usage)
            routes = [
                Route(t.method, t.path, self.pools[fn.name], t.api_key, t.cors)
                for fn in spec.functions
                for t in fn.http_triggers()
            ]
            gateway = Gateway(routes, KeyChecker(keys), limiter, logs)
            timeouts = Timeouts(settings.read_timeout_s, settings.keepalive_timeout_s)
            try:
                if prepared.listener is not None:  # bound early (see .launch)
                    server = await loop.create_server(
                        lambda: HttpConnection(gateway, timeouts), sock=prepared.listener, backlog=4096
                    )
                else:
                    server = await loop.create_server(
                        lambda: HttpConnection(gateway, timeouts), options.host, options.port, backlog=4096
                    )
            except OSError as exc:
                raise listen_error(options.host, options.port, exc) from None
            port = server.sockets[0].getsockname()[1]
            host = options.host if ":" not in options.host else f"[{options.host}]"
            self.url = f"http://{host}:{port}"
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(ValueError, RuntimeError):  # not the main thread
                    loop.add_signal_handler(sig, self._stop_requested)
            self._banner(routes, limiter)
            if caches is not None:
                for line in caches.describe():
                    self.ui.info(line)
            if databases is not None:
                for db_url in databases.urls():
                    self.ui.info(f"database: {db_url} (password in .sls-py; `sls-py db shell`)")
            # the HTTP functions' first requests come first: what else start-up does
            # (schedules, bucket watchers, queue polling, collecting the heap: some
            # 30-60 ms of imports and set-up that hold the event loop) waits until
            # their templates are ready, so it does not compete with their imports,
            # and then until the requests that came meanwhile are answered
            if starting:
                await asyncio.wait(starting, timeout=FIRST_TEMPLATES_WAIT_S)
                if databases is not None:
                    # PostgreSQL's start and set-up (its processes, the migrations'
                    # child: ~100 ms of CPU) competed with the templates' imports on the
                    # first request's path; a first request that queries waits for it
                    await _answered(http_pools, DATABASE_AFTER_REQUESTS_S)
                    databases.go()
                await _answered(http_pools, FIRST_REQUESTS_WAIT_S)
            from .services import LocalServices

            # a restart goes on with the simulated clock where it was (see _restart)
            clock = os.environ.pop(RESUME_CLOCK_ENV, None) or options.clock
            self.services = LocalServices(
                spec, project, self.invoke, self.ui, clock=clock, lock=prepared.lock
            )
            await self.services.start()
            if prepared.invoke_listener is not None:  # ctx.invoke from the workers
                from .invoke_server import InvokeServer

                invoke_server = InvokeServer(spec, self.invoke, prepared.invoke_token)
                await invoke_server.start(prepared.invoke_listener)
                prepared.invoke_listener = None  # the server owns it now
                self.invoke_server = invoke_server
            tasks.append(loop.create_task(self._reap(settings)))
            if spec.configs:  # say which keys `sls-py config set` changed (see .config)
                from .config import watch_config

                tasks.append(loop.create_task(watch_config(spec, project, logs.gateway, self.stop_event)))
            if options.reload:
                tasks.append(loop.create_task(self._watch()))
                self._spare_later(tasks)
                # let the task reach its first await: awatch registers its watches
                # synchronously before that, so no edit after "ready" can be missed
                await asyncio.sleep(0)
            if prepared.lock is not None:  # for `sls-py url`, `trigger`, `send`, tools
                prepared.lock.publish(gateway=self.url)
            # what start-up imported and built stays for good: out of the collector's
            # sight, a full collection does not walk it (no multi-ms pause under load)
            if caches is not None:  # a server that cannot start: one line, then stop
                await asyncio.to_thread(caches.wait_ready)
            gc.collect()
            gc.freeze()
            if prepared.layout.note:  # e.g. two SMT siblings of one core (see .settings.cpu_layout)
                logs.gateway(prepared.layout.note)
            logs.gateway(f"ready: {self.url} (Ctrl-C to stop)")
            if options.cached_spec:  # a warm start: is the cached spec still the app's?
                tasks.append(loop.create_task(self._check_cached_spec(starting)))
            await self.stop_event.wait()
            if self.restart:
                if len(server.sockets) == 1:
                    # the kernel keeps queueing connections on this socket while the
                    # next process image starts: none is refused during a restart
                    self.handoff_fd = os.dup(server.sockets[0].fileno())
                    os.set_inheritable(self.handoff_fd, True)
                server.close()  # no new connection here; the ones open finish their requests
                await self._drain()
            logs.gateway("stopping")
            self._stop_requested()
            return 0
        finally:
            if server is not None:
                server.close()
            if self.invoke_server is not None:
                self.invoke_server.close()
            clock = self.services.clock if self.services is not None else None
            if self.restart and isinstance(clock, SimulatedClock):
                self.resume_clock = f"{iso_utc(clock.now())}@{clock.speed:g}"
            for task in [*tasks, *starting]:
                task.cancel()
            if self.services is not None:
                with contextlib.suppress(Exception):
                    # services let in-flight invocations finish (their own grace), so
                    # the pools must stay alive until they are done
                    grace = self.services.stop_grace_s
                    await asyncio.wait_for(self.services.stop(), grace + 5)
            for pool in self.pools.values():
                pool.close()
            if caches is not None:
                await asyncio.to_thread(caches.stop)
            if databases is not None:
                await databases.stop()
            if own_prepared:
                prepared.close()
            logs.close()

    def _banner(self, routes: list[Route], limiter: UsageLimiter) -> None:
        spec, ui = self.spec, self.ui
        ui.info(f"sls-py local: {spec.app} (stage {spec.stage}) at {self.url}")
        if self.options.host not in ("127.0.0.1", "localhost", "::1"):
            ui.warn(
                f"listening on {self.options.host}: other machines can reach this server; "
                "use --host 127.0.0.1 to keep it private"
            )
        if routes:
            rows = [("METHOD", "URL", "API KEY", "FUNCTION")]
            rows += [
                (r.method, self.url + r.path, "yes" if r.api_key else "no", r.function)
                for r in routes
            ]
            widths = [max(len(row[i]) for row in rows) for i in range(4)]
            for row in rows:
                ui.info(
                    "  "
                    + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
                )
        if any(r.api_key for r in routes):
            path = keys_file(self.project, spec.stage)
            where = os.path.relpath(path, Path.cwd()) if path.is_absolute() else str(path)
            ui.info(
                f"API keys (send one in the X-API-Key header): {where}; "
                "list them with `sls-py api-keys`"
            )
            if not spec.gateway.api_keys:
                ui.warn(
                    "routes require an API key but the app declares no keys: "
                    "every request will get 403"
                )
        if limiter.active and any(r.api_key for r in routes):
            ui.info(f"usage limits (enforced): {limiter.describe()}")
            if spec.gateway.usage is not None and spec.gateway.usage.quota is not None:
                ui.info(
                    "not emulated locally: persistent usage quotas "
                    "(quota counts start from zero each time `sls-py run` starts)"
                )
        logs = log_dir(self.project.state_dir, spec.stage)
        ui.info(f"hot reload: {'on' if self.options.reload else 'off'}; logs: {logs}")
        bytecode = project_bytecode(self.project.root, self.project.root / spec.source, spec.app_ref)
        self.pycache_prefix = str(bytecode.prefix) if bytecode.prefix is not None else None
        line = bytecode.describe(self.project.state_dir)
        if line is not None:  # plain, not ui.warn: styled output would import rich
            ui.info(line)

    async def _drain(self) -> None:
        """Wait until no invocation runs or waits (a restart lets them finish),
        for at most the longest function timeout."""
        limit = max((fn.timeout_s for fn in self.spec.functions), default=0.0)
        deadline = asyncio.get_running_loop().time() + limit
        while any(p.busy() for p in self.pools.values()):
            if asyncio.get_running_loop().time() > deadline:
                return
            await asyncio.sleep(0.02)

    async def _reap(self, settings: PoolSettings) -> None:
        period = max(0.05, min(1.0, settings.idle_timeout_s / 2))
        while True:
            await asyncio.sleep(period)
            for pool in self.pools.values():
                pool.reap()

    async def _watch(self) -> None:
        """Reload on every change of the app's source or ``pyproject.toml``; a change
        that comes while a reload runs supersedes it (its new templates, which may
        have imported the code of before, are stopped and started again)."""
        from watchfiles import PythonFilter, awatch

        source = (self.project.root / self.spec.source).resolve()
        config = (self.project.root / "pyproject.toml").resolve()
        paths = [source] if config.is_relative_to(source) else [source, config]
        watch_filter = PythonFilter(
            ignore_paths=[str(self.project.state_dir.resolve())], extra_extensions=(".toml",)
        )
        loop = asyncio.get_running_loop()
        reloading: asyncio.Task[None] | None = None
        try:
            async for changes in awatch(
                *paths,
                watch_filter=watch_filter,
                stop_event=self.stop_event,
                debounce=WATCH_DEBOUNCE_MS,
                step=WATCH_STEP_MS,
            ):
                names = ", ".join(sorted({Path(p).name for _, p in changes}))
                self.logs.gateway(f"source changed ({names}): reloading the functions")
                _forget_bytecode((path for _, path in changes), self.pycache_prefix)
                if reloading is not None and not reloading.done():
                    reloading.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await reloading
                reloading = loop.create_task(self._reload())
        finally:
            if reloading is not None:
                reloading.cancel()

    async def _reload(self) -> None:
        """One reload: start the new templates at once (one per group of functions,
        the busiest groups' first, as many at a time as the workers have cores) and,
        from the first that has imported the new code, learn whether the spec
        changed; if it did, restart ``sls-py run`` in place without waiting for the
        others."""
        loop = asyncio.get_running_loop()
        groups = sorted(self.groups, key=lambda g: g.last_used(), reverse=True)
        first_ready: asyncio.Future[Template] = loop.create_future()
        slots = asyncio.Semaphore(self._reload_slots())

        async def reload_one(group: TemplateGroup) -> None:
            async with slots:
                new = await group.reload()
            if new is not None and not first_ready.done():
                first_ready.set_result(new)

        tasks = [loop.create_task(reload_one(g)) for g in groups]
        everything = asyncio.gather(*tasks, return_exceptions=True)
        spec_check = loop.create_task(self._spec_check(first_ready, everything))
        try:
            changed = await spec_check
            if changed and self.can_restart:
                self.logs.gateway(f"{changed}: restarting `sls-py run` to apply it")
                self._keep_new_spec()  # the restart then starts warm (sls_py.speccache)
                self.restart = True
                self.stop_event.set()
                return
            results = await everything
        finally:
            for task in [*tasks, spec_check]:
                task.cancel()
            if not first_ready.done():
                first_ready.cancel()
        if changed:
            self.logs.gateway(f"{changed}: restart the server to apply it")
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            self.logs.gateway(
                "reload failed; the previous code keeps serving until this is fixed:\n"
                + str(failures[0]).rstrip()
            )
        else:
            self.logs.gateway("reloaded: new requests go to the new code")
        await self._keep_spare()

    def _spare_later(self, tasks: list[asyncio.Task[Any]]) -> None:
        """Start the first spare template once start-up is over."""

        async def later() -> None:
            http = [p for p in self.pools.values() if p.fn.http_triggers()]
            await asyncio.gather(*(p.start(prewarm=0) for p in http))
            await self._keep_spare()

        tasks.append(asyncio.get_running_loop().create_task(later()))

    async def _keep_spare(self) -> None:
        """After ``SPARE_DELAY_S`` of quiet, keep one spare template (see
        :attr:`.group.TemplateGroup.spare`), for the group of the function used
        last: the next reload of that group then imports only the app's own modules."""
        await asyncio.sleep(SPARE_DELAY_S)
        ready = [g for g in self.groups if g.template is not None and g.serves_http()]
        if not ready:
            return
        chosen = max(ready, key=lambda g: g.last_used())
        for group in self.groups:
            if group is not chosen:
                group.close_spare()
        chosen.start_spare()

    def _reload_slots(self) -> int:
        """How many templates a reload starts at once: one per core the workers run
        on (more would only make the first one, which requests wait for, slower)."""
        assert self.prepared is not None
        cpus = self.prepared.cache_cpus()
        return len(cpus) if cpus else max(1, (os.cpu_count() or 1) - 1)

    async def _spec_check(
        self, first_ready: asyncio.Future[Template], everything: asyncio.Future[Any]
    ) -> str | None:
        """What changed in the spec: asked of the first new template (it has imported
        the new code anyway), or, when no template imported it, of ``sls-py spec``."""
        await asyncio.wait([first_ready, everything], return_when=asyncio.FIRST_COMPLETED)
        if not first_ready.done() or first_ready.cancelled():
            return await self._spec_change()
        try:
            answer = await asyncio.wait_for(first_ready.result().report_spec(), SPEC_CHECK_TIMEOUT_S)
        except (TemplateFailed, TimeoutError, OSError, ValueError):
            return None  # superseded or stopped meanwhile
        if "spec" not in answer:
            self.logs.gateway(
                "the app's spec does not build from the changed code, so routes and "
                f"settings stay as they were: {answer.get('error', '')}"
            )
            return None
        self.new_spec = answer["spec"]
        return describe_spec_change(self._spec_json(), answer["spec"])

    def _keep_new_spec(self) -> None:
        """Keep the spec the new code builds (from the reload's first template) where
        the restarted ``sls-py run`` finds it: the restart is then a warm start
        instead of building the spec again with the CLI and pydantic. Best effort:
        the restart builds it as before when this cannot be done, and a warm start
        checks its copy in the background anyway."""
        key = self.options.spec_key
        if self.new_spec is None or key is None:
            return
        from sls_py import speccache
        from sls_py.provider import spec_notes
        from sls_py.spec import Spec

        from . import plugin

        try:
            spec = Spec.from_data(self.new_spec)
            notes = spec_notes(plugin.sls_py_provider_info(), spec)
        except Exception:  # a spec the provider refuses: the restart says why
            speccache.discard(self.project.root)
            return
        speccache.store(
            self.project.root,
            key[0],
            key[1],
            spec=spec,
            provider_name="local",
            plugin=plugin,
            notes=notes,
            project_name=self.project.name,
        )

    def _spec_json(self) -> dict[str, Any]:
        """The running spec in JSON form (what ``sls-py spec`` prints), computed once."""
        if self.spec_json is None:
            self.spec_json = json.loads(json.dumps(self.spec.to_data()))
        return self.spec_json

    async def _check_cached_spec(self, starting: list[asyncio.Task[Any]]) -> None:
        """This run started from the spec cached by an earlier one (see
        :mod:`sls_py.speccache`): build the spec again, at low priority, and
        restart in place if the app now declares something else (a declaration
        that depends on an environment variable, or on a file the cache's
        fingerprint does not cover). Only once the first templates are ready:
        the check imports the app too, and must not compete with them."""
        await asyncio.gather(*starting, return_exceptions=True)
        await asyncio.sleep(CACHED_SPEC_CHECK_DELAY_S)
        changed = await self._spec_change(low_priority=True)
        if changed is None or self.stop_event.is_set():
            return
        from sls_py import speccache

        speccache.discard(self.project.root)  # the restart builds the spec afresh
        if self.can_restart:
            self.logs.gateway(f"the cached spec is out of date ({changed}): restarting `sls-py run`")
            self.restart = True
            self.stop_event.set()
        else:
            self.logs.gateway(f"the cached spec is out of date ({changed}): restart the server")

    async def _spec_change(self, *, low_priority: bool = False) -> str | None:
        """What changed in the app's spec since start-up (functions, routes,
        triggers, settings), or ``None``: unchanged, or the new code does not
        build a spec (the reload reports why). Built by ``sls-py spec`` in a
        process of its own: the gateway never imports the app's new code.

        :param low_priority: run that process at nice 10 (a check in the background)."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "sls_py",
            "spec",
            "-p",
            str(self.project.root),
            "--stage",
            self.spec.stage,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            stdin=asyncio.subprocess.DEVNULL,
            preexec_fn=(lambda: os.nice(10)) if low_priority else None,
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), SPEC_CHECK_TIMEOUT_S)
        except TimeoutError:  # an import that never ends: the reload reports it
            proc.kill()
            await proc.wait()
            return None
        if proc.returncode != 0:
            return None
        try:
            new = json.loads(out)
        except ValueError:
            return None
        return describe_spec_change(self._spec_json(), new)


def _threadsafe(loop: asyncio.AbstractEventLoop, log: Any) -> Any:
    """``log`` callable from any thread (a server supervisor's report)."""

    def report(line: str) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody to tell
            loop.call_soon_threadsafe(log, line)

    return report


#: longest the rest of start-up waits for the HTTP functions' first templates
FIRST_TEMPLATES_WAIT_S = 5.0

#: longest the rest of start-up then waits for the requests already in
#: flight (under a load that never pauses, it starts after this)
FIRST_REQUESTS_WAIT_S = 2.0
#: longest PostgreSQL waits for them (a first request that queries waits for it)
DATABASE_AFTER_REQUESTS_S = 0.25


async def _answered(pools: list[FunctionPool], limit_s: float) -> None:
    """Return once none of ``pools`` has an invocation running or waiting (or
    after ``limit_s``)."""
    deadline = asyncio.get_running_loop().time() + limit_s
    while any(p.busy() for p in pools) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.002)


#: how long after the first templates are ready a warm start checks its cached
#: spec (the first requests are served meanwhile, not competing with the check)
CACHED_SPEC_CHECK_DELAY_S = 1.0

#: longest the spec of changed code may take to build before the check gives up
SPEC_CHECK_TIMEOUT_S = 60.0
#: watchfiles' grouping of changes: a batch is handed over once no new change came
#: for one to two steps (its default, 50 ms, was most of a reload's wait), or after
#: ``debounce`` ms of changes that keep coming
WATCH_STEP_MS = 10
WATCH_DEBOUNCE_MS = 200
#: how long after start-up or a reload the spare template starts (its imports
#: would otherwise compete with the new generation's first workers)
SPARE_DELAY_S = 0.5


def describe_spec_change(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """A line naming what differs between two specs (``Spec.model_dump`` in JSON
    form), or ``None`` when nothing does."""
    if old == new:
        return None
    before = {f["name"]: f for f in old.get("functions", [])}
    after = {f["name"]: f for f in new.get("functions", [])}
    parts = []
    added = sorted(after.keys() - before.keys())
    removed = sorted(before.keys() - after.keys())
    changed = sorted(n for n in before.keys() & after.keys() if before[n] != after[n])
    if added:
        parts.append(f"functions added: {', '.join(added)}")
    if removed:
        parts.append(f"functions removed: {', '.join(removed)}")
    if changed:
        parts.append(f"functions changed: {', '.join(changed)}")
    others = sorted(k for k in old.keys() | new.keys() if k != "functions" and old.get(k) != new.get(k))
    if others:
        parts.append(f"app settings changed: {', '.join(others)}")
    return "the app's spec changed (" + "; ".join(parts) + ")"


def _forget_bytecode(paths: Iterable[str], prefix: str | None = None) -> None:
    """Delete the cached bytecode of changed sources (beside them, and under the
    function processes' ``PYTHONPYCACHEPREFIX`` if they have one).

    Python trusts a ``.pyc`` whose recorded source mtime (whole seconds) and size
    match, so an edit that keeps the size within the second of the last compile
    (``"v1"`` -> ``"v2"``) would otherwise reload the old code.
    """
    for path in paths:
        if path.endswith(".py"):
            with contextlib.suppress(OSError, ValueError):
                Path(importlib.util.cache_from_source(path)).unlink(missing_ok=True)
            if prefix:
                with contextlib.suppress(OSError, ValueError):
                    _prefixed_cache(path, prefix).unlink(missing_ok=True)


def _prefixed_cache(path: str, prefix: str) -> Path:
    """Where Python with ``PYTHONPYCACHEPREFIX=prefix`` caches the bytecode of
    ``path`` (absolute): the source's folder mirrored under ``prefix``."""
    source = Path(os.path.abspath(path))
    name = Path(importlib.util.cache_from_source(str(source))).name
    return Path(prefix) / source.parent.relative_to(source.anchor) / name


def read_server_url(project: Project, stage: str) -> str | None:
    """The URL of the stage's running local server, if one runs (from the
    ``run.json`` it keeps while it holds the stage's run lock)."""
    info = running_instance(project.state_dir / "local" / stage)
    gateway = info.get("gateway") if info is not None else None
    return str(gateway) if gateway else None


def serve(
    spec: Spec,
    project: Project,
    options: RunOptions,
    ui: UI,
    prepared: Prepared | None = None,
    *,
    restart_in_place: bool = False,
) -> int:
    """Run the local server in a uvloop event loop until stopped.

    :param prepared: from :func:`.launch.prepare`, called before this module was
        imported (the templates it started are adopted, and killed on the way out).
    :param restart_in_place: when a source change alters the spec, re-execute
        this process's command line (what ``sls-py run`` wants; a program that
        embeds the server gets a log line asking for a restart instead).
    """
    if prepared is None:
        prepared = prepare(spec, project, options)
    try:
        try:
            import uvloop

            factory: Any = uvloop.new_event_loop
        except ImportError:  # not available on this platform: the stdlib loop works too
            factory = None
        server = LocalServer(spec, project, options, ui, prepared)
        server.can_restart = restart_in_place
        with asyncio.Runner(loop_factory=factory) as runner:
            code = runner.run(server.run())
    finally:
        prepared.close()
    if server.restart:
        _restart(server.handoff_fd, server.resume_clock)
    return code


#: the simulated time a restarting ``sls-py run --clock`` had reached
RESUME_CLOCK_ENV = "SLS_PY_RESUME_CLOCK"


def _restart(listen_fd: int | None, resume_clock: str | None) -> None:
    """Run this ``sls-py run`` again in this process (same pid, same arguments),
    its listening socket handed over as ``SLS_PY_LISTEN_FD`` and a simulated
    clock's time as ``SLS_PY_RESUME_CLOCK`` (schedules do not replay)."""
    env = dict(os.environ)
    env.pop(LISTEN_FD_ENV, None)
    env.pop(RESUME_CLOCK_ENV, None)
    if listen_fd is not None:
        env[LISTEN_FD_ENV] = str(listen_fd)
    if resume_clock is not None:
        env[RESUME_CLOCK_ENV] = resume_clock
    sys.stdout.flush()
    sys.stderr.flush()
    unpin()  # the new image chooses its own cores (exec keeps the affinity)
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)
