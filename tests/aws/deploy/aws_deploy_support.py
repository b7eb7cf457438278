"""Helpers for the AWS deploy tests: a moto server, the project copy, and a
snapshot of everything a stage has on AWS, read only through AWS read APIs.

The snapshot finds resources by their names (not through sls-py's state file),
so it also sees duplicates and leftovers, and it replaces the ids AWS makes up
(REST API ids, key ids, UUIDs) with stable placeholders, so two deploys can be
compared as whole values.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]
EXAMPLE_APP = REPO / "apps" / "work_magic"
REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account

# The recorder writes every request the moto server receives to this file; it
# must be set before moto is imported (it is read once), and be ours alone.
os.environ.setdefault(
    "MOTO_RECORDER_FILEPATH", str(Path(tempfile.mkdtemp(prefix="sls-py-moto-")) / "recording")
)
os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Moto:
    """A moto server over HTTP on 127.0.0.1, and the environment that points at it.

    moto runs no SQL, so the Data API (deploy's migrations, a function's queries)
    goes to ``support.data_api`` instead (``AWS_ENDPOINT_URL_RDS_DATA`` in
    :meth:`env`): a real PostgreSQL server behind it, started by the first Data API
    request, so modules that deploy no database never start one.
    """

    def __init__(self) -> None:
        import logging

        from moto.moto_api import recorder
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        from support.moto_serverless import install

        install()  # moto has no ElastiCache Serverless; see that module
        recorder._location = os.environ[
            "MOTO_RECORDER_FILEPATH"
        ]  # in case moto was imported earlier
        self.port = free_port()
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        from sls_py_local.postgres import PostgresServer
        from support.data_api import DataApiServer

        self._postgres_dir = Path(tempfile.mkdtemp(prefix="sls-py-data-api-"))
        self.data_api = DataApiServer(PostgresServer(self._postgres_dir / "postgres"), lazy=True)

    def env(self, **extra: str) -> dict[str, str]:
        """An environment for a CLI subprocess: fake credentials, the endpoint, no profile."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SLS_PY_"))}
        env.update(
            AWS_ENDPOINT_URL=self.endpoint,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_DEFAULT_REGION=REGION,
            AWS_CONFIG_FILE=os.devnull,
            AWS_SHARED_CREDENTIALS_FILE=os.devnull,
            AWS_EC2_METADATA_DISABLED="true",
            AWS_ENDPOINT_URL_RDS_DATA=self.data_api.url,
        )
        env.update(extra)
        return env

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def _api(self, path: str) -> None:
        import urllib.request

        urllib.request.urlopen(
            urllib.request.Request(f"{self.endpoint}/moto-api/recorder/{path}", method="POST"),
            timeout=10,
        ).read()

    def start_recording(self) -> None:
        self._api("reset-recording")
        self._api("start-recording")

    def stop_recording(self) -> list[dict[str, Any]]:
        """The requests received since :meth:`start_recording`."""
        self._api("stop-recording")
        path = Path(os.environ["MOTO_RECORDER_FILEPATH"])
        lines = path.read_text().splitlines() if path.exists() else []
        return [json.loads(line) for line in lines if line.strip()]

    def stop(self) -> None:
        self.server.stop()
        self.data_api.stop()
        shutil.rmtree(self._postgres_dir, ignore_errors=True)


_READ = re.compile(r"^(Get|List|Describe|Head|Filter)")


def operation_of(request: dict[str, Any]) -> str:
    """The API operation of a recorded request (``PUT /2015-03-31/...`` for REST ones)."""
    headers = {k.lower(): v for k, v in request["headers"].items()}
    target = headers.get("x-amz-target")
    if target:
        return str(target.split(".")[-1])
    body = request.get("body") or ""
    if request.get("body_encoded"):
        body = base64.b64decode(body).decode("utf-8", "replace")
    m = re.search(r"(?:^|&)Action=([A-Za-z]+)", body)
    if m:
        return m.group(1)
    from urllib.parse import urlparse

    return f"{request['method']} {urlparse(request['url']).path}"


