"""The project: ``pyproject.toml``'s ``[tool.sls-py]`` table, and the spec it yields.

Example::

    [tool.sls-py]
    app = "work_magic.app:app"        # module:attribute of the App
    stage = "dev"                     # default stage
    provider = "local"                # default provider

    [tool.sls-py.stages.prod]
    memory_mb = 256                   # every function, this stage
    environment = { MAGIC_WORD = "${env:MAGIC_WORD}" }
    api_keys = ["partner"]
    [tool.sls-py.stages.prod.functions.work-magic]
    timeout_s = 10

    [tool.sls-py.providers.aws]
    region = "eu-west-1"

Errors name the file, the key and what is wrong. Nothing is applied until the
whole configuration has been checked.
"""

from __future__ import annotations

import os
import re
import sys
import tomllib
import traceback
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .app import (
    App,
    Cors,
    HttpTrigger,
    QueueTrigger,
    ScheduleTrigger,
    TableDef,
    UploadTrigger,
    UsageLimits,
)
from .errors import ConfigError, SpecError
from .migrations import database_spec
from .project import Project, resolve_environment
from .runtime.dispatch import signature_of
from .schedules import ScheduleSyntaxError, parse_schedule
from .spec import (
    BucketSpec,
    CacheSpec,
    CorsSpec,
    FunctionSpec,
    GatewaySpec,
    HttpTriggerSpec,
    QueueSpec,
    QueueTriggerSpec,
    ScheduleTriggerSpec,
    Spec,
    TableSpec,
    UploadTriggerSpec,
    UsageSpec,
    validated,
)

NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
_PARAM = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)(\+?)\}$")


