"""The key-encryption key file and envelope encryption."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from service.crypto import DecryptionFailed, Envelope, KeyEncryptionKey
from service.errors import ConfigurationError


def test_envelope_round_trips(kek: KeyEncryptionKey) -> None:
    envelope = Envelope(kek)

    sealed = envelope.seal(b"value", b"dev/a/1")

    assert envelope.open(sealed, b"dev/a/1") == b"value"
    assert b"value" not in sealed.ciphertext


def test_ciphertext_moved_to_another_row_does_not_open(kek: KeyEncryptionKey) -> None:
    envelope = Envelope(kek)
    sealed = envelope.seal(b"value", b"dev/a/1")

    with pytest.raises(DecryptionFailed):
        envelope.open(sealed, b"dev/b/1")


def test_every_value_gets_its_own_data_key(kek: KeyEncryptionKey) -> None:
    envelope = Envelope(kek)

    first, second = envelope.seal(b"v", b"x"), envelope.seal(b"v", b"x")

    assert first.wrapped_key != second.wrapped_key


def test_another_kek_cannot_open(kek: KeyEncryptionKey) -> None:
    sealed = Envelope(kek).seal(b"value", b"aad")

    with pytest.raises(DecryptionFailed):
        Envelope(KeyEncryptionKey.generate()).open(sealed, b"aad")


def test_key_file_with_a_trailing_newline_loads(tmp_path: Path) -> None:
    """Case C17(b): a key written by hand keeps its newline; it still loads."""
    raw = os.urandom(32)
    path = tmp_path / "kek"
    path.write_text(base64.b64encode(raw).decode() + "\n")

    loaded = KeyEncryptionKey.from_file(path, setting="encryption_key_file")

    assert loaded.key_id == KeyEncryptionKey(raw).key_id


def test_bad_key_file_error_names_the_setting_not_the_content(tmp_path: Path) -> None:
    path = tmp_path / "kek"
    path.write_text("canary-key-content-93ab")

    with pytest.raises(ConfigurationError) as caught:
        KeyEncryptionKey.from_file(path, setting="encryption_key_file")

    assert "encryption_key_file" in str(caught.value)
    assert "canary-key-content-93ab" not in str(caught.value)


def test_written_key_is_private_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "kek"
    KeyEncryptionKey.generate().write(path)

    assert path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(FileExistsError):
        KeyEncryptionKey.generate().write(path)


def test_kek_repr_hides_the_key(kek: KeyEncryptionKey) -> None:
    assert "secure" in repr(kek)
    assert kek.derive("x").hex() not in repr(kek)
