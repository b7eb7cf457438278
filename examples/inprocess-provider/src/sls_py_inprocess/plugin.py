"""The ``inprocess`` provider's hook implementations.

Registered in this distribution's ``pyproject.toml``::

    [project.entry-points.sls_py]
    inprocess = "sls_py_inprocess.plugin"

Heavy imports (uvicorn, the runner) happen inside hooks, so ``sls-py --help`` stays fast.
"""

from __future__ import annotations

import json
import secrets
import shutil
from typing import TYPE_CHECKING, Any

from sls_py import hookimpl
from sls_py.config import Project
from sls_py.errors import ConfigError, ProviderError, SpecError
from sls_py.provider import (
    ApiKey,
    ConfigEntry,
    DeployResult,
    Invocation,
    Plan,
    PlanStep,
    ProviderInfo,
    RunOptions,
    TriggerRequest,
)
from sls_py.runtime import Payload
from sls_py.spec import Spec
from sls_py.ui import UI

from . import __version__

if TYPE_CHECKING:
    from .runner import Runner

_runners: dict[tuple[str, str], Runner] = {}


def runner_for(spec: Spec, project: Project) -> Runner:
    """The runner of this project and spec (kept while the spec is unchanged)."""
    from .runner import Runner

    key = (str(project.root), spec.model_dump_json())
    if key not in _runners:
        _runners[key] = Runner(spec, project)
    return _runners[key]


@hookimpl
def sls_py_provider_info() -> ProviderInfo:
    """Name, version and capabilities of ``inprocess``."""
    return ProviderInfo(
        name="inprocess",
        version=__version__,
        description="Runs functions inside the calling process: fast tests, no workers.",
        capabilities=frozenset(
            {
                "invoke",
                "trigger.http",
                "http.api_key",
                "http.cors",
                "trigger.schedule",
                "trigger.upload",
                "trigger.queue",
                "resource.bucket",
                "resource.queue",
                "resource.table",
                "function.timeout",
                "function.memory",
                "resource.config",
            }
        ),
        not_emulated={
            "function.memory": "memory limits are not enforced: functions share this process"
        },
    )


@hookimpl
def sls_py_validate_spec(spec: Spec, project: Project) -> list[str]:
    """Refuse what cannot work in one process; warn about what is simplified."""
    for fn in spec.functions:
        for name in fn.environment:
            if name.startswith("SLS_PY_"):
                raise SpecError(
                    f"function {fn.name!r} sets {name}: SLS_PY_* variables belong to sls-py",
                    hint="rename the variable",
                )
    return [
        f"queue {q.name!r}: failed messages are retried at once, without waiting "
        f"visibility_timeout_s ({q.visibility_timeout_s} s), before the dead-letter file"
        for q in spec.queues
        if q.max_receives > 1
    ]


@hookimpl
def sls_py_invoke(spec: Spec, project: Project, function: str, payload: Any) -> Invocation:
    """Run ``function`` with ``payload`` in this process."""
    outcome, request_id = runner_for(spec, project).run(function, Payload(payload))
    return Invocation(
        function=function, result=outcome.result, error=outcome.error, request_id=request_id
    )


def _url_file(spec: Spec, project: Project) -> Any:
    from .runner import state_root

    return state_root(spec, project) / "url"


@hookimpl
def sls_py_run(spec: Spec, project: Project, options: RunOptions, ui: UI) -> int:
    """Serve the app's routes over HTTP until stopped."""
    from .gateway import Gateway, serve

    keys = [k.value for k in sls_py_api_keys(spec, project)]
    gateway = Gateway(runner_for(spec, project), keys)
    url_file = _url_file(spec, project)

    def announce(url: str) -> None:
        url_file.parent.mkdir(parents=True, exist_ok=True)
        url_file.write_text(url, encoding="utf-8")
        ui.info(f"inprocess: serving {spec.app} ({spec.stage}) at {url}")
        for fn in spec.functions:
            for t in fn.http_triggers():
                ui.info(f"  {t.method:6} {url}{t.path}" + ("  (API key)" if t.api_key else ""))

    try:
        return serve(gateway, options.host, options.port, announce)
    finally:
        url_file.unlink(missing_ok=True)


@hookimpl
def sls_py_url(spec: Spec, project: Project) -> str:
    """The URL of the running ``sls-py run`` server of this stage."""
    try:
        return _url_file(spec, project).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProviderError(
            f"no inprocess server is running for stage {spec.stage!r}",
            hint="start one with `sls-py run --provider inprocess`",
        ) from None


@hookimpl
def sls_py_api_keys(spec: Spec, project: Project) -> list[ApiKey]:
    """The stage's API keys, generated once and kept in the state folder."""
    from .runner import state_root

    path = state_root(spec, project) / "api-keys.json"
    keys: dict[str, str] = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    missing = [name for name in spec.gateway.api_keys if name not in keys]
    if missing:
        keys.update({name: secrets.token_urlsafe(24) for name in missing})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(keys), encoding="utf-8")
        path.chmod(0o600)
    return [ApiKey(name, keys[name]) for name in spec.gateway.api_keys]


