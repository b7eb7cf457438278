"""Handlers for a database's secret, Aurora cluster, instance and migrations.

Like the other handlers, each ``create`` adopts what already exists under its
name (a deploy stopped before recording it), so an interrupted deploy
converges. AWS calls go through :class:`~sls_py_aws.executor.Ctx`.

Waiting: a cluster and its instance take minutes to become available on AWS
(moto answers at once); deletes wait until they are gone, so a later create
of the same name, or ``remove`` leaving nothing, holds.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from sls_py.migrations import Migration, MigrationError, apply_migrations
from sls_py.runtime.database import DatabaseError

from .cloud import AwsError, Cloud
from .dataapi import DataApiDatabase, error_from
from .databases import ENGINE, MASTER_USER
from .executor import Ctx, handles
from .model import Names, Resource
from .state import Entry

# --- the secret -------------------------------------------------------------------


def _password() -> str:
    """A master password Aurora accepts (no '/', '@', '"' or spaces): 40 URL-safe characters."""
    return secrets.token_urlsafe(30)


def _secret_create(ctx: Ctx, res: Resource) -> dict[str, Any]:
    p = res.props
    made = ctx.tolerate(
        {"ResourceExistsException"},
        "secretsmanager",
        "create_secret",
        Name=p["name"],
        Description="sls-py: master credentials of an Aurora cluster (used through the Data API)",
        SecretString=json.dumps({"username": p["username"], "password": _password()}),
        Tags=ctx.tag_list(p["tags"]),
    )
    if made is None:  # made by an interrupted deploy: keep it (the cluster may use it)
        made = ctx.call("secretsmanager", "describe_secret", SecretId=p["name"])
    return {"arn": made["ARN"]}


def _secret_update(ctx: Ctx, res: Resource, entry: Entry, changes: list[str]) -> dict[str, Any]:
    ctx.call(
        "secretsmanager", "tag_resource", SecretId=res.props["name"], Tags=ctx.tag_list(res.props["tags"])
    )
    return {}


def _secret_delete(ctx: Ctx, entry: Entry) -> None:
    ctx.cloud.call(
        "secretsmanager",
        "delete_secret",
        missing_ok=True,
        SecretId=entry.props["name"],
        ForceDeleteWithoutRecovery=True,
    )


def _tag(ctx: Ctx, arn: str, tags: dict[str, str]) -> None:
    ctx.call("rds", "add_tags_to_resource", ResourceName=arn, Tags=ctx.tag_list(tags))


# --- the cluster ------------------------------------------------------------------


def _scaling(p: dict[str, Any]) -> dict[str, float]:
    return {"MinCapacity": p["min_capacity"], "MaxCapacity": p["max_capacity"]}


def _cluster_create(ctx: Ctx, res: Resource) -> dict[str, Any]:
    p = res.props
    found = ctx.cloud.call("rds", "describe_db_clusters", missing_ok=True, DBClusterIdentifier=p["name"])
    if not found or not found.get("DBClusters"):
        value = ctx.call("secretsmanager", "get_secret_value", SecretId=p["secret"])["SecretString"]
        password = json.loads(value)["password"]
        ctx.call(
            "rds",
            "create_db_cluster",
            DBClusterIdentifier=p["name"],
            Engine=ENGINE,
            EngineVersion=p["engine_version"],
            DatabaseName=p["database"],
            MasterUsername=MASTER_USER,
            MasterUserPassword=password,
            EnableHttpEndpoint=True,
            StorageEncrypted=True,
            ServerlessV2ScalingConfiguration=_scaling(p),
            CopyTagsToSnapshot=True,
            Tags=ctx.tag_list(p["tags"]),
        )
    ctx.note(f"waiting for Aurora cluster {p['name']} to be available (minutes on AWS)")
    ctx.cloud.wait("rds", "db_cluster_available", DBClusterIdentifier=p["name"])
    return {"arn": f"arn:aws:rds:{ctx.region}:{ctx.account}:cluster:{p['name']}"}


def _cluster_update(ctx: Ctx, res: Resource, entry: Entry, changes: list[str]) -> dict[str, Any]:
    p = res.props
    params: dict[str, Any] = {}
    if {"min_capacity", "max_capacity"} & set(changes):
        params["ServerlessV2ScalingConfiguration"] = _scaling(p)
    if "engine_version" in changes:
        params["EngineVersion"] = p["engine_version"]
        params["AllowMajorVersionUpgrade"] = True
    if params:
        ctx.call("rds", "modify_db_cluster", DBClusterIdentifier=p["name"], ApplyImmediately=True, **params)
    if "tags" in changes:
        _tag(ctx, entry.outputs["arn"], p["tags"])
    return {}


def _cluster_delete(ctx: Ctx, entry: Entry) -> None:
    name = entry.props["name"]
    if ctx.cloud.call(
        "rds", "delete_db_cluster", missing_ok=True, DBClusterIdentifier=name, SkipFinalSnapshot=True
    ):
        ctx.note(f"waiting for Aurora cluster {name} to be deleted")
        ctx.cloud.wait("rds", "db_cluster_deleted", DBClusterIdentifier=name)


# --- the instance -----------------------------------------------------------------


def _instance_create(ctx: Ctx, res: Resource) -> dict[str, Any]:
    p = res.props
    found = ctx.cloud.call("rds", "describe_db_instances", missing_ok=True, DBInstanceIdentifier=p["name"])
    if not found or not found.get("DBInstances"):
        ctx.call(
            "rds",
            "create_db_instance",
            DBInstanceIdentifier=p["name"],
            DBClusterIdentifier=p["cluster"],
            DBInstanceClass=p["class"],
            Engine=ENGINE,
            Tags=ctx.tag_list(p["tags"]),
        )
    ctx.note(f"waiting for Aurora instance {p['name']} to be available (minutes on AWS)")
    ctx.cloud.wait("rds", "db_instance_available", DBInstanceIdentifier=p["name"])
    return {"arn": f"arn:aws:rds:{ctx.region}:{ctx.account}:db:{p['name']}"}


def _instance_update(ctx: Ctx, res: Resource, entry: Entry, changes: list[str]) -> dict[str, Any]:
    p = res.props
    if "class" in changes:
        ctx.call(
            "rds",
            "modify_db_instance",
            DBInstanceIdentifier=p["name"],
            DBInstanceClass=p["class"],
            ApplyImmediately=True,
        )
    if "tags" in changes:
        _tag(ctx, entry.outputs["arn"], p["tags"])
    return {}


def _instance_delete(ctx: Ctx, entry: Entry) -> None:
    name = entry.props["name"]
    if ctx.cloud.call("rds", "delete_db_instance", missing_ok=True, DBInstanceIdentifier=name):
        ctx.note(f"waiting for Aurora instance {name} to be deleted")
        ctx.cloud.wait("rds", "db_instance_deleted", DBInstanceIdentifier=name)


# --- migrations -------------------------------------------------------------------


def deploy_database(cloud: Cloud, names: Names, cluster: str, database: str) -> DataApiDatabase:
    """The Data API database as the deployer uses it (calls through ``cloud``)."""
    arn = f"arn:aws:rds:{names.region}:{names.account}:cluster:{cluster}"
    secret: list[str] = []

    def call(operation: str, **params: Any) -> dict[str, Any]:
        try:
            return dict(cloud.call("rds-data", operation, **params))
        except AwsError as exc:
            # "rds-data.execute_statement failed: BadRequestException: ERROR: ..."
            message = exc.message.split(": ", 2)[-1] if exc.code else exc.message
            raise error_from(exc.code, message, database) from None

    def secret_arn() -> str:
        if not secret:
            found = cloud.call("secretsmanager", "describe_secret", SecretId=f"{cluster}-credentials")
            secret.append(str(found["ARN"]))
        return secret[0]

    return DataApiDatabase(call, database, arn, secret_arn, database)


def _migrations_apply(ctx: Ctx, res: Resource) -> dict[str, Any]:
    p = res.props
    driver = deploy_database(ctx.cloud, ctx.names, p["cluster"], p["database"])
    files = [Migration(name, sql) for name, sql in sorted(p["files"].items())]
    try:
        report = apply_migrations(driver, p["database"], files)
    except DatabaseError as exc:
        raise MigrationError(str(exc)) from None
    if report.applied:
        ctx.note(f"database {p['database']!r}: applied {', '.join(report.applied)}")
    if report.changed:
        ctx.note(
            f"database {p['database']!r}: {', '.join(report.changed)} changed after being applied "
            "and were not run again; write a new migration instead"
        )
    return {"applied": len(report.applied) + len(report.already)}


def _migrations_update(ctx: Ctx, res: Resource, entry: Entry, changes: list[str]) -> dict[str, Any]:
    return _migrations_apply(ctx, res)


def _migrations_delete(ctx: Ctx, entry: Entry) -> None:
    """Nothing to undo: applied migrations stay in the database (which goes with its cluster)."""


handles("database-secret", _secret_create, _secret_update, _secret_delete)
handles("database", _cluster_create, _cluster_update, _cluster_delete)
handles("database-instance", _instance_create, _instance_update, _instance_delete)
handles("migrations", _migrations_apply, _migrations_update, _migrations_delete)


# --- finding them by name (remove without a state file) ----------------------------


def _find_secret(cloud: Cloud, names: Names, res: Resource) -> dict[str, Any] | None:
    found = cloud.call("secretsmanager", "describe_secret", missing_ok=True, SecretId=res.props["name"])
    return {"arn": found["ARN"]} if found else None


def _find_cluster(cloud: Cloud, names: Names, res: Resource) -> dict[str, Any] | None:
    found = cloud.call("rds", "describe_db_clusters", missing_ok=True, DBClusterIdentifier=res.props["name"])
    clusters = (found or {}).get("DBClusters") or []
    return {"arn": clusters[0]["DBClusterArn"]} if clusters else None


def _find_instance(cloud: Cloud, names: Names, res: Resource) -> dict[str, Any] | None:
    found = cloud.call(
        "rds", "describe_db_instances", missing_ok=True, DBInstanceIdentifier=res.props["name"]
    )
    items = (found or {}).get("DBInstances") or []
    return {"arn": items[0]["DBInstanceArn"]} if items else None


FINDERS = {
    "database-secret": _find_secret,
    "database": _find_cluster,
    "database-instance": _find_instance,
}
