"""Secrets the registry keeps and must read back in clear: a webhook's signing secret (an
HMAC needs the secret itself, so it cannot be hashed like a password).

They are stored sealed — Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`) under a
key derived from SECRET_KEY by HKDF — so a copy of the database alone does not let anyone
sign alerts as us. A value written before sealing (no prefix) is read as it is, and sealed
by `SqlAlertStore.seal_stored` when the worker starts. SECRET_KEY_PREVIOUS (comma-separated)
keeps older keys readable after SECRET_KEY is rotated; every new seal uses SECRET_KEY, and
`seal_stored` seals again under it what an older key sealed, so the old key can then be
dropped (and one dropped because it leaked opens nothing sealed since).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PREFIX = "f1:"  # the format's version: a later scheme gets its own
_INFO = b"organic-verify webhook secret v1"  # this key is for these secrets only


class SecretUnreadable(Exception):
    """A sealed value none of the configured keys opens (SECRET_KEY changed without the old
    key in SECRET_KEY_PREVIOUS, or the stored value was altered)."""


def _fernet(key: str) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(key.encode())
    return Fernet(base64.urlsafe_b64encode(derived))


class SecretBox:
    def __init__(self, key: str, previous: Sequence[str] = ()) -> None:
        if not key:
            raise ValueError("a secret box needs a key")
        self._primary = _fernet(key)
        self._box = MultiFernet([self._primary, *(_fernet(k) for k in previous if k)])

    def seal(self, secret: str) -> str:
        return PREFIX + self._box.encrypt(secret.encode()).decode("ascii")

    def reseal(self, stored: str) -> str | None:
        """What `stored` should be under SECRET_KEY: sealed if it is in clear, sealed again
        if an older key sealed it; None when it already is (or no key opens it)."""
        if not is_sealed(stored):
            return self.seal(stored)
        token = stored[len(PREFIX) :].encode("ascii")
        try:
            self._primary.decrypt(token)
            return None
        except InvalidToken:
            pass
        try:
            return PREFIX + self._box.rotate(token).decode("ascii")
        except InvalidToken:
            return None  # unreadable: left for the operator (the delivery log says so)

    def open(self, stored: str) -> str:
        if not is_sealed(stored):
            return stored  # written before secrets were sealed
        try:
            return self._box.decrypt(stored[len(PREFIX) :].encode("ascii")).decode()
        except (InvalidToken, UnicodeError) as exc:
            raise SecretUnreadable("no configured key opens this secret") from exc


def is_sealed(stored: str) -> bool:
    return stored.startswith(PREFIX)
