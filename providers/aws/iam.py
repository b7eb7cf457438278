"""The stage's IAM role: trust for Lambda and a least-privilege inline policy.

Every statement names the exact resources of this app and stage: the log
groups of its own functions, its buckets, queues and tables. Nothing is
granted on ``"Resource": "*"``, with one exception that AWS imposes: when the
app declares a cache, its functions run in a VPC, and Lambda needs
``ec2:DescribeNetworkInterfaces`` (which has no resource-level permissions) to
manage their network interfaces; the interface calls themselves are limited to
this account and region. Without a cache there is no EC2 statement at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sls_py.spec import QueueTriggerSpec, Spec

if TYPE_CHECKING:
    from .model import Names

POLICY_NAME = "sls-py"


def trust_policy() -> dict[str, Any]:
    """Lambda may assume the role; nothing else may."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }


def role_policy(spec: Spec, names: Names) -> dict[str, Any]:
    """The inline policy of the stage's role, as a JSON-able dict."""
    region, account = names.region, names.account
    groups = [
        f"arn:aws:logs:{region}:{account}:log-group:{names.log_group(fn.name)}"
        for fn in spec.functions
    ]
    statements: list[dict[str, Any]] = []
    if groups:
        statements.append(
            {
                "Sid": "Logs",
                "Effect": "Allow",
                "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": sorted([*groups, *(g + ":*" for g in groups)]),
            }
        )
    if spec.buckets:
        arns = [f"arn:aws:s3:::{names.bucket(b.name)}" for b in spec.buckets]
        statements.append(
            {
                "Sid": "BucketObjects",
                "Effect": "Allow",
                "Action": ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"],
                "Resource": [a + "/*" for a in arns],
            }
        )
        statements.append(
            {
                "Sid": "BucketList",
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": arns,
            }
        )
    if spec.queues:
        statements.append(
            {
                "Sid": "QueueSend",
                "Effect": "Allow",
                "Action": ["sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:SendMessage"],
                "Resource": [names.queue_arn(q.name) for q in spec.queues],
            }
        )
    consumed = sorted(
        {t.queue for fn in spec.functions for t in fn.triggers if isinstance(t, QueueTriggerSpec)}
    )
    if consumed:
        statements.append(
            {
                "Sid": "QueueConsume",
                "Effect": "Allow",
                "Action": [
                    "sqs:ChangeMessageVisibility",
                    "sqs:DeleteMessage",
                    "sqs:GetQueueAttributes",
                    "sqs:ReceiveMessage",
                ],
                "Resource": [names.queue_arn(q) for q in consumed],
            }
        )
    if spec.tables:
        statements.append(
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
                "Resource": [names.table_arn(t.name) for t in spec.tables],
            }
        )
    if spec.caches:
        statements.extend(vpc_statements(region, account))
    from .databases import iam_statements

    statements.extend(iam_statements(spec, names))
    if spec.configs:
        statements.extend(config_statements(spec, region, account))
    statements.extend(invoke_statements(spec, names))
    return {"Version": "2012-10-17", "Statement": statements}


def config_statements(spec: Spec, region: str, account: str) -> list[dict[str, Any]]:
    """Read the stage's SSM parameters (``/<app>/<stage>`` and below), nothing else.

    No ``kms:Decrypt`` is granted: secrets are SecureStrings under the
    AWS-managed key ``alias/aws/ssm``, whose own key policy allows Decrypt to
    the account's principals through SSM ("The AWS managed key for Parameter
    Store (aws/ssm) grants Decrypt permission to all IAM principals in the AWS
    account", AWS Systems Manager guide, *Restricting decryption of
    SecureString parameter values*). The parameters a role can decrypt are
    therefore exactly the ones it may read here.
    """
    prefix = f"arn:aws:ssm:{region}:{account}:parameter/{spec.app}/{spec.stage}"
    return [
        {
            "Sid": "ConfigRead",
            "Effect": "Allow",
            "Action": ["ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath"],
            "Resource": [prefix, prefix + "/*"],
        }
    ]


def invoke_statements(spec: Spec, names: Names) -> list[dict[str, Any]]:
    """``lambda:InvokeFunction`` on the declared targets only (``invokes=[...]``), and
    sending to their on-failure queues (Lambda sends a failed asynchronous
    invocation there with the target's role). The stage's functions share one
    role, so the grant is the union of every function's declared targets."""
    targets = sorted({t for fn in spec.functions for t in fn.invokes})
    if not targets:
        return []
    return [
        {
            "Sid": "InvokeTargets",
            "Effect": "Allow",
            "Action": ["lambda:InvokeFunction"],
            "Resource": [names.function_arn(t) for t in targets],
        },
        {
            "Sid": "InvokeDeadLetters",
            "Effect": "Allow",
            "Action": ["sqs:SendMessage"],
            "Resource": [names.async_dlq_arn(t) for t in targets],
        },
    ]


def vpc_statements(region: str, account: str) -> list[dict[str, Any]]:
    """What Lambda needs to put a function's network interfaces in the stage's VPC
    (the actions of AWSLambdaVPCAccessExecutionRole, scoped where EC2 allows it)."""
    ec2 = f"arn:aws:ec2:{region}:{account}"
    return [
        {
            "Sid": "VpcNetworkInterfaces",
            "Effect": "Allow",
            "Action": [
                "ec2:AssignPrivateIpAddresses",
                "ec2:CreateNetworkInterface",
                "ec2:DeleteNetworkInterface",
                "ec2:UnassignPrivateIpAddresses",
            ],
            "Resource": [f"{ec2}:network-interface/*", f"{ec2}:security-group/*", f"{ec2}:subnet/*"],
        },
        {
            "Sid": "VpcDescribe",
            "Effect": "Allow",
            "Action": ["ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"],
            "Resource": "*",  # these actions have no resource-level permissions
        },
    ]
