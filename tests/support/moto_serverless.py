"""ElastiCache Serverless for the moto server, which (5.2.5) does not have it.

moto answers ``CreateServerlessCache`` and its siblings with "not
implemented", so a whole-app deploy of an app with ``app.cache`` could not run
against it at all. :func:`install` adds the four calls sls-py makes to moto's
own ElastiCache response class (``create``, ``describe``, ``delete``
``_serverless_cache[s]``; tags go through moto's tagging), with the state
kept per account and region like moto's backends, so the deploy tests go on
running over HTTP against the moto server and checking through AWS read APIs.

What this stand-in does, honestly: it validates the name (ElastiCache's
rules), that the security groups and subnets exist in moto's EC2 (so a deploy
that passed the wrong ids fails here as on AWS), refuses a duplicate name
(``ServerlessCacheAlreadyExistsFault``), makes up an endpoint, and answers
``available`` at once (AWS takes minutes: the waiting code is covered by
``tests/aws/deploy/test_aws_cache_units.py`` with botocore's Stubber). moto
serialises the answers with botocore's own model of the API, so their shapes
are AWS's. It does not run a server: functions deployed to moto cannot reach
this cache, and the AWS conformance harness points them at a real local
valkey-server instead (see tests/conformance/aws_lambda.py).
"""

from __future__ import annotations

import re
import threading
from typing import Any

_lock = threading.Lock()
_caches: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


def _fault(code: str, message: str) -> Exception:
    """An ElastiCache error answer with AWS's code (moto writes the XML)."""
    from moto.elasticache.exceptions import ElastiCacheException

    fault: Exception = type("Fault", (ElastiCacheException,), {"code": code})(message)
    return fault


def _check_network(account: str, region: str, groups: list[str], subnets: list[str]) -> None:
    from moto.ec2.models import ec2_backends

    ec2 = ec2_backends[account][region]
    known_groups = {g.id for g in ec2.describe_security_groups()}
    known_subnets = {s.id for s in ec2.describe_subnets()}
    for g in groups:
        if g not in known_groups:
            raise _fault("InvalidParameterValue", f"Security group {g} does not exist")
    for s in subnets:
        if s not in known_subnets:
            raise _fault("InvalidSubnet", f"Subnet {s} does not exist")


def _automated_cluster_backups_go_with_the_cluster() -> None:
    """moto keeps a deleted Aurora cluster's automated snapshot (named
    ``rds:<cluster>-<YYYY-MM-DD-HH-MM>``), so creating a cluster of the same name in
    the same minute failed with DBClusterSnapshotAlreadyExistsFault: a test that
    removes a stage and deploys it again, or two tests of a module deploying the
    example app's prod stage. AWS deletes a cluster's automated backups with it
    (unless asked to retain them, which sls-py never does): so does this."""
    from moto.rds.models import RDSBackend

    if getattr(RDSBackend, "_sls_py_backups", False):
        return
    delete = RDSBackend.delete_db_cluster

    def delete_db_cluster(self: Any, cluster_identifier: str, snapshot_name: str | None = None) -> Any:
        cluster = delete(self, cluster_identifier, snapshot_name)
        for name, snap in list(self.cluster_snapshots.items()):
            if snap.snapshot_type == "automated" and snap.cluster.db_cluster_identifier == cluster_identifier:
                del self.cluster_snapshots[name]
        return cluster

    RDSBackend.delete_db_cluster = delete_db_cluster
    RDSBackend._sls_py_backups = True


def install() -> None:
    """Add the serverless-cache calls to moto's ElastiCache responses (idempotent),
    and make a deleted cluster's automated backups go with it (see
    :func:`_automated_cluster_backups_go_with_the_cluster`)."""
    _automated_cluster_backups_go_with_the_cluster()
    from moto.core.responses import ActionResult
    from moto.elasticache.responses import ElastiCacheResponse

    if getattr(ElastiCacheResponse, "_sls_py_serverless", False):
        return

    def store(self: Any) -> dict[str, dict[str, Any]]:
        return _caches.setdefault((self.current_account, self.region), {})

    def create_serverless_cache(self: Any) -> Any:
        params = self._get_params()
        name = params["ServerlessCacheName"]
        if len(name) > 40 or not _NAME.match(name):
            raise _fault("InvalidParameterValue", f"Invalid serverless cache name {name!r}")
        groups, subnets = params.get("SecurityGroupIds", []), params.get("SubnetIds", [])
        _check_network(self.current_account, self.region, groups, subnets)
        arn = f"arn:aws:elasticache:{self.region}:{self.current_account}:serverlesscache:{name}"
        address = f"{name}-abc123.serverless.{self.region}.cache.amazonaws.com"
        cache = {
            "ServerlessCacheName": name,
            "Description": params.get("Description", ""),
            "Status": "available",
            "Engine": params.get("Engine", "valkey"),
            "MajorEngineVersion": "8",
            "FullEngineVersion": "8.0",
            "SecurityGroupIds": groups,
            "SubnetIds": subnets,
            "Endpoint": {"Address": address, "Port": 6379},
            "ReaderEndpoint": {"Address": address, "Port": 6380},
            "ARN": arn,
        }
        with _lock:
            caches = store(self)
            if name in caches:
                raise _fault("ServerlessCacheAlreadyExistsFault", f"Serverless cache {name} exists")
            caches[name] = cache
        if params.get("Tags"):
            self.elasticache_backend.tagging_service.tag_resource(arn, params["Tags"])
        return ActionResult({"ServerlessCache": dict(cache, Status="creating")})

    def describe_serverless_caches(self: Any) -> Any:
        name = self._get_param("ServerlessCacheName")
        with _lock:
            caches = store(self)
            if name is not None:
                if name not in caches:
                    raise _fault("ServerlessCacheNotFoundFault", f"Serverless cache {name} not found")
                found = [caches[name]]
            else:
                found = list(caches.values())
        return ActionResult({"ServerlessCaches": [dict(c) for c in found]})

    def delete_serverless_cache(self: Any) -> Any:
        name = self._get_param("ServerlessCacheName")
        with _lock:
            cache = store(self).pop(name, None)
        if cache is None:
            raise _fault("ServerlessCacheNotFoundFault", f"Serverless cache {name} not found")
        return ActionResult({"ServerlessCache": dict(cache, Status="deleting")})

    ElastiCacheResponse.create_serverless_cache = create_serverless_cache  # type: ignore[attr-defined]
    ElastiCacheResponse.describe_serverless_caches = describe_serverless_caches  # type: ignore[attr-defined]
    ElastiCacheResponse.delete_serverless_cache = delete_serverless_cache  # type: ignore[attr-defined]
    ElastiCacheResponse._sls_py_serverless = True  # type: ignore[attr-defined]

    # moto's tagging checks ARNs against its own resource kinds: let serverless caches in
    from moto.elasticache import models

    backend_cls = models.ElastiCacheBackend
    original = backend_cls.list_tags_for_resource

    def list_tags_for_resource(self: Any, arn: str) -> Any:
        if ":serverlesscache:" in arn:
            return self.tagging_service.list_tags_for_resource(arn)
        return original(self, arn)

    backend_cls.list_tags_for_resource = list_tags_for_resource  # type: ignore[method-assign]
