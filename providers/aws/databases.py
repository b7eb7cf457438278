"""``app.database`` on AWS, build side: what a declared database deploys.

Each declared database is an Aurora Serverless v2 PostgreSQL cluster of its
own (``<app>-<stage>-<name>``, holding the database ``<name>``) with the RDS
Data API enabled, so functions reach it over HTTPS without joining a VPC:

- ``database-secret``: the master credentials in Secrets Manager
  (``<cluster>-credentials``), a password generated at deploy time and never
  printed or recorded;
- ``database``: the cluster (``EnableHttpEndpoint``, encrypted storage,
  serverless v2 scaling between ``database_min_capacity`` and
  ``database_max_capacity`` ACUs);
- ``database-instance``: its one ``db.serverless`` instance (the compute);
- ``migrations``: the app's ``.sql`` files, applied through the Data API on
  deploy; recorded as one digest per file, so an unchanged app plans nothing.

Settings (``[tool.sls-py.providers.aws]``): ``database_engine_version``
(default ``16.6``), ``database_min_capacity`` (0.5; 0 lets Aurora pause when
idle, and the first query after a pause waits ~15 s while it resumes),
``database_max_capacity`` (2).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sls_py.errors import SpecError
from sls_py.migrations import migration_files
from sls_py.provider import PlanStep
from sls_py.spec import Spec

from .dataapi import SECRET_SUFFIX

if TYPE_CHECKING:
    from .model import Names, Resource

ENGINE = "aurora-postgresql"
DEFAULT_ENGINE_VERSION = "16.6"
MASTER_USER = "sls_py"
INSTANCE_CLASS = "db.serverless"

#: Said in the plan for every database created: what it costs while nobody uses it.
IDLE_COST = (
    "costs money while idle: Aurora Serverless v2 bills its minimum capacity "
    "({min} ACU, about ${usd:.2f}/hour in us-east-1) around the clock, plus storage"
)
#: the ACU-hour price of Aurora Serverless v2 (us-east-1, Aurora Standard), for the plan's note
ACU_HOUR_USD = 0.12


def cluster_id(spec: Spec, name: str) -> str:
    """The cluster identifier (lower case letters, digits, hyphens; at most 63)."""
    qualified = next(d.qualified_name for d in spec.databases if d.name == name)
    return qualified.replace("_", "-")[:63].rstrip("-")


def cluster_arn(names: Names, name: str) -> str:
    return f"arn:aws:rds:{names.region}:{names.account}:cluster:{cluster_id(names.spec, name)}"


def secret_name(spec: Spec, name: str) -> str:
    return cluster_id(spec, name) + SECRET_SUFFIX


def secret_arn_pattern(names: Names, name: str) -> str:
    """The secret's ARN for IAM: AWS appends ``-`` and six random characters."""
    return (
        f"arn:aws:secretsmanager:{names.region}:{names.account}:secret:{secret_name(names.spec, name)}-??????"
    )


def capacity(spec: Spec) -> tuple[float, float]:
    """Serverless v2 capacity range (ACUs), checked."""
    raw = spec.provider_settings("aws")
    try:
        low = float(raw.get("database_min_capacity", 0.5))
        high = float(raw.get("database_max_capacity", 2))
    except (TypeError, ValueError):
        raise SpecError(
            "[tool.sls-py.providers.aws] database_min_capacity / database_max_capacity must be numbers",
            hint="for example database_min_capacity = 0.5, database_max_capacity = 4",
        ) from None
    if not (0 <= low <= high <= 256) or (low * 2) % 1 or (high * 2) % 1 or high < 1:
        raise SpecError(
            f"Aurora Serverless v2 capacity {low:g}-{high:g} ACU is not valid",
            hint="use steps of 0.5 ACU: min 0 to 256, max 1 to 256, min <= max",
        )
    return low, high


def engine_version(spec: Spec) -> str:
    return str(spec.provider_settings("aws").get("database_engine_version", DEFAULT_ENGINE_VERSION))


def physical(names: Names) -> dict[str, str]:
    """logical name -> cluster ARN, what the functions' handles are given."""
    return {d.name: cluster_arn(names, d.name) for d in names.spec.databases}


def idle_cost(spec: Spec) -> str:
    low, _ = capacity(spec)
    if low == 0:
        return "pauses when idle (min capacity 0): storage is billed, compute is not"
    return IDLE_COST.format(min=f"{low:g}", usd=low * ACU_HOUR_USD)


def database_resources(spec: Spec, names: Names, project_root: Path | None) -> list[Resource]:
    """The resources of every declared database, in creation order.

    :param project_root: where the migration folders are (``None``: no
        migrations resource, as when ``remove`` lists what may exist).
    """
    from .model import Resource

    out: list[Resource] = []
    if not spec.databases:
        return out
    low, high = capacity(spec)
    tags = names.tags()
    for db in spec.databases:
        ident = cluster_id(spec, db.name)
        out.append(
            Resource(
                "database-secret",
                db.name,
                {"name": secret_name(spec, db.name), "username": MASTER_USER, "tags": tags},
            )
        )
        out.append(
            Resource(
                "database",
                db.name,
                {
                    "name": ident,
                    "database": db.name,
                    "engine": ENGINE,
                    "engine_version": engine_version(spec),
                    "min_capacity": low,
                    "max_capacity": high,
                    "secret": secret_name(spec, db.name),
                    "tags": tags,
                },
            )
        )
        out.append(
            Resource(
                "database-instance",
                db.name,
                {"name": f"{ident}-1", "cluster": ident, "class": INSTANCE_CLASS, "tags": tags},
            )
        )
        if project_root is not None and db.migrations is not None:
            files = {m.name: m.sql for m in migration_files(project_root, db)}
            out.append(
                Resource(
                    "migrations",
                    db.name,
                    {"database": db.name, "cluster": ident, "files": files},
                    secret_props=("files",),  # recorded as digests: state files stay small
                )
            )
    return out


def iam_statements(spec: Spec, names: Names) -> list[dict[str, Any]]:
    """Data API calls on these clusters only; their secrets only."""
    if not spec.databases:
        return []
    return [
        {
            "Sid": "DatabaseDataApi",
            "Effect": "Allow",
            "Action": [
                "rds-data:BatchExecuteStatement",
                "rds-data:BeginTransaction",
                "rds-data:CommitTransaction",
                "rds-data:ExecuteStatement",
                "rds-data:RollbackTransaction",
            ],
            "Resource": [cluster_arn(names, d.name) for d in spec.databases],
        },
        {
            # GetSecretValue: the Data API reads the credentials as the caller;
            # DescribeSecret: the function finds the secret's full ARN by its name
            "Sid": "DatabaseSecrets",
            "Effect": "Allow",
            "Action": ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"],
            "Resource": [secret_arn_pattern(names, d.name) for d in spec.databases],
        },
    ]


def with_costs(steps: list[PlanStep], spec: Spec) -> list[PlanStep]:
    """The plan with what costs money while idle said in the steps that create it."""
    out = []
    for step in steps:
        if step.kind == "database-instance" and step.action == "create":
            step = dataclasses.replace(step, reason=f"{step.reason}; {idle_cost(spec)}")
        out.append(step)
    return out
