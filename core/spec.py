"""The spec: everything an app declares, resolved for one stage, as plain data.

Providers receive a :class:`Spec` and nothing else about the app's code. It is
built from the :class:`~sls_py.app.App` plus the project configuration by
:func:`sls_py.config.build_spec`; ``sls-py spec`` prints it as JSON and
``sls-py spec --schema`` prints its JSON Schema.

The records are frozen standard-library dataclasses, so importing this module
costs no pydantic: a warm ``sls-py run`` builds its :class:`Spec` from a cached
copy (:meth:`Spec.from_data`) in a gateway that never imports pydantic. pydantic
validates and describes them when asked (:meth:`Spec.model_validate`,
:func:`spec_schema`, :func:`validated`), through the constraints given here as
``annotated_types`` metadata and the field docstrings; the pydantic-style methods
(``model_dump``, ``model_dump_json``, ``model_copy``) are kept for providers
written against them.
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar, Union

from .errors import SpecError

if TYPE_CHECKING:  # the constraints' names; see _resolvable (annotations are strings until then)
    from annotated_types import Ge, Gt, Le

SPEC_VERSION = 1

#: Every feature a spec can use, with a phrase for messages. Providers declare
#: the subset they support in :class:`~sls_py.provider.ProviderInfo`.
CAPABILITIES: dict[str, str] = {
    "invoke": "invoking a function with a payload",
    "trigger.http": "HTTP routes",
    "http.api_key": "API keys on HTTP routes",
    "http.cors": "CORS on HTTP routes",
    "http.usage_limits": "usage limits (rate, burst, quota) per API key",
    "trigger.schedule": "schedule triggers",
    "trigger.upload": "upload (storage) triggers",
    "trigger.queue": "queue triggers",
    "resource.bucket": "buckets",
    "resource.queue": "queues",
    "resource.table": "key-value tables",
    "resource.cache": "caches (Redis protocol)",
    "resource.database": "SQL databases (PostgreSQL, :name parameters)",
    "function.timeout": "function timeouts",
    "function.memory": "function memory limits",
    "function.concurrency": "function concurrency limits",
    "function.invoke": "functions invoking declared targets (ctx.invoke, ctx.invoke_async, fan-out)",
    "resource.config": "per-stage config and secrets, read at call time",
}

HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY"]

R = TypeVar("R", bound="_Record")


class _Record:
    """What every spec record shares: pydantic's configuration for it (unknown
    keys refused) and plain-data helpers. A field's ``metadata["description"]``
    describes it in the JSON Schema."""

    __pydantic_config__: typing.ClassVar[dict[str, Any]] = {"extra": "forbid"}

    # ``repr`` and ``==`` (and so ``hash``) are written once here, as dataclasses
    # would generate them, instead of per record (``repr=False, eq=False`` on each):
    # dataclasses compiles every method it generates from source, and a warm
    # gateway creates these records on its way to its first request. Compiled,
    # ``import sls_py.spec`` took 15-17 ms of its own with them, 10-11 without
    # (-X importtime).

    def _values(self, purpose: str) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in _field_names(type(self), purpose))

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in _field_names(type(self), "repr"))
        return f"{type(self).__qualname__}({shown})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values("compare") == other._values("compare")

    def __hash__(self) -> int:  # a frozen dataclass's: its compared fields' (lists refuse)
        return hash(self._values("hash"))

    def to_data(self) -> dict[str, Any]:
        """This record as JSON-ready plain data (no pydantic)."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_data(cls: type[R], data: dict[str, Any]) -> R:
        """The record of plain data that :meth:`to_data` (or ``model_dump``) gave,
        without validating it (no pydantic): for data sls-py wrote itself, such as
        the cached spec of a warm ``sls-py run``. Use :meth:`model_validate` for
        anything else."""
        return _build(cls, data)

    # pydantic-style API, for providers written against the earlier BaseModel records

    def model_dump(self, *, mode: str = "python", **kwargs: Any) -> dict[str, Any]:
        """As pydantic's ``BaseModel.model_dump``."""
        return _adapter(type(self)).dump_python(self, mode=mode, **kwargs)

    def model_dump_json(self, *, indent: int | None = None, **kwargs: Any) -> str:
        """As pydantic's ``BaseModel.model_dump_json``."""
        return _adapter(type(self)).dump_json(self, indent=indent, **kwargs).decode()

    def model_copy(self: R, *, update: dict[str, Any] | None = None) -> R:
        """A copy with ``update`` applied (not validated, as in pydantic)."""
        return dataclasses.replace(self, **(update or {}))  # type: ignore[type-var]

    @classmethod
    def model_validate(cls: type[R], data: Any) -> R:
        """Validate plain data into a record; raises ``pydantic.ValidationError``."""
        if isinstance(data, _Record):
            data = data.to_data()
        return _adapter(cls).validate_python(data)

    @classmethod
    def model_validate_json(cls: type[R], data: str | bytes) -> R:
        """Validate JSON text into a record; raises ``pydantic.ValidationError``."""
        return _adapter(cls).validate_json(data)

    @classmethod
    def model_json_schema(cls) -> dict[str, Any]:
        """The JSON Schema of this record."""
        return _adapter(cls).json_schema()


