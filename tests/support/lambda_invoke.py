"""Lambda's ``Invoke`` API, played for functions running under awslambdaric.

moto cannot run Lambda code, so a function's ``ctx.invoke`` / ``invoke_async``
(boto3 ``lambda.invoke`` inside the function) cannot be answered by moto. The
functions' processes get ``AWS_ENDPOINT_URL_LAMBDA`` pointing here instead
(boto3 honours per-service endpoint variables), so their Lambda client speaks
the real wire protocol to this server, while every other service stays moto:

- ``POST /2015-03-31/functions/{name}/invocations`` with
  ``X-Amz-Invocation-Type: RequestResponse`` runs the target under awslambdaric
  and answers its payload (``X-Amz-Function-Error: Unhandled`` for a function
  error), as Lambda does;
- with ``Event`` it answers 202 at once and delivers in a thread, following
  what the provider *deployed* (read from moto with
  ``get_function_event_invoke_config``): ``1 + MaximumRetryAttempts`` attempts,
  then an invocation record (``requestPayload``, ``responsePayload``,
  ``condition: RetriesExhausted``) sent to the ``OnFailure`` SQS destination.
  Retries follow each other at once (Lambda waits about one, then two minutes).
"""

from __future__ import annotations

import json
import queue
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from support.lambda_runtime_api import RuntimeAnswer

PREFIX = "/2015-03-31/functions/"


class LambdaInvokeService:
    """The Invoke API for ``run(lambda_name, event) -> RuntimeAnswer``.

    :param lam: a boto3 Lambda client on moto (the deployed invoke configurations).
    :param sqs: a boto3 SQS client on moto (the on-failure destinations).
    """

    def __init__(self, run: Callable[[str, Any], RuntimeAnswer], lam: Any, sqs: Any) -> None:
        self.run, self.lam, self.sqs = run, lam, sqs
        self.events: queue.Queue[tuple[str, Any, str] | None] = queue.Queue()
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                service.answer(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.threads = [
            threading.Thread(target=self.server.serve_forever, daemon=True),
            threading.Thread(target=self._deliver, daemon=True),
        ]
        for t in self.threads:
            t.start()

    def stop(self) -> None:
        self.events.put(None)
        self.server.shutdown()
        self.server.server_close()

    def answer(self, request: BaseHTTPRequestHandler) -> None:
        path = request.path.split("?")[0]
        if not (path.startswith(PREFIX) and path.endswith("/invocations")):
            return _send(request, 404, b'{"Message": "unknown path"}')
        name = unquote(path[len(PREFIX) : -len("/invocations")]).split(":function:")[-1].split(":")[0]
        length = int(request.headers.get("content-length") or 0)
        raw = request.rfile.read(length) if length else b""
        event = json.loads(raw) if raw else None
        request_id = str(uuid.uuid4())
        kind = request.headers.get("x-amz-invocation-type") or "RequestResponse"
        if kind == "Event":
            self.events.put((name, event, request_id))
            return _send(request, 202, b"", {"x-amzn-RequestId": request_id})
        got = self.run(name, event)
        headers = {"x-amzn-RequestId": request_id, "X-Amz-Executed-Version": "$LATEST"}
        if not got.ok:
            headers["X-Amz-Function-Error"] = "Unhandled"
        _send(request, 200, json.dumps(got.payload).encode(), headers)

    def _deliver(self) -> None:
        while (item := self.events.get()) is not None:
            name, event, request_id = item
            try:
                config = self.lam.get_function_event_invoke_config(FunctionName=name)
            except self.lam.exceptions.ResourceNotFoundException:
                config = {}
            attempts = 1 + int(config.get("MaximumRetryAttempts", 2))
            got = None
            for _ in range(attempts):
                got = self.run(name, event)
                if got.ok:
                    break
            destination = (config.get("DestinationConfig") or {}).get("OnFailure", {}).get("Destination")
            if got is not None and not got.ok and destination:
                record = {
                    "version": "1.0",
                    "timestamp": datetime.now(UTC).isoformat(),
                    "requestContext": {
                        "requestId": request_id,
                        "functionArn": config.get("FunctionArn", name),
                        "condition": "RetriesExhausted",
                        "approximateInvokeCount": attempts,
                    },
                    "requestPayload": event,
                    "responseContext": {"statusCode": 200, "functionError": "Unhandled"},
                    "responsePayload": got.payload,
                }
                url = self.sqs.get_queue_url(QueueName=destination.split(":")[-1])["QueueUrl"]
                self.sqs.send_message(QueueUrl=url, MessageBody=json.dumps(record))


def dead_letters(lam: Any, sqs: Any, lambda_name: str) -> list[Any]:
    """The ``requestPayload`` of each record in ``lambda_name``'s on-failure queue."""
    config = lam.get_function_event_invoke_config(FunctionName=lambda_name)
    destination = config["DestinationConfig"]["OnFailure"]["Destination"]
    url = sqs.get_queue_url(QueueName=destination.split(":")[-1])["QueueUrl"]
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)
    return [json.loads(m["Body"])["requestPayload"] for m in got.get("Messages") or []]


def _send(
    request: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str] | None = None
) -> None:
    request.send_response(status)
    request.send_header("content-type", "application/json")
    request.send_header("content-length", str(len(body)))
    for k, v in (headers or {}).items():
        request.send_header(k, v)
    request.end_headers()
    request.wfile.write(body)
