"""The AWS provider's hook implementations (boto3 is imported inside hooks only)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sls_py import hookimpl
from sls_py.config import Project
from sls_py.packaging import DeployPackage, PackageResult
from sls_py.provider import (
    ApiKey,
    ConfigEntry,
    DeployResult,
    Invocation,
    LogRecord,
    Plan,
    ProviderInfo,
    TriggerRequest,
)
from sls_py.spec import Spec
from sls_py.ui import UI

from . import __version__

if TYPE_CHECKING:
    import typer


@hookimpl
def sls_py_provider_info() -> ProviderInfo:
    return ProviderInfo(
        name="aws",
        version=__version__,
        description="AWS Lambda behind API Gateway, with S3, EventBridge, SQS, DynamoDB and Aurora.",
        capabilities=frozenset(
            {
                "invoke",
                "trigger.http",
                "http.api_key",
                "http.cors",
                "http.usage_limits",
                "trigger.schedule",
                "trigger.upload",
                "trigger.queue",
                "resource.bucket",
                "resource.queue",
                "resource.table",
                "resource.cache",
                "resource.database",
                "function.timeout",
                "function.memory",
                "function.concurrency",
                "function.invoke",
                "resource.config",
            }
        ),
    )


# --- operations (each imports the engine, and so boto3, only when called) --------


@hookimpl
def sls_py_validate_spec(spec: Spec, project: Project) -> list[str]:
    """Refuse what AWS would refuse (timeouts over 900 s, over-long names);
    warn about HTTP functions that outlive API Gateway's 29 s."""
    from .validate import validate

    return validate(spec)


@hookimpl
def sls_py_plan(spec: Spec, project: Project, ui: UI) -> Plan:
    """What ``deploy`` would create, update and delete, with read-only AWS calls."""
    from .deploy import make_cloud, plan

    return plan(spec, project, make_cloud(spec), ui)


@hookimpl
def sls_py_deploy(spec: Spec, project: Project, ui: UI) -> DeployResult:
    """Deploy the stage: only what changed; state recorded after every step."""
    from .deploy import deploy, make_cloud

    return deploy(spec, project, make_cloud(spec), ui)


@hookimpl
def sls_py_package(spec: Spec, project: Project, output: Path, ui: UI) -> PackageResult:
    """The Lambda zip, plan.json (against an empty account) and a CloudFormation
    template.yaml, written without any AWS call."""
    from .artifacts import write_artifacts

    return write_artifacts(spec, project, output, ui)


@hookimpl
def sls_py_deploy_package(
    spec: Spec, project: Project, package: DeployPackage, ui: UI
) -> DeployResult:
    """Deploy the zip of a package built earlier (no rebuild), planned live as ``deploy``."""
    from .artifacts import built_from
    from .deploy import deploy, make_cloud

    return deploy(spec, project, make_cloud(spec), ui, package=built_from(package, spec))


@hookimpl
def sls_py_remove(spec: Spec, project: Project, ui: UI) -> Plan:
    """Delete everything of the stage (and nothing of any other stage)."""
    from .deploy import make_cloud, remove

    return remove(spec, project, make_cloud(spec), ui)


@hookimpl
def sls_py_url(spec: Spec, project: Project) -> str:
    """The stage's API Gateway URL."""
    from .deploy import stage_url

    return stage_url(spec, project)


@hookimpl
def sls_py_api_keys(spec: Spec, project: Project) -> list[ApiKey]:
    """The stage's API keys with their values."""
    from .deploy import api_keys, make_cloud

    return api_keys(spec, project, make_cloud(spec))


@hookimpl
def sls_py_invoke(
    spec: Spec, project: Project, function: str, payload: Any, logs: bool, ui: UI
) -> Invocation:
    """Invoke the deployed function (a direct invocation); ``logs``: the log tail too."""
    from .deploy import make_cloud
    from .operate import invoke

    return invoke(spec, make_cloud(spec), function, payload, logs)


@hookimpl
def sls_py_logs(
    spec: Spec, project: Project, function: str, since_s: float | None, follow: bool
) -> Iterable[LogRecord]:
    """The function's CloudWatch Logs records."""
    from .deploy import make_cloud
    from .operate import logs

    return logs(spec, make_cloud(spec), function, since_s, follow)


@hookimpl
def sls_py_trigger(spec: Spec, project: Project, request: TriggerRequest, ui: UI) -> Any:
    """Upload to a deployed bucket, send to a deployed queue, or fire a schedule."""
    from .deploy import make_cloud
    from .operate import trigger

    return trigger(spec, make_cloud(spec), request)


@hookimpl
def sls_py_config_get(
    spec: Spec, project: Project, keys: list[str] | None, reveal: bool
) -> list[ConfigEntry]:
    """The stage's SSM parameters under ``/<app>/<stage>/`` (decrypted only with ``reveal``)."""
    from .config_store import get_entries
    from .deploy import make_cloud

    return get_entries(spec, make_cloud(spec), keys, reveal)


@hookimpl
def sls_py_config_set(
    spec: Spec, project: Project, key: str, value: str, secret: bool, ui: UI
) -> ConfigEntry:
    """Put ``/<app>/<stage>/KEY`` (a SecureString with the AWS-managed key for secrets)."""
    from .config_store import set_entry
    from .deploy import make_cloud

    return set_entry(spec, make_cloud(spec), key, value, secret)


@hookimpl
def sls_py_config_unset(spec: Spec, project: Project, keys: list[str], ui: UI) -> list[str]:
    """Delete the keys' SSM parameters."""
    from .config_store import unset_entries
    from .deploy import make_cloud

    return unset_entries(spec, make_cloud(spec), keys)


@hookimpl
def sls_py_add_commands(cli: typer.Typer) -> None:
    """Add ``sls-py iam-policy``."""
    from .iam_cli import iam_policy  # typer only for the CLI: a warm start loads this plugin

    cli.command("iam-policy")(iam_policy)


@hookimpl
def sls_py_migrate(spec: Spec, project: Project, ui: UI) -> list[dict[str, Any]]:
    """Apply pending migrations through the RDS Data API (``deploy`` does it too)."""
    from .deploy import make_cloud, migrate

    return migrate(spec, project, make_cloud(spec))


@hookimpl
def sls_py_db_shell(spec: Spec, project: Project, database: str, ui: UI) -> int:
    """Aurora is reached through the Data API only (no network path for psql)."""
    from sls_py.errors import NotSupported

    raise NotSupported(
        f"database {database!r} on AWS is reached through the RDS Data API, which psql cannot use",
        hint="use the RDS query editor in the AWS console, or "
        "`aws rds-data execute-statement --resource-arn ... --secret-arn ... --sql ...`",
    )
