"""Conformance harnesses for the aws provider, without AWS.

:class:`MotoHarness` deploys the conformance app with the aws provider to a
moto server on 127.0.0.1 (boto3 follows ``AWS_ENDPOINT_URL``), as a user
would deploy to an emulator; ``stop`` removes the stage.

:class:`AwsLambdaHarness` goes further: moto runs no Lambda code and routes no
API Gateway requests, so this harness plays those two services itself, from
what the provider *deployed* (read back from moto): each function's handler
and environment from ``get_function_configuration``, run under AWS's own
runtime client (``python -m awslambdaric``) on the zip the provider builds;
HTTP routed by the deployed REST API's resources, methods, ``apiKeyRequired``
flags, usage-plan keys and CORS MOCK integrations; uploads delivered per the
bucket's notification configuration, schedules per the EventBridge rule's
target, queue messages per the event source mapping (polled from moto's SQS).
The functions' buckets, queues and tables are moto's S3, SQS and DynamoDB.
What it cannot check is a timeout (enforced by the Lambda service itself).
"""

from __future__ import annotations

import base64
import json
import os
import queue
import subprocess
import sys
import sysconfig
import threading
import time
import uuid
import zipfile
from collections.abc import Mapping
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote_plus, urlsplit

from sls_py.provider import Invocation
from sls_py.routing import Router
from sls_py.testing.conformance import HttpResult, PluginHarness

RUNTIME_API = "/2018-06-01/runtime"
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "MOTO_IAM_LOAD_MANAGED_POLICIES": "true",
}


class MotoHarness(PluginHarness):
    """``aws`` with boto3 pointed at a moto server on 127.0.0.1 (free port)."""

    def __init__(self) -> None:
        super().__init__("aws")
        self.moto: Any = None
        self.saved: dict[str, str | None] = {}
        self.endpoint = ""

    def start(self, project: Path) -> None:
        from moto.server import ThreadedMotoServer

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        self.moto = server
        host, port = server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        env = {**FAKE_AWS, "AWS_ENDPOINT_URL": self.endpoint}
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


# --- the Lambda Runtime API, for awslambdaric -------------------------------------


class RuntimeApi:
    """The Lambda Runtime API (2018-06-01) on 127.0.0.1 for one function."""

    def __init__(self, function_arn: str) -> None:
        self.function_arn = function_arn
        self.pending: queue.Queue[tuple[str, bytes, int] | None] = queue.Queue()
        self.answers: dict[str, tuple[bool, Any]] = {}
        self.arrived = threading.Condition()
        self.init_errors: list[Any] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int, body: bytes, headers: Mapping[str, str] | None = None) -> None:
                try:
                    self.send_response(status)
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _read(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    out = b""
                    while size := int(self.rfile.readline().split(b";")[0], 16):
                        out += self.rfile.read(size)
                        self.rfile.readline()
                    self.rfile.readline()
                    return out
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def do_GET(self) -> None:
                item = api.pending.get()
                if item is None:
                    api.pending.put(None)
                    self._send(500, b"{}")
                    return
                request_id, event, deadline_ms = item
                self._send(
                    200,
                    event,
                    {
                        "Content-Type": "application/json",
                        "Lambda-Runtime-Aws-Request-Id": request_id,
                        "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
                        "Lambda-Runtime-Invoked-Function-Arn": api.function_arn,
                    },
                )

            def do_POST(self) -> None:
                body = self._read()
                parts = self.path.split("/")
                if self.path == f"{RUNTIME_API}/init/error":
                    api.init_errors.append(json.loads(body or b"{}"))
                elif len(parts) == 6 and parts[5] in ("response", "error"):
                    with api.arrived:
                        api.answers[parts[4]] = (parts[5] == "response", json.loads(body) if body else None)
                        api.arrived.notify_all()
                self._send(202, b'{"status":"OK"}')

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def call(self, event: Any, timeout_s: float, alive: Any) -> tuple[bool, Any]:
        """Queue ``event``; wait for the runtime's response or error."""
        request_id = str(uuid.uuid4())
        deadline_ms = int(time.time() * 1000 + timeout_s * 1000)
        self.pending.put((request_id, json.dumps(event).encode(), deadline_ms))
        end = time.monotonic() + timeout_s + 10
        with self.arrived:
            while request_id not in self.answers:
                if time.monotonic() > end or not alive():
                    raise AssertionError(
                        f"the Lambda runtime gave no answer (init errors: {self.init_errors})"
                    )
                self.arrived.wait(0.1)
            return self.answers.pop(request_id)

    def stop(self) -> None:
        self.pending.put(None)
        self.server.shutdown()
        self.server.server_close()


def _site_dirs() -> list[str]:
    paths = sysconfig.get_paths()
    return list(dict.fromkeys([paths["purelib"], paths["platlib"]]))


class LambdaFunction:
    """One deployed function running warm under awslambdaric, one event at a time."""

    def __init__(self, task_root: Path, config: dict[str, Any], log_dir: Path) -> None:
        self.config = config
        self.lock = threading.Lock()
        self.api = RuntimeApi(config["FunctionArn"])
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            # -S below: no site processing, so the zip's sls_py wins over the editable
            # install; the venv's site-packages stand in for Lambda's boto3 and for pydantic
            "PYTHONPATH": os.pathsep.join([str(task_root), *_site_dirs()]),
            "PYTHONDONTWRITEBYTECODE": "1",
            "LAMBDA_TASK_ROOT": str(task_root),
            "AWS_LAMBDA_RUNTIME_API": self.api.address,
            "AWS_LAMBDA_FUNCTION_NAME": config["FunctionName"],
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(config.get("MemorySize", 128)),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{config['FunctionName']}",
            "AWS_LAMBDA_LOG_STREAM_NAME": "conformance",
            **{k: v for k, v in os.environ.items() if k.startswith("AWS_") and k != "AWS_LAMBDA_RUNTIME_API"},
            **((config.get("Environment") or {}).get("Variables") or {}),
        }
        self.log_path = log_dir / f"{config['FunctionName']}.log"
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-S", "-m", "awslambdaric", config["Handler"]],
                cwd=task_root,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def call(self, event: Any) -> tuple[bool, Any]:
        with self.lock:
            return self.api.call(
                event, float(self.config.get("Timeout", 30)), lambda: self.proc.poll() is None
            )

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self.api.stop()


