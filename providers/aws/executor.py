"""Apply: the only code that changes anything on AWS.

:func:`apply_plan` carries out plan steps in order through one handler per
resource kind (``create`` / ``update`` / ``delete``, registered in
:data:`HANDLERS` by the ``handlers_*`` modules). After every step the state
file is written, so a deploy stopped at any point converges when run again:
creation handlers also adopt a resource that exists under its name (a crash
between the AWS call and the state write), and never create one twice.

Testing aid: with ``SLS_PY_FAIL_AFTER_STEP=N`` in the environment, apply stops
with an error right after step ``N`` (counted from 1) has been carried out and
recorded, the way an interrupted deploy would; the fault-injection tests use it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sls_py.errors import ProviderError
from sls_py.provider import PlanStep
from sls_py.ui import UI

from .cloud import AwsError, Cloud
from .model import Names, Resource
from .planner import dependents
from .state import Entry, State

FAIL_AFTER_ENV = "SLS_PY_FAIL_AFTER_STEP"


@dataclass
class Ctx:
    """What a handler needs: the cloud, names, recorded state and the package."""

    cloud: Cloud
    names: Names
    state: State
    package: Any = None  # BuiltPackage, for function code
    cache: dict[str, Any] = field(default_factory=dict)
    ui: UI | None = None  # where a handler says why it waits

    def note(self, text: str) -> None:
        """Tell the user something about the step in progress (e.g. a wait)."""
        if self.ui is not None:
            self.ui.info(text)

    @property
    def region(self) -> str:
        return self.names.region

    @property
    def account(self) -> str:
        return self.names.account

    def call(self, service: str, operation: str, **params: Any) -> Any:
        return self.cloud.call(service, operation, **params)

    def tolerate(self, codes: set[str], service: str, operation: str, **params: Any) -> Any:
        """Call, returning ``None`` when AWS answers with one of ``codes``."""
        try:
            return self.cloud.call(service, operation, **params)
        except AwsError as exc:
            if exc.code in codes:
                return None
            raise

    def tag_list(self, tags: dict[str, str]) -> list[dict[str, str]]:
        return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


Create = Callable[[Ctx, Resource], dict[str, Any]]
Update = Callable[[Ctx, Resource, Entry, list[str]], dict[str, Any]]
Delete = Callable[[Ctx, Entry], None]


@dataclass(frozen=True)
class Handler:
    """How to create, update and delete one kind of resource."""

    create: Create
    update: Update
    delete: Delete


HANDLERS: dict[str, Handler] = {}


def handles(kind: str, create: Create, update: Update, delete: Delete) -> None:
    """Register the handler of ``kind``."""
    HANDLERS[kind] = Handler(create, update, delete)


def create_again(create: Create) -> Update:
    """The update of a kind whose create puts the whole desired state (an
    idempotent put): the update is that create, called again."""

    def update(ctx: Ctx, res: Resource, entry: Entry, changes: list[str]) -> dict[str, Any]:
        return create(ctx, res)

    return update


def _load_handlers() -> None:
    from . import (  # noqa: F401  (they register themselves)
        handlers_api,
        handlers_cache,
        handlers_compute,
        handlers_database,
        handlers_invoke,
    )


def apply_plan(steps: list[PlanStep], desired: list[Resource], ctx: Ctx, ui: UI) -> list[PlanStep]:
    """Carry out ``steps``; record the state after each. Returns the steps done."""
    _load_handlers()
    wanted = {r.key: r for r in desired}
    fail_after = _fail_after()
    done: list[PlanStep] = []
    state = ctx.state
    state.account, state.region = ctx.account, ctx.region
    for number, s in enumerate(steps, start=1):
        key = str(s.details["key"])
        handler = HANDLERS[s.kind]
        ui.step(s.action, s.kind, s.name, s.reason)
        if s.action == "delete":
            entry = state.get(key)
            if entry is not None:
                handler.delete(ctx, entry)
                for other in dependents(entry, state.entries):  # AWS deleted them with it
                    state.forget(other)
                state.forget(key)
        else:
            res = wanted[key]
            old = state.get(key)
            if s.action == "create" or old is None:
                outputs = handler.create(ctx, res)
            else:
                changes = list(s.details.get("changes", []))
                outputs = {**old.outputs, **handler.update(ctx, res, old, changes)}
            state.record(
                Entry(kind=res.kind, name=res.name, props=res.recorded_props(), outputs=outputs)
            )
        done.append(s)
        if fail_after is not None and number >= fail_after:
            raise ProviderError(
                f"stopped after step {number} because {FAIL_AFTER_ENV}={fail_after} "
                "(a testing aid)",
                hint=f"unset {FAIL_AFTER_ENV} and deploy again: it picks up where it stopped",
            )
    return done


def _fail_after() -> int | None:
    raw = os.environ.get(FAIL_AFTER_ENV, "").strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise ProviderError(f"{FAIL_AFTER_ENV}={raw!r} is not a step number") from None
