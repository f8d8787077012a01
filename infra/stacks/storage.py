"""The claim-check bucket: rendered bodies too large for an SQS message wait here for the send function."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_s3 as s3
from constructs import Construct

from .constants import Outputs
from .nag import accept
from .outputs import stack_output

# A body is needed until its message is sent; a message lives at most 14 days (a DLQ's retention).
CLAIM_CHECK_EXPIRY = Duration.days(14)


class ClaimCheckStorage(Construct):
    def __init__(self, scope: Construct, id: str) -> None:
        super().__init__(scope, id)
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[
                s3.LifecycleRule(
                    expiration=CLAIM_CHECK_EXPIRY, abort_incomplete_multipart_upload_after=Duration.days(1)
                )
            ],
            # Transient data only; a bucket still holding bodies stops `cdk destroy` (docs/deploy.md says how
            # to empty it), which is better than a custom resource deleting objects.
            removal_policy=RemovalPolicy.DESTROY,
        )
        accept(
            self.bucket,
            "AwsSolutions-S1",
            "Objects are transient (expire in 14 days) and only postline's "
            "own roles read or write them; access logs would cost more than the data and add no audit value.",
        )
        stack_output(self, Outputs.CLAIM_CHECK_BUCKET, self.bucket.bucket_name, "Bucket holding large rendered bodies")
