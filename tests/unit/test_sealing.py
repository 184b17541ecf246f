"""Sealed secrets (registry/sealing.py) and the embedded default's kept key."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from registry.sealing import SecretBox, SecretUnreadable, is_sealed
from webapp.settings import Settings


def test_a_sealed_secret_opens_with_its_key_and_with_it_as_a_previous_key() -> None:
    sealed = SecretBox("k1").seal("s3cret")
    assert is_sealed(sealed) and "s3cret" not in sealed
    assert SecretBox("k1").open(sealed) == "s3cret"
    assert SecretBox("k2", ["k1"]).open(sealed) == "s3cret"
    with pytest.raises(SecretUnreadable):
        SecretBox("k2").open(sealed)
    with pytest.raises(SecretUnreadable):
        SecretBox("k1").open(sealed[:-4] + "AAAA")  # altered


def test_a_value_stored_before_sealing_reads_as_it_is() -> None:
    assert SecretBox("k1").open("a" * 64) == "a" * 64


def test_the_embedded_default_keeps_its_key_beside_its_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db' / 'verify.sqlite3'}"
    first = Settings.from_env({"DATABASE_URL": url}).secret_key
    assert first == Settings.from_env({"DATABASE_URL": url}).secret_key  # a restart reads it
    key_file = tmp_path / "db" / "verify.sqlite3.secret-key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    other = Settings.from_env({"DATABASE_URL": f"sqlite:///{tmp_path / 'other.sqlite3'}"}).secret_key
    assert other != first
    assert Settings.from_env({"DATABASE_URL": url, "SECRET_KEY": "given"}).secret_key == "given"
    rotated = Settings.from_env({"DATABASE_URL": url, "SECRET_KEY": "new", "SECRET_KEY_PREVIOUS": "a, b"})
    assert rotated.previous_secret_keys == ("a", "b")


def test_reseal_moves_an_old_keys_seal_and_a_clear_value_under_the_new_key() -> None:
    old = SecretBox("k1").seal("s3cret")
    box = SecretBox("k2", ["k1"])
    moved = box.reseal(old)
    assert moved is not None and SecretBox("k2").open(moved) == "s3cret"
    assert box.reseal(moved) is None  # already under the new key
    clear = box.reseal("plain")
    assert clear is not None and SecretBox("k2").open(clear) == "plain"
    assert SecretBox("k3").reseal(old) is None  # no key opens it: left as it is
