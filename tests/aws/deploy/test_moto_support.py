"""The moto server the deploy tests run against behaves as AWS where sls-py's
deploys depend on it (tests/support/moto_serverless.py)."""

from __future__ import annotations

import boto3
from aws_deploy_support import Moto


def test_a_cluster_deleted_and_created_again_in_the_same_minute(aws_env: Moto) -> None:
    """AWS deletes a cluster's automated backups with it; moto kept the snapshot
    named after the minute, and a second create of that name failed."""
    rds = boto3.client("rds", region_name="us-east-1")
    args = {
        "DBClusterIdentifier": "moto-support-db",
        "Engine": "aurora-postgresql",
        "MasterUsername": "admin_user",
        "MasterUserPassword": "not-a-secret-1",
    }
    for _ in range(2):
        rds.create_db_cluster(**args)
        snapshots = rds.describe_db_cluster_snapshots(DBClusterIdentifier="moto-support-db")
        assert [s["SnapshotType"] for s in snapshots["DBClusterSnapshots"]] == ["automated"]
        rds.delete_db_cluster(DBClusterIdentifier="moto-support-db", SkipFinalSnapshot=True)
        left = rds.describe_db_cluster_snapshots(DBClusterIdentifier="moto-support-db")
        assert left["DBClusterSnapshots"] == []
