"""Fixtures for tests/aws/runtime (defined in aws_runtime_support)."""

from aws_runtime_support import aws_env, aws_event, cache_url, data_api, moto_url, start_lambda, suffix

__all__ = ["aws_env", "aws_event", "cache_url", "data_api", "moto_url", "start_lambda", "suffix"]
