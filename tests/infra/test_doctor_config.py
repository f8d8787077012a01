"""The deploy config's domain_check_streams: which streams' recipient domains render checks (docs/doctor.md)."""
from __future__ import annotations

import pytest

from stacks.config import ConfigError, parse_config

MINIMAL = {"domain": "mail.example.com", "from_address": "Example <hello@mail.example.com>"}


def test_marketing_is_checked_by_default_and_the_config_chooses():
    assert parse_config(MINIMAL, "test").domain_check_streams == ("marketing",)
    assert parse_config({**MINIMAL, "domain_check_streams": []}, "test").domain_check_streams == ()
    chosen = parse_config({**MINIMAL, "domain_check_streams": ["transactional", "marketing"]}, "test")
    assert chosen.domain_check_streams == ("transactional", "marketing")


def test_an_unknown_stream_is_refused():
    with pytest.raises(ConfigError) as error:
        parse_config({**MINIMAL, "domain_check_streams": ["bulk"]}, "test")
    assert "domain_check_streams: ['bulk'] are not streams (critical, transactional, marketing)" in str(error.value)
