"""The AWS provider: Lambda, API Gateway, S3, EventBridge, SQS, DynamoDB."""

__version__ = "0.1.0"
