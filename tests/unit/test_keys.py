"""Key pairs, public key text, and private key files (modes, overwrite, passphrases)."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from gsomia.core.errors import InputError
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


@pytest.fixture
def open_umask() -> Iterator[None]:
    """umask 0, so a mode of 0600 can only come from the create call itself."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- key pairs --------------------------------------------------------------------------------


def test_sign_and_verify() -> None:
    key = SigningPrivateKey.generate()
    signature = key.sign(b"envelope")
    assert key.public_key.is_valid_signature(signature, b"envelope")
    assert not key.public_key.is_valid_signature(signature, b"envelopf")
    assert not SigningPrivateKey.generate().public_key.is_valid_signature(signature, b"envelope")


def test_exchange_agrees_on_both_sides() -> None:
    a, b = EncryptionPrivateKey.generate(), EncryptionPrivateKey.generate()
    assert a.exchange(b.public_key) == b.exchange(a.public_key)


def test_purposes_do_not_mix() -> None:
    raw = bytes(range(32))
    signing_raw: object = SigningPublicKey(raw)  # object: mypy would rightly refuse to compare
    assert signing_raw != EncryptionPublicKey(raw)
    with pytest.raises(TypeError):
        SigningPrivateKey(X25519PrivateKey.generate())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        EncryptionPrivateKey(Ed25519PrivateKey.generate())  # type: ignore[arg-type]
    signing_public = SigningPrivateKey.generate().public_key
    with pytest.raises(TypeError):
        EncryptionPrivateKey.generate().exchange(signing_public)  # type: ignore[arg-type]


def test_key_id_is_sha256_prefix_of_raw_public_key() -> None:
    public = SigningPrivateKey.generate().public_key
    assert public.key_id == hashlib.sha256(public.raw).hexdigest()[:16] == key_id(public.raw)
    assert len(public.key_id) == 16


def test_private_key_repr_shows_only_the_key_id() -> None:
    key = SigningPrivateKey.generate()
    assert repr(key) == f"SigningPrivateKey(key_id={key.key_id!r})"
    enc = EncryptionPrivateKey.generate()
    assert repr(enc) == f"EncryptionPrivateKey(key_id={enc.key_id!r})"


@pytest.mark.parametrize("raw", [b"", bytes(31), bytes(33)])
def test_public_key_needs_32_bytes(raw: bytes) -> None:
    with pytest.raises(InvalidPublicKeyError):
        SigningPublicKey(raw)
    with pytest.raises(InvalidPublicKeyError):
        EncryptionPublicKey(raw)


# -- public key text --------------------------------------------------------------------------


def test_public_key_text_round_trips() -> None:
    signing = SigningPrivateKey.generate().public_key
    encryption = EncryptionPrivateKey.generate().public_key
    assert signing.to_text().startswith("ed25519:")
    assert encryption.to_text().startswith("x25519:")
    assert len(signing.to_text()) == len("ed25519:") + 43
    assert SigningPublicKey.from_text(signing.to_text()) == signing
    assert EncryptionPublicKey.from_text(encryption.to_text()) == encryption
    assert str(signing) == signing.to_text()


def _body(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


GOOD = _body(bytes(range(32)))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "ed25519",
        "ed25519:",
        GOOD,  # no prefix
        f"x25519:{GOOD}",  # the other purpose
        f"ED25519:{GOOD}",  # prefixes are exact
        f"ed25519 :{GOOD}",
        f"ed25519:{GOOD}=",  # padding is not part of the form
        f"ed25519:{GOOD[:-1]}",  # 31 and a bit bytes
        f"ed25519:{GOOD}A",  # 33 bytes' worth
        f"ed25519:{GOOD[:-2]}+/",  # standard base64 alphabet, not base64url
        f"ed25519:{GOOD[:20]} {GOOD[21:]}",
        f" ed25519:{GOOD}",
        f"ed25519:{GOOD}\n",
        f"ed25519:{GOOD[:-1]}B",  # last character carries non-zero padding bits
        f"ed25519:{_body(bytes(33))}",
        f"ed25519:{_body(bytes(31))}",
        "ed25519:" + "é" * 43,
    ],
)
def test_malformed_signing_key_text_is_refused(text: str) -> None:
    with pytest.raises(InvalidPublicKeyError) as info:
        SigningPublicKey.from_text(text)
    assert "\n" not in info.value.message
    assert info.value.code == "invalid-public-key"
    assert info.value.exit_code == 2


