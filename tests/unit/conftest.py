"""Shared fixtures for the unit tests: no network, no AWS, only plain fakes."""
from __future__ import annotations

import pytest

from postline.tokens import KeyRing

from .fakes import secret_json


@pytest.fixture
def keyring() -> KeyRing:
    """Two keys: k1 (retired, still accepted for verification) and k2 (active, signs)."""
    return KeyRing.from_secret(secret_json())