_names: dict[tuple[type, str], tuple[str, ...]] = {}


def _field_names(cls: type, purpose: str = "compare") -> tuple[str, ...]:
    """The names of ``cls``'s fields that take part in ``purpose`` (``compare``,
    ``repr`` or ``hash``), in order, as dataclasses chooses them (computed once)."""
    found = _names.get((cls, purpose))
    if found is None:
        fields = dataclasses.fields(cls)
        if purpose == "hash":
            found = tuple(f.name for f in fields if (f.compare if f.hash is None else f.hash))
        else:
            found = tuple(f.name for f in fields if getattr(f, purpose))
        _names[(cls, purpose)] = found
    return found


def _resolvable() -> None:
    """Make the annotations' constraint names resolvable: ``annotated_types`` is
    imported only when pydantic evaluates the annotations (:func:`_hints` uses
    stand-ins), not when this module is imported (a warm start's critical path)."""
    if "Ge" not in globals():
        from annotated_types import Ge, Gt, Le

        globals().update(Ge=Ge, Gt=Gt, Le=Le)


_adapters: dict[type, Any] = {}


def _adapter(cls: type) -> Any:
    """pydantic's ``TypeAdapter`` for a record type (built once)."""
    found = _adapters.get(cls)
    if found is None:
        from pydantic import TypeAdapter

        _resolvable()
        found = _adapters[cls] = TypeAdapter(cls)
    return found


def validated(spec: Spec) -> Spec:
    """``spec`` checked and normalised by pydantic (numbers coerced as declared);
    a value out of range is a :class:`~sls_py.errors.SpecError` naming it."""
    from pydantic import ValidationError

    try:
        return Spec.model_validate(spec.to_data())
    except ValidationError as exc:
        e = exc.errors(include_url=False)[0]
        loc = list(e["loc"])
        where = ""
        if len(loc) >= 2 and loc[0] == "functions" and isinstance(loc[1], int):
            where = f"function {spec.functions[loc[1]].name!r}: "
            loc = loc[2:]
        raise SpecError(f"{where}{'.'.join(str(p) for p in loc)}: {e['msg']}") from None


@dataclass(frozen=True, kw_only=True, repr=False, eq=False)
class CorsSpec(_Record):
    """CORS answer for a route: allowed origins, headers, methods, cache time."""

    origins: list[str] = field(default_factory=lambda: ["*"])
    headers: list[str] = field(default_factory=lambda: ["content-type", "x-api-key", "authorization"])
    methods: list[str] = field(default_factory=list)
    max_age_s: Annotated[int, Ge(0)] = 600
    allow_credentials: bool = False


@dataclass(frozen=True, kw_only=True, repr=False, eq=False)
class UsageSpec(_Record):
    """Per-key limits: ``rate`` requests/s steady, ``burst``, ``quota`` per ``period``."""

    rate: Annotated[float, Gt(0)] | None = None
    burst: Annotated[int, Ge(1)] | None = None
    quota: Annotated[int, Ge(1)] | None = None
    period: Literal["DAY", "WEEK", "MONTH"] = "DAY"


@dataclass(frozen=True, kw_only=True, repr=False, eq=False)
class HttpTriggerSpec(_Record):
    """An HTTP route."""

    kind: Literal["http"] = "http"
    method: HttpMethod
    path: str
    api_key: bool = False
    cors: CorsSpec | None = None


@dataclass(frozen=True, kw_only=True, repr=False, eq=False)
class ScheduleTriggerSpec(_Record):
    """A schedule (``rate(...)`` or ``cron(...)``)."""

    kind: Literal["schedule"] = "schedule"
    name: str
    expression: str
    payload: Any = None
    enabled: bool = True


@dataclass(frozen=True, kw_only=True, repr=False, eq=False)
class UploadTriggerSpec(_Record):
    """Objects written to a bucket, under a prefix and with a suffix."""

    kind: Literal["upload"] = "upload"
    bucket: str
    prefix: str = ""
    suffix: str = ""


@dataclass(frozen=True, kw_only=True, repr=False, eq=False)
class QueueTriggerSpec(_Record):
    """Messages of a queue, in batches."""

    kind: Literal["queue"] = "queue"
    queue: str
    batch_size: Annotated[int, Ge(1), Le(10000)] = 10