class _Conf(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class CorsConfig(_Conf):
    origins: list[str] | None = None
    headers: list[str] | None = None
    methods: list[str] | None = None
    max_age_s: int | None = Field(None, ge=0)
    allow_credentials: bool | None = None


class UsageConfig(_Conf):
    rate: float | None = Field(None, gt=0)
    burst: int | None = Field(None, ge=1)
    quota: int | None = Field(None, ge=1)
    period: Literal["DAY", "WEEK", "MONTH"] | None = None


class FunctionOverride(_Conf):
    memory_mb: int | None = Field(None, ge=64, le=10240)
    timeout_s: float | None = Field(None, gt=0)
    environment: dict[str, str] = {}
    concurrency: int | None = Field(None, ge=1)


class StageConfig(FunctionOverride):
    api_keys: list[str] | None = None
    cors: CorsConfig | None = None
    usage: UsageConfig | None = None
    functions: dict[str, FunctionOverride] = {}
    providers: dict[str, dict[str, Any]] = {}
    config: dict[str, str | int | float | bool] = {}


class ProjectConfig(_Conf):
    """The ``[tool.sls-py]`` table."""

    app: str = Field(pattern=r"^[A-Za-z_][\w.]*(:[A-Za-z_][\w.]*)?$")
    stage: str = "dev"
    provider: str = "local"
    source: str = "."
    environment: dict[str, str] = {}
    api_keys: list[str] | None = None
    cors: CorsConfig | None = None
    usage: UsageConfig | None = None
    stages: dict[str, StageConfig] = {}
    providers: dict[str, dict[str, Any]] = {}
    config: dict[str, str | int | float | bool] = {}


def _loc(loc: tuple[Any, ...]) -> str:
    table = "tool.sls-py"
    parts = [str(p) for p in loc]
    key = parts.pop() if parts else ""
    if parts:
        table += "." + ".".join(parts)
    return f"[{table}] {key}".strip()


def load_project(path: str | Path) -> Project:
    """Read and check ``path/pyproject.toml``; raise :class:`ConfigError` naming the problem."""
    root = Path(path).resolve()
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file():
        raise ConfigError(
            f"no pyproject.toml in {root}",
            hint="run the command inside an sls-py project, pass --project PATH, "
            "or create one with `sls-py new NAME`",
        )
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{pyproject}: not valid TOML: {exc}") from None
    table = data.get("tool", {}).get("sls-py")
    if table is None:
        raise ConfigError(
            f"{pyproject}: no [tool.sls-py] table",
            hint='add [tool.sls-py] with app = "your_module:app"',
        )
    try:
        config = ProjectConfig.model_validate(table)
    except ValidationError as exc:
        first = exc.errors(include_url=False)
        lines = [f"{_loc(e['loc'])}: {e['msg']}" for e in first]
        raise ConfigError(
            f"{pyproject}: " + "; ".join(lines),
            hint="fix the key named above; see `sls-py spec --schema` and the README",
        ) from None
    for stage in [config.stage, *config.stages]:
        if not NAME_RE.match(stage):
            raise ConfigError(
                f"{pyproject}: stage name {stage!r} is not valid",
                hint="use lower-case letters, digits and '-', starting with a letter",
            )
    name = str(data.get("project", {}).get("name") or root.name)
    return Project(root=root, config=config, name=name)


__all__ = ["Project", "ProjectConfig", "build_spec", "import_app", "load_project", "resolve_environment"]


def _forget_foreign_modules(top: str, source: Path) -> None:
    """Drop ``top`` and its submodules from ``sys.modules`` if loaded from elsewhere."""
    mod = sys.modules.get(top)
    if mod is None:
        return
    origin = getattr(mod, "__file__", None) or next(iter(getattr(mod, "__path__", [])), None)
    if origin and Path(origin).resolve().is_relative_to(source):
        return
    for name in list(sys.modules):
        if name == top or name.startswith(top + "."):
            del sys.modules[name]


def import_app(project: Project) -> App:
    """Import the project's app; a failure is reported as the user's error, briefly."""
    ref = project.config.app
    source = project.source_dir
    module_name = ref.partition(":")[0]
    _forget_foreign_modules(module_name.split(".")[0], source)
    if str(source) not in sys.path:
        sys.path.insert(0, str(source))
    from .runtime.dispatch import load_app

    try:
        app = load_app(ref)
    except SyntaxError as exc:
        raise ConfigError(
            f"cannot import app {ref!r}: SyntaxError: {exc.msg} ({exc.filename}, line {exc.lineno})"
        ) from None
    except AttributeError as exc:
        raise ConfigError(
            f"cannot import app {ref!r}: {exc}", hint=f"check app in {project.pyproject}"
        ) from None
    except Exception as exc:
        frames = traceback.extract_tb(exc.__traceback__)
        user = [f for f in frames if Path(f.filename).resolve().is_relative_to(source)]
        where = f" ({user[-1].filename}, line {user[-1].lineno})" if user else ""
        raise ConfigError(
            f"cannot import app {ref!r} from {source}: {type(exc).__name__}: {exc}{where}",
            hint=f"check app = ... in {project.pyproject} and that the module imports",
        ) from None
    if not isinstance(app, App):
        raise ConfigError(
            f"{ref!r} is a {type(app).__name__}, not an sls_py.App",
            hint=f"point app in {project.pyproject} at the App object",
        )
    return app


# --- building the spec --------------------------------------------------------


def _merge_cors(base: CorsSpec, conf: CorsConfig | None) -> CorsSpec:
    if conf is None:
        return base
    updates = {k: v for k, v in conf.model_dump().items() if v is not None}
    return base.model_copy(update=updates)


def _cors_from(obj: Cors) -> CorsSpec:
    return CorsSpec(
        origins=list(obj.origins),
        headers=list(obj.headers),
        methods=list(obj.methods),
        max_age_s=obj.max_age_s,
        allow_credentials=obj.allow_credentials,
    )


def _usage(base: UsageLimits | None, *confs: UsageConfig | None) -> UsageSpec | None:
    data: dict[str, Any] = {}
    if base is not None:
        data.update({k: v for k, v in base.__dict__.items() if v is not None})
    for conf in confs:
        if conf is not None:
            data.update({k: v for k, v in conf.model_dump().items() if v is not None})
    return UsageSpec(**data) if data else None


def check_path(path: str, where: str) -> None:
    """Check an HTTP route path; raise :class:`SpecError` saying what is wrong."""
    if not path.startswith("/"):
        raise SpecError(f"{where}: path {path!r} must start with '/'")
    segments = path.strip("/").split("/") if path != "/" else []
    seen: set[str] = set()
    for i, seg in enumerate(segments):
        if not seg:
            raise SpecError(f"{where}: path {path!r} has an empty segment")
        if "{" in seg or "}" in seg:
            m = _PARAM.match(seg)
            if not m:
                raise SpecError(
                    f"{where}: path segment {seg!r} must be a whole {{name}} or {{name+}}"
                )
            if m.group(2) and i != len(segments) - 1:
                raise SpecError(f"{where}: greedy {seg!r} must be the last segment of {path!r}")
            if m.group(1) in seen:
                raise SpecError(f"{where}: path parameter {m.group(1)!r} appears twice")
            seen.add(m.group(1))


def _trigger_spec(
    fn: str, index: int, trig: Any, app: App, default_cors: CorsSpec
) -> HttpTriggerSpec | ScheduleTriggerSpec | UploadTriggerSpec | QueueTriggerSpec:
    where = f"function {fn!r}"
    if isinstance(trig, HttpTrigger):
        check_path(trig.path, where)
        if trig.cors is True:
            cors: CorsSpec | None = default_cors
        elif isinstance(trig.cors, Cors):
            cors = _cors_from(trig.cors)
        else:
            cors = None
        return HttpTriggerSpec(method=trig.method, path=trig.path, api_key=trig.api_key, cors=cors)  # type: ignore[arg-type]  # checked by validated()
    if isinstance(trig, ScheduleTrigger):
        try:
            parse_schedule(trig.expression)
        except ScheduleSyntaxError as exc:
            raise SpecError(f"{where}: {exc}") from None
        return ScheduleTriggerSpec(
            name=trig.name or f"{fn}-schedule-{index}",
            expression=trig.expression,
            payload=trig.payload,
            enabled=trig.enabled,
        )
    if isinstance(trig, UploadTrigger):
        if trig.bucket not in app.buckets:
            raise SpecError(
                f"{where}: upload trigger names bucket {trig.bucket!r}, which the app does not declare",
                hint=f'declare it with app.bucket("{trig.bucket}")',
            )
        return UploadTriggerSpec(bucket=trig.bucket, prefix=trig.prefix, suffix=trig.suffix)
    if isinstance(trig, QueueTrigger):
        if trig.queue not in app.queues:
            raise SpecError(
                f"{where}: queue trigger names queue {trig.queue!r}, which the app does not declare",
                hint=f'declare it with app.queue("{trig.queue}")',
            )
        return QueueTriggerSpec(queue=trig.queue, batch_size=trig.batch_size)
    raise SpecError(f"{where}: {trig!r} is not a trigger; use http(), schedule(), upload() or queue()")


def _table_spec(app: str, stage: str, table: TableDef) -> TableSpec:
    for attr in ("key_type", "sort_key_type"):
        value = getattr(table, attr)
        if value not in ("string", "number"):
            raise SpecError(
                f"table {table.name!r}: {attr} {value!r} is not a key type",
                hint='use "string" or "number"',
            )
    return TableSpec(
        name=table.name,
        qualified_name=f"{app}-{stage}-{table.name}",
        key=table.key,
        sort_key=table.sort_key,
        key_type=table.key_type,  # type: ignore[arg-type]  # checked above
        sort_key_type=table.sort_key_type,  # type: ignore[arg-type]
    )


def _cache_spec(app: str, stage: str, name: str) -> CacheSpec:
    if not CACHE_NAME_RE.match(name):
        raise SpecError(
            f"cache name {name!r} is not valid",
            hint="use lower-case letters, digits and '-', starting with a letter (e.g. 'sessions')",
        )
    return CacheSpec(name=name, qualified_name=f"{app}-{stage}-{name}")


CACHE_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,39}$")


