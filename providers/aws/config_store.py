"""The stage's config on AWS: SSM Parameter Store parameters under ``/<app>/<stage>/``.

``sls-py config set KEY VALUE --stage S`` writes ``/<app>/<stage>/KEY`` (a
``String``, or a ``SecureString`` encrypted with the AWS-managed key
``alias/aws/ssm`` for ``--secret``); functions read the path with
``GetParametersByPath`` at call time (:class:`sls_py_aws.resources.AwsConfig`),
allowed by the role's policy on that path only (:mod:`sls_py_aws.iam`).
Deploy never writes parameters and ``remove`` deletes them only with
``--purge-config``. Every call goes through :class:`~sls_py_aws.cloud.Cloud`.
"""

from __future__ import annotations

from sls_py.errors import ConfigError
from sls_py.provider import ConfigEntry
from sls_py.spec import Spec

from .cloud import Cloud
from .model import TAG_APP, TAG_STAGE

#: SSM's limit on a Standard-tier parameter's value.
MAX_VALUE_BYTES = 4096
#: DeleteParameters takes at most this many names.
DELETE_BATCH = 10


def config_path(spec: Spec) -> str:
    """The stage's parameter path, ``/<app>/<stage>/``."""
    return f"/{spec.app}/{spec.stage}/"


def _entry(path: str, param: dict[str, object], reveal: bool) -> ConfigEntry:
    secret = param.get("Type") == "SecureString"
    value = str(param.get("Value", ""))
    return ConfigEntry(str(param["Name"])[len(path) :], None if secret and not reveal else value, secret)


def get_entries(
    spec: Spec, cloud: Cloud, keys: list[str] | None, reveal: bool
) -> list[ConfigEntry]:
    """The stage's entries, read with ``GetParametersByPath`` (or ``GetParameters``
    for a few named keys); secrets are decrypted only with ``reveal``."""
    path = config_path(spec)
    if keys is not None and len(keys) <= DELETE_BATCH:  # GetParameters takes ten names too
        names = [path + k for k in keys]
        found = cloud.call("ssm", "get_parameters", Names=names, WithDecryption=reveal) if names else {}
        params = list(found.get("Parameters", []))
    else:
        params = list(
            cloud.paginate(
                "ssm", "get_parameters_by_path", "Parameters",
                Path=path.rstrip("/"), Recursive=False, WithDecryption=reveal,
            )
        )  # fmt: skip
    wanted = set(keys) if keys is not None else None
    entries = [_entry(path, p, reveal) for p in params]
    return sorted((e for e in entries if wanted is None or e.key in wanted), key=lambda e: e.key)


def set_entry(spec: Spec, cloud: Cloud, key: str, value: str, secret: bool) -> ConfigEntry:
    """Create or overwrite ``/<app>/<stage>/KEY``; an unchanged value makes no write."""
    size = len(value.encode("utf-8"))
    if size > MAX_VALUE_BYTES:
        raise ConfigError(
            f"config value for {key!r} is {size} bytes, over SSM Parameter Store's "
            f"{MAX_VALUE_BYTES} bytes (Standard tier)",
            hint="keep large values in a bucket and put their key in config",
        )
    if not value:
        raise ConfigError(
            f"config value for {key!r} is empty; SSM Parameter Store refuses empty values",
            hint=f"`sls-py config unset {key}` removes the key instead",
        )
    name = config_path(spec) + key
    current = cloud.call("ssm", "get_parameter", missing_ok=True, Name=name, WithDecryption=True)
    kind = "SecureString" if secret else "String"
    if current is not None:
        param = current["Parameter"]
        if param.get("Type") == "SecureString" and not secret:
            raise ConfigError(
                f"config key {key!r} of stage {spec.stage!r} is a secret",
                hint=f"pass --secret to change it, or `sls-py config unset {key}` first "
                "to make it plain",
            )
        if param.get("Type") == kind and param.get("Value") == value:
            return ConfigEntry(key, None if secret else value, secret)
        cloud.call("ssm", "put_parameter", Name=name, Value=value, Type=kind, Overwrite=True)
    else:
        tags = [{"Key": TAG_APP, "Value": spec.app}, {"Key": TAG_STAGE, "Value": spec.stage}]
        cloud.call(
            "ssm", "put_parameter", Name=name, Value=value, Type=kind, Tier="Standard", Tags=tags
        )
    return ConfigEntry(key, None if secret else value, secret)


def unset_entries(spec: Spec, cloud: Cloud, keys: list[str]) -> list[str]:
    """Delete the keys' parameters (``DeleteParameters``, ten at a time)."""
    path = config_path(spec)
    deleted: list[str] = []
    for i in range(0, len(keys), DELETE_BATCH):
        batch = [path + k for k in keys[i : i + DELETE_BATCH]]
        answer = cloud.call("ssm", "delete_parameters", Names=batch)
        deleted.extend(str(n)[len(path) :] for n in answer.get("DeletedParameters", []))
    return sorted(deleted)
