"""Types that cross between the core and provider plugins.

A provider returns these from its hooks; the CLI prints them. They are plain
dataclasses so a third-party provider needs nothing but ``sls_py`` to build them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # not imported at run time: a warm `sls-py run` reads RunOptions early
    from .runtime.errors import ErrorInfo
    from .spec import Spec


@dataclass(frozen=True)
class ProviderInfo:
    """What a provider is and can do.

    :param name: the name users pass to ``--provider``.
    :param capabilities: names from :data:`sls_py.spec.CAPABILITIES` that the
        provider honours. A spec using any other is refused before any hook runs.
    :param not_emulated: capabilities that are accepted but not enforced, each
        with a sentence saying so; the CLI prints them when the provider starts.
    :param warm_start: the provider's plugin is a module whose ``sls_py_run`` and
        ``sls_py_invoke`` may be called directly, with a spec kept from an earlier
        start (:mod:`sls_py.speccache`), without loading the plugins or importing
        the app in the calling process (what makes ``sls-py run`` start fast).
    """

    name: str
    version: str
    description: str = ""
    capabilities: frozenset[str] = frozenset()
    not_emulated: Mapping[str, str] = field(default_factory=dict)
    warm_start: bool = False


@dataclass
class Invocation:
    """The result of invoking a function: its JSON result or its error."""

    function: str
    result: Any = None
    error: ErrorInfo | None = None
    request_id: str = ""
    logs: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class PlanStep:
    """One change a deploy would make: ``action`` a ``kind`` named ``name``, because ``reason``."""

    action: Literal["create", "update", "delete"]
    kind: str
    name: str
    reason: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_data(self) -> dict[str, Any]:
        """The step as plain JSON-able data (``--json`` output, ``plan.json``)."""
        return {
            "action": self.action,
            "kind": self.kind,
            "name": self.name,
            "reason": self.reason,
            "details": dict(self.details),
        }


@dataclass
class Plan:
    """What a deploy (or remove) would do, in order. Empty when nothing changed."""

    steps: list[PlanStep] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.steps)


@dataclass
class DeployResult:
    """What a deploy did, and where the app can be reached."""

    applied: list[PlanStep] = field(default_factory=list)
    url: str | None = None
    api_keys: list[str] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ApiKey:
    """An API key of the stage: its name and value."""

    name: str
    value: str


@dataclass(frozen=True)
class LogRecord:
    """One log line of a function."""

    time: float
    function: str
    message: str
    request_id: str = ""


@dataclass(frozen=True)
class RunOptions:
    """How ``sls-py run`` should serve the app."""

    host: str = "127.0.0.1"
    port: int = 3000
    reload: bool = True
    json_logs: bool = False
    clock: str | None = None
    #: the spec came from the cached copy of a warm start (:mod:`sls_py.speccache`),
    #: not from importing the app: a provider may build it again in the background
    #: and restart if it differs (the local provider does)
    cached_spec: bool = False
    #: the ``(--stage, --provider)`` options of the command line (``None`` when not
    #: given), under which a warm start finds its copy of the spec: a provider that
    #: restarts itself with a new spec may keep it there (:func:`sls_py.speccache.store`)
    spec_key: tuple[str | None, str | None] | None = None


@dataclass(frozen=True)
class TriggerRequest:
    """Fire a trigger by hand: an upload, a schedule or a queue message.

    ``kind`` is ``upload`` (``target`` the bucket, ``key`` and ``data``),
    ``schedule`` (``target`` the function) or ``queue`` (``target`` the queue,
    ``data`` the message body).
    """

    kind: Literal["upload", "schedule", "queue"]
    target: str
    key: str | None = None
    data: bytes | None = None


@dataclass(frozen=True)
class ConfigEntry:
    """One config value of a stage, as a provider's store holds it.

    ``value`` is ``None`` for a secret read without ``reveal`` (providers never
    hand out a secret's value unless asked to).
    """

    key: str
    value: str | None
    secret: bool = False


def spec_notes(info: ProviderInfo, spec: Spec) -> list[str]:
    """The notes a provider described by ``info`` has on ``spec`` (what it accepts but
    does not emulate); :class:`~sls_py.errors.CapabilityError` for a capability it
    lacks. What ``Provider.check`` does before a provider's own validation hook."""
    from .errors import CapabilityError
    from .spec import CAPABILITIES

    need = spec.required_capabilities()
    missing = [cap for cap in need if cap not in info.capabilities]
    if missing:
        parts = [f"{CAPABILITIES[c]} ({need[c]})" for c in missing]
        raise CapabilityError(
            f"provider {info.name!r} does not support " + "; ".join(parts),
            hint="remove the feature from the app, or choose another provider with --provider",
        )
    return [
        f"not emulated by {info.name}: {info.not_emulated[cap]} (used by {need[cap]})"
        for cap in need
        if cap in info.not_emulated
    ]