def build_spec(project: Project, app: App, stage: str) -> Spec:
    """Resolve ``app`` for ``stage`` with the project's configuration."""
    conf = project.config
    if not NAME_RE.match(stage):
        raise ConfigError(
            f"stage name {stage!r} is not valid",
            hint="use lower-case letters, digits and '-', starting with a letter (dev, staging, prod)",
        )
    if not NAME_RE.match(app.name):
        raise SpecError(
            f"app name {app.name!r} is not valid",
            hint="use lower-case letters, digits and '-', starting with a letter",
        )
    st = conf.stages.get(stage, StageConfig())
    unknown = sorted(set(st.functions) - set(app.functions))
    if unknown:
        raise ConfigError(
            f"{project.pyproject}: [tool.sls-py.stages.{stage}.functions] names unknown "
            f"function(s) {', '.join(unknown)}",
            hint=f"known functions: {', '.join(sorted(app.functions))}",
        )
    cors = _merge_cors(_merge_cors(_cors_from(app.cors) if app.cors else CorsSpec(), conf.cors), st.cors)
    api_keys = list(app.api_keys)
    for keys in (conf.api_keys, st.api_keys):
        if keys is not None:
            api_keys = list(keys)
    gateway = GatewaySpec(api_keys=api_keys, usage=_usage(app.usage, conf.usage, st.usage), cors=cors)

    functions: list[FunctionSpec] = []
    routes: dict[tuple[str, str], str] = {}
    for name, fn in app.functions.items():
        if not NAME_RE.match(name):
            raise SpecError(
                f"function name {name!r} is not valid",
                hint="use lower-case letters, digits and '-', starting with a letter",
            )
        triggers = [_trigger_spec(name, i, t, app, cors) for i, t in enumerate(fn.triggers)]
        for t in triggers:
            if isinstance(t, HttpTriggerSpec):
                shape = re.sub(r"\{[^}]+\}", "{}", t.path)
                other = routes.get((t.method, shape))
                if other is not None:
                    raise SpecError(
                        f"route {t.method} {t.path} of function {name!r} is already "
                        f"taken by function {other!r}"
                    )
                routes[(t.method, shape)] = name
        over = st.functions.get(name, FunctionOverride())
        env = {**conf.environment, **fn.environment, **st.environment, **over.environment}
        functions.append(
            FunctionSpec(
                name=name,
                handler=fn.handler_ref,
                style=signature_of(fn.handler).style,  # type: ignore[arg-type]
                memory_mb=over.memory_mb or st.memory_mb or fn.memory_mb,
                timeout_s=over.timeout_s or st.timeout_s or fn.timeout_s,
                environment=env,
                concurrency=over.concurrency or st.concurrency or fn.concurrency,
                triggers=triggers,
                description=fn.description,
                invokes=list(dict.fromkeys(fn.invokes)),
            )
        )

    check_invokes(app)
    providers: dict[str, dict[str, Any]] = {k: dict(v) for k, v in conf.providers.items()}
    for pname, settings in st.providers.items():
        providers.setdefault(pname, {}).update(settings)

    source = os.path.relpath(project.source_dir, project.root)
    from .config_spec import config_specs

    configs = config_specs(project, app, stage)
    spec = Spec(
        app=app.name,
        stage=stage,
        app_ref=conf.app,
        source=source,
        functions=functions,
        buckets=[BucketSpec(name=b, qualified_name=f"{app.name}-{stage}-{b}") for b in app.buckets],
        queues=[
            QueueSpec(
                name=q.name,
                qualified_name=f"{app.name}-{stage}-{q.name}",
                visibility_timeout_s=q.visibility_timeout_s,
                max_receives=q.max_receives,
            )
            for q in app.queues.values()
        ],
        tables=[
            _table_spec(app.name, stage, t)
            for t in app.tables.values()
        ],
        caches=[_cache_spec(app.name, stage, c) for c in app.caches],
        databases=[database_spec(project.root, app.name, stage, d) for d in app.databases.values()],
        configs=configs,
        gateway=gateway,
        providers=providers,
    )
    return validated(spec)  # numbers coerced, ranges checked (memory_mb, timeout_s, ...)


def check_invokes(app: App) -> None:
    """Refuse an ``invokes=[...]`` naming a function the app does not declare."""
    for name, fn in app.functions.items():
        for target in fn.invokes:
            if target not in app.functions:
                raise SpecError(
                    f"function {name!r} invokes {target!r}, which the app does not declare",
                    hint=f"declare it with @app.function(name={target!r}) or fix the name; "
                    f"known functions: {', '.join(sorted(app.functions))}",
                )
