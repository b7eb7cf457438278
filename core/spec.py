"""The spec: everything an app declares, resolved for one stage, as plain data.

Providers receive a :class:`Spec` and nothing else about the app's code. It is
built from the :class:`~sls_py.app.App` plus the project configuration by
:func:`sls_py.config.build_spec`; ``sls-py spec`` prints it as JSON and
``sls-py spec --schema`` prints its JSON Schema.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .errors import SpecError

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


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CorsSpec(_Model):
    """CORS answer for a route: allowed origins, headers, methods, cache time."""

    origins: list[str] = ["*"]
    headers: list[str] = ["content-type", "x-api-key", "authorization"]
    methods: list[str] = []
    max_age_s: int = Field(600, ge=0)
    allow_credentials: bool = False


class UsageSpec(_Model):
    """Per-key limits: ``rate`` requests/s steady, ``burst``, ``quota`` per ``period``."""

    rate: float | None = Field(None, gt=0)
    burst: int | None = Field(None, ge=1)
    quota: int | None = Field(None, ge=1)
    period: Literal["DAY", "WEEK", "MONTH"] = "DAY"


class HttpTriggerSpec(_Model):
    kind: Literal["http"] = "http"
    method: HttpMethod
    path: str
    api_key: bool = False
    cors: CorsSpec | None = None


class ScheduleTriggerSpec(_Model):
    kind: Literal["schedule"] = "schedule"
    name: str
    expression: str
    payload: Any = None
    enabled: bool = True


class UploadTriggerSpec(_Model):
    kind: Literal["upload"] = "upload"
    bucket: str
    prefix: str = ""
    suffix: str = ""


class QueueTriggerSpec(_Model):
    kind: Literal["queue"] = "queue"
    queue: str
    batch_size: int = Field(10, ge=1, le=10000)


TriggerSpec = Annotated[
    HttpTriggerSpec | ScheduleTriggerSpec | UploadTriggerSpec | QueueTriggerSpec,
    Field(discriminator="kind"),
]


class FunctionSpec(_Model):
    """One function, with the stage's overrides applied."""

    name: str
    handler: str = Field(description="module:qualname of the handler, for reference")
    style: Literal["payload", "request", "upload", "schedule", "queue", "message"]
    memory_mb: int = Field(128, ge=64, le=10240)
    timeout_s: float = Field(6, gt=0)
    environment: dict[str, str] = {}
    concurrency: int | None = Field(None, ge=1)
    triggers: list[TriggerSpec] = []
    description: str = ""
    invokes: list[str] = Field(
        [], description="functions this one may invoke (ctx.invoke, invoke_async, fan-out)"
    )

    def http_triggers(self) -> list[HttpTriggerSpec]:
        return [t for t in self.triggers if isinstance(t, HttpTriggerSpec)]


class BucketSpec(_Model):
    name: str
    qualified_name: str


class QueueSpec(_Model):
    name: str
    qualified_name: str
    visibility_timeout_s: int = Field(30, ge=0, le=43200)
    max_receives: int = Field(3, ge=1, le=1000)


KeyType = Literal["string", "number"]


class TableSpec(_Model):
    name: str
    qualified_name: str
    key: str = "id"
    sort_key: str | None = None
    key_type: KeyType = "string"
    sort_key_type: KeyType = "string"


class CacheSpec(_Model):
    """A Redis-protocol cache (``app.cache``): one server of its own on every provider."""

    name: str
    qualified_name: str


class DatabaseSpec(_Model):
    """A SQL database; ``migrations`` is a folder of ``.sql`` files relative to the project."""

    name: str
    qualified_name: str
    migrations: str | None = None


class ConfigSpec(_Model):
    """An ``app.config(name)`` handle: the keys its model reads, never their values.

    ``defaults`` are the stage's non-secret defaults from ``pyproject.toml``
    (``[tool.sls-py.config]`` and ``[tool.sls-py.stages.NAME.config]``); values
    set with ``sls-py config set`` live in the provider's store, not here.
    """

    name: str
    ttl_s: float = Field(5.0, ge=0)
    keys: list[str] = Field(default_factory=list, description="keys the handle's model reads")
    defaults: dict[str, str] = Field(default_factory=dict)


class GatewaySpec(_Model):
    """The app's HTTP gateway: API key names, usage limits, default CORS."""

    api_keys: list[str] = []
    usage: UsageSpec | None = None
    cors: CorsSpec = CorsSpec()


class Spec(_Model):
    """An app resolved for one stage. Plain data: providers get nothing else."""

    spec_version: int = SPEC_VERSION
    app: str
    stage: str
    app_ref: str = Field(description="module:attribute of the App object")
    source: str = Field(".", description="folder holding the app's code, relative to the project")
    functions: list[FunctionSpec] = []
    buckets: list[BucketSpec] = []
    queues: list[QueueSpec] = []
    tables: list[TableSpec] = []
    caches: list[CacheSpec] = []
    databases: list[DatabaseSpec] = []
    configs: list[ConfigSpec] = []
    gateway: GatewaySpec = GatewaySpec()
    providers: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="provider settings from [tool.sls-py.providers.NAME]"
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
    """The JSON Schema of :class:`Spec`."""
    return Spec.model_json_schema()
