"""Declaring an app: the :class:`App` object, its decorators and triggers.

This module is imported inside every running function (it is how the user's
module declares itself), so it uses the standard library only. Checking what
was declared happens when the spec is built (:mod:`sls_py.spec`), with errors
that name the function and the field.
"""

from __future__ import annotations

from .runtime.records import FrozenRecord, Record
from .runtime.resources import Bucket, Queue, Table

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (cold start)
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any, TypeVar

    from .runtime.cache import Cache
    from .runtime.config import Config
    from .runtime.database import Database
    from .runtime.invoke import Fanout

    F = TypeVar("F", bound=Callable[..., Any])

# The declarations are value classes (repr, equality; frozen ones immutable and
# hashable) written without @dataclass: see sls_py.runtime.records for why.


class Cors(FrozenRecord):
    """Cross-origin settings for HTTP routes that enable CORS."""

    __match_args__ = ("origins", "headers", "methods", "max_age_s", "allow_credentials")
    origins: tuple[str, ...]
    headers: tuple[str, ...]
    methods: tuple[str, ...]
    max_age_s: int
    allow_credentials: bool

    def __init__(
        self,
        origins: tuple[str, ...] = ("*",),
        headers: tuple[str, ...] = ("content-type", "x-api-key", "authorization"),
        methods: tuple[str, ...] = (),
        max_age_s: int = 600,
        allow_credentials: bool = False,
    ) -> None:
        super().__init__(
            origins=origins,
            headers=headers,
            methods=methods,
            max_age_s=max_age_s,
            allow_credentials=allow_credentials,
        )


class UsageLimits(FrozenRecord):
    """Per-API-key limits: steady ``rate`` (requests/s), ``burst``, and a quota."""

    __match_args__ = ("rate", "burst", "quota", "period")
    rate: float | None
    burst: int | None
    quota: int | None
    period: str

    def __init__(
        self,
        rate: float | None = None,
        burst: int | None = None,
        quota: int | None = None,
        period: str = "DAY",
    ) -> None:
        super().__init__(rate=rate, burst=burst, quota=quota, period=period)


class HttpTrigger(FrozenRecord):
    """Call the function for ``method path`` through the app's HTTP gateway."""

    __match_args__ = ("method", "path", "api_key", "cors", "kind")
    method: str
    path: str
    api_key: bool
    cors: bool | Cors
    kind: str

    def __init__(
        self, method: str, path: str, api_key: bool = False, cors: bool | Cors = False, kind: str = "http"
    ) -> None:
        super().__init__(method=method, path=path, api_key=api_key, cors=cors, kind=kind)


class ScheduleTrigger(FrozenRecord):
    """Call the function on a schedule: ``rate(5 minutes)`` or a cron expression."""

    __match_args__ = ("expression", "name", "payload", "enabled", "kind")
    expression: str
    name: str | None
    payload: Any
    enabled: bool
    kind: str

    def __init__(
        self,
        expression: str,
        name: str | None = None,
        payload: Any = None,
        enabled: bool = True,
        kind: str = "schedule",
    ) -> None:
        super().__init__(expression=expression, name=name, payload=payload, enabled=enabled, kind=kind)


class UploadTrigger(FrozenRecord):
    """Call the function when an object is created in ``bucket``."""

    __match_args__ = ("bucket", "prefix", "suffix", "kind")
    bucket: str
    prefix: str
    suffix: str
    kind: str

    def __init__(self, bucket: str, prefix: str = "", suffix: str = "", kind: str = "upload") -> None:
        super().__init__(bucket=bucket, prefix=prefix, suffix=suffix, kind=kind)


class QueueTrigger(FrozenRecord):
    """Call the function with batches of messages from ``queue``."""

    __match_args__ = ("queue", "batch_size", "kind")
    queue: str
    batch_size: int
    kind: str

    def __init__(self, queue: str, batch_size: int = 10, kind: str = "queue") -> None:
        super().__init__(queue=queue, batch_size=batch_size, kind=kind)


Trigger = HttpTrigger | ScheduleTrigger | UploadTrigger | QueueTrigger


def http(method: str, path: str, *, api_key: bool = False, cors: bool | Cors = False) -> HttpTrigger:
    """An HTTP route. ``path`` may hold ``{param}`` and a final greedy ``{proxy+}``.

    ``api_key=True`` requires an ``X-API-Key`` header with one of the stage's
    keys; ``cors=True`` uses the app's CORS settings (or pass a :class:`Cors`).
    """
    return HttpTrigger(method=method.upper(), path=path, api_key=api_key, cors=cors)


def schedule(
    expression: str, *, name: str | None = None, payload: Any = None, enabled: bool = True
) -> ScheduleTrigger:
    """A schedule: ``rate(N minutes|hours|days)``, ``cron(m h dom mon dow year)``
    (AWS form) or a five-field cron expression (``0 2 * * *``), in UTC."""
    return ScheduleTrigger(expression=expression, name=name, payload=payload, enabled=enabled)


