"""The key-encryption key and the envelope encryption built on it.

Every secret version of the `local` backend is encrypted with its own random data
key (AES-256-GCM); the data key is stored wrapped by the key-encryption key (KEK),
which never touches the store. Signing keys' private halves are wrapped the same
way. Associated data binds each ciphertext to the row it belongs to, so a
ciphertext copied onto another secret or version fails to open.

All primitives come from `cryptography`; nothing here is home-made crypto.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from service.errors import ConfigurationError, TokenBrokerError

KEY_BYTES = 32
NONCE_BYTES = 12


class DecryptionFailed(TokenBrokerError):
    """A ciphertext did not open: wrong key, or the row was altered or moved."""


class KeyEncryptionKey:
    """The 256-bit key that wraps every data key and private signing key."""

    __slots__ = ("_aead", "_key", "key_id")

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError("a key-encryption key is 32 bytes")
        self._key = key
        self._aead = AESGCM(key)
        # A fingerprint, stored beside each ciphertext, so a future key rotation
        # can tell which key wrapped what. It reveals nothing about the key.
        self.key_id = hashlib.sha256(b"tokenbroker kek id\x00" + key).hexdigest()[:16]

    @classmethod
    def generate(cls) -> KeyEncryptionKey:
        return cls(AESGCM.generate_key(bit_length=256))

    @classmethod
    def from_file(cls, path: Path, *, setting: str) -> KeyEncryptionKey:
        """Load a key written by `tokenbroker keygen`.

        Raises ConfigurationError naming `setting` and the file, never the content.
        """
        try:
            text = path.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigurationError(
                f"{setting}: cannot read the key file {path} ({type(error).__name__})"
            ) from None
        # A key written by hand or by a secret mount often ends with a newline.
        text = text.removesuffix("\n").removesuffix("\r").strip()
        try:
            key = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != KEY_BYTES:
            raise ConfigurationError(
                f"{setting}: {path} must hold 32 random bytes in base64; "
                "create one with `tokenbroker keygen FILE`"
            )
        return cls(key)

    def write(self, path: Path) -> None:
        """Write the key as base64 to a new file readable by its owner only."""
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="ascii") as file:
            file.write(base64.b64encode(self._key).decode("ascii") + "\n")

    def derive(self, purpose: str) -> bytes:
        """A 32-byte subkey for one purpose (HKDF-SHA256), e.g. hashing secrets."""
        return HKDF(
            algorithm=hashes.SHA256(),
            length=KEY_BYTES,
            salt=None,
            info=f"tokenbroker {purpose}".encode(),
        ).derive(self._key)

    def wrap(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, aad)

    def unwrap(self, blob: bytes, aad: bytes) -> bytes:
        return _open(self._aead, blob, aad)

    def __repr__(self) -> str:
        return f"KeyEncryptionKey(key_id={self.key_id!r}, key=[secure])"


@dataclass(frozen=True, slots=True)
class Sealed:
    """A value encrypted under its own data key, and that key wrapped by the KEK."""

    ciphertext: bytes
    wrapped_key: bytes
    kek_id: str


class Envelope:
    """Envelope encryption: a fresh AES-256-GCM data key for every value."""

    def __init__(self, kek: KeyEncryptionKey) -> None:
        self._kek = kek

    def seal(self, plaintext: bytes, aad: bytes) -> Sealed:
        data_key = AESGCM.generate_key(bit_length=256)
        nonce = os.urandom(NONCE_BYTES)
        ciphertext = nonce + AESGCM(data_key).encrypt(nonce, plaintext, aad)
        return Sealed(ciphertext, self._kek.wrap(data_key, aad), self._kek.key_id)

    def open(self, sealed: Sealed, aad: bytes) -> bytes:
        data_key = self._kek.unwrap(sealed.wrapped_key, aad)
        return _open(AESGCM(data_key), sealed.ciphertext, aad)


def _open(aead: AESGCM, blob: bytes, aad: bytes) -> bytes:
    try:
        return aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
    except InvalidTag:
        raise DecryptionFailed(
            "stored ciphertext does not open with this key-encryption key"
        ) from None
