"""The postline CDK stack and its constructs."""
