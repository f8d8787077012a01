"""A public route's request body as text, whatever bytes it holds (postline.public_http.body_text)."""
from __future__ import annotations

import base64

import pytest

from postline.public_http import body_text


@pytest.mark.parametrize("body, encoded, text", [
    (None, False, ""),
    ("", True, ""),
    ("List-Unsubscribe=One-Click", False, "List-Unsubscribe=One-Click"),
    (base64.b64encode(b"List-Unsubscribe=One-Click").decode(), True, "List-Unsubscribe=One-Click"),
    (base64.b64encode(b"List-Unsubscribe=One-Click\xff\xfe").decode(), True, "List-Unsubscribe=One-Click\ufffd\ufffd"),
    ("not base64 at all!", True, ""),
])
def test_a_body_is_text_whatever_its_bytes(body, encoded, text):
    assert body_text(body, encoded) == text
