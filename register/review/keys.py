"""The secret that keys review pseudonyms, kept under the data folder (0600)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def review_key(data_dir: Path) -> bytes:
    """The pseudonym key, made on first use; the same key gives the same pseudonyms."""
    path = data_dir / "review-pseudonym.key"
    if path.exists():
        return path.read_bytes()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, key)
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    return key