# --- the harness ------------------------------------------------------------------------


class AwsLambdaHarness(MotoHarness):
    """The aws provider deployed to moto, its functions run under awslambdaric."""

    def start(self, project: Path) -> None:
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
        self._extract_package()
        self.configs = {
            fn.name: self.aws["lambda"].get_function_configuration(FunctionName=self.spec.qualified(fn.name))
            for fn in self.spec.functions
        }
        self.by_lambda_name = {c["FunctionName"]: name for name, c in self.configs.items()}
        self.running: dict[str, LambdaFunction] = {}
        self.start_lock = threading.Lock()
        env = json.loads(next(iter(self.configs.values()))["Environment"]["Variables"]["SLS_PY_RESOURCES"])
        self.physical = {kind: env.get(kind) or {} for kind in ("buckets", "queues", "tables")}
        self._routes = self._read_api()
        self._stop_polling = threading.Event()
        self._poller = threading.Thread(target=self._poll_queues, daemon=True)
        self._poller.start()

    def stop(self) -> None:
        if hasattr(self, "_stop_polling"):
            self._stop_polling.set()
            self._poller.join(10)
        for fn in getattr(self, "running", {}).values():
            fn.stop()
        super().stop()

    def _extract_package(self) -> None:
        from sls_py_aws.package import build_package

        assert self.spec is not None and self.project is not None
        built = build_package(self.spec, self.project, include_dependencies=False)
        self.task_root.mkdir()
        zip_path = self.task_root.with_suffix(".zip")
        zip_path.write_bytes(built.data)
        with zipfile.ZipFile(zip_path) as zf:
            zf.extractall(self.task_root)

    def _function(self, name: str) -> LambdaFunction:
        with self.start_lock:
            if name not in self.running:
                self.running[name] = LambdaFunction(self.task_root, self.configs[name], self.logs)
            return self.running[name]

    # --- invoke ---------------------------------------------------------------------

    def invoke(self, function: str, payload: Any) -> Invocation:
        from sls_py_aws.handler import error_info

        ok, answer = self._function(function).call(payload)
        if ok:
            return Invocation(function, result=answer)
        return Invocation(
            function, error=error_info(answer.get("errorType", ""), answer.get("errorMessage", ""))
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
        self.key_values = set()
        for plan in apigw.get_usage_plans()["items"]:
            if any(s.get("apiId") == api_id for s in plan.get("apiStages") or []):
                for key in apigw.get_usage_plan_keys(usagePlanId=plan["id"])["items"]:
                    self.key_values.add(key["value"])
        return router

    def http(
        self, method: str, path: str, headers: Mapping[str, str] | None = None, body: bytes = b""
    ) -> HttpResult:
        url = urlsplit(path)
        match = self._routes.match(method.upper(), url.path)
        if match is None:
            return _json(403, {"message": "Missing Authentication Token"})
        m = match.target["method"]
        hdrs = {k.lower(): v for k, v in (headers or {}).items()}
        if m.get("apiKeyRequired") and hdrs.get("x-api-key") not in self.key_values:
            return _json(403, {"message": "Forbidden"})
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
        ok, answer = self._function(self.by_lambda_name[lambda_name]).call(event)
        if not ok:  # a function error behind a proxy integration
            return _json(502, {"message": "Internal server error"})
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
            self._function(self.by_lambda_name[name]).call({"Records": [record]})

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
                self._function(function).call(event)

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
                ok, answer = self._function(name).call({"Records": records})
                failed = (
                    {f["itemIdentifier"] for f in (answer or {}).get("batchItemFailures", [])} if ok else None
                )
                for msg in got:
                    if failed is not None and msg["MessageId"] not in failed:
                        sqs.delete_message(QueueUrl=url, ReceiptHandle=msg["ReceiptHandle"])


def _json(status: int, body: Any) -> HttpResult:
    return HttpResult(status, {"content-type": "application/json"}, json.dumps(body).encode())


__all__ = ["AwsLambdaHarness", "LambdaFunction", "MotoHarness", "RuntimeApi"]