#: a trigger; ``kind`` tells which
TriggerSpec = Union[HttpTriggerSpec, ScheduleTriggerSpec, UploadTriggerSpec, QueueTriggerSpec]  # noqa: UP007


@dataclass(frozen=True, kw_only=True, repr=False, eq=False)
class FunctionSpec(_Record):
    """One function, with the stage's overrides applied."""

    name: str
    handler: str = field(metadata={"description": "module:qualname of the handler, for reference"})
    style: Literal["payload", "request", "upload", "schedule", "queue", "message"]
    memory_mb: Annotated[int, Ge(64), Le(10240)] = 128
    timeout_s: Annotated[float, Gt(0)] = 6
    environment: dict[str, str] = field(default_factory=dict)
    concurrency: Annotated[int, Ge(1)] | None = None
    triggers: list[TriggerSpec] = field(default_factory=list)
    description: str = ""
    invokes: list[str] = field(
        default_factory=list,
        metadata={"description": "functions this one may invoke (ctx.invoke, invoke_async, fan-out)"},
    )

    def http_triggers(self) -> list[HttpTriggerSpec]:
        return [t for t in self.triggers if isinstance(t, HttpTriggerSpec)]


@dataclass(frozen=True, kw_only=True, repr=False, eq=False)
class BucketSpec(_Record):
    """A bucket (object storage)."""

    name: str
    qualified_name: str


@dataclass(frozen=True, kw_only=True, repr=False, eq=False)
class QueueSpec(_Record):
    """A queue, with its redelivery settings."""

    name: str
    qualified_name: str
    visibility_timeout_s: Annotated[int, Ge(0), Le(43200)] = 30
    max_receives: Annotated[int, Ge(1), Le(1000)] = 3


KeyType = Literal["string", "number"]


@dataclass(frozen=True, kw_only=True, repr=False, eq=False)
class TableSpec(_Record):
    """A key-value table."""

    name: str
    qualified_name: str
    key: str = "id"
    sort_key: str | None = None
    key_type: KeyType = "string"
    sort_key_type: KeyType = "string"


@dataclass(frozen=True, kw_only=True, repr=False, eq=False)
class CacheSpec(_Record):
    """A Redis-protocol cache (``app.cache``): one server of its own on every provider."""

    name: str
    qualified_name: str


@dataclass(frozen=True, kw_only=True, repr=False, eq=False)
class DatabaseSpec(_Record):
    """A SQL database; ``migrations`` is a folder of ``.sql`` files relative to the project."""

    name: str
    qualified_name: str
    migrations: str | None = None


@dataclass(frozen=True, kw_only=True, repr=False, eq=False)
class ConfigSpec(_Record):
    """An ``app.config(name)`` handle: the keys its model reads, never their values.

    ``defaults`` are the stage's non-secret defaults from ``pyproject.toml``
    (``[tool.sls-py.config]`` and ``[tool.sls-py.stages.NAME.config]``); values
    set with ``sls-py config set`` live in the provider's store, not here.
    """

    name: str
    ttl_s: Annotated[float, Ge(0)] = 5.0
    keys: list[str] = field(default_factory=list, metadata={"description": "keys the handle's model reads"})
    defaults: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True, repr=False, eq=False)
class GatewaySpec(_Record):
    """The app's HTTP gateway: API key names, usage limits, default CORS."""

    api_keys: list[str] = field(default_factory=list)
    usage: UsageSpec | None = None
    cors: CorsSpec = field(default_factory=CorsSpec)


