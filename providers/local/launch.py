"""Starting the functions' template processes early in ``sls-py run``.

A template (:mod:`.template`) is a fresh interpreter that imports the app: the
longest part of the local server's cold start, and the first request waits for
it. Functions whose environments are equal but for what each worker sets for
itself share one template, which forks the workers of each (:mod:`.sharing`,
:func:`template_groups`). :func:`prepare` runs first in ``sls-py run``: it
checks the options, reads the pool settings, binds the gateway's port (for an
IP address; a host name is resolved and bound by the event loop later) and
starts the templates of the groups with an HTTP function before the gateway
imports its own modules (asyncio, uvloop, the services) and sets up its event
loop, so on a machine with two or more cores the template's import overlaps the
gateway's start-up. The gateway's :class:`~.handles.Template` then adopts the
started process (:attr:`.group.TemplateGroup.prestarted`).

No asyncio here: importing it is part of what the early start overlaps.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sls_py.errors import ConfigError
from sls_py.project import Project
from sls_py.provider import RunOptions
from sls_py.spec import Spec

from . import blank, sharing
from .oneshot import function_environment, local_resources
from .runfile import RunLock
from .settings import CpuLayout, PoolSettings, apply_layout, cpu_layout, pool_settings

if TYPE_CHECKING:
    from .blank import Process


class Launch:
    """A started template process and the gateway's end of its control socket."""

    def __init__(self, proc: Process, sock: socket.socket) -> None:
        self.proc, self.sock = proc, sock

    def close(self) -> None:
        """Kill the process (if still running) and close the socket; idempotent."""
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        self.sock.close()


def launch_template(
    env: dict[str, str], memory_mb: int | None, cwd: Path, cpus: set[int] | None = None
) -> Launch:
    """Start ``python -m sls_py_local.template`` with a template's environment
    (:attr:`TemplateEnv.env`).

    :param memory_mb: the function's memory limit (``SLS_PY_MEMORY_MB``, which its
        workers apply); ``None`` for a template shared by several functions, whose
        workers each get their own from the ``spawn`` message.
    :param cpus: the cores it may import the app on (``sls-py run``'s start: every
        core the run may use); by default the workers' (``SLS_PY_CPUS``), off the
        gateway's. The template moves itself to the workers' cores once imported.
    """
    env = dict(env)
    if memory_mb is not None:
        env["SLS_PY_MEMORY_MB"] = str(memory_mb)
    workers = env.get("SLS_PY_CPUS")
    if cpus is None and workers:
        cpus = {int(c) for c in workers.split(",")}
    early = blank.take("template", sharing.template_name(env), env, cwd)
    if early is not None and early.sock is not None:  # started by sls_py.entry: importing already
        blank.send(early, env)
        if cpus:
            with contextlib.suppress(OSError, ValueError):
                os.sched_setaffinity(early.proc.pid, cpus)
        return Launch(early.proc, early.sock)
    proc, parent = blank.start_template(env, cwd)
    if cpus:  # a child inherits the gateway's own core otherwise
        with contextlib.suppress(OSError, ValueError):
            os.sched_setaffinity(proc.pid, cpus)
    return Launch(proc, parent)


@dataclass(frozen=True)
class TemplateEnv:
    """One template process's environment and the functions it serves.

    A group of one is a function's own template, as before sharing: its
    environment is the function's, ``SLS_PY_MEMORY_MB`` included. A shared one
    imports the app without any function's own keys (see :mod:`.sharing`): app
    code reading them at import time sees none, and each worker sets its
    function's (:attr:`overrides`) after the fork, before it runs anything of the
    function's."""

    #: the first function's name (its pool's log lines, :attr:`Prepared.launches`)
    name: str
    functions: tuple[str, ...]
    env: dict[str, str]
    #: ``SLS_PY_MEMORY_MB`` of a group of one (see :func:`launch_template`)
    memory_mb: int | None
    #: per function: what its workers set in ``os.environ`` (``None``: remove the key)
    overrides: dict[str, dict[str, str | None]] = field(default_factory=dict)


