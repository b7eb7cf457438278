"""``sls-py iam-policy``: the AWS provider's own command (added by
:func:`sls_py_aws.plugin.sls_py_add_commands`, imported only by the CLI)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def iam_policy(
    project: Annotated[Path, typer.Option("--project", "-p", help="The project folder.")] = Path(
        "."
    ),
    stage: Annotated[
        str | None, typer.Option("--stage", "-s", help="Stage (default: the configured one).")
    ] = None,
    account: Annotated[
        str | None, typer.Option(help="AWS account id for the ARNs (default: asked from STS).")
    ] = None,
    region: Annotated[
        str | None, typer.Option(help="AWS region (default: the configured one).")
    ] = None,
) -> None:
    """Print the IAM policy of the stage's Lambda role (AWS provider) as JSON."""
    import json

    from sls_py.config import load_project

    from .iam import role_policy, trust_policy
    from .model import Names

    spec = load_project(project).spec(stage)
    if account is None or region is None:
        from .deploy import make_cloud

        cloud = make_cloud(spec)
        region = region or cloud.region_name
        account = account or cloud.account_id()
    names = Names(spec, account, region)
    doc = {
        "RoleName": names.role,
        "AssumeRolePolicyDocument": trust_policy(),
        "PolicyName": "sls-py",
        "PolicyDocument": role_policy(spec, names),
    }
    typer.echo(json.dumps(doc, indent=2))
