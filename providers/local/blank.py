"""Early starts: function processes started before the spec is loaded.

A warm ``sls-py run`` or ``sls-py invoke`` (:mod:`sls_py.entry`) reads the
cached spec as plain JSON and calls :func:`prestart` before it builds the
``Spec`` object, imports this provider's plugin or settles ports: the
function processes it needs (the HTTP functions' templates; the invoked
function's process) start at once, with the environment of the entry process
and ``SLS_PY_BLANK=1``. Each then gets its environment in two steps:

1. at once, the part that the spec and ``os.environ`` alone decide
   (:func:`static_environment`: the function's own variables, ``PYTHONPATH``,
   ``SLS_PY_APP``...): the process imports the app with it;
2. once the caller has settled the rest (the caches' ports, the invoke
   endpoint, the cores), the whole environment, applied before the handler's
   first call.

The app therefore imports while the entry process loads the spec and the
provider's modules, instead of after. What is started but not taken (a
fallback to the CLI, a spec that changed) exits with its parent
(``PR_SET_PDEATHSIG``) or when its pipe closes. A process whose start-up
variables (``PYTHON*`` other than those :func:`adopt` applies) would differ
is not used: the caller starts a fresh one, exactly as without early starts.

Standard library only.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from . import sharing

#: marks a process started early: it waits for its environment first
BLANK_ENV = "SLS_PY_BLANK"
#: start-up variables that :func:`adopt` applies in a running interpreter
_APPLIED = frozenset({"PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX", "PYTHONUNBUFFERED"})

_started: dict[tuple[str, str], Early] = {}


class Early:
    """A process started early for ``function``, and the environment it has so far.

    For a template, ``sock`` is the gateway's end of its control socket; for a
    one-shot process, ``proc.stdin`` takes its environment and request."""

    def __init__(
        self, kind: str, function: str, proc: subprocess.Popen[bytes], sock: socket.socket | None,
        base: dict[str, str], env: dict[str, str], cwd: Path,
    ) -> None:
        self.kind, self.function, self.proc, self.sock = kind, function, proc, sock
        self.base = base  # the environment it was started with
        self.env = env  # what step 1 gave it
        self.cwd = cwd

    def fits(self, env: dict[str, str], cwd: Path) -> bool:
        """Whether ``env`` (the whole environment) is what this process would have
        been started with: the same folder, the same start-up variables, and
        nothing step 1 set changed."""
        if Path(cwd).resolve() != self.cwd or self.proc.poll() is not None:
            return False
        startup = {k for k in (*env, *self.base) if k.startswith("PYTHON") and k not in _APPLIED}
        if any(env.get(k) != self.base.get(k) for k in startup):
            return False
        # which functions a template serves it reads after step 2 (a cold start's
        # early template, from the last start's spec, may serve one more or less);
        # whether the app was imported with a function's name, it must not
        if env.get("SLS_PY_FUNCTION") != self.env.get("SLS_PY_FUNCTION"):
            return False
        return all(env.get(k) == v for k, v in self.env.items() if k != sharing.FUNCTIONS_ENV)

    def close(self) -> None:
        """Stop the process (not taken)."""
        if self.sock is not None:
            self.sock.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def static_environment(
    root: Path, source: str, app_ref: str, stage: str, function: str, environment: dict[str, str]
) -> dict[str, str]:
    """A function process's environment as far as the spec and ``os.environ``
    decide it: this process's variables (not ``SLS_PY_*``), the function's own
    (``${env:NAME}`` resolved), the app's folder on ``PYTHONPATH``, and where the
    bytecode goes (see :mod:`.bytecode`). :func:`.oneshot.function_environment`
    adds the resources."""
    from sls_py.project import resolve_environment

    from .bytecode import project_bytecode

    env = {k: v for k, v in os.environ.items() if not k.startswith("SLS_PY_")}
    env.update(resolve_environment(environment))
    folder = str((root / source).resolve())
    env["PYTHONPATH"] = os.pathsep.join(p for p in (folder, env.get("PYTHONPATH", "")) if p)
    env["SLS_PY_APP"] = app_ref
    env["SLS_PY_SOURCE"] = folder
    env["SLS_PY_FUNCTION"] = function
    env["SLS_PY_STAGE"] = stage
    env["SLS_PY_PROVIDER"] = "local"
    env["SLS_PY_PROJECT"] = str(root)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(project_bytecode(root, Path(folder), app_ref).environment())
    return env


def adopt(env: dict[str, str]) -> None:
    """Make ``env`` this process's environment, as if it had started with it:
    ``os.environ``, the ``PYTHONPATH`` entries on ``sys.path`` (where the
    interpreter puts them: after the first entry), whether and where bytecode
    is written, unbuffered standard streams."""
    before = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    after = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if before != after:
        if sys.path[1 : 1 + len(before)] == before:
            del sys.path[1 : 1 + len(before)]
        sys.path[1:1] = after
    os.environ.clear()
    os.environ.update(env)
    sys.dont_write_bytecode = bool(env.get("PYTHONDONTWRITEBYTECODE"))
    sys.pycache_prefix = env.get("PYTHONPYCACHEPREFIX") or None
    if env.get("PYTHONUNBUFFERED"):
        for stream in (sys.stdout, sys.stderr):
            reconfigure = getattr(stream, "reconfigure", None)
            if reconfigure is not None:
                reconfigure(write_through=True)


def prestart(command: str, root: Path, spec: dict[str, Any], function: str | None = None) -> None:
    """Start the processes ``command`` will need (called by :mod:`sls_py.entry`
    with the cached spec in its JSON form): for ``run``, the templates of the
    groups of functions with an HTTP one (see :mod:`.sharing`), each under its
    first function's name; for ``invoke``, ``function``'s process. Best effort: a process
    that cannot be started here is started the usual way later."""
    try:
        functions = {f["name"]: f for f in spec["functions"]}
        made: dict[str, dict[str, str]] = {}  # by the function's own variables

        def environment(name: str) -> dict[str, str]:
            declared = functions[name]["environment"]
            key = json.dumps(declared, sort_keys=True)
            if key not in made:
                made[key] = static_environment(
                    root, spec["source"], spec["app_ref"], spec["stage"], name, declared
                )
            return {**made[key], "SLS_PY_FUNCTION": name}

        if command == "run":  # one template per group of functions with an HTTP one
            envs = {name: environment(name) for name in functions}
            share = sharing.sharing_on((spec.get("providers") or {}).get("local") or {})
            for names in sharing.groups(envs, share):
                if any(t.get("kind") == "http" for n in names for t in functions[n]["triggers"]):
                    env = sharing.template_environment(names, envs[names[0]])
                    _started[("template", names[0])] = _start("template", names[0], env, root)
        elif command == "invoke" and function is not None and function in functions:
            _started[("oneshot", function)] = _start("oneshot", function, environment(function), root)
    except Exception:  # best effort: the usual start follows
        pass


def _start(kind: str, function: str, env: dict[str, str], root: Path) -> Early:
    base = {**os.environ, BLANK_ENV: "1"}
    sock = None
    if kind == "oneshot":
        proc = subprocess.Popen(
            [sys.executable, "-m", "sls_py_local.oneshot"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=base,
            cwd=str(root),
        )
    else:
        proc, sock = start_template(base, root)
    early = Early(kind, function, proc, sock, base, env, root.resolve())
    send(early, env)  # step 1
    return early


def start_template(env: dict[str, str], cwd: Path) -> tuple[subprocess.Popen[bytes], socket.socket]:
    """Start ``python -m sls_py_local.template`` with ``env`` (plus its control
    socket's fd and this process's pid); the process and the socket's other end."""
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    env = {**env, "SLS_PY_CONTROL_FD": str(child.fileno()), "SLS_PY_PARENT_PID": str(os.getpid())}
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sls_py_local.template"],
            env=env,
            cwd=str(cwd),
            pass_fds=[child.fileno()],
            stdin=subprocess.DEVNULL,
        )
    except BaseException:
        parent.close()
        raise
    finally:
        child.close()
    return proc, parent


def take(kind: str, function: str, env: dict[str, str], cwd: Path) -> Early | None:
    """The process started early for ``function`` (``kind``: ``"template"`` or
    ``"oneshot"``), if it fits ``env`` and ``cwd`` (see :meth:`Early.fits`);
    one that does not fit is stopped. ``None``: start one the usual way."""
    early = _started.pop((kind, function), None)
    if early is None:
        return None
    if not early.fits(env, cwd):
        early.close()
        return None
    return early


def discard() -> None:
    """Stop every process started early and not taken."""
    while _started:
        _started.popitem()[1].close()


def send(early: Early, env: dict[str, str]) -> None:
    """Step 2: give ``early`` (taken) its whole environment."""
    message = json.dumps({"op": "environment", "env": env}).encode()
    if early.sock is not None:
        early.sock.send(message)
    else:
        assert early.proc.stdin is not None
        early.proc.stdin.write(message + b"\n")
        early.proc.stdin.flush()


def receive(data: bytes) -> bool:
    """In a process started early: apply the environment message ``data`` with
    :func:`adopt`; ``False`` for none (the parent closed the pipe: exit)."""
    if not data:
        return False
    adopt(json.loads(data)["env"])
    return True
