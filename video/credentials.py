"""Encryption at rest for stream credentials (Fernet, key outside the database).

The key comes from ``GRIDMAP_CREDENTIAL_KEY`` or, for the embedded set-up, a key
file generated under ``var/``. Without the key the database alone reveals nothing.
"""

from __future__ import annotations

import os
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken

from gridmap.config import env, var_dir

KEY_FILE = "credential.key"


class CredentialKeyError(RuntimeError):
    """The credential key is missing or does not decrypt stored credentials."""


@lru_cache(maxsize=1)
def _fernet() -> Fernet:
    key = env("CREDENTIAL_KEY")
    if not key:
        path = var_dir() / KEY_FILE
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(Fernet.generate_key())
        key = path.read_text().strip()
    return Fernet(key.encode() if isinstance(key, str) else key)


def encrypt(value: str) -> bytes:
    """Encrypt a credential string."""
    return _fernet().encrypt(value.encode("utf-8"))


def decrypt(token: bytes) -> str:
    """Decrypt a credential; only the stream-opening process should call this."""
    try:
        return _fernet().decrypt(bytes(token)).decode("utf-8")
    except InvalidToken:
        raise CredentialKeyError(
            "stored credentials do not match the credential key"
        ) from None
