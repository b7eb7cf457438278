"""The deploy engine: build (no network) -> plan (read-only) -> apply.

These functions back the plugin's hooks. Each takes a :class:`Cloud` so that
tests and the benchmark can count its calls; the hooks make one from the
spec's settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sls_py.config import Project, resolve_environment
from sls_py.errors import ProviderError
from sls_py.provider import ApiKey, DeployResult, Plan, PlanStep
from sls_py.spec import Spec
from sls_py.ui import UI

from .cloud import Cloud
from .databases import with_costs
from .discover import discover
from .environment import lambda_environment
from .executor import Ctx, apply_plan
from .model import Names, Resource, Target, desired_resources, physical_names, settings
from .package import BuiltPackage
from .planner import check_target, plan_changes
from .state import State, stage_lock, state_path


def make_cloud(spec: Spec) -> Cloud:
    """A :class:`Cloud` for the spec's region setting (the environment wins)."""
    region = settings(spec)["region"]
    return Cloud(region=str(region) if region else None)


def build(spec: Spec, project: Project, ui: UI | None = None) -> BuiltPackage:
    """Build the deployment package (no network unless dependencies must be fetched)."""
    from .package import build_package

    conf = settings(spec)
    wheel_dir = conf["wheel_dir"]
    pkg = build_package(
        spec,
        project,
        include_dependencies=conf["include_dependencies"],
        wheel_dir=(project.root / str(wheel_dir)) if wheel_dir else None,
    )
    if ui is not None:
        ui.info(f"Package: {pkg.describe()}")
    return pkg


@dataclass
class Prepared:
    """The inputs of plan and apply for one stage."""

    spec: Spec
    names: Names
    state: State
    desired: list[Resource]
    package: BuiltPackage


def prepare(
    spec: Spec,
    project: Project,
    cloud: Cloud,
    ui: UI | None = None,
    package: BuiltPackage | None = None,
) -> Prepared:
    """Build the package (unless ``package`` is one built earlier) and the desired
    resources; load the recorded state."""
    for fn in spec.functions:  # a missing ${env:NAME} fails before anything is built
        resolve_environment(fn.environment)
    package = package or build(spec, project, ui)
    account = cloud.account_id()
    region = cloud.region_name
    names = Names(spec, account, region)
    physical = physical_names(names)
    environments = {fn.name: lambda_environment(spec, fn, names=physical) for fn in spec.functions}
    target = Target(
        account=account, region=region, code_sha256=package.code_sha256, code_size=package.size
    )
    desired = desired_resources(spec, target, environments, project_root=project.root)
    state = load_state(spec, project)
    check_target(state, account, region)
    return Prepared(spec, names, state, desired, package)


def load_state(spec: Spec, project: Project) -> State:
    """The recorded state of the spec's stage."""
    return State.load(state_path(project.state_dir, spec.stage), spec.app, spec.stage)


def plan(spec: Spec, project: Project, cloud: Cloud, ui: UI | None = None) -> Plan:
    """What ``deploy`` would do (read-only calls only)."""
    prep = prepare(spec, project, cloud, ui)
    return Plan(with_costs(plan_changes(prep.desired, prep.state, cloud), spec))


def deploy(
    spec: Spec, project: Project, cloud: Cloud, ui: UI, package: BuiltPackage | None = None
) -> DeployResult:
    """Make the stage match the spec; record the state after every step.

    :param package: the zip to deploy (``deploy --package``); default: build it now.
    """
    with stage_lock(state_file(spec, project)):
        return _deploy(spec, project, cloud, ui, package)


def _deploy(
    spec: Spec, project: Project, cloud: Cloud, ui: UI, package: BuiltPackage | None = None
) -> DeployResult:
    prep = prepare(spec, project, cloud, ui, package)
    steps = with_costs(plan_changes(prep.desired, prep.state, cloud), spec)
    if not steps:
        ui.info("No changes: the deployed stage matches the app.")
    ctx = Ctx(cloud=cloud, names=prep.names, state=prep.state, package=prep.package, ui=ui)
    applied = apply_plan(steps, prep.desired, ctx, ui)
    url = prep.state.output(f"stage:{spec.stage}", "url")
    keys = [e.name for e in prep.state.entries.values() if e.kind == "api-key"]
    return DeployResult(
        applied=applied,
        url=url,
        api_keys=sorted(keys),
        outputs={
            "calls": len(cloud.calls),
            "mutating_calls": cloud.mutating_calls,
            "package_bytes": prep.package.size,
        },
    )


