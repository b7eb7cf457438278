"""Deploy, redeploy, change, plan and remove the example app through the CLI
(``sls-py ... --provider aws`` as a subprocess) against a moto server over
HTTP, checking the result only through AWS read APIs."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import pytest
from aws_deploy_support import (
    ACCOUNT,
    REGION,
    Moto,
    cli,
    copy_app,
    empty_snapshot,
    mutating,
    snapshot,
)

pytestmark = pytest.mark.slow

TAGS_DEV = {"sls-py:app": "clonezero", "sls-py:stage": "dev"}


def code_sha256(project: Path, stage: str = "dev") -> str:
    """What Lambda's CodeSha256 must be: the hash of the package built from the tree."""
    from sls_py.config import load_project
    from sls_py_aws.package import build_package

    proj = load_project(project)
    return build_package(proj.spec(stage), proj, include_dependencies=False).code_sha256


def expected_snapshot(
    stage: str,
    sha: str,
    *,
    memory: dict[str, int] | None = None,
    keys: tuple[str, ...] = ("default",),
    origin: str = "*",
    usage: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The example app's stage on AWS, written out from the app's declarations."""
    p = f"clonezero-{stage}"
    tags = {"sls-py:app": "clonezero", "sls-py:stage": stage}
    fn_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{p}"
    uploads, reports = f"{p}-uploads-{ACCOUNT}", f"{p}-reports-{ACCOUNT}"
    memory = {
        "work-magic": 128,
        "catalog-upload": 256,
        "nightly-report": 256,
        "spell-counts": 128,
        "count-chunk": 128,
        **(memory or {}),
    }
    # the magic word is config: only dev has a default (pyproject.toml), values live in SSM
    defaults = {"magic-word": "clonezero-token"} if stage == "dev" else {}

    def resources(**extra: Any) -> str:
        return json.dumps(
            {
                "buckets": {"reports": reports, "uploads": uploads},
                "config_defaults": defaults,
                "configs": {"settings": f"/clonezero/{stage}/"},
                "driver": "sls_py_aws.resources:AwsDriver",
                "options": {},
                "queues": {},
                "tables": {"sls-py-fanout": f"{p}-sls-py-fanout"},
                # the Data API driver's target: the cluster's ARN
                "databases": {"catalog": f"arn:aws:rds:{REGION}:{ACCOUNT}:cluster:{p}-catalog"},
                **extra,
            },
            separators=(",", ":"),
            sort_keys=True,
        )

    def cors_env(route: str) -> str:
        rule = {
            "allow_credentials": False,
            "headers": ["content-type", "x-api-key", "authorization"],
            "max_age_s": 600,
            "methods": [],
            "origins": [origin],
        }
        return json.dumps({route: rule}, separators=(",", ":"), sort_keys=True)

    # the cache's endpoint, as the moto stand-in makes it up (tests/support/moto_serverless.py)
    endpoint = f"{p}-spells-abc123.serverless.{REGION}.cache.amazonaws.com"
    caches_env = json.dumps({"spells": f"rediss://{endpoint}:6379/0"}, separators=(",", ":"))

    def function(
        name: str,
        timeout: int,
        permission: dict[str, Any] | None,
        extra_env: dict[str, str],
        invokes: tuple[str, ...] = (),
    ) -> Any:
        targets = {"functions": {t: f"{p}-{t}" for t in invokes}} if invokes else {}
        return {
            "architectures": ["x86_64"],
            "code_sha256": sha,
            "concurrency": None,
            "environment": {
                "SLS_PY_APP": "work_magic.app:app",
                "SLS_PY_FUNCTION": name,
                "SLS_PY_RESOURCES": resources(**targets),
                "SLS_PY_STAGE": stage,
                "SLS_PY_CACHES": caches_env,
                **extra_env,
            },
            "event_sources": [],
            "handler": "sls_py_aws.handler.handle",
            "memory": memory[name],
            "permissions": [permission] if permission else [],
            "role": f"arn:aws:iam::{ACCOUNT}:role/{p}-lambda",
            "runtime": "python3.12",
            "tags": tags,
            "timeout": timeout,
            # every function of an app with a cache runs in the stage's private subnets
            "vpc": {"groups": ["<sg-0>"], "subnets": ["<subnet-0>", "<subnet-1>"]},
        }

    groups = [
        f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{p}-{f}"
        for f in ("catalog-upload", "count-chunk", "nightly-report", "spell-counts", "work-magic")
    ]

    def cors_of(methods: str) -> dict[str, str]:
        return {
            "method.response.header.Access-Control-Allow-Headers": (
                "'content-type,x-api-key,authorization'"
            ),
            "method.response.header.Access-Control-Allow-Methods": f"'{methods}'",
            "method.response.header.Access-Control-Allow-Origin": f"'{origin}'",
            "method.response.header.Access-Control-Max-Age": "'600'",
        }

    cors = cors_of("OPTIONS,POST")
    api_permission = {
        "condition": {
            "ArnLike": {"AWS:SourceArn": f"arn:aws:execute-api:{REGION}:{ACCOUNT}:<api-0>/*"}
        },
        "principal": {"Service": "apigateway.amazonaws.com"},
        "sid": "sls-py-api",
    }
    net = f"{p}-net"
    return {
        "api_keys": [
            {"enabled": True, "id": f"<key-{i}>", "name": f"{p}-{k}", "tags": tags}
            for i, k in sorted(enumerate(keys), key=lambda ik: ik[1])
        ],
        "apis": [
            {
                "deployments": True,
                "id": "<api-0>",
                "paths": ["/", "/spells", "/work-magic"],
                "stages": [stage],
                "tags": tags,
                # sls-py asks for ["*/*"] (test_aws_deploy_resources checks the request);
                # moto 5.2 ignores binaryMediaTypes on create
                "binary_media_types": [],
                "gateway_responses": {
                    kind: {"gatewayresponse.header.Access-Control-Allow-Origin": f"'{origin}'"}
                    for kind in ("DEFAULT_4XX", "DEFAULT_5XX")
                },
                "methods": {
                    "GET /spells": {
                        "api_key": True,
                        "auth": "NONE",
                        "integration": "AWS_PROXY",
                        "uri": f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/"
                        f"{fn_arn}-spell-counts/invocations",
                    },
                    "OPTIONS /spells": {
                        "api_key": False,
                        "auth": "NONE",
                        "integration": "MOCK",
                        "uri": None,
                        "method_responses": {"200": dict.fromkeys(cors, False)},
                        "request_templates": {"application/json": '{"statusCode": 200}'},
                        "responses": {"200": cors_of("GET,OPTIONS")},
                    },
                    "OPTIONS /work-magic": {
                        "api_key": False,
                        "auth": "NONE",
                        "integration": "MOCK",
                        "uri": None,
                        "method_responses": {"200": dict.fromkeys(cors, False)},
                        "request_templates": {"application/json": '{"statusCode": 200}'},
                        "responses": {"200": cors},
                    },
                    "POST /work-magic": {
                        "api_key": True,
                        "auth": "NONE",
                        "integration": "AWS_PROXY",
                        "uri": f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/"
                        f"{fn_arn}-work-magic/invocations",
                    },
                },
            }
        ],
        "buckets": {
            reports: {"lambda_notifications": [], "tags": tags},
            uploads: {
                "tags": tags,
                "lambda_notifications": [
                    {
                        "events": ["s3:ObjectCreated:*"],
                        "filter": [{"Name": "prefix", "Value": "photos/"}],
                        "function": f"{fn_arn}-catalog-upload",
                    }
                ],
            },
        },
        "functions": {
            f"{p}-catalog-upload": function(
                "catalog-upload",
                30,
                {
                    "condition": {
                        "ArnLike": {"AWS:SourceArn": f"arn:aws:s3:::{uploads}"},
                        "StringEquals": {"AWS:SourceAccount": ACCOUNT},
                    },
                    "principal": {"Service": "s3.amazonaws.com"},
                    "sid": "sls-py-s3-uploads",
                },
                {"SLS_PY_CORS": "{}"},
            ),
            f"{p}-nightly-report": function(
                "nightly-report",
                60,
                {
                    "condition": {
                        "ArnLike": {
                            "AWS:SourceArn": f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{p}-nightly"
                        }
                    },
                    "principal": {"Service": "events.amazonaws.com"},
                    "sid": "sls-py-events-nightly",
                },
                {"SLS_PY_CORS": "{}"},
                invokes=("count-chunk",),
            ),
            f"{p}-count-chunk": function("count-chunk", 30, None, {"SLS_PY_CORS": "{}"}),
            f"{p}-work-magic": function(
                "work-magic",
                10,
                {
                    "condition": {
                        "ArnLike": {
                            "AWS:SourceArn": f"arn:aws:execute-api:{REGION}:{ACCOUNT}:<api-0>/*"
                        }
                    },
                    "principal": {"Service": "apigateway.amazonaws.com"},
                    "sid": "sls-py-api",
                },
                {"SLS_PY_CORS": cors_env("POST /work-magic")},
            ),
            f"{p}-spell-counts": function(
                "spell-counts", 10, api_permission, {"SLS_PY_CORS": cors_env("GET /spells")}
            ),
        },
        "queues": {
            f"{p}-count-chunk-async-dlq": {"visibility": "30", "redrive": None, "tags": tags},
        },
        "roles": {
            f"{p}-lambda": {
                "attached": [],
                "tags": tags,
                "trust": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Action": "sts:AssumeRole",
                            "Effect": "Allow",
                            "Principal": {"Service": "lambda.amazonaws.com"},
                        }
                    ],
                },
                "policies": {
                    "sls-py": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Sid": "Logs",
                                "Effect": "Allow",
                                "Action": [
                                    "logs:CreateLogGroup",
                                    "logs:CreateLogStream",
                                    "logs:PutLogEvents",
                                ],
                                "Resource": sorted([*groups, *(g + ":*" for g in groups)]),
                            },
                            {
                                "Sid": "BucketObjects",
                                "Effect": "Allow",
                                "Action": ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"],
                                "Resource": [
                                    f"arn:aws:s3:::{uploads}/*",
                                    f"arn:aws:s3:::{reports}/*",
                                ],
                            },
                            {
                                "Sid": "BucketList",
                                "Effect": "Allow",
                                "Action": ["s3:ListBucket"],
                                "Resource": [f"arn:aws:s3:::{uploads}", f"arn:aws:s3:::{reports}"],
                            },
                            {
                                "Sid": "Tables",
                                "Effect": "Allow",
                                "Action": [
                                    "dynamodb:DeleteItem",
                                    "dynamodb:GetItem",
                                    "dynamodb:PutItem",
                                    "dynamodb:Query",
                                    "dynamodb:Scan",
                                    "dynamodb:UpdateItem",
                                ],
                                "Resource": [
                                    f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{p}-sls-py-fanout",
                                ],
                            },
                            {
                                "Sid": "VpcNetworkInterfaces",
                                "Effect": "Allow",
                                "Action": [
                                    "ec2:AssignPrivateIpAddresses",
                                    "ec2:CreateNetworkInterface",
                                    "ec2:DeleteNetworkInterface",
                                    "ec2:UnassignPrivateIpAddresses",
                                ],
                                "Resource": [
                                    f"arn:aws:ec2:{REGION}:{ACCOUNT}:{kind}/*"
                                    for kind in ("network-interface", "security-group", "subnet")
                                ],
                            },
                            {
                                "Sid": "VpcDescribe",
                                "Effect": "Allow",
                                "Action": ["ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"],
                                "Resource": "*",
                            },
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
                                "Resource": [f"arn:aws:rds:{REGION}:{ACCOUNT}:cluster:{p}-catalog"],
                            },
                            {
                                "Sid": "DatabaseSecrets",
                                "Effect": "Allow",
                                "Action": ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"],
                                "Resource": [
                                    f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{p}-catalog-credentials-??????"
                                ],
                            },
                            {
                                "Sid": "ConfigRead",
                                "Effect": "Allow",
                                "Action": [
                                    "ssm:GetParameter",
                                    "ssm:GetParameters",
                                    "ssm:GetParametersByPath",
                                ],
                                "Resource": [
                                    f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/clonezero/{stage}",
                                    f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/clonezero/{stage}/*",
                                ],
                            },
                            {
                                "Sid": "InvokeTargets",
                                "Effect": "Allow",
                                "Action": ["lambda:InvokeFunction"],
                                "Resource": [f"{fn_arn}-count-chunk"],
                            },
                            {
                                "Sid": "InvokeDeadLetters",
                                "Effect": "Allow",
                                "Action": ["sqs:SendMessage"],
                                "Resource": [f"arn:aws:sqs:{REGION}:{ACCOUNT}:{p}-count-chunk-async-dlq"],
                            },
                        ],
                    }
                },
            }
        },
        "rules": {
            f"{p}-nightly": {
                "expression": "cron(0 2 * * ? *)",
                "state": "ENABLED",
                "tags": tags,
                "targets": [{"arn": f"{fn_arn}-nightly-report", "id": "sls-py", "input": None}],
            }
        },
        "tables": {
            f"{p}-sls-py-fanout": {
                "billing": "PAY_PER_REQUEST",
                "tags": tags,
                "keys": [
                    {"AttributeName": "job", "KeyType": "HASH"},
                    {"AttributeName": "index", "KeyType": "RANGE"},
                ],
            },
        },
        # the cache's network: private subnets, functions -> services only, free endpoints
        "vpcs": {
            net: {"cidr": "10.42.0.0/16", "dns": [True, True], "id": "<vpc-0>", "tags": {**tags, "Name": net}}
        },
        "subnets": {
            f"{net}-private-{i + 1}": {
                "cidr": cidr,
                "id": f"<subnet-{i}>",
                "public_ip_on_launch": False,
                "vpc": "<vpc-0>",
            }
            for i, cidr in enumerate(("10.42.0.0/20", "10.42.16.0/20"))
        },
        "security_groups": {
            f"{net}-function": {"id": "<sg-0>", "ingress": [], "vpc": "<vpc-0>"},
            f"{net}-services": {
                "id": "<sg-1>",
                "vpc": "<vpc-0>",
                "ingress": [
                    {"from_cidrs": [], "from_groups": ["<sg-0>"], "ports": ports, "protocol": "tcp"}
                    for ports in ([443, 443], [6379, 6380])
                ],
            },
        },
        # gateway endpoints (free) for the tables and buckets; interface endpoints (billed)
        # for the fan-out's Lambda calls, app.config's SSM reads, and the database's Data
        # API calls and secret look-up
        "vpc_endpoints": [
            {"service": f"com.amazonaws.{REGION}.{service}", "type": kind, "vpc": "<vpc-0>"}
            for service, kind in (
                ("dynamodb", "Gateway"),
                ("lambda", "Interface"),
                ("rds-data", "Interface"),
                ("s3", "Gateway"),
                ("secretsmanager", "Interface"),
                ("ssm", "Interface"),
            )
        ],
        "caches": {
            f"{p}-spells": {
                "endpoint": {"Address": endpoint, "Port": 6379},
                "engine": "valkey",
                "groups": ["<sg-1>"],
                "status": "available",
                "subnets": ["<subnet-0>", "<subnet-1>"],
                "tags": tags,
            }
        },
        # the catalog: an Aurora Serverless v2 cluster, its instance and its credentials
        "databases": {
            "clusters": {
                f"{p}-catalog": {
                    "database": "catalog",
                    "encrypted": True,
                    "engine": "aurora-postgresql",
                    "members": [f"{p}-catalog-1"],
                    "scaling": {"MaxCapacity": 2.0, "MinCapacity": 0.5},
                    "tags": tags,
                }
            },
            "instances": {f"{p}-catalog-1": ["db.serverless", f"{p}-catalog"]},
            "secrets": {f"{p}-catalog-credentials": tags},
        },
        "usage_plans": [
            {
                "keys": sorted(f"{p}-{k}" for k in keys),
                "name": f"{p}-usage",
                "stages": [{"api": "<api-0>", "stage": stage}],
                "throttle": (usage or {}).get("throttle"),
                "quota": (usage or {}).get("quota"),
            }
        ],
    }


CREATE_ALL = [
    ("create", "role", "clonezero-dev-lambda"),
    ("create", "bucket", "uploads"),
    ("create", "bucket", "reports"),
    ("create", "table", "sls-py-fanout"),
    ("create", "database-secret", "catalog"),
    ("create", "database", "catalog"),
    ("create", "database-instance", "catalog"),
    ("create", "migrations", "catalog"),
    ("create", "network", "clonezero-dev-net"),
    ("create", "cache", "spells"),
    ("create", "function", "work-magic"),
    ("create", "function", "catalog-upload"),
    ("create", "function", "nightly-report"),
    ("create", "function", "spell-counts"),
    ("create", "function", "count-chunk"),
    ("create", "async-config", "count-chunk"),
    ("create", "api", "clonezero-dev"),
    ("create", "permission", "work-magic/sls-py-api"),
    ("create", "permission", "spell-counts/sls-py-api"),
    ("create", "permission", "catalog-upload/sls-py-s3-uploads"),
    ("create", "permission", "nightly-report/sls-py-events-nightly"),
    ("create", "route", "GET /spells"),
    ("create", "route", "POST /work-magic"),
    ("create", "cors", "/spells"),
    ("create", "cors", "/work-magic"),
    ("create", "gateway-response", "DEFAULT_4XX"),
    ("create", "gateway-response", "DEFAULT_5XX"),
    ("create", "stage", "dev"),
    ("create", "usage-plan", "clonezero-dev-usage"),
    ("create", "api-key", "default"),
    ("create", "notification", "uploads"),
    ("create", "schedule", "nightly"),
]


def photos_columns(moto: Moto) -> list[str]:
    """The columns of the catalog's ``photos`` table on the PostgreSQL server behind
    the test's Data API, where deploy's migrations ran."""
    from sls_py_local.database import LocalDatabase

    db = LocalDatabase("catalog", moto.data_api.postgres.connection.options())
    rows, _ = db.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'photos'"
        " ORDER BY ordinal_position",
        {},
    )
    db._local.conn.close()
    return [r["column_name"] for r in rows or []]


def plan_json(project: Path, env: dict[str, str], stage: str = "dev") -> list[dict[str, Any]]:
    r = cli(
        ["plan", "--provider", "aws", "--project", str(project), "--stage", stage, "--json"], env
    )
    assert r.returncode == 0, r.stderr
    return [
        {k: s[k] for k in ("action", "kind", "name", "reason")}
        for s in json.loads(r.stdout)["steps"]
    ]


def test_deploy_redeploy_change_and_remove_the_example_app(moto: Moto, tmp_path: Path) -> None:
    project = copy_app(tmp_path)
    env = moto.env()
    args = ["--provider", "aws", "--project", str(project)]

    # plan on a fresh stage: everything is created, in dependency order, and nothing is touched
    cost = (
        "new; costs money while idle: ElastiCache Serverless for Valkey bills at least 100 MB "
        "of data stored (about $6/month in us-east-1) plus the ECPUs used"
    )
    endpoints_cost = (
        "new; costs money while idle: 4 VPC interface endpoint(s) (lambda, ssm, rds-data, "
        "secretsmanager) bill per hour in each of the 2 subnets (about $60/month in us-east-1), "
        "so functions in the VPC reach those services"
    )
    aurora_cost = (
        "new; costs money while idle: Aurora Serverless v2 bills its minimum capacity "
        "(0.5 ACU, about $0.06/hour in us-east-1) around the clock, plus storage"
    )
    reasons = {"cache": cost, "network": endpoints_cost, "database-instance": aurora_cost}
    assert plan_json(project, env) == [
        {"action": a, "kind": k, "name": n, "reason": reasons.get(k, "new")} for a, k, n in CREATE_ALL
    ]
    assert snapshot(moto, "clonezero", "dev") == empty_snapshot()

    # first deploy
    r = cli(["deploy", *args], env)
    assert r.returncode == 0, r.stderr
    for action, kind, name in CREATE_ALL:
        assert f"{action} {kind} {name} new" in r.stderr
    assert "create cache spells new; costs money while idle: ElastiCache Serverless" in r.stderr
    api_id = moto.client("apigateway").get_rest_apis()["items"][0]["id"]
    assert f"URL: https://{api_id}.execute-api.{REGION}.amazonaws.com/dev\n" in r.stderr
    assert "API keys: default " in r.stderr
    sha = code_sha256(project)
    first = snapshot(moto, "clonezero", "dev")
    assert first == expected_snapshot("dev", sha)
    # the migrations ran through the Data API (moto runs no SQL: support.data_api's server)
    assert photos_columns(moto) == ["key", "size", "sha256", "uploaded_at"]

    # redeploy an unchanged app: no steps, no mutating call, nothing duplicated
    assert plan_json(project, env) == []
    moto.start_recording()
    r = cli(["deploy", *args], env)
    recorded = moto.stop_recording()
    assert r.returncode == 0, r.stderr
    assert "Deployed clonezero stage dev: 0 change(s)." in r.stderr
    assert recorded, "the recorder saw the redeploy's read calls"
    assert mutating(recorded) == []
    assert snapshot(moto, "clonezero", "dev") == first

    # url and api-keys read the deployed stage
    r = cli(["url", *args], env)
    assert r.stdout == f"https://{api_id}.execute-api.{REGION}.amazonaws.com/dev\n"
    r = cli(["api-keys", *args], env)
    key = moto.client("apigateway").get_api_keys(includeValues=True)["items"][0]
    assert r.stdout == f"default\t{key['value']}\n"

    # change the code and one function's memory: plan says so, deploy does only that
    app_py = project / "work_magic" / "app.py"
    app_py.write_text(app_py.read_text() + "\nVERSION = 2\n")
    pyproject = project / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            "[tool.sls-py.stages.dev.config]\n",
            "[tool.sls-py.stages.dev.functions.work-magic]\nmemory_mb = 512\n\n"
            "[tool.sls-py.stages.dev.config]\n",
        )
    )
    assert plan_json(project, env) == [
        {
            "action": "update",
            "kind": "function",
            "name": "work-magic",
            "reason": "code, memory_mb changed",
        },
        {
            "action": "update",
            "kind": "function",
            "name": "catalog-upload",
            "reason": "code changed",
        },
        {
            "action": "update",
            "kind": "function",
            "name": "nightly-report",
            "reason": "code changed",
        },
        {
            "action": "update",
            "kind": "function",
            "name": "spell-counts",
            "reason": "code changed",
        },
        {
            "action": "update",
            "kind": "function",
            "name": "count-chunk",
            "reason": "code changed",
        },
    ]
    moto.start_recording()
    r = cli(["deploy", *args], env)
    recorded = moto.stop_recording()
    assert r.returncode == 0, r.stderr
    assert sorted(mutating(recorded)) == sorted(
        [
            "PUT /2015-03-31/functions/clonezero-dev-work-magic/code",
            "PUT /2015-03-31/functions/clonezero-dev-work-magic/configuration",
            "PUT /2015-03-31/functions/clonezero-dev-catalog-upload/code",
            "PUT /2015-03-31/functions/clonezero-dev-nightly-report/code",
            "PUT /2015-03-31/functions/clonezero-dev-spell-counts/code",
            "PUT /2015-03-31/functions/clonezero-dev-count-chunk/code",
        ]
    )
    new_sha = code_sha256(project)
    assert new_sha != sha
    assert snapshot(moto, "clonezero", "dev") == expected_snapshot(
        "dev", new_sha, memory={"work-magic": 512}
    )
    assert plan_json(project, env) == []

    # remove: everything of the stage goes, and the state file with it
    r = cli(["remove", *args], env)
    assert r.returncode == 0, r.stderr
    assert "delete function work-magic stage dev removed" in r.stderr
    assert snapshot(moto, "clonezero", "dev") == empty_snapshot()
    assert not (project / ".sls-py" / "state" / "aws" / "dev.json").exists()


def test_two_stages_side_by_side_and_removing_one_keeps_the_other(
    moto: Moto, tmp_path: Path
) -> None:
    project = copy_app(tmp_path)
    env = moto.env()
    for stage in ("staging", "prod"):
        r = cli(["deploy", "--provider", "aws", "--project", str(project), "--stage", stage], env)
        assert r.returncode == 0, r.stderr
    sha = code_sha256(project, "prod")
    prod = snapshot(moto, "clonezero", "prod")
    assert prod == expected_snapshot(
        "prod",
        sha,
        memory={"work-magic": 256, "spell-counts": 256, "count-chunk": 256},  # prod memory_mb
        keys=("partner", "mobile"),
        origin="https://clonezero.example",
        usage={
            "throttle": {"rateLimit": 50.0, "burstLimit": 100},
            "quota": {"limit": 100000, "period": "MONTH"},
        },
    )
    assert snapshot(moto, "clonezero", "staging") == expected_snapshot("staging", sha)

    r = cli(["remove", "--provider", "aws", "--project", str(project), "--stage", "staging"], env)
    assert r.returncode == 0, r.stderr
    assert snapshot(moto, "clonezero", "staging") == empty_snapshot()
    assert snapshot(moto, "clonezero", "prod") == prod

    r = cli(["remove", "--provider", "aws", "--project", str(project), "--stage", "prod"], env)
    assert r.returncode == 0, r.stderr
    assert snapshot(moto, "clonezero", "prod") == empty_snapshot()


def test_no_credentials_is_one_clear_line(moto: Moto, tmp_path: Path) -> None:
    project = copy_app(tmp_path)
    env = moto.env()
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        env.pop(name)
    r = cli(["deploy", "--provider", "aws", "--project", str(project)], env)
    assert r.returncode == 2
    assert r.stderr.splitlines()[-2:] == [
        "error: no AWS credentials found",
        "hint: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
        "or run `aws configure`",
    ]
    assert "Traceback" not in r.stderr

    r = cli(
        ["deploy", "--provider", "aws", "--project", str(project)], {**env, "AWS_PROFILE": "nope"}
    )
    assert (r.returncode, r.stderr.splitlines()[-2:]) == (
        2,
        [
            "error: AWS profile not found: The config profile (nope) could not be found",
            "hint: check AWS_PROFILE and ~/.aws/config",
        ],
    )


def test_iam_policy_command_prints_the_deployed_policy(moto: Moto, tmp_path: Path) -> None:
    project = copy_app(tmp_path)
    r = cli(
        ["iam-policy", "--project", str(project), "--account", ACCOUNT, "--region", REGION],
        {k: v for k, v in moto.env().items() if not k.startswith("AWS_")},
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    expected = expected_snapshot("dev", "")["roles"]["clonezero-dev-lambda"]
    assert doc == {
        "RoleName": "clonezero-dev-lambda",
        "AssumeRolePolicyDocument": expected["trust"],
        "PolicyName": "sls-py",
        "PolicyDocument": expected["policies"]["sls-py"],
    }
    # nothing on "*" but the EC2 describe calls Lambda needs for a VPC (the app has a
    # cache), which AWS grants on "*" only; and they only read
    wildcard = [s for s in doc["PolicyDocument"]["Statement"] if "*" in s["Resource"]]
    assert wildcard == [
        {
            "Sid": "VpcDescribe",
            "Effect": "Allow",
            "Action": ["ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"],
            "Resource": "*",
        }
    ]


def test_help_does_not_import_boto3(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys; from sls_py.cli import main; rc = main(['--help']); "
        "print('boto3' in sys.modules, 'botocore' in sys.modules)"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert r.returncode == 0, r.stderr
    assert "iam-policy" in r.stdout
    assert r.stdout.strip().splitlines()[-1] == "False False"


def test_logs_and_invoke_of_a_stage_that_is_not_deployed(moto: Moto, tmp_path: Path) -> None:
    project = copy_app(tmp_path)
    env = moto.env()
    args = ["--provider", "aws", "--project", str(project), "--stage", "logs"]
    r = cli(["invoke", "work-magic", "{}", *args], env)
    assert (r.returncode, r.stderr.splitlines()[-2:]) == (
        2,
        [
            "error: function 'work-magic' is not deployed in stage 'logs' "
            "(no Lambda function clonezero-logs-work-magic)",
            "hint: run `sls-py deploy --provider aws` first",
        ],
    )

    cw = moto.client("logs")
    group = "/aws/lambda/clonezero-logs-work-magic"
    cw.create_log_group(logGroupName=group)
    cw.create_log_stream(logGroupName=group, logStreamName="2026/11/28/[$LATEST]abc")
    rid = "0f3c5d7e-1a2b-4c3d-8e9f-0a1b2c3d4e5f"
    at = int(time.time()) * 1000 - 5000
    cw.put_log_events(
        logGroupName=group,
        logStreamName="2026/11/28/[$LATEST]abc",
        logEvents=[
            {"timestamp": at, "message": f"START RequestId: {rid} Version: $LATEST\n"},
            {"timestamp": at + 1000, "message": "INFO work_magic cast adder\n"},
        ],
    )
    r = cli(["logs", "work-magic", "--since", "10m", *args], env)
    assert r.returncode == 0, r.stderr
    stamp = dt.datetime.fromtimestamp(at / 1000, dt.UTC)
    first = stamp.strftime("%Y-%m-%d %H:%M:%S")
    second = (stamp + dt.timedelta(seconds=1)).strftime("%Y-%m-%d %H:%M:%S")
    assert r.stdout.splitlines() == [
        f"{first} work-magic {rid} START RequestId: {rid} Version: $LATEST",
        f"{second} work-magic {rid} INFO work_magic cast adder",
    ]


def test_an_interrupted_cli_deploy_resumes_where_it_stopped(moto: Moto, tmp_path: Path) -> None:
    project = copy_app(tmp_path)
    args = ["deploy", "--provider", "aws", "--project", str(project), "--stage", "resume"]
    # step 11 creates work-magic (after the role, 2 buckets, the fan-out's table, the
    # database's secret, cluster, instance and migrations, the network, the cache)
    step = [k for _, k, _ in CREATE_ALL].index("function") + 1
    assert step == 11
    r = cli(args, moto.env(SLS_PY_FAIL_AFTER_STEP=str(step)))
    assert r.returncode == 2
    assert r.stderr.splitlines()[-2:] == [
        f"error: stopped after step {step} because SLS_PY_FAIL_AFTER_STEP={step} (a testing aid)",
        "hint: unset SLS_PY_FAIL_AFTER_STEP and deploy again: it picks up where it stopped",
    ]
    r = cli(args, moto.env())
    assert r.returncode == 0, r.stderr
    assert f"Deployed clonezero stage resume: {len(CREATE_ALL) - step} change(s)." in r.stderr
    assert " create function work-magic new" not in r.stderr  # done before
    assert " create network " not in r.stderr and " create cache " not in r.stderr
    assert " create database " not in r.stderr and " create migrations " not in r.stderr
    assert " create function catalog-upload new" in r.stderr
    r = cli(["remove", *args[1:]], moto.env())
    assert r.returncode == 0, r.stderr
    assert snapshot(moto, "clonezero", "resume") == empty_snapshot()


def test_logs_follow_prints_new_lines_as_they_arrive(moto: Moto, tmp_path: Path) -> None:
    import subprocess
    import sys
    import threading

    project = copy_app(tmp_path)
    cw = moto.client("logs")
    group, stream = "/aws/lambda/clonezero-follow-work-magic", "s"
    cw.create_log_group(logGroupName=group)
    cw.create_log_stream(logGroupName=group, logStreamName=stream)
    now = int(time.time() * 1000)
    cw.put_log_events(
        logGroupName=group,
        logStreamName=stream,
        logEvents=[{"timestamp": now - 1000, "message": "first"}],
    )
    script = Path(sys.executable).with_name("sls-py")
    proc = subprocess.Popen(
        [
            str(script),
            "logs",
            "work-magic",
            "--follow",
            "--provider",
            "aws",
            "--project",
            str(project),
            "--stage",
            "follow",
        ],
        env=moto.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    got = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if len(lines) == 2:
                got.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.time() + 30
        while not lines and time.time() < deadline:
            time.sleep(0.1)
        later = int(time.time() * 1000)
        cw.put_log_events(
            logGroupName=group,
            logStreamName=stream,
            logEvents=[{"timestamp": later, "message": "second"}],
        )
        assert got.wait(30), (lines, proc.poll())
    finally:
        proc.kill()
        proc.wait(10)

    def stamp(ms: int) -> str:
        return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")

    # no request id in these lines (no START line came first): two spaces
    assert lines == [
        f"{stamp(now - 1000)} work-magic  first",
        f"{stamp(later)} work-magic  second",
    ]
