"""Key rotation reaches warm containers: tokens signed with a new key verify without a restart."""
from postline.tokens import OPEN, KeyRing, RefreshingKeyRing


class Secret:
    def __init__(self):
        self.ring = KeyRing("k1", {"k1": b"1" * 32})
        self.loads = 0

    def load(self) -> KeyRing:
        self.loads += 1
        return self.ring


def test_a_token_from_a_rotated_key_verifies_in_a_warm_container():
    secret, now = Secret(), [0.0]
    warm = RefreshingKeyRing(secret.load, clock=lambda: now[0])
    assert warm.verify(warm.sign(OPEN, "m1")).message_id == "m1"
    secret.ring = KeyRing("k2", {"k1": b"1" * 32, "k2": b"2" * 32})  # rotated: k2 active, k1 still accepted
    fresh_token = RefreshingKeyRing(secret.load).sign(OPEN, "m2")  # a container started after the rotation
    now[0] += 61
    assert warm.verify(fresh_token).message_id == "m2"
    assert warm.verify(KeyRing("k1", {"k1": b"1" * 32}).sign(OPEN, "m3")).message_id == "m3"


def test_bad_tokens_naming_unknown_keys_reload_at_most_once_a_minute():
    secret, now = Secret(), [100.0]
    ring = RefreshingKeyRing(secret.load, clock=lambda: now[0])
    stranger = KeyRing("k9", {"k9": b"9" * 32})
    for i in range(50):
        assert ring.verify(stranger.sign(OPEN, f"m{i}")) is None
    assert secret.loads == 1
    now[0] += 61
    ring.verify(stranger.sign(OPEN, "m"))
    assert secret.loads == 2


def test_signing_uses_the_new_active_key_after_max_age():
    secret, now = Secret(), [0.0]
    ring = RefreshingKeyRing(secret.load, max_age=600, clock=lambda: now[0])
    assert ring.sign(OPEN, "m").startswith(KeyRing("k1", {"k1": b"1" * 32}).sign(OPEN, "m").split(".")[0])
    secret.ring = KeyRing("k2", {"k1": b"1" * 32, "k2": b"2" * 32})
    now[0] += 601
    assert ring.sign(OPEN, "m") == secret.ring.sign(OPEN, "m")
