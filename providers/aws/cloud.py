"""The one module that talks to boto3.

Every AWS call of the provider goes through :meth:`Cloud.call`, which

- builds clients from one boto3 session that honours the standard settings
  (``AWS_PROFILE``, ``AWS_REGION`` / ``AWS_DEFAULT_REGION``,
  ``AWS_ENDPOINT_URL``), with the region of ``[tool.sls-py.providers.aws]``
  as the fallback;
- counts calls, read-only and mutating (:attr:`Cloud.calls`), which the
  benchmark reports and the planner's promise "read-only" rests on;
- turns botocore errors into :class:`~sls_py.errors.ProviderError`: missing
  credentials give one line, access denied names the call and the permission,
  and "not found" answers can be asked for as ``None`` (``missing_ok=True``).

Nothing else in ``sls_py_aws`` imports boto3 or botocore.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sls_py.errors import ProviderError

#: Error codes that mean "the thing is not there".
NOT_FOUND_CODES = frozenset(
    {
        "ResourceNotFoundException",
        "NoSuchEntity",
        "NotFoundException",
        "NoSuchBucket",
        "NoSuchKey",
        "404",
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
        "ResourceNotFound",
        "ServerlessCacheNotFoundFault",
        "DBClusterNotFoundFault",
        "DBInstanceNotFound",
        "DBInstanceNotFoundFault",
        "ParameterNotFound",
    }
)
_READ_PREFIXES = ("get_", "list_", "describe_", "head_", "filter_", "generate_", "wait_")
_DENIED = frozenset(
    {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError"}
)
_SERVICE_PREFIX = {
    "lambda": "lambda",
    "apigateway": "apigateway",
    "events": "events",
    "logs": "logs",
    "s3": "s3",
    "sqs": "sqs",
    "dynamodb": "dynamodb",
    "iam": "iam",
    "sts": "sts",
    "ssm": "ssm",
}


def is_mutating(operation: str) -> bool:
    """Whether a boto3 method name changes something (anything but get/list/describe...)."""
    return not operation.startswith(_READ_PREFIXES)


#: Calls whose IAM action is not their API name.
_ACTIONS = {
    ("s3", "put_bucket_notification_configuration"): "s3:PutBucketNotification",
    ("s3", "get_bucket_notification_configuration"): "s3:GetBucketNotification",
    ("s3", "list_objects_v2"): "s3:ListBucket",
    ("s3", "head_bucket"): "s3:ListBucket",
    ("s3", "delete_objects"): "s3:DeleteObject",
    ("s3", "put_public_access_block"): "s3:PutBucketPublicAccessBlock",
    ("lambda", "list_event_source_mappings"): "lambda:ListEventSourceMappings",
    ("lambda", "invoke"): "lambda:InvokeFunction",
}


def _action(service: str, operation: str) -> str:
    """The IAM action of a call: ``lambda`` + ``create_function`` -> ``lambda:CreateFunction``."""
    if (service, operation) in _ACTIONS:
        return _ACTIONS[(service, operation)]
    name = "".join(part.capitalize() for part in operation.split("_"))
    if service == "apigateway":
        verb = {"get": "GET", "create": "POST", "put": "PUT", "update": "PATCH", "delete": "DELETE"}
        return f"apigateway:{verb.get(operation.split('_')[0], 'POST')}"
    return f"{_SERVICE_PREFIX.get(service, service)}:{name}"


@dataclass(frozen=True)
class Call:
    """One AWS call made: service and boto3 method name."""

    service: str
    operation: str

    @property
    def mutating(self) -> bool:
        return is_mutating(self.operation)


@dataclass
class Cloud:
    """A boto3 session with error translation and call counting.

    :param region: the region from the project's settings, used when the
        environment names none.
    :param profile: an AWS profile (default: ``AWS_PROFILE``).
    """

    region: str | None = None
    profile: str | None = None
    calls: list[Call] = field(default_factory=list)
    _clients: dict[str, Any] = field(default_factory=dict, repr=False)
    _session: Any = field(default=None, repr=False)
    _account: str | None = field(default=None, repr=False)

    @property
    def session(self) -> Any:
        if self._session is None:
            import boto3
            import botocore.exceptions

            region = (
                os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or self.region
            )
            try:
                self._session = boto3.session.Session(
                    profile_name=self.profile or os.environ.get("AWS_PROFILE") or None,
                    region_name=region or None,
                )
            except botocore.exceptions.ProfileNotFound as exc:
                raise ProviderError(
                    f"AWS profile not found: {exc}", hint="check AWS_PROFILE and ~/.aws/config"
                ) from None
            if not self._session.region_name:
                raise ProviderError(
                    "no AWS region configured",
                    hint='set AWS_REGION, or region = "..." in [tool.sls-py.providers.aws]',
                )
        return self._session

    @property
    def region_name(self) -> str:
        return str(self.session.region_name)

    def client(self, service: str) -> Any:
        """A cached boto3 client (``AWS_ENDPOINT_URL`` is honoured by botocore itself)."""
        if service not in self._clients:
            from botocore.config import Config

            self._clients[service] = self.session.client(
                service, config=Config(retries={"max_attempts": 8, "mode": "standard"})
            )
        return self._clients[service]

    @property
    def mutating_calls(self) -> int:
        return sum(1 for c in self.calls if c.mutating)

    def call(self, service: str, operation: str, *, missing_ok: bool = False, **params: Any) -> Any:
        """Call ``service.operation(**params)``; errors become :class:`ProviderError`.

        :param missing_ok: return ``None`` when AWS answers that the target does
            not exist, instead of raising.
        """
        import botocore.exceptions

        method: Callable[..., Any] = getattr(self.client(service), operation)
        self.calls.append(Call(service, operation))
        try:
            return method(**params)
        except botocore.exceptions.NoCredentialsError:
            raise ProviderError(
                "no AWS credentials found",
                hint="set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                "or run `aws configure`",
            ) from None
        except botocore.exceptions.ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            message = str(exc.response.get("Error", {}).get("Message", ""))
            if missing_ok and code in NOT_FOUND_CODES:
                return None
            raise self._translate(service, operation, code, message) from None
        except botocore.exceptions.EndpointConnectionError as exc:
            raise ProviderError(
                f"cannot reach AWS: {exc}",
                hint="check your network, AWS_REGION and AWS_ENDPOINT_URL",
            ) from None
        except botocore.exceptions.ParamValidationError as exc:
            raise ProviderError(f"{service}.{operation}: invalid parameters: {exc}") from None
        except botocore.exceptions.WaiterError as exc:
            raise ProviderError(f"{service}.{operation}: {exc}") from None

    def _translate(self, service: str, operation: str, code: str, message: str) -> ProviderError:
        action = _action(service, operation)
        if code in _DENIED:
            return AwsError(
                f"AWS denied {service}.{operation}: {message}",
                code=code,
                hint=f"allow the permission {action} for the credentials in use",
            )
        if code in {
            "InvalidClientTokenId",
            "UnrecognizedClientException",
            "ExpiredToken",
            "ExpiredTokenException",
            "SignatureDoesNotMatch",
            "InvalidAccessKeyId",
        }:
            return AwsError(
                f"AWS rejected the credentials ({code})",
                code=code,
                hint="refresh your credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID, `aws sso login`)",
            )
        return AwsError(f"{service}.{operation} failed: {code}: {message}", code=code)

    def paginate(self, service: str, operation: str, key: str, **params: Any) -> Iterator[Any]:
        """Yield the items under ``key`` of every page of ``operation``."""
        import botocore.exceptions

        paginator = self.client(service).get_paginator(operation)
        try:
            for page in paginator.paginate(**params):
                self.calls.append(Call(service, operation))
                yield from page.get(key, [])
        except botocore.exceptions.NoCredentialsError:
            raise ProviderError(
                "no AWS credentials found",
                hint="set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            ) from None
        except botocore.exceptions.ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            raise self._translate(service, operation, code, str(exc)) from None

    def wait(self, service: str, waiter: str, **params: Any) -> None:
        """Wait with a boto3 waiter (Lambda updates, table creation)."""
        import botocore.exceptions

        self.calls.append(Call(service, f"wait_{waiter}"))
        try:
            self.client(service).get_waiter(waiter).wait(
                **params, WaiterConfig={"Delay": 1, "MaxAttempts": 300}
            )
        except botocore.exceptions.WaiterError as exc:
            raise ProviderError(f"waiting for {service} {waiter} failed: {exc}") from None

    def account_id(self) -> str:
        """The account of the credentials in use (one STS call, cached)."""
        if self._account is None:
            self._account = str(self.call("sts", "get_caller_identity")["Account"])
        return self._account

    def retry(self, fn: Callable[[], Any], *, when: str, attempts: int = 10) -> Any:
        """Call ``fn`` again while it fails with a message containing ``when``.

        A new IAM role takes seconds to reach Lambda; AWS says so with a
        message we can recognise, and the call succeeds a little later.
        """
        for i in range(attempts):
            try:
                return fn()
            except AwsError as exc:
                if when not in exc.message or i == attempts - 1:
                    raise
                time.sleep(min(2**i, 8))
        return None


class AwsError(ProviderError):
    """An AWS API call failed; ``code`` is AWS's error code."""

    def __init__(self, message: str, *, code: str = "", hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.code = code