def template_groups(spec: Spec, envs: dict[str, dict[str, str]], share: bool = True) -> list[TemplateEnv]:
    """The template processes ``sls-py run`` needs: one per set of functions whose
    environments are equal but for what each worker sets for itself (see
    :mod:`.sharing`), or with ``share`` false one per function."""
    memory = {fn.name: fn.memory_mb for fn in spec.functions}
    out = []
    for names in sharing.groups({fn.name: envs[fn.name] for fn in spec.functions}, share):
        env = sharing.template_environment(names, envs[names[0]])
        if len(names) == 1:
            out.append(TemplateEnv(names[0], (names[0],), env, memory[names[0]]))
            continue
        overrides: dict[str, dict[str, str | None]] = {}
        for name in names:
            own: dict[str, str] = {**envs[name], "SLS_PY_MEMORY_MB": str(memory[name])}
            changes: dict[str, str | None] = {k: v for k, v in own.items() if env.get(k) != v}
            changes.update({k: None for k in env if k not in own and k != sharing.FUNCTIONS_ENV})
            overrides[name] = changes
        out.append(TemplateEnv(names[0], tuple(names), env, None, overrides))
    return out


@dataclass
class Prepared:
    """What ``sls-py run`` settled before the gateway starts: the pool settings,
    each function's environment, the template processes it needs, and those
    already started."""

    settings: PoolSettings
    envs: dict[str, dict[str, str]]
    #: the template processes (see :func:`template_groups`), in the spec's order
    groups: list[TemplateEnv] = field(default_factory=list)
    #: the templates started early, by :attr:`TemplateEnv.name`
    launches: dict[str, Launch] = field(default_factory=dict)
    #: the gateway's listening socket, bound early (``None`` for a host name)
    listener: socket.socket | None = None
    #: the stage's run lock, held while this run serves (``run.json``, see .runfile)
    lock: RunLock | None = None
    #: the internal ``ctx.invoke`` endpoint's socket and token (see .invoke_server),
    #: when a function declares ``invokes``
    invoke_listener: socket.socket | None = None
    invoke_token: str = ""
    #: where the gateway and the workers run (see .settings.cpu_layout)
    layout: CpuLayout = field(default_factory=lambda: CpuLayout(None, (), "not decided"))
    #: the cache servers, started beside the templates (a :class:`.caches.LocalCaches`),
    #: for the gateway to adopt: a worker's first cache call waits for them
    caches: Any = None

    def take(self, group: str) -> Launch | None:
        """The started template of ``group`` (a :attr:`TemplateEnv.name`; ``None``:
        the group has no HTTP function), for the group's first template to adopt."""
        return self.launches.get(group)

    def start_caches(self, spec: Spec, project: Project) -> None:
        """Start the stage's cache servers, once (:attr:`caches`); nothing for an
        app without a cache."""
        if spec.caches and self.caches is None:
            from .caches import LocalCaches

            self.caches = LocalCaches(spec, project, cpus=self.cache_cpus())
            self.caches.start()

    def cache_cpus(self) -> frozenset[int] | None:
        """Where the cache servers run: on the workers' cores (``SLS_PY_CPUS``), off
        the gateway's; ``None`` when nothing is pinned."""
        raw = next(iter(self.envs.values()), {}).get("SLS_PY_CPUS") if self.envs else None
        if not raw:
            return None
        return frozenset(int(c) for c in raw.split(","))

    def close(self) -> None:
        """Kill every template started here (their pools may have closed them
        already), stop the cache servers not adopted, close the listening socket."""
        for launch in self.launches.values():
            launch.close()
        if self.caches is not None:
            self.caches.stop()
            self.caches = None
        if self.listener is not None:
            self.listener.close()
        if self.invoke_listener is not None:
            self.invoke_listener.close()
        if self.lock is not None:
            self.lock.release()  # removes run.json


def bind_invoke() -> tuple[socket.socket, str]:
    """The internal ``ctx.invoke`` endpoint's socket (127.0.0.1, a free port) and
    a fresh token (see :mod:`.invoke_server`, which serves it)."""
    sock = socket.create_server(("127.0.0.1", 0), backlog=256)
    return sock, secrets.token_urlsafe(32)


def check_port(port: int) -> None:
    """Refuse a port number outside 0..65535 before anything starts."""
    if not 0 <= port <= 65535:
        raise ConfigError(
            f"--port {port} is not a TCP port",
            hint="use a number from 1 to 65535, or 0 for any free port",
        )


