"""Conformance harnesses for the aws provider, without AWS.

:class:`MotoHarness` deploys the conformance app with the aws provider to a
moto server on 127.0.0.1 (boto3 follows ``AWS_ENDPOINT_URL``), as a user
would deploy to an emulator; ``stop`` removes the stage.

:class:`AwsLambdaHarness` goes further: moto runs no Lambda code and routes no
API Gateway requests, so this harness plays those two services itself, from
what the provider *deployed* (read back from moto): each function's handler
and environment from ``get_function_configuration``, run under AWS's own
runtime client (``python -m awslambdaric``) on the zip the provider builds,
against the Runtime API server of ``support.lambda_runtime_api`` (the one the
tests in tests/aws/runtime use too);
HTTP routed by the deployed REST API's resources, methods, ``apiKeyRequired``
flags, usage-plan keys and CORS MOCK integrations; uploads delivered per the
bucket's notification configuration, schedules per the EventBridge rule's
target, queue messages per the event source mapping (polled from moto's SQS).
The functions' buckets, queues and tables are moto's S3, SQS and DynamoDB; their
databases' Data API calls go to :mod:`support.data_api` (real PostgreSQL behind
the Data API's wire protocol), which moto's canned rds-data cannot replace.
What it cannot check is a timeout (enforced by the Lambda service itself).

Caches: moto has no ElastiCache Serverless (``support.moto_serverless`` adds
its API to the moto server, so the deploy creates and records the cache), and
a function under test could not reach an ElastiCache anyway. So the harness
runs one real valkey-server on 127.0.0.1 and, for each cache the provider
deployed into a function's ``SLS_PY_CACHES``, swaps the made-up endpoint for
that server's URL (the names must be the deployed ones). What the cache tests
check on aws is therefore the AWS driver, the handler and the packaging against
a real Redis-protocol server; ElastiCache itself (TLS, cluster mode) is not run.

A function's own ``lambda.invoke`` calls (``ctx.invoke``, ``invoke_async``, fan-out)
go to :class:`~support.lambda_invoke.LambdaInvokeService`, which plays Lambda's Invoke
API (retries and on-failure destination as deployed) since moto runs no code.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import threading
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote_plus, urlsplit

from sls_py.provider import Invocation
from sls_py.routing import Router
from sls_py.testing.conformance import HttpResult, PluginHarness
from support.lambda_invoke import LambdaInvokeService, dead_letters
from support.lambda_runtime_api import FAKE_AWS, LambdaProcess, unpack_package


class MotoHarness(PluginHarness):
    """``aws`` with boto3 pointed at a moto server on 127.0.0.1 (free port)."""

    def __init__(self) -> None:
        super().__init__("aws")
        self.moto: Any = None
        self.saved: dict[str, str | None] = {}
        self.endpoint = ""

    def start(self, project: Path) -> None:
        from moto.server import ThreadedMotoServer
        from support.moto_serverless import install

        install()  # moto has no ElastiCache Serverless (see that module)

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        self.moto = server
        host, port = server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        env = {**FAKE_AWS, "MOTO_IAM_LOAD_MANAGED_POLICIES": "true", "AWS_ENDPOINT_URL": self.endpoint}
        # moto runs no SQL: the Data API (deploy's migrations, the functions' queries)
        # goes to a local endpoint backed by a real PostgreSQL server (support.data_api)
        from support.data_api import start_data_api

        self.postgres, self.data_api = start_data_api(project.parent / "data-api-postgres")
        env["AWS_ENDPOINT_URL_RDS_DATA"] = self.data_api.url
        self.saved = {k: os.environ.get(k) for k in [*env, "AWS_PROFILE"]}
        os.environ.pop("AWS_PROFILE", None)
        os.environ.update(env)
        with (project / "pyproject.toml").open("a", encoding="utf-8") as f:
            # no third-party wheels from the network: the test venv provides pydantic
            f.write('\n[tool.sls-py.providers.aws]\nregion = "us-east-1"\ninclude_dependencies = false\n')
        super().start(project)

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            for k, v in self.saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            if self.moto is not None:
                self.moto.stop()
            if getattr(self, "data_api", None) is not None:
                self.data_api.stop()
                self.postgres.stop()


# --- the harness ------------------------------------------------------------------------


class AwsLambdaHarness(MotoHarness):
    """The aws provider deployed to moto, its functions run under awslambdaric."""

    def start(self, project: Path) -> None:
        self.cache_server = contextlib.ExitStack()
        self.cache_url = ""
        super().start(project)
        import boto3

        assert self.spec is not None and self.project is not None
        self.aws = {
            s: boto3.client(s, region_name="us-east-1")
            for s in ("lambda", "s3", "sqs", "events", "apigateway")
        }
        self.task_root = self.project.root.parent / "lambda-task"
        self.logs = self.project.root.parent / "lambda-logs"
        self.logs.mkdir()
        unpack_package(self.spec, self.project, self.task_root)
        self.configs = {
            fn.name: self.aws["lambda"].get_function_configuration(FunctionName=self.spec.qualified(fn.name))
            for fn in self.spec.functions
        }
        self.by_lambda_name = {c["FunctionName"]: name for name, c in self.configs.items()}
        if self.spec.caches:  # one real server stands in for the deployed caches
            from support.valkey_server import running_valkey

            folder = self.project.root.parent / "valkey"
            self.cache_url = self.cache_server.enter_context(running_valkey(folder))
        self.running: dict[str, LambdaProcess] = {}
        self.start_lock = threading.Lock()
        env = json.loads(next(iter(self.configs.values()))["Environment"]["Variables"]["SLS_PY_RESOURCES"])
        self.physical = {kind: env.get(kind) or {} for kind in ("buckets", "queues", "tables")}
        self._routes = self._read_api()
        self.invoke_service = LambdaInvokeService(
            lambda lambda_name, event: self._function(self.by_lambda_name[lambda_name]).invoke(event),
            self.aws["lambda"],
            self.aws["sqs"],
        )
        self._stop_polling = threading.Event()
        self._poller = threading.Thread(target=self._poll_queues, daemon=True)
        self._poller.start()

    def stop(self) -> None:
        if hasattr(self, "_stop_polling"):
            self._stop_polling.set()
            self._poller.join(10)
        if hasattr(self, "invoke_service"):
            self.invoke_service.stop()
        for fn in getattr(self, "running", {}).values():
            fn.stop()
        if hasattr(self, "cache_server"):
            self.cache_server.close()
        super().stop()

    def _environment(self, config: dict[str, Any]) -> dict[str, str]:
        """The deployed environment; each deployed cache's URL replaced by the local server's."""
        env = dict((config.get("Environment") or {}).get("Variables") or {})
        if "SLS_PY_CACHES" in env:
            deployed = json.loads(env["SLS_PY_CACHES"])
            assert self.spec is not None
            assert sorted(deployed) == sorted(c.name for c in self.spec.caches), deployed
            assert all(url.startswith("rediss://") for url in deployed.values()), deployed
            env["SLS_PY_CACHES"] = json.dumps(dict.fromkeys(deployed, self.cache_url))
        return env

    def _function(self, name: str) -> LambdaProcess:
        """Function ``name`` running warm under awslambdaric (started on first use), with
        the handler, memory, timeout and environment the provider deployed to moto."""
        with self.start_lock:
            if name not in self.running:
                config = self.configs[name]
                self.running[name] = LambdaProcess(
                    self.task_root,
                    handler=config["Handler"],
                    name=config["FunctionName"],
                    env={
                        # boto3 in the function reaches moto as this process does
                        **{k: v for k, v in os.environ.items() if k.startswith("AWS_")},
                        # ...except Lambda's Invoke, which moto cannot run: played here
                        "AWS_ENDPOINT_URL_LAMBDA": self.invoke_service.url,
                        **self._environment(config),
                    },
                    log_path=self.logs / f"{config['FunctionName']}.log",
                    memory_mb=config.get("MemorySize", 128),
                    timeout_s=float(config.get("Timeout", 30)),
                    function_arn=config["FunctionArn"],
                )
            return self.running[name]

    # --- invoke ---------------------------------------------------------------------

    def invoke(self, function: str, payload: Any) -> Invocation:
        from sls_py_aws.handler import error_info

        answer = self._function(function).invoke(payload)
        if answer.ok:
            return Invocation(function, result=answer.payload)
        error = answer.payload
        return Invocation(
            function, error=error_info(error.get("errorType", ""), error.get("errorMessage", ""))
        )

    # --- API Gateway, from the deployed REST API -------------------------------------

    def _read_api(self) -> Router[dict[str, Any]]:
        assert self.spec is not None
        apigw = self.aws["apigateway"]
        router: Router[dict[str, Any]] = Router()
        self.rest_api = next(
            (a for a in apigw.get_rest_apis()["items"] if a["name"] == f"{self.spec.app}-{self.spec.stage}"),
            None,
        )
        if self.rest_api is None:
            return router
        api_id = self.rest_api["id"]
        for res in apigw.get_resources(restApiId=api_id, limit=500)["items"]:
            for method in res.get("resourceMethods") or {}:
                m = apigw.get_method(restApiId=api_id, resourceId=res["id"], httpMethod=method)
                router.add(method, res["path"], {"resource": res, "method": m})
        # the headers of the errors API Gateway answers itself (DEFAULT_4XX / DEFAULT_5XX)
        self.gateway_headers: dict[str, dict[str, str]] = {}
        for item in apigw.get_gateway_responses(restApiId=api_id).get("items") or []:
            params = item.get("responseParameters") or {}
            self.gateway_headers[item["responseType"]] = {
                k.split(".")[-1].lower(): v.strip("'") for k, v in params.items()
            }
        self.key_values = set()
        for plan in apigw.get_usage_plans()["items"]:
            if any(s.get("apiId") == api_id for s in plan.get("apiStages") or []):
                for key in apigw.get_usage_plan_keys(usagePlanId=plan["id"])["items"]:
                    self.key_values.add(key["value"])
        return router

    def http(
        self, method: str, path: str, headers: Mapping[str, str] | None = None, body: bytes = b""
    ) -> HttpResult:
        result = self._route_request(method, path, headers, body)
        if method.upper() == "HEAD":  # API Gateway sends no body for HEAD
            result.body = b""
        return result

    def _gateway_answer(self, status: int, message: str) -> HttpResult:
        """An error API Gateway answers itself, with its deployed gateway-response headers."""
        answer = _json(status, {"message": message})
        kind = "DEFAULT_4XX" if status < 500 else "DEFAULT_5XX"
        answer.headers.update(getattr(self, "gateway_headers", {}).get(kind, {}))
        return answer

    def _route_request(
        self, method: str, path: str, headers: Mapping[str, str] | None, body: bytes
    ) -> HttpResult:
        url = urlsplit(path)
        match = self._routes.match(method.upper(), url.path)
        if match is None:
            return self._gateway_answer(403, "Missing Authentication Token")
        m = match.target["method"]
        hdrs = {k.lower(): v for k, v in (headers or {}).items()}
        if m.get("apiKeyRequired") and hdrs.get("x-api-key") not in self.key_values:
            return self._gateway_answer(403, "Forbidden")
        integration = m.get("methodIntegration") or {}
        if integration.get("type") == "MOCK":
            response = (integration.get("integrationResponses") or {}).get("200") or {}
            params = response.get("responseParameters") or {}
            out = {k.split(".")[-1].lower(): v.strip("'") for k, v in params.items()}
            return HttpResult(200, out, b"")
        lambda_name = integration["uri"].split(":function:")[1].split("/")[0]
        query = parse_qs(url.query, keep_blank_values=True)
        text = body.decode("utf-8") if body else None
        event = {
            "resource": match.route,
            "path": url.path,
            "httpMethod": method.upper(),
            "headers": dict(headers or {}) or None,
            "multiValueHeaders": {k: [v] for k, v in (headers or {}).items()} or None,
            "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
            "multiValueQueryStringParameters": query or None,
            "pathParameters": match.params or None,
            "stageVariables": None,
            "requestContext": {
                "resourcePath": match.route,
                "httpMethod": method.upper(),
                "path": f"/{self.spec.stage if self.spec else 'dev'}{url.path}",
                "stage": self.spec.stage if self.spec else "dev",
                "requestId": str(uuid.uuid4()),
                "identity": {"sourceIp": "127.0.0.1"},
            },
            "body": text,
            "isBase64Encoded": False,
        }
        result = self._function(self.by_lambda_name[lambda_name]).invoke(event)
        if not result.ok:  # a function error behind a proxy integration
            return self._gateway_answer(502, "Internal server error")
        answer = result.payload
        out_headers = {k.lower(): str(v) for k, v in (answer.get("headers") or {}).items()}
        for k, values in (answer.get("multiValueHeaders") or {}).items():
            out_headers[k.lower()] = ", ".join(str(v) for v in values)
        raw = answer.get("body") or ""
        data = base64.b64decode(raw) if answer.get("isBase64Encoded") else raw.encode()
        return HttpResult(int(answer["statusCode"]), out_headers, data)

    # --- triggers, from the deployed wiring ------------------------------------------------

    def upload(self, bucket: str, key: str, data: bytes) -> None:
        physical = self.physical["buckets"][bucket]
        put = self.aws["s3"].put_object(Bucket=physical, Key=key, Body=data)
        notes = self.aws["s3"].get_bucket_notification_configuration(Bucket=physical)
        for conf in notes.get("LambdaFunctionConfigurations") or []:
            rules = {
                r["Name"].lower(): r["Value"]
                for r in conf.get("Filter", {}).get("Key", {}).get("FilterRules", [])
            }
            if not (key.startswith(rules.get("prefix", "")) and key.endswith(rules.get("suffix", ""))):
                continue
            record = {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "us-east-1",
                "eventTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z",
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": conf.get("Id", ""),
                    "bucket": {"name": physical, "arn": f"arn:aws:s3:::{physical}"},
                    "object": {"key": quote_plus(key), "size": len(data), "eTag": put["ETag"].strip('"')},
                },
            }
            name = conf["LambdaFunctionArn"].split(":function:")[1].split(":")[0]
            self._function(self.by_lambda_name[name]).invoke({"Records": [record]})

    def fire_schedule(self, function: str) -> None:
        events = self.aws["events"]
        arn = self.configs[function]["FunctionArn"]
        for rule in events.list_rule_names_by_target(TargetArn=arn)["RuleNames"]:
            described = events.describe_rule(Name=rule)
            now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            for target in events.list_targets_by_rule(Rule=rule)["Targets"]:
                if target["Arn"] != arn:
                    continue
                event: dict[str, Any] = {
                    "version": "0",
                    "id": str(uuid.uuid4()),
                    "detail-type": "Scheduled Event",
                    "source": "aws.events",
                    "account": arn.split(":")[4],
                    "time": now,
                    "region": "us-east-1",
                    "resources": [described["Arn"]],
                    "detail": {},
                }
                if target.get("Input"):
                    event = json.loads(target["Input"])
                elif target.get("InputTransformer"):
                    tr = target["InputTransformer"]
                    text = tr["InputTemplate"]
                    for name, jpath in (tr.get("InputPathsMap") or {}).items():
                        text = text.replace(f"<{name}>", str(event.get(jpath.removeprefix("$."), "")))
                    event = json.loads(text)
                self._function(function).invoke(event)

    def dead_letters(self, function: str) -> list[Any]:
        return dead_letters(self.aws["lambda"], self.aws["sqs"], self.configs[function]["FunctionName"])

    def send(self, queue_name: str, body: str) -> None:
        sqs = self.aws["sqs"]
        url = sqs.get_queue_url(QueueName=self.physical["queues"][queue_name])["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody=body)

    def _poll_queues(self) -> None:
        """Deliver SQS messages per the deployed event source mappings (Lambda's poller)."""
        sqs = self.aws["sqs"]
        mappings = [
            (name, m)
            for name, c in self.configs.items()
            for m in self.aws["lambda"].list_event_source_mappings(FunctionName=c["FunctionName"])[
                "EventSourceMappings"
            ]
        ]
        urls = {
            m["EventSourceArn"]: sqs.get_queue_url(QueueName=m["EventSourceArn"].split(":")[-1])["QueueUrl"]
            for _, m in mappings
        }
        while not self._stop_polling.wait(0.2):
            for name, m in mappings:
                url = urls[m["EventSourceArn"]]
                got = (
                    sqs.receive_message(
                        QueueUrl=url,
                        MaxNumberOfMessages=min(10, m.get("BatchSize", 10)),
                        AttributeNames=["All"],
                    ).get("Messages")
                    or []
                )
                if not got:
                    continue
                records = [
                    {
                        "messageId": msg["MessageId"],
                        "receiptHandle": msg["ReceiptHandle"],
                        "body": msg["Body"],
                        "attributes": msg.get("Attributes") or {},
                        "messageAttributes": {},
                        "md5OfBody": msg.get("MD5OfBody", ""),
                        "eventSource": "aws:sqs",
                        "eventSourceARN": m["EventSourceArn"],
                        "awsRegion": "us-east-1",
                    }
                    for msg in got
                ]
                answer = self._function(name).invoke({"Records": records})
                failed = (
                    {f["itemIdentifier"] for f in (answer.payload or {}).get("batchItemFailures", [])}
                    if answer.ok
                    else None
                )
                for msg in got:
                    if failed is not None and msg["MessageId"] not in failed:
                        sqs.delete_message(QueueUrl=url, ReceiptHandle=msg["ReceiptHandle"])


def _json(status: int, body: Any) -> HttpResult:
    return HttpResult(status, {"content-type": "application/json"}, json.dumps(body).encode())


__all__ = ["AwsLambdaHarness", "MotoHarness"]
