"""Opaque paging positions carried in ``next`` links.

A position names where the previous page ended (keyset paging), not an offset, so a page link
stays correct while other clients write. It carries no data that the policy does not re-check:
every page re-applies the requester's visibility.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from register.errors import bad_request


def encode_cursor(position: dict[str, Any]) -> str:
    """A URL-safe token for ``position``."""
    return base64.urlsafe_b64encode(orjson.dumps(position)).decode().rstrip("=")


def decode_cursor(token: str) -> dict[str, Any]:
    """The position in a token made by :func:`encode_cursor`; 400 if it is not one."""
    try:
        padded = token + "=" * (-len(token) % 4)
        value = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise bad_request("The paging link is not valid; start the query again.", "_page") from None
    if not isinstance(value, dict):
        raise bad_request("The paging link is not valid; start the query again.", "_page")
    return value
