"""The token signing keys, in the JSON shape the library reads: {"active": kid, "keys": {kid: base64 key}}.

Secrets Manager can only generate a top-level JSON field, so the initial key is generated in its own secret and
placed into the key ring by a CloudFormation dynamic reference: nothing secret ever appears in the template and
no custom resource is needed. Rotation edits the key ring only (docs/deploy.md).
"""

from __future__ import annotations

from aws_cdk import Fn, RemovalPolicy, SecretValue
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from .constants import Outputs
from .nag import accept
from .outputs import stack_output

INITIAL_KEY_ID = "k1"
ERASURE_KEY = "erasure_key"  # never rotated: it keeps erased addresses suppressed (postline.suppression)


class SigningKeys(Construct):
    def __init__(self, scope: Construct, id: str, *, retain_data: bool) -> None:
        super().__init__(scope, id)
        removal = RemovalPolicy.RETAIN if retain_data else RemovalPolicy.DESTROY
        initial = secretsmanager.Secret(
            self,
            "InitialKey",
            removal_policy=removal,
            description="postline: the first token signing key, copied into the key ring at creation",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template="{}",  # noqa: S106 - an empty JSON template: the key is generated at deploy
                generate_string_key=INITIAL_KEY_ID,
                # 64 characters of [A-Za-z0-9] are valid base64 for 48 random bytes (the library needs >= 32)
                password_length=64,
                exclude_punctuation=True,
                include_space=False,
            ),
        )
        erasure = secretsmanager.Secret(
            self,
            "ErasureKey",
            removal_policy=removal,
            description="postline: the key of erased addresses' hashes, copied into the key ring at creation",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template="{}",  # noqa: S106 - an empty JSON template: the key is generated at deploy
                generate_string_key=ERASURE_KEY,
                password_length=64,
                exclude_punctuation=True,
                include_space=False,
            ),
        )
        self.secret = secretsmanager.Secret(
            self,
            "KeyRing",
            removal_policy=removal,
            description="postline: HMAC keys signing tracking and unsubscribe links, and hashing erased addresses",
            secret_string_value=SecretValue(
                Fn.join(
                    "",
                    [
                        f'{{"active":"{INITIAL_KEY_ID}","keys":{{"{INITIAL_KEY_ID}":"',
                        initial.secret_value_from_json(INITIAL_KEY_ID).unsafe_unwrap(),  # a {{resolve:...}} reference
                        f'"}},"{ERASURE_KEY}":"',
                        erasure.secret_value_from_json(ERASURE_KEY).unsafe_unwrap(),
                        '"}',
                    ],
                )
            ),
        )
        accept(
            self,
            "AwsSolutions-SMG4",
            "Signing keys are rotated by adding a key and switching 'active' while "
            "the old key stays valid for links already sent (docs/deploy.md); a rotation Lambda replacing the "
            "value would break every link in every email already delivered.",
        )
        stack_output(
            self,
            Outputs.SIGNING_KEYS_SECRET,
            self.secret.secret_arn,
            "Secrets Manager secret holding the link signing keys",
        )