@dataclass(frozen=True, kw_only=True, repr=False, eq=False)
class Spec(_Record):
    """An app resolved for one stage. Plain data: providers get nothing else."""

    spec_version: int = SPEC_VERSION
    app: str
    stage: str
    app_ref: str = field(metadata={"description": "module:attribute of the App object"})
    source: str = field(
        default=".", metadata={"description": "folder holding the app's code, relative to the project"}
    )
    functions: list[FunctionSpec] = field(default_factory=list)
    buckets: list[BucketSpec] = field(default_factory=list)
    queues: list[QueueSpec] = field(default_factory=list)
    tables: list[TableSpec] = field(default_factory=list)
    caches: list[CacheSpec] = field(default_factory=list)
    databases: list[DatabaseSpec] = field(default_factory=list)
    configs: list[ConfigSpec] = field(default_factory=list)
    gateway: GatewaySpec = field(default_factory=GatewaySpec)
    providers: dict[str, dict[str, Any]] = field(
        default_factory=dict, metadata={"description": "provider settings from [tool.sls-py.providers.NAME]"}
    )

    def function(self, name: str) -> FunctionSpec:
        """The function called ``name``; the error lists the known ones."""
        for fn in self.functions:
            if fn.name == name:
                return fn
        known = ", ".join(f.name for f in self.functions) or "none"
        raise SpecError(
            f"app {self.app!r} has no function {name!r}",
            hint=f"known functions: {known}",
        )

    def qualified(self, name: str) -> str:
        """A resource or function name unique to this app and stage."""
        return f"{self.app}-{self.stage}-{name}"

    def provider_settings(self, provider: str) -> dict[str, Any]:
        """Settings from ``[tool.sls-py.providers.<provider>]`` (stage overrides applied)."""
        return dict(self.providers.get(provider, {}))

    def required_capabilities(self) -> dict[str, str]:
        """The capabilities this spec uses, each with where it is used."""
        need: dict[str, str] = {}

        def add(cap: str, where: str) -> None:
            need.setdefault(cap, where)

        for fn in self.functions:
            add("function.timeout", f"function {fn.name!r}")
            add("function.memory", f"function {fn.name!r}")
            if fn.concurrency is not None:
                add("function.concurrency", f"function {fn.name!r}")
            if fn.invokes:
                add("function.invoke", f"function {fn.name!r}, which invokes {', '.join(fn.invokes)}")
            for t in fn.triggers:
                add(f"trigger.{t.kind}", f"function {fn.name!r}")
                if isinstance(t, HttpTriggerSpec):
                    if t.api_key:
                        add("http.api_key", f"route {t.method} {t.path}")
                    if t.cors is not None:
                        add("http.cors", f"route {t.method} {t.path}")
        if self.gateway.usage is not None and any(
            t.api_key for fn in self.functions for t in fn.http_triggers()
        ):
            add("http.usage_limits", "the gateway's usage limits")
        for kind, items in (
            ("bucket", self.buckets),
            ("queue", self.queues),
            ("table", self.tables),
            ("cache", self.caches),
            ("database", self.databases),
        ):
            for item in items:
                add(f"resource.{kind}", f"{kind} {item.name!r}")
        for config in self.configs:
            add("resource.config", f"config {config.name!r}")
        return need


def spec_schema() -> dict[str, Any]:
    """The JSON Schema of :class:`Spec`, with the fields' descriptions."""
    schema = Spec.model_json_schema()
    for cls in (Spec, *_records(Spec)):
        where = schema if cls is Spec else schema.get("$defs", {}).get(cls.__name__, {})
        for f in dataclasses.fields(cls):
            text = f.metadata.get("description")
            if text and f.name in where.get("properties", {}):
                where["properties"][f.name]["description"] = text
    return schema


def _records(cls: type) -> set[type]:
    """The record types reachable from ``cls``'s fields."""
    found: set[type] = set()

    def walk(tp: Any) -> None:
        if isinstance(tp, type) and issubclass(tp, _Record):
            if tp not in found:
                found.add(tp)
                for hint in _hints(tp).values():
                    walk(hint)
            return
        for arg in typing.get_args(tp):
            walk(arg)

    for hint in _hints(cls).values():
        walk(hint)
    return found


# --- plain data -> records, without pydantic ------------------------------------


def _constraint(*args: Any) -> None:
    """Stands for an ``annotated_types`` constraint where only the type matters."""


_hint_cache: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    """``cls``'s field types, without their constraints (``Annotated`` stripped),
    evaluated without importing ``annotated_types``."""
    found = _hint_cache.get(cls)
    if found is None:
        stand_ins = {"Ge": _constraint, "Gt": _constraint, "Le": _constraint}
        found = _hint_cache[cls] = typing.get_type_hints(cls, vars(sys.modules[cls.__module__]), stand_ins)
    return found


def _build(tp: Any, value: Any) -> Any:
    """``value`` (plain data) as type ``tp``: records built field by field, a
    trigger chosen by its ``kind``; everything else taken as it is."""
    if value is None:
        return None
    if isinstance(tp, type) and issubclass(tp, _Record):
        hints = _hints(tp)
        return tp(**{k: _build(hints[k], v) for k, v in value.items()})
    origin = typing.get_origin(tp)
    if origin is list:
        (item,) = typing.get_args(tp)
        return [_build(item, v) for v in value]
    if origin is Union or origin is types.UnionType:
        records = [a for a in typing.get_args(tp) if isinstance(a, type) and issubclass(a, _Record)]
        if len(records) > 1:  # a trigger: its kind names it
            for rec in records:
                if typing.get_args(_hints(rec)["kind"]) == (value.get("kind"),):
                    return _build(rec, value)
            raise SpecError(f"unknown trigger kind {value.get('kind')!r}")
        return _build(records[0], value) if records else value
    return value
