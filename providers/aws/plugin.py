"""The AWS provider's hook implementations (boto3 is imported inside hooks only)."""

from __future__ import annotations

from sls_py import hookimpl
from sls_py.provider import ProviderInfo

from . import __version__


@hookimpl
def sls_py_provider_info() -> ProviderInfo:
    return ProviderInfo(
        name="aws",
        version=__version__,
        description="AWS Lambda behind API Gateway, with S3, EventBridge, SQS and DynamoDB.",
        capabilities=frozenset(
            {
                "invoke",
                "trigger.http",
                "http.api_key",
                "http.cors",
                "http.usage_limits",
                "trigger.schedule",
                "trigger.upload",
                "trigger.queue",
                "resource.bucket",
                "resource.queue",
                "resource.table",
                "function.timeout",
                "function.memory",
                "function.concurrency",
            }
        ),
    )