@hookimpl
def sls_py_trigger(spec: Spec, project: Project, request: TriggerRequest) -> Any:
    """Upload an object, fire a schedule or send a message; report what ran."""
    from .runner import describe

    runner = runner_for(spec, project)
    if request.kind == "schedule":
        return {"function": request.target, **describe(runner.fire_schedule(request.target))}
    if request.kind == "upload":
        bucket = next(b for b in spec.buckets if b.name == request.target)
        runner.driver.bucket(bucket.name, bucket.qualified_name).put(
            request.key or "", request.data or b""
        )
    else:
        queue = next(q for q in spec.queues if q.name == request.target)
        runner.driver.queue(queue.name, queue.qualified_name).send(
            (request.data or b"").decode("utf-8")
        )
    return [{"function": name, **describe(outcome)} for name, outcome in runner.fire_pending()]


# --- deploy: record which functions and resources are "deployed" ---------------


def _inventory(spec: Spec | None) -> dict[str, str]:
    """``kind:name`` -> a fingerprint of its settings."""
    if spec is None:
        return {}
    out = {f"function:{f.name}": f.model_dump_json() for f in spec.functions}
    out.update({f"bucket:{b.name}": b.model_dump_json() for b in spec.buckets})
    out.update({f"queue:{q.name}": q.model_dump_json() for q in spec.queues})
    out.update({f"table:{t.name}": t.model_dump_json() for t in spec.tables})
    return out


def _deployed(spec: Spec, project: Project) -> dict[str, str]:
    from .runner import state_root

    path = state_root(spec, project) / "deployed.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def _diff(before: dict[str, str], after: dict[str, str]) -> Plan:
    steps = []
    for item in sorted(after.keys() | before.keys()):
        kind, name = item.split(":", 1)
        if item not in before:
            steps.append(PlanStep("create", kind, name, "new"))
        elif item not in after:
            steps.append(PlanStep("delete", kind, name, "no longer in the app"))
        elif before[item] != after[item]:
            steps.append(PlanStep("update", kind, name, "settings changed"))
    return Plan(steps)


@hookimpl
def sls_py_plan(spec: Spec, project: Project) -> Plan:
    """What ``deploy`` would record, compared with the last deploy."""
    return _diff(_deployed(spec, project), _inventory(spec))


@hookimpl
def sls_py_deploy(spec: Spec, project: Project, ui: UI) -> DeployResult:
    """Record the stage as deployed (functions run on demand; nothing to upload)."""
    from .runner import state_root

    plan = sls_py_plan(spec, project)
    for step in plan.steps:
        ui.step(step.action, step.kind, step.name, step.reason)
    path = state_root(spec, project) / "deployed.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_inventory(spec)), encoding="utf-8")
    return DeployResult(applied=plan.steps, url=None, api_keys=list(spec.gateway.api_keys))


@hookimpl
def sls_py_remove(spec: Spec, project: Project) -> Plan:
    """Forget the stage: its deployment record and its resources' data."""
    from .runner import state_root

    plan = _diff(_deployed(spec, project), {})
    root = state_root(spec, project)
    if root.exists():
        shutil.rmtree(root)
    return plan


# --- config: sls-py's file store under .sls-py/inprocess/<stage>/config/ ------------


def _config_store(spec: Spec, project: Project) -> Any:
    from sls_py.configfile import FileConfigStore

    from .runner import state_root

    return FileConfigStore(state_root(spec, project) / "config")


@hookimpl
def sls_py_config_get(
    spec: Spec, project: Project, keys: list[str] | None, reveal: bool
) -> list[ConfigEntry]:
    """The stage's config; secrets' values only with ``reveal``."""
    store = _config_store(spec, project)
    entries = [ConfigEntry(k, v, False) for k, v in store.plain().items()]
    entries += [ConfigEntry(k, v if reveal else None, True) for k, v in store.secrets().items()]
    return sorted((e for e in entries if keys is None or e.key in keys), key=lambda e: e.key)


@hookimpl
def sls_py_config_set(spec: Spec, project: Project, key: str, value: str, secret: bool) -> ConfigEntry:
    """Write one key (atomically); running functions see it within their TTL."""
    store = _config_store(spec, project)
    if not secret and key in store.secrets():
        raise ConfigError(
            f"config key {key!r} of stage {spec.stage!r} is a secret",
            hint=f"pass --secret to change it, or `sls-py config unset {key}` first",
        )
    store.set(key, value, secret)
    return ConfigEntry(key, None if secret else value, secret)


@hookimpl
def sls_py_config_unset(spec: Spec, project: Project, keys: list[str]) -> list[str]:
    """Delete keys of the stage's config."""
    removed: list[str] = _config_store(spec, project).unset(keys)
    return removed