def listen(host: str, port: int) -> socket.socket | None:
    """A socket listening on ``host:port`` when ``host`` is an IP address (bound
    like ``loop.create_server`` binds it: ``SO_REUSEADDR``, IPv6 only for an IPv6
    address); ``None`` for a host name, which the event loop resolves and binds.

    Connections made before the gateway's loop runs wait in the backlog."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        try:
            return socket.create_server((host, port), family=family, backlog=4096)
        except OSError as exc:
            raise listen_error(host, port, exc) from None
    return None


def listen_error(host: str, port: int, exc: OSError) -> ConfigError:
    """The error for a port that cannot be listened on."""
    return ConfigError(
        f"cannot listen on {host}:{port}: {exc.strerror or exc}",
        hint="choose another port with --port (0 picks a free one)",
    )


#: a listening socket handed over by a restarting ``sls-py run`` (see server._restart)
LISTEN_FD_ENV = "SLS_PY_LISTEN_FD"


def inherited_listener() -> socket.socket | None:
    """The listening socket a restarting ``sls-py run`` handed over, if any
    (taken out of the environment, so no function process inherits it)."""
    fd = os.environ.pop(LISTEN_FD_ENV, None)
    if fd is None:
        return None
    try:
        sock = socket.socket(fileno=int(fd))
    except (OSError, ValueError):
        return None
    sock.set_inheritable(False)
    return sock


def prepare(spec: Spec, project: Project, options: RunOptions, *, launch: bool = True) -> Prepared:
    """Check the options, take the stage's run lock (a second ``sls-py run`` of the
    stage is refused here), settle each function's environment and which
    functions share a template, and (with ``launch``) bind the port and start
    the templates serving an HTTP function; on an error nothing is left running,
    bound or locked."""
    check_port(options.port)
    handed_over = inherited_listener()  # before any function's environment is made
    try:
        settings = pool_settings(spec)
        # every core this run may use, before the gateway pins itself to one: the
        # first templates import the app on all of them (see launch_template)
        start_cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
        layout = apply_layout(cpu_layout(settings))
        worker_cpus = layout.workers
        # SCHED_BATCH denies a woken worker the CPU until the running task's slice
        # ends: a handler waiting on PostgreSQL round trips paid ~2.5 ms a query on a
        # loaded machine (bench/local_database.py); so not for an app with a database,
        # unless sched_batch is set explicitly
        batch = settings.sched_batch and not (
            spec.databases and "sched_batch" not in spec.provider_settings("local")
        )
        envs: dict[str, dict[str, str]] = {}
        invoke_listener, invoke_token = None, ""
        if any(fn.invokes for fn in spec.functions):
            from .invoking import INVOKE_TOKEN_ENV, INVOKE_URL_ENV

            invoke_listener, invoke_token = bind_invoke()
        resources = local_resources(spec, project)
        for fn in spec.functions:
            env = function_environment(spec, project, fn, resources)
            if invoke_listener is not None and fn.invokes:
                env[INVOKE_URL_ENV] = f"http://127.0.0.1:{invoke_listener.getsockname()[1]}"
                env[INVOKE_TOKEN_ENV] = invoke_token
            if worker_cpus:
                env["SLS_PY_CPUS"] = ",".join(map(str, worker_cpus))
            if batch:
                env["SLS_PY_SCHED_BATCH"] = "1"
            if options.json_logs:
                env["SLS_PY_LOG_JSON"] = "1"  # workers format their log records
            envs[fn.name] = env
        prepared = Prepared(
            settings,
            envs,
            template_groups(spec, envs, settings.share_templates),
            listener=handed_over,
            invoke_listener=invoke_listener,
            invoke_token=invoke_token,
            layout=layout,
        )
        lock = RunLock(project.state_dir / "local" / spec.stage)
        lock.acquire()
    except BaseException:
        if handed_over is not None:
            handed_over.close()
        if invoke_listener is not None:
            invoke_listener.close()
        raise
    prepared.lock = lock
    try:
        if prepared.listener is None and launch:
            prepared.listener = listen(options.host, options.port)
        if launch:
            http = {fn.name for fn in spec.functions if fn.http_triggers()}
            for group in prepared.groups:
                if http.intersection(group.functions):
                    prepared.launches[group.name] = launch_template(
                        group.env, group.memory_mb, project.root, start_cpus
                    )
            blank.discard()  # an early start no group took (the groups changed): stop it
            prepared.start_caches(spec, project)  # now, not once the gateway has imported its modules
    except BaseException:
        prepared.close()
        raise
    return prepared