def test_signing_key_text_is_not_an_encryption_key() -> None:
    signing = SigningPrivateKey.generate().public_key.to_text()
    with pytest.raises(InvalidPublicKeyError, match="want a x25519: key"):
        EncryptionPublicKey.from_text(signing)
    encryption = EncryptionPrivateKey.generate().public_key.to_text()
    with pytest.raises(InvalidPublicKeyError, match="want a ed25519: key"):
        SigningPublicKey.from_text(encryption)


def test_a_tampered_key_still_parses_but_its_key_id_changes() -> None:
    # The text carries no checksum: a pinned key is checked by comparing key ids out of band.
    original = SigningPrivateKey.generate().public_key
    text = original.to_text()
    flipped = "A" if text[10] != "A" else "B"
    tampered = SigningPublicKey.from_text(text[:10] + flipped + text[11:])
    assert tampered != original
    assert tampered.key_id != original.key_id


def test_an_overlong_pasted_string_is_shortened_in_the_message() -> None:
    with pytest.raises(InvalidPublicKeyError) as info:
        SigningPublicKey.from_text("ed25519:" + "A" * 500)
    assert len(info.value.message) < 200


# -- key files --------------------------------------------------------------------------------


@pytest.mark.usefixtures("open_umask")
@pytest.mark.parametrize("passphrase", [None, "correct horse"])
def test_written_key_file_is_0600_and_reads_back(tmp_path: Path, passphrase: str | None) -> None:
    key = SigningPrivateKey.generate()
    path = tmp_path / "signing-key.pem"
    write_private_key(path, key, passphrase)
    assert mode(path) == 0o600
    header = path.read_bytes().splitlines()[0]
    encrypted = header == b"-----BEGIN ENCRYPTED PRIVATE KEY-----"
    assert encrypted == (passphrase is not None)
    if not encrypted:
        assert header == b"-----BEGIN PRIVATE KEY-----"
    assert read_signing_key(path, passphrase).public_key == key.public_key


def test_encryption_key_file_round_trip(tmp_path: Path) -> None:
    key = EncryptionPrivateKey.generate()
    path = tmp_path / "encryption-key.pem"
    write_private_key(path, key, "pw")
    assert read_encryption_key(path, "pw").public_key == key.public_key


def test_a_non_ascii_passphrase_round_trips(tmp_path: Path) -> None:
    key = SigningPrivateKey.generate()
    write_private_key(tmp_path / "k.pem", key, "기밀 機密")
    assert read_signing_key(tmp_path / "k.pem", "기밀 機密").public_key == key.public_key


def test_an_existing_file_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "signing-key.pem"
    write_private_key(path, SigningPrivateKey.generate(), None)
    before = path.read_bytes()
    with pytest.raises(KeyFileError, match="refusing to overwrite"):
        write_private_key(path, SigningPrivateKey.generate(), None)
    assert path.read_bytes() == before


def test_a_symlink_in_the_way_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    (tmp_path / "signing-key.pem").symlink_to(target)
    with pytest.raises(KeyFileError):
        write_private_key(tmp_path / "signing-key.pem", SigningPrivateKey.generate(), None)
    assert not target.exists()


def test_an_empty_passphrase_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(KeyPassphraseError, match="empty"):
        write_private_key(tmp_path / "k.pem", SigningPrivateKey.generate(), "")
    assert not (tmp_path / "k.pem").exists()


@pytest.fixture
def encrypted_file(tmp_path: Path) -> Path:
    path = tmp_path / "signing-key.pem"
    write_private_key(path, SigningPrivateKey.generate(), "right")
    return path