def remove(spec: Spec, project: Project, cloud: Cloud, ui: UI) -> Plan:
    """Delete everything of the stage, in reverse dependency order.

    What is deleted is what the state file lists; without a state file, the
    resources the current app would have are looked up by their names.
    """
    with stage_lock(state_file(spec, project)):
        state = load_state(spec, project)
        account = cloud.account_id()
        region = cloud.region_name
        names = Names(spec, account, region)
        if not state.entries:
            candidates = [
                *desired_resources(spec, Target(account=account, region=region), {}),
                Resource(
                    "deployment-bucket",
                    names.deployment_bucket,
                    {"name": names.deployment_bucket, "tags": names.tags()},
                ),
            ]
            found = discover(state, candidates, cloud, names)
            if not found:
                ui.info(f"Nothing to remove: stage {spec.stage!r} has no resources on AWS.")
                return Plan([])
            ui.info(
                f"No deploy of stage {spec.stage!r} is recorded here; "
                f"found {found} of its resources on AWS by name."
            )
        check_target(state, account, region)
        steps = plan_changes([], state, None, gone_reason=f"stage {spec.stage} removed")
        ctx = Ctx(cloud=cloud, names=names, state=state, ui=ui)
        done = apply_plan(steps, [], ctx, ui)
        if not state.entries:
            state.path.unlink(missing_ok=True)
        return Plan(done)


def stage_url(spec: Spec, project: Project) -> str:
    """The stage's URL, from the recorded state."""
    state = load_state(spec, project)
    url = state.output(f"stage:{spec.stage}", "url")
    if not url:
        has_http = any(fn.http_triggers() for fn in spec.functions)
        raise ProviderError(
            f"stage {spec.stage!r} has no deployed HTTP API",
            hint="run `sls-py deploy --provider aws` first"
            if has_http
            else "the app has no HTTP routes",
        )
    return str(url)


def api_keys(spec: Spec, project: Project, cloud: Cloud) -> list[ApiKey]:
    """The stage's API keys with their values (read from API Gateway)."""
    state = load_state(spec, project)
    out = []
    for entry in sorted(
        (e for e in state.entries.values() if e.kind == "api-key"), key=lambda e: e.name
    ):
        key = cloud.call("apigateway", "get_api_key", apiKey=entry.outputs["id"], includeValue=True)
        out.append(ApiKey(name=entry.name, value=str(key.get("value", ""))))
    return out


def plan_as_data(steps: list[PlanStep]) -> list[dict[str, Any]]:
    """Steps as plain dicts (for JSON and tests)."""
    return [{"action": s.action, "kind": s.kind, "name": s.name, "reason": s.reason} for s in steps]


def state_file(spec: Spec, project: Project) -> Path:
    """Where the stage's state is recorded."""
    return state_path(project.state_dir, spec.stage)


def migrate(spec: Spec, project: Project, cloud: Cloud) -> list[dict[str, Any]]:
    """Apply every database's pending migrations through the Data API."""
    from sls_py.migrations import apply_migrations, migration_files

    from .databases import cluster_id
    from .handlers_database import deploy_database

    names = Names(spec, cloud.account_id(), cloud.region_name)
    state = load_state(spec, project)
    out = []
    for db in spec.databases:
        if state.get(f"database-instance:{db.name}") is None:
            raise ProviderError(
                f"database {db.name!r} is not deployed to stage {spec.stage!r}",
                hint="run `sls-py deploy --provider aws` (it applies the migrations too)",
            )
        driver = deploy_database(cloud, names, cluster_id(spec, db.name), db.name)
        r = apply_migrations(driver, db.name, migration_files(project.root, db))
        out.append({"database": r.database, "applied": r.applied, "already": r.already, "changed": r.changed})
    return out
