"""The AWS provider against the provider conformance suite, deployed to a moto
server over HTTP (as a user would deploy to an emulator).

moto runs no Lambda code and routes no API Gateway requests, so every check
that needs a function to run is excluded here with that reason; what runs is
the deploy level: the conformance app (every trigger, resource and gateway
feature) deploys, an unchanged app then plans no steps, and the stage is
removed. The AWS adapter's semantics are checked under awslambdaric in the
aws provider's own tests. Without ``sls_py_deploy`` (this build) the plan
check is skipped with that reason.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sls_py.testing.conformance import Harness, PluginHarness, ProviderConformance

NO_CODE = (
    "moto runs no Lambda code and routes no API Gateway requests; the AWS adapter is "
    "checked under awslambdaric in the aws provider's own tests"
)
NEEDS_CODE = (
    "invoke",
    "trigger.http",
    "http.api_key",
    "http.cors",
    "trigger.upload",
    "trigger.schedule",
    "trigger.queue",
    "resource.bucket",
    "resource.queue",
    "resource.table",
    "function.timeout",
)


class MotoHarness(PluginHarness):
    """``aws`` with boto3 pointed at a moto server on 127.0.0.1 (free port)."""

    def __init__(self) -> None:
        super().__init__("aws")
        self.moto = None
        self.saved: dict[str, str | None] = {}

    def start(self, project: Path) -> None:
        from moto.server import ThreadedMotoServer

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        self.moto = server
        host, port = server.get_host_and_port()
        env = {
            "AWS_ENDPOINT_URL": f"http://{host}:{port}",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            "MOTO_IAM_LOAD_MANAGED_POLICIES": "true",
        }
        self.saved = {k: os.environ.get(k) for k in [*env, "AWS_PROFILE"]}
        os.environ.pop("AWS_PROFILE", None)
        os.environ.update(env)
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


@pytest.mark.slow
class TestAwsConformance(ProviderConformance):
    provider = "aws"
    exclude = dict.fromkeys(NEEDS_CODE, NO_CODE)

    def make_harness(self) -> Harness:
        return MotoHarness()