@pytest.fixture
def plain_file(tmp_path: Path) -> Path:
    path = tmp_path / "plain.pem"
    write_private_key(path, SigningPrivateKey.generate(), None)
    return path


def test_wrong_passphrase_is_one_clear_error(encrypted_file: Path) -> None:
    with pytest.raises(KeyPassphraseError, match="wrong passphrase") as info:
        read_signing_key(encrypted_file, "wrong")
    assert info.value.__cause__ is None  # no cryptography exception behind it
    assert info.value.code == "bad-key-passphrase"
    assert str(encrypted_file) in info.value.message


def test_missing_passphrase_for_an_encrypted_key(encrypted_file: Path) -> None:
    with pytest.raises(KeyPassphraseError, match="no passphrase was given"):
        read_signing_key(encrypted_file, None)


def test_empty_passphrase_on_read(encrypted_file: Path) -> None:
    with pytest.raises(KeyPassphraseError, match="empty"):
        read_signing_key(encrypted_file, "")


def test_passphrase_for_an_unencrypted_key_is_refused(plain_file: Path) -> None:
    with pytest.raises(KeyPassphraseError, match="not encrypted"):
        read_signing_key(plain_file, "anything")


@pytest.mark.parametrize("loose", [0o640, 0o604, 0o644, 0o660, 0o602, 0o610, 0o666])
def test_group_or_other_access_is_refused(plain_file: Path, loose: int) -> None:
    os.chmod(plain_file, loose)
    with pytest.raises(InsecureKeyFileError, match=f"mode {loose:04o}") as info:
        read_signing_key(plain_file, None)
    assert "chmod 600" in info.value.message
    assert info.value.code == "insecure-key-file"


def test_owner_read_only_is_accepted(plain_file: Path) -> None:
    os.chmod(plain_file, 0o400)
    read_signing_key(plain_file, None)


def test_mode_is_checked_before_the_passphrase(encrypted_file: Path) -> None:
    os.chmod(encrypted_file, 0o644)
    with pytest.raises(InsecureKeyFileError):
        read_signing_key(encrypted_file, "wrong")


def test_a_key_of_the_other_purpose_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "encryption-key.pem"
    write_private_key(path, EncryptionPrivateKey.generate(), None)
    with pytest.raises(KeyFileError, match="not an Ed25519 signing key"):
        read_signing_key(path, None)
    other = tmp_path / "signing-key.pem"
    write_private_key(other, SigningPrivateKey.generate(), "pw")
    with pytest.raises(KeyFileError, match="not an X25519 encryption key"):
        read_encryption_key(other, "pw")


def _secret_file(path: Path, data: bytes) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not a key",
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    ],
)
def test_a_malformed_key_file_is_one_clear_error(tmp_path: Path, data: bytes) -> None:
    path = _secret_file(tmp_path / "k.pem", data)
    with pytest.raises(KeyFileError, match="not a PKCS#8 PEM private key"):
        read_signing_key(path, None)


def test_a_damaged_encrypted_file_reads_as_a_passphrase_problem(encrypted_file: Path) -> None:
    lines = encrypted_file.read_bytes().splitlines(keepends=True)
    lines[2] = lines[2][:10] + (b"A" if lines[2][10:11] != b"A" else b"B") + lines[2][11:]
    damaged = _secret_file(encrypted_file.with_name("damaged.pem"), b"".join(lines))
    with pytest.raises(KeyPassphraseError, match="damaged"):
        read_signing_key(damaged, "right")


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="no such key file"):
        read_signing_key(tmp_path / "absent.pem", None)
    (tmp_path / "dir").mkdir(mode=0o700)
    with pytest.raises(KeyFileError):
        read_signing_key(tmp_path / "dir", None)


def test_key_errors_are_input_errors() -> None:
    for cls in (KeyFileError, InsecureKeyFileError, KeyPassphraseError, InvalidPublicKeyError):
        assert issubclass(cls, InputError)
        assert cls.exit_code == 2