def upload(bucket: str | Bucket, *, prefix: str = "", suffix: str = "") -> UploadTrigger:
    """Objects created in ``bucket`` whose key starts with ``prefix`` and ends with ``suffix``."""
    name = bucket.name if isinstance(bucket, Bucket) else bucket
    return UploadTrigger(bucket=name, prefix=prefix, suffix=suffix)


def queue(queue: str | Queue, *, batch_size: int = 10) -> QueueTrigger:
    """Messages sent to ``queue``, delivered in batches of up to ``batch_size``."""
    name = queue.name if isinstance(queue, Queue) else queue
    return QueueTrigger(queue=name, batch_size=batch_size)


class FunctionDef(Record):
    """A function as declared with :meth:`App.function`."""

    __match_args__ = (
        "name",
        "handler",
        "memory_mb",
        "timeout_s",
        "environment",
        "concurrency",
        "triggers",
        "description",
        "invokes",
    )

    def __init__(
        self,
        name: str,
        handler: Callable[..., Any],
        memory_mb: int = 128,
        timeout_s: float = 6,
        environment: dict[str, str] | None = None,
        concurrency: int | None = None,
        triggers: tuple[Trigger, ...] = (),
        description: str = "",
        invokes: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.handler = handler
        self.memory_mb = memory_mb
        self.timeout_s = timeout_s
        self.environment: dict[str, str] = {} if environment is None else environment
        self.concurrency = concurrency
        self.triggers = triggers
        self.description = description
        self.invokes = invokes

    @property
    def handler_ref(self) -> str:
        """``module:qualname`` of the handler, for people to read."""
        return f"{self.handler.__module__}:{self.handler.__qualname__}"


class BucketDef(FrozenRecord):
    __match_args__ = ("name",)
    name: str

    def __init__(self, name: str) -> None:
        super().__init__(name=name)


class QueueDef(FrozenRecord):
    __match_args__ = ("name", "visibility_timeout_s", "max_receives")
    name: str
    visibility_timeout_s: int
    max_receives: int

    def __init__(self, name: str, visibility_timeout_s: int = 30, max_receives: int = 3) -> None:
        super().__init__(name=name, visibility_timeout_s=visibility_timeout_s, max_receives=max_receives)


class TableDef(FrozenRecord):
    __match_args__ = ("name", "key", "sort_key", "key_type", "sort_key_type")
    name: str
    key: str
    sort_key: str | None
    key_type: str
    sort_key_type: str

    def __init__(
        self,
        name: str,
        key: str = "id",
        sort_key: str | None = None,
        key_type: str = "string",
        sort_key_type: str = "string",
    ) -> None:
        super().__init__(
            name=name, key=key, sort_key=sort_key, key_type=key_type, sort_key_type=sort_key_type
        )


class CacheDef(FrozenRecord):
    __match_args__ = ("name",)
    name: str

    def __init__(self, name: str) -> None:
        super().__init__(name=name)


class DatabaseDef(FrozenRecord):
    """A SQL database and the folder of its ``.sql`` migrations (relative to the project)."""

    __match_args__ = ("name", "migrations")
    name: str
    migrations: str | None

    def __init__(self, name: str, migrations: str | None = None) -> None:
        super().__init__(name=name, migrations=migrations)


class ConfigDef(Record):
    """A config handle as declared with :meth:`App.config` (the handle is ``handle``)."""

    __match_args__ = ("name", "model", "ttl_s", "handle")

    def __init__(self, name: str, model: Any, ttl_s: float, handle: Config) -> None:
        self.name = name
        self.model = model
        self.ttl_s = ttl_s
        self.handle = handle


class App:
    """A serverless app: its functions, the resources they use, its HTTP gateway.

    >>> app = App("clonezero")
    >>> @app.function(name="hello", triggers=[http("GET", "/hello")])
    ... def hello(payload: dict, ctx):
    ...     return {"hello": "world"}
    """

    def __init__(
        self,
        name: str,
        *,
        api_keys: Sequence[str] = (),
        cors: Cors | None = None,
        usage: UsageLimits | None = None,
    ) -> None:
        self.name = name
        self.api_keys = tuple(api_keys)
        self.cors = cors
        self.usage = usage
        self.functions: dict[str, FunctionDef] = {}
        self.buckets: dict[str, BucketDef] = {}
        self.queues: dict[str, QueueDef] = {}
        self.tables: dict[str, TableDef] = {}
        self.caches: dict[str, CacheDef] = {}
        self.databases: dict[str, DatabaseDef] = {}
        self.configs: dict[str, ConfigDef] = {}

    def function(
        self,
        name: str | None = None,
        *,
        memory_mb: int = 128,
        timeout_s: float = 6,
        environment: dict[str, str] | None = None,
        concurrency: int | None = None,
        triggers: Sequence[Trigger] = (),
        description: str | None = None,
        invokes: Sequence[str] = (),
    ) -> Callable[[F], F]:
        """Declare a function. The decorated callable is returned unchanged.

        :param name: the function's name (default: the Python name with ``_``
            turned into ``-``).
        :param memory_mb: memory limit in MB (enforced locally, set on AWS).
        :param timeout_s: time limit in seconds; the invocation is stopped then.
        :param environment: environment variables for this function.
        :param concurrency: at most this many invocations at once.
        :param triggers: what calls it: :func:`http`, :func:`schedule`,
            :func:`upload`, :func:`queue`.
        :param invokes: the functions this one may call with ``ctx.invoke``,
            ``ctx.invoke_async``, ``ctx.continue_with`` (itself) or a fan-out;
            any other target is refused at run time. The spec records them.
        """

        def register(func: F) -> F:
            fname = name or func.__name__.replace("_", "-")
            if fname in self.functions:
                raise ValueError(f"function {fname!r} is declared twice in app {self.name!r}")
            self.functions[fname] = FunctionDef(
                name=fname,
                handler=func,
                memory_mb=memory_mb,
                timeout_s=timeout_s,
                environment=dict(environment or {}),
                concurrency=concurrency,
                triggers=tuple(triggers),
                description=description if description is not None else (func.__doc__ or "").strip(),
                invokes=tuple(invokes),
            )
            return func

        return register

    def bucket(self, name: str) -> Bucket:
        """Declare a bucket and return its handle."""
        self.buckets[name] = BucketDef(name)
        return Bucket(name)

    def queue(self, name: str, *, visibility_timeout_s: int = 30, max_receives: int = 3) -> Queue:
        """Declare a queue; a message failed ``max_receives`` times goes to its dead-letter queue."""
        self.queues[name] = QueueDef(name, visibility_timeout_s, max_receives)
        return Queue(name)

    def table(
        self,
        name: str,
        *,
        key: str = "id",
        sort_key: str | None = None,
        key_type: str = "string",
        sort_key_type: str = "string",
    ) -> Table:
        """Declare a key-value table keyed by attribute ``key`` (and ``sort_key``).

        ``key_type`` and ``sort_key_type`` are ``"string"`` or ``"number"``: clouds
        fix a key's type when the table is created, so it is declared here.
        """
        self.tables[name] = TableDef(name, key, sort_key, key_type, sort_key_type)
        return Table(name, key, sort_key, key_type=key_type, sort_key_type=sort_key_type)

    def cache(self, name: str) -> Cache:
        """Declare a Redis-protocol cache and return its handle (see :mod:`sls_py.runtime.cache`)."""
        from .runtime.cache import Cache  # packed only for an app that declares a cache

        self.caches[name] = CacheDef(name)
        return Cache(name)

    def database(self, name: str, *, migrations: str | None = None) -> Database:
        """Declare a SQL database (PostgreSQL) and return its handle.

        :param migrations: a folder of ``.sql`` files, relative to the project
            (where ``pyproject.toml`` is); each file is applied once, in name
            order, by ``sls-py migrate`` and before ``run`` and ``deploy``.
        """
        from .runtime.database import Database  # packed only for an app that declares one

        self.databases[name] = DatabaseDef(name, migrations)
        return Database(name, migrations)

    def config(self, name: str = "settings", *, model: Any = None, ttl_s: float = 5.0) -> Config:
        """Declare the app's use of per-stage config and secrets; return its handle.

        Values are read at call time and kept ``ttl_s`` seconds, so
        ``sls-py config set KEY VALUE --stage S`` takes effect without a deploy.
        With a pydantic ``model``, :meth:`Config.load` returns it validated
        (field ``magic_word`` reads key ``magic-word``; an alias names the key).
        """
        if name in self.configs:
            raise ValueError(f"config {name!r} is declared twice in app {self.name!r}")
        from .runtime.config import Config  # packed only for an app that declares config

        handle = Config(name, model=model, ttl_s=ttl_s)
        self.configs[name] = ConfigDef(name, model, ttl_s, handle)
        return handle

    def fanout(self, worker: str) -> Fanout:
        """Declare a fan-out over function ``worker`` (and the table it owns, ``sls-py-fanout``);
        in a function that declares ``invokes=[worker]``, ``fanout.map(items, ctx, chunk=...,
        parallel=...)`` runs ``worker`` on chunks asynchronously and gathers their results."""
        from .runtime.invoke import TABLE, Fanout

        if TABLE not in self.tables:
            self.table(TABLE, key="job", sort_key="index", sort_key_type="number")
        return Fanout(worker)

    def __repr__(self) -> str:
        return f"App({self.name!r}, functions={list(self.functions)})"