def mutating(requests: list[dict[str, Any]]) -> list[str]:
    """The recorded requests that change something, as operation names."""
    out = []
    for r in requests:
        op = operation_of(r)
        if " " in op:  # a REST-style call: only GET and HEAD read
            if not op.startswith(("GET ", "HEAD ")):
                out.append(op)
        elif not _READ.match(op):
            out.append(op)
    return out


def copy_app(tmp: Path, name: str = "app") -> Path:
    """The example app, copied, packed without third-party dependencies (no network)."""
    dest = tmp / name
    shutil.copytree(EXAMPLE_APP, dest, ignore=shutil.ignore_patterns(".sls-py", "__pycache__"))
    pyproject = dest / "pyproject.toml"
    text = pyproject.read_text()
    text = text.replace(
        'architecture = "x86_64"', 'architecture = "x86_64"\ninclude_dependencies = false'
    )
    pyproject.write_text(text)
    return dest


def cli(
    args: list[str], env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``sls-py ARGS`` as a subprocess, the way a user would (the installed
    console script; ``python -m sls_py`` where there is none)."""
    script = Path(sys.executable).with_name("sls-py")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "sls_py"]
    return subprocess.run(
        [*command, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# --- the snapshot ---------------------------------------------------------------


class _Ids:
    """Replace made-up ids with ``<kind-n>`` placeholders, in order of first sight."""

    def __init__(self) -> None:
        self.seen: dict[str, str] = {}

    def __call__(self, kind: str, value: str) -> str:
        if value not in self.seen:
            self.seen[value] = (
                f"<{kind}-{sum(1 for v in self.seen.values() if v.startswith('<' + kind))}>"
            )
        return self.seen[value]

    def scrub(self, value: Any) -> Any:
        text = json.dumps(value, sort_keys=True)
        for raw, placeholder in sorted(self.seen.items(), key=lambda kv: -len(kv[0])):
            text = text.replace(raw, placeholder)
        return json.loads(text)


def _tags(tags: Any) -> dict[str, str]:
    if isinstance(tags, list):
        return {t["Key"]: t["Value"] for t in tags}
    return dict(tags or {})


def snapshot(moto: Moto, app: str, stage: str) -> dict[str, Any]:
    """Everything the stage has on AWS, found by name, as plain comparable data."""
    prefix = f"{app}-{stage}-"
    ids = _Ids()
    out: dict[str, Any] = {}

    iam = moto.client("iam")
    roles = [r for r in iam.list_roles()["Roles"] if r["RoleName"].startswith(prefix)]
    out["roles"] = {}
    for r in roles:
        name = r["RoleName"]
        policies = {
            p: iam.get_role_policy(RoleName=name, PolicyName=p)["PolicyDocument"]
            for p in iam.list_role_policies(RoleName=name)["PolicyNames"]
        }
        attached = [
            p["PolicyName"]
            for p in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]
        ]
        out["roles"][name] = {
            "trust": r["AssumeRolePolicyDocument"],
            "policies": policies,
            "attached": attached,
            "tags": _tags(iam.list_role_tags(RoleName=name)["Tags"]),
        }

    lam = moto.client("lambda")
    functions = [
        f for f in lam.list_functions()["Functions"] if f["FunctionName"].startswith(prefix)
    ]
    out["functions"] = {}
    for f in sorted(functions, key=lambda f: f["FunctionName"]):
        name = f["FunctionName"]
        conf = lam.get_function(FunctionName=name)
        cfg = conf["Configuration"]
        vpc = cfg.get("VpcConfig") or {}
        try:
            policy = json.loads(lam.get_policy(FunctionName=name)["Policy"])["Statement"]
        except lam.exceptions.ResourceNotFoundException:
            policy = []
        mappings = lam.list_event_source_mappings(FunctionName=name)["EventSourceMappings"]
        out["functions"][name] = {
            "runtime": cfg["Runtime"],
            "handler": cfg["Handler"],
            "role": cfg["Role"],
            "memory": cfg["MemorySize"],
            "timeout": cfg["Timeout"],
            "architectures": cfg.get("Architectures"),
            "environment": cfg.get("Environment", {}).get("Variables", {}),
            "vpc": {
                "subnets": sorted(ids("subnet", s) for s in vpc.get("SubnetIds", [])),
                "groups": [ids("sg", g) for g in vpc.get("SecurityGroupIds", [])],
            },
            "code_sha256": cfg["CodeSha256"],
            "concurrency": conf.get("Concurrency", {}).get("ReservedConcurrentExecutions"),
            "tags": conf.get("Tags", {}),
            "permissions": sorted(
                (
                    {"sid": s["Sid"], "principal": s["Principal"], "condition": s.get("Condition")}
                    for s in policy
                ),
                key=lambda s: s["sid"],
            ),
            "event_sources": sorted(
                (
                    {
                        "source": m["EventSourceArn"],
                        "batch": m["BatchSize"],
                        "response_types": m.get("FunctionResponseTypes", []),
                    }
                    for m in mappings
                ),
                key=lambda m: m["source"],
            ),
        }

    apigw = moto.client("apigateway")
    apis = [a for a in apigw.get_rest_apis()["items"] if a["name"] == f"{app}-{stage}"]
    out["apis"] = []
    for api in apis:
        api_id = ids("api", api["id"])
        resources = apigw.get_resources(restApiId=api["id"], limit=500)["items"]
        methods: dict[str, Any] = {}
        for res in resources:
            for method in res.get("resourceMethods") or {}:
                m = apigw.get_method(restApiId=api["id"], resourceId=res["id"], httpMethod=method)
                integ = m.get("methodIntegration", {})
                entry = {
                    "api_key": m.get("apiKeyRequired", False),
                    "auth": m.get("authorizationType"),
                    "integration": integ.get("type"),
                    "uri": integ.get("uri"),
                }
                if integ.get("type") == "MOCK":
                    entry["request_templates"] = integ.get("requestTemplates")
                    entry["responses"] = {
                        code: r.get("responseParameters")
                        for code, r in (integ.get("integrationResponses") or {}).items()
                    }
                    entry["method_responses"] = {
                        code: r.get("responseParameters")
                        for code, r in (m.get("methodResponses") or {}).items()
                    }
                methods[f"{method} {res['path']}"] = entry
        gateway_responses = {
            r["responseType"]: r.get("responseParameters")
            for r in apigw.get_gateway_responses(restApiId=api["id"])["items"]
        }
        stages = apigw.get_stages(restApiId=api["id"])["item"]
        out["apis"].append(
            {
                "id": api_id,
                "tags": api.get("tags", {}),
                "binary_media_types": api.get("binaryMediaTypes", []),
                "gateway_responses": gateway_responses,
                "paths": sorted(r["path"] for r in resources),
                "methods": methods,
                "stages": sorted(s["stageName"] for s in stages),
                "deployments": len(apigw.get_deployments(restApiId=api["id"])["items"]) > 0,
            }
        )
    keys = [
        k for k in apigw.get_api_keys(includeValues=True)["items"] if k["name"].startswith(prefix)
    ]
    out["api_keys"] = sorted(
        (
            {
                "name": k["name"],
                "id": ids("key", k["id"]),
                "enabled": k["enabled"],
                "tags": k.get("tags", {}),
            }
            for k in keys
        ),
        key=lambda k: k["name"],
    )
    plans = [p for p in apigw.get_usage_plans()["items"] if p["name"].startswith(prefix)]
    out["usage_plans"] = []
    for p in plans:
        plan_keys = apigw.get_usage_plan_keys(usagePlanId=p["id"])["items"]
        out["usage_plans"].append(
            {
                "name": p["name"],
                "stages": [
                    {"api": ids("api", s["apiId"]), "stage": s["stage"]}
                    for s in p.get("apiStages", [])
                ],
                "throttle": p.get("throttle"),
                "quota": p.get("quota"),
                "keys": sorted(k["name"] for k in plan_keys),
            }
        )

    s3 = moto.client("s3")
    buckets = [b["Name"] for b in s3.list_buckets()["Buckets"] if b["Name"].startswith(prefix)]
    out["buckets"] = {}
    for b in sorted(buckets):
        notif = s3.get_bucket_notification_configuration(Bucket=b)
        out["buckets"][b] = {
            "tags": _tags(s3.get_bucket_tagging(Bucket=b)["TagSet"]),
            "lambda_notifications": sorted(
                (
                    {
                        "function": c["LambdaFunctionArn"],
                        "events": c["Events"],
                        "filter": c.get("Filter", {}).get("Key", {}).get("FilterRules", []),
                    }
                    for c in notif.get("LambdaFunctionConfigurations", [])
                ),
                key=lambda c: c["function"],
            ),
        }

    events = moto.client("events")
    rules = events.list_rules(NamePrefix=prefix)["Rules"]
    out["rules"] = {
        r["Name"]: {
            "expression": r.get("ScheduleExpression"),
            "state": r["State"],
            "targets": [
                {"id": t["Id"], "arn": t["Arn"], "input": t.get("Input")}
                for t in events.list_targets_by_rule(Rule=r["Name"])["Targets"]
            ],
            "tags": _tags(events.list_tags_for_resource(ResourceARN=r["Arn"])["Tags"]),
        }
        for r in rules
    }

    sqs = moto.client("sqs")
    urls = sqs.list_queues(QueueNamePrefix=prefix).get("QueueUrls", [])
    out["queues"] = {}
    for url in sorted(urls):
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        out["queues"][url.rsplit("/", 1)[-1]] = {
            "visibility": attrs.get("VisibilityTimeout"),
            "redrive": json.loads(attrs["RedrivePolicy"]) if "RedrivePolicy" in attrs else None,
            "tags": sqs.list_queue_tags(QueueUrl=url).get("Tags", {}),
        }

    ddb = moto.client("dynamodb")
    tables = [t for t in ddb.list_tables()["TableNames"] if t.startswith(prefix)]
    out["tables"] = {}
    for t in sorted(tables):
        d = ddb.describe_table(TableName=t)["Table"]
        out["tables"][t] = {
            "keys": d["KeySchema"],
            "billing": d.get("BillingModeSummary", {}).get("BillingMode"),
            "tags": _tags(ddb.list_tags_of_resource(ResourceArn=d["TableArn"])["Tags"]),
        }
    out.update(_network_snapshot(moto, app, stage, prefix, ids))
    # clusters, instances, secrets: only the kinds the stage has (none: {})
    out["databases"] = {kind: found for kind, found in databases(moto, app, stage).items() if found}
    return dict(ids.scrub(out))


def _network_snapshot(moto: Moto, app: str, stage: str, prefix: str, ids: _Ids) -> dict[str, Any]:
    """The stage's VPC, subnets, security groups, endpoints (by their sls-py tags)
    and ElastiCache Serverless caches (by name)."""
    ec2 = moto.client("ec2")
    mine = [
        {"Name": "tag:sls-py:app", "Values": [app]},
        {"Name": "tag:sls-py:stage", "Values": [stage]},
    ]
    out: dict[str, Any] = {"vpcs": {}, "subnets": {}, "security_groups": {}, "vpc_endpoints": []}
    for v in ec2.describe_vpcs(Filters=mine)["Vpcs"]:
        vid = v["VpcId"]
        out["vpcs"][_tags(v["Tags"])["Name"]] = {
            "id": ids("vpc", vid),
            "cidr": v["CidrBlock"],
            "dns": [
                ec2.describe_vpc_attribute(VpcId=vid, Attribute=a)[key]["Value"]
                for a, key in (
                    ("enableDnsSupport", "EnableDnsSupport"),
                    ("enableDnsHostnames", "EnableDnsHostnames"),
                )
            ],
            "tags": _tags(v["Tags"]),
        }
    for s in ec2.describe_subnets(Filters=mine)["Subnets"]:
        out["subnets"][_tags(s["Tags"])["Name"]] = {
            "id": ids("subnet", s["SubnetId"]),
            "vpc": ids("vpc", s["VpcId"]),
            "cidr": s["CidrBlock"],
            "public_ip_on_launch": s.get("MapPublicIpOnLaunch", False),
        }
    for g in ec2.describe_security_groups(Filters=mine)["SecurityGroups"]:
        out["security_groups"][g["GroupName"]] = {
            "id": ids("sg", g["GroupId"]),
            "vpc": ids("vpc", g["VpcId"]),
            "ingress": sorted(
                (
                    {
                        "protocol": r["IpProtocol"],
                        "ports": [r.get("FromPort"), r.get("ToPort")],
                        "from_groups": sorted(ids("sg", p["GroupId"]) for p in r.get("UserIdGroupPairs", [])),
                        "from_cidrs": sorted(c["CidrIp"] for c in r.get("IpRanges", [])),
                    }
                    for r in g.get("IpPermissions", [])
                ),
                key=lambda r: r["ports"],
            ),
        }
    out["vpc_endpoints"] = sorted(
        (
            {
                "service": e["ServiceName"],
                "type": e["VpcEndpointType"],
                "vpc": ids("vpc", e["VpcId"]),
            }
            for e in ec2.describe_vpc_endpoints(Filters=mine)["VpcEndpoints"]
            if e.get("State", "available").lower() not in ("deleted", "deleting")
        ),
        key=lambda e: e["service"],
    )
    cache_api = moto.client("elasticache")
    out["caches"] = {}
    for c in cache_api.describe_serverless_caches()["ServerlessCaches"]:
        if not c["ServerlessCacheName"].startswith(prefix):
            continue
        out["caches"][c["ServerlessCacheName"]] = {
            "engine": c["Engine"],
            "status": c["Status"],
            "subnets": sorted(ids("subnet", s) for s in c["SubnetIds"]),
            "groups": [ids("sg", g) for g in c["SecurityGroupIds"]],
            "endpoint": c["Endpoint"],
            "tags": _tags(cache_api.list_tags_for_resource(ResourceName=c["ARN"])["TagList"]),
        }
    return out


def databases(moto: Moto, app: str, stage: str) -> dict[str, Any]:
    """The stage's clusters, instances and secrets, as RDS and Secrets Manager describe them."""
    rds, sm = moto.client("rds"), moto.client("secretsmanager")
    prefix = f"{app}-{stage}-"
    clusters = {
        c["DBClusterIdentifier"]: {
            "engine": c["Engine"],
            "database": c.get("DatabaseName"),
            "scaling": c.get("ServerlessV2ScalingConfiguration"),
            "encrypted": c.get("StorageEncrypted"),
            "members": [m["DBInstanceIdentifier"] for m in c.get("DBClusterMembers", [])],
            "tags": _tags(rds.list_tags_for_resource(ResourceName=c["DBClusterArn"])["TagList"]),
        }
        for c in rds.describe_db_clusters()["DBClusters"]
        if c["DBClusterIdentifier"].startswith(prefix)
    }
    instances = {
        i["DBInstanceIdentifier"]: (i["DBInstanceClass"], i.get("DBClusterIdentifier"))
        for i in rds.describe_db_instances()["DBInstances"]
        if i["DBInstanceIdentifier"].startswith(prefix)
    }
    secrets = {
        s["Name"]: _tags(s.get("Tags", []))
        for s in sm.list_secrets()["SecretList"]
        if s["Name"].startswith(prefix)
    }
    return {"clusters": clusters, "instances": instances, "secrets": secrets}


def empty_snapshot() -> dict[str, Any]:
    """What :func:`snapshot` answers for a stage with nothing on AWS."""
    return {
        "roles": {},
        "functions": {},
        "apis": [],
        "api_keys": [],
        "usage_plans": [],
        "buckets": {},
        "rules": {},
        "queues": {},
        "tables": {},
        "vpcs": {},
        "subnets": {},
        "security_groups": {},
        "vpc_endpoints": [],
        "caches": {},
        "databases": {},
    }
