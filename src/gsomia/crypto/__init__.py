"""Cryptography of a node: keys here; canonical bytes and envelopes beside them.

Everything is built on the ``cryptography`` library; nothing is home-made.
"""

from gsomia.crypto.keys import (
    EncryptionPrivateKey,
    EncryptionPublicKey,
    InsecureKeyFileError,
    InvalidPublicKeyError,
    KeyFileError,
    KeyPassphraseError,
    SigningPrivateKey,
    SigningPublicKey,
    key_id,
    read_encryption_key,
    read_signing_key,
    write_private_key,
)

__all__ = [
    "EncryptionPrivateKey",
    "EncryptionPublicKey",
    "InsecureKeyFileError",
    "InvalidPublicKeyError",
    "KeyFileError",
    "KeyPassphraseError",
    "SigningPrivateKey",
    "SigningPublicKey",
    "key_id",
    "read_encryption_key",
    "read_signing_key",
    "write_private_key",
]
