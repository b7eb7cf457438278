"""Plan: compare what the stage should have with what it has, read-only.

:func:`plan_changes` returns plain :class:`~sls_py.provider.PlanStep` values:
``sls-py plan`` prints them and ``sls-py deploy`` hands the same list to the
executor. Each step's ``details`` holds the resource ``key`` and the names of
the props that changed (never their values: environments hold secrets).

What is compared:

- functions against AWS itself (``get_function_configuration``): code hash,
  runtime, handler, memory, timeout, role, environment, architecture; so code
  or settings changed by hand are put back;
- everything else against the recorded state, so an unchanged app costs one
  read per function and plans no steps;
- a resource recorded but no longer wanted is deleted: deletes run first, in
  reverse dependency order; creates and updates follow in dependency order.
"""

from __future__ import annotations

from typing import Any

from sls_py.errors import ProviderError
from sls_py.provider import PlanStep

from .cloud import Cloud
from .model import RANK, Resource
from .network import function_network_changes, idle_cost, without_caches
from .state import Entry, State

#: Kinds removed together with the REST API that holds them.
_API_CHILDREN = frozenset({"route", "cors", "gateway-response", "stage"})
#: Kinds whose every change means delete and create again.
_REPLACED = frozenset({"table", "bucket", "deployment-bucket"})

#: Props a kind gained after it was first deployed, with the value an older
#: deploy implied (tables were created with string keys before key types were
#: declared), so a state written before them plans no change.
_IMPLIED: dict[str, Any] = {
    "table": lambda p: {"key_type": "string", "sort_key_type": "string" if p.get("sort_key") else None},
}

_FUNCTION_FIELDS = {
    "runtime": lambda c: c.get("Runtime"),
    "handler": lambda c: c.get("Handler"),
    "memory_mb": lambda c: c.get("MemorySize"),
    "timeout_s": lambda c: c.get("Timeout"),
    "role": lambda c: c.get("Role"),
    "description": lambda c: c.get("Description", ""),
    # SLS_PY_CACHES is filled in at apply time; compared apart (network.function_network_changes)
    "environment": lambda c: without_caches((c.get("Environment") or {}).get("Variables", {})),
    "architecture": lambda c: (c.get("Architectures") or ["x86_64"])[0],
}


def step(
    action: str, entry: Resource | Entry, reason: str, changes: list[str] | None = None
) -> PlanStep:
    """A plan step for a resource, with its key and changed props in ``details``."""
    details: dict[str, Any] = {"key": entry.key}
    if changes:
        details["changes"] = changes
    return PlanStep(
        action=action,
        kind=entry.kind,
        name=entry.name,
        reason=reason,
        details=details,
    )


def changed_props(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Names of the props whose values differ."""
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def recorded_props(entry: Entry) -> dict[str, Any]:
    """The recorded props of ``entry``, with the values older deploys implied."""
    implied = _IMPLIED.get(entry.kind)
    return {**implied(entry.props), **entry.props} if implied else entry.props


def check_target(state: State, account: str, region: str) -> None:
    """Refuse to plan against a different account or region than the one recorded."""
    if state.entries and state.account and state.account != account:
        raise ProviderError(
            f"stage {state.stage!r} was deployed to AWS account {state.account}, "
            f"but the credentials in use are for account {account}",
            hint="use the credentials of that account (AWS_PROFILE), or remove the stage there",
        )
    if state.entries and state.region and state.region != region:
        raise ProviderError(
            f"stage {state.stage!r} was deployed to region {state.region}, "
            f"but the region is now {region}",
            hint=f"set AWS_REGION={state.region}, or remove the stage there first",
        )


def dependents(entry: Entry, entries: dict[str, Entry]) -> list[str]:
    """Keys of recorded resources that AWS deletes together with ``entry``:
    a REST API's routes, CORS, gateway responses and stage; a function's permissions; a bucket's
    notification configuration."""
    if entry.kind == "api":
        return [k for k, e in entries.items() if e.kind in _API_CHILDREN]
    if entry.kind == "function":
        name = entry.props.get("name")
        return [
            k
            for k, e in entries.items()
            if e.kind == "permission" and e.props.get("function") == name
        ]
    if entry.kind == "bucket":
        name = entry.props.get("name")
        return [
            k
            for k, e in entries.items()
            if e.kind == "notification" and e.props.get("bucket") == name
        ]
    return []


def plan_changes(
    desired: list[Resource],
    state: State,
    cloud: Cloud | None,
    *,
    gone_reason: str = "no longer in the app",
) -> list[PlanStep]:
    """The steps that make the stage match ``desired``; empty when it already does.

    :param cloud: used for read-only calls only (``None``: compare with the
        recorded state alone, as ``remove`` does).
    """
    wanted = {r.key: r for r in desired}
    deletes: list[PlanStep] = []
    gone = {key for key in state.entries if key not in wanted}
    folded = {k for key in gone for k in dependents(state.entries[key], state.entries)}
    for key in sorted(gone - folded, key=lambda k: (-RANK.get(state.entries[k].kind, 0), k)):
        deletes.append(step("delete", state.entries[key], gone_reason))

    updates: list[PlanStep] = []
    for res in sorted(desired, key=lambda r: RANK[r.kind]):
        recorded = state.get(res.key)
        if recorded is None:
            cost = idle_cost(res)
            updates.append(step("create", res, f"new; {cost}" if cost else "new"))
            continue
        if res.kind == "function" and cloud is not None:
            updates.extend(_function_steps(res, recorded, cloud, state))
            continue
        changes = changed_props(recorded_props(recorded), res.recorded_props())
        if not changes:
            continue
        if res.kind in _REPLACED and changes != ["tags"]:
            what = ", ".join(changes)
            updates.append(step("delete", recorded, f"{what} changed: must be replaced", changes))
            updates.append(step("create", res, "replaces the deleted one", changes))
        else:
            updates.append(step("update", res, f"{', '.join(changes)} changed", changes))
    return deletes + updates


def _function_steps(res: Resource, entry: Entry, cloud: Cloud, state: State) -> list[PlanStep]:
    """Compare a function with its configuration on AWS."""
    config = cloud.call(
        "lambda", "get_function_configuration", missing_ok=True, FunctionName=res.props["name"]
    )
    if config is None:
        return [step("create", res, "recorded but missing on AWS")]
    changes = []
    if config.get("CodeSha256") != res.props["code_sha256"]:
        changes.append("code")
    for name, read in _FUNCTION_FIELDS.items():
        if read(config) != res.props[name]:
            changes.append(name)
    recorded = entry.props
    for name in ("concurrency", "tags"):
        if recorded.get(name) != res.props[name]:
            changes.append(name)
    changes += function_network_changes(res, config, state)
    if not changes:
        return []
    return [step("update", res, f"{', '.join(changes)} changed", changes)]
