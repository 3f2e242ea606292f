"""Signed notes and checkpoints: published vectors, cosignatures, and "any mutation fails".

Vectors:

- golang.org/x/mod ``sumdb/note/note_test.go`` (https://github.com/golang/mod, commit
  02c991387e35f9e4c0a9b7ce137717055f8d716d): the PeterNeumann and EnochRoot keys, the signed
  Neumann quotation, and its signatures. Ed25519 is deterministic (RFC 8032), so signing the same
  text with the same seed must give the published line byte for byte.
- transparency-dev/formats ``log/checkpoint_test.go`` (``TestSumDBNoteParsing``, commit
  7a6ef700ee5660b2580c9da92063af300820fdee): a real checkpoint of the Go checksum database and
  its verifier key.
"""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from gsomia.core.errors import CheckpointError
from gsomia.crypto.keys import SigningPrivateKey
from gsomia.ledger.checkpoint import (
    MAX_SIGNATURES,
    Checkpoint,
    NoteSignature,
    NoteVerifier,
    SignedNote,
    open_checkpoint,
    sign_note,
)

PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_SIG = (
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpR"
    "Zb6KE6RyyBwJnAM=\n"
)
ENOCH_SIG = (
    "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33"
    "WWd1RvMc+QQ=\n"
)
SUMDB_VKEY = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"
SUMDB_CHECKPOINT = (
    "go.sum database tree\n6476701\nmb8QLQIs0Z0yP5Cstq6guj87oXWeC9gEM8oVikmm9Wk=\n\n"
    "— sum.golang.org Az3grsLX85Gz+s1SiTbgkuqxgItqFq7gsMUEyVnrsa9LM7Us9S+1xbFIGu95949rj4nPRYfvim"
    "WEPWL+o3GeoWwOoAw=\n"
)

ORIGIN = "gsomia.invalid/JPN/ledger"
ROOT = bytes(range(32))


def peter_key() -> SigningPrivateKey:
    seed = base64.b64decode(PETER_SKEY.split("+", 4)[4])  # the key itself may hold a "+"
    assert seed[0] == 0x01
    return SigningPrivateKey(Ed25519PrivateKey.from_private_bytes(seed[1:]))


@pytest.fixture(scope="module")
def log_key() -> SigningPrivateKey:
    return SigningPrivateKey.generate()


@pytest.fixture(scope="module")
def witness_key() -> SigningPrivateKey:
    return SigningPrivateKey.generate()


def verifier(key: SigningPrivateKey, name: str = ORIGIN) -> NoteVerifier:
    return NoteVerifier(name, key.public_key)


# -- published vectors ----------------------------------------------------------------------


def test_go_verifier_keys_parse_and_round_trip() -> None:
    for vkey in (PETER_VKEY, ENOCH_VKEY, SUMDB_VKEY):
        assert NoteVerifier.from_vkey(vkey).to_vkey() == vkey
    assert NoteVerifier.from_vkey(PETER_VKEY).key_id.hex() == "c74f20a3"
    assert peter_key().public_key == NoteVerifier.from_vkey(PETER_VKEY).public_key


def test_signing_reproduces_the_published_note_byte_for_byte() -> None:
    note = sign_note(TEXT, "PeterNeumann", peter_key())
    assert note.to_text() == TEXT + "\n" + PETER_SIG


def test_published_signatures_verify_and_unknown_ones_are_ignored() -> None:
    note = SignedNote.parse(TEXT + "\n" + PETER_SIG + ENOCH_SIG)
    peter, enoch = NoteVerifier.from_vkey(PETER_VKEY), NoteVerifier.from_vkey(ENOCH_VKEY)
    assert note.signed_by([peter]) == {"PeterNeumann"}
    assert note.signed_by([peter, enoch]) == {"PeterNeumann", "EnochRoot"}
    assert note.signed_by([]) == frozenset()


def test_a_known_keys_bad_signature_refuses_the_note() -> None:
    # note_test.go "Invalid signature": four characters spliced into the base64
    bad = TEXT + "\n" + PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]
    with pytest.raises(CheckpointError, match="does not verify"):
        SignedNote.parse(bad).signed_by([NoteVerifier.from_vkey(PETER_VKEY)])


@pytest.mark.parametrize(
    "message",
    [
        TEXT,
        TEXT + "\n",
        TEXT + "\n" + PETER_SIG[:-1],
        "\x01" + TEXT + "\n" + PETER_SIG,
        TEXT
        + "\n"
        + "— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqf"
        "qdngotpRZb6KE6RyyBwJnAM=",
        TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
        TEXT + "\n" + PETER_SIG * (MAX_SIGNATURES + 1),
        TEXT + "\n" + PETER_SIG + PETER_SIG,  # gsomia: one signature per key, one spelling
    ],
)
def test_malformed_notes_are_refused(message: str) -> None:
    # note_test.go "Invalid encoded message syntax", plus gsomia's stricter duplicate rule
    with pytest.raises(CheckpointError):
        SignedNote.parse(message)


def test_malformed_bytes_are_refused() -> None:
    with pytest.raises(CheckpointError, match="UTF-8"):
        SignedNote.parse(b"\xff" + (TEXT + "\n" + PETER_SIG).encode())


def test_the_go_checksum_database_checkpoint_verifies() -> None:
    opened = open_checkpoint(SUMDB_CHECKPOINT, NoteVerifier.from_vkey(SUMDB_VKEY))
    assert opened.checkpoint.origin == "go.sum database tree"
    assert opened.checkpoint.size == 6476701
    assert base64.b64encode(opened.checkpoint.root_hash).decode() == (
        "mb8QLQIs0Z0yP5Cstq6guj87oXWeC9gEM8oVikmm9Wk="
    )
    assert opened.text == SUMDB_CHECKPOINT
    with pytest.raises(CheckpointError, match="not of"):
        open_checkpoint(SUMDB_CHECKPOINT, NoteVerifier.from_vkey(SUMDB_VKEY), origin=ORIGIN)


# -- gsomia's checkpoints --------------------------------------------------------------------


def test_a_checkpoint_round_trips(log_key: SigningPrivateKey) -> None:
    checkpoint = Checkpoint(ORIGIN, 1024, ROOT)
    note = checkpoint.sign(ORIGIN, log_key)
    text = note.to_text()
    assert text.startswith(f"{ORIGIN}\n1024\n{base64.b64encode(ROOT).decode()}\n\n— {ORIGIN} ")
    opened = open_checkpoint(text, verifier(log_key), origin=ORIGIN)
    assert opened.checkpoint == checkpoint
    assert opened.cosigners == frozenset()


def test_cosignatures_are_verified_by_name_and_key(
    log_key: SigningPrivateKey, witness_key: SigningPrivateKey
) -> None:
    witness = verifier(witness_key, "gsomia.invalid/KOR/witness")
    note = Checkpoint(ORIGIN, 7, ROOT).sign(ORIGIN, log_key).cosign(witness.name, witness_key)
    opened = open_checkpoint(
        note.to_text(), verifier(log_key), cosigners=[witness], min_cosigners=1
    )
    assert opened.cosigners == {witness.name}
    # The same witness name with another key is an unknown key: its signature does not count.
    impostor = NoteVerifier(witness.name, SigningPrivateKey.generate().public_key)
    with pytest.raises(CheckpointError, match="0 valid cosignatures; 1 needed"):
        open_checkpoint(note.to_text(), verifier(log_key), cosigners=[impostor], min_cosigners=1)
    # A cosignature is not a log signature.
    with pytest.raises(CheckpointError, match="no signature by"):
        open_checkpoint(note.to_text(), NoteVerifier(ORIGIN, witness_key.public_key))
    with pytest.raises(CheckpointError, match="signed twice"):
        note.cosign(witness.name, witness_key)


def test_the_log_signature_is_required(
    log_key: SigningPrivateKey, witness_key: SigningPrivateKey
) -> None:
    only_witness = Checkpoint(ORIGIN, 7, ROOT).sign("gsomia.invalid/KOR/witness", witness_key)
    with pytest.raises(CheckpointError, match="no signature by"):
        open_checkpoint(only_witness.to_text(), verifier(log_key))


@pytest.mark.parametrize(
    "body",
    [
        f"{ORIGIN}\n012\n{base64.b64encode(ROOT).decode()}\n",  # leading zero
        f"{ORIGIN}\n+12\n{base64.b64encode(ROOT).decode()}\n",
        f"{ORIGIN}\n-1\n{base64.b64encode(ROOT).decode()}\n",
        f"{ORIGIN}\n18446744073709551616\n{base64.b64encode(ROOT).decode()}\n",  # 2**64
        f"{ORIGIN}\n12\n{base64.b64encode(ROOT[:31]).decode()}\n",  # short hash
        f"{ORIGIN}\n12\n{base64.urlsafe_b64encode(bytes([251] * 32)).decode()}\n",  # base64url
        f"{ORIGIN}\n12\n{base64.b64encode(ROOT).decode().rstrip('=')}\n",  # unpadded
        f"{ORIGIN}\n12\n",
        f"\n12\n{base64.b64encode(ROOT).decode()}\n",  # no origin
        f"{ORIGIN}\n12\n{base64.b64encode(ROOT).decode()}\n\textension\n",  # control character
    ],
)
def test_malformed_checkpoint_bodies_are_refused(body: str, log_key: SigningPrivateKey) -> None:
    with pytest.raises(CheckpointError):
        open_checkpoint(sign_note(body, ORIGIN, log_key).to_text(), verifier(log_key))


def test_extension_lines_are_kept(log_key: SigningPrivateKey) -> None:
    checkpoint = Checkpoint(ORIGIN, 3, ROOT, ("witnessed-by KOR",))
    opened = open_checkpoint(checkpoint.sign(ORIGIN, log_key).to_text(), verifier(log_key))
    assert opened.checkpoint.extensions == ("witnessed-by KOR",)


def test_verifier_keys_refuse_manglings() -> None:
    # note_test.go TestNewVerifier: every proper substring and every single-byte change fails
    vkey = PETER_VKEY
    for i in range(len(vkey)):
        changed = vkey[:i] + chr(ord(vkey[i]) + 1) + vkey[i + 1 :]
        with pytest.raises(CheckpointError):
            NoteVerifier.from_vkey(changed)
    for cut in range(1, len(vkey)):
        with pytest.raises(CheckpointError):
            NoteVerifier.from_vkey(vkey[:cut])


def test_signature_lines_have_one_spelling() -> None:
    line = PETER_SIG[:-1]
    assert NoteSignature.from_line(line).to_line() == PETER_SIG
    for bad in (line.replace(" ", "  ", 1), line.replace("— ", "-- ", 1), line + " "):
        with pytest.raises(CheckpointError):
            NoteSignature.from_line(bad)


# -- any mutation fails -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def cosigned(log_key: SigningPrivateKey, witness_key: SigningPrivateKey) -> bytes:
    note = Checkpoint(ORIGIN, 123456, ROOT).sign(ORIGIN, log_key)
    return note.cosign("gsomia.invalid/KOR/witness", witness_key).to_text().encode("utf-8")


def open_strictly(note: bytes, log_key: SigningPrivateKey, witness_key: SigningPrivateKey) -> None:
    open_checkpoint(
        note,
        verifier(log_key),
        cosigners=[verifier(witness_key, "gsomia.invalid/KOR/witness")],
        min_cosigners=1,
        origin=ORIGIN,
    )


def test_the_unmutated_note_verifies(
    cosigned: bytes, log_key: SigningPrivateKey, witness_key: SigningPrivateKey
) -> None:
    open_strictly(cosigned, log_key, witness_key)


def test_every_single_byte_change_deletion_and_insertion_fails(
    cosigned: bytes, log_key: SigningPrivateKey, witness_key: SigningPrivateKey
) -> None:
    failures = 0
    for i in range(len(cosigned)):
        for mutated in (
            cosigned[:i] + bytes([cosigned[i] ^ 0x01]) + cosigned[i + 1 :],
            cosigned[:i] + cosigned[i + 1 :],
            cosigned[:i] + b"A" + cosigned[i:],
        ):
            if mutated == cosigned:
                continue
            with pytest.raises(CheckpointError):
                open_strictly(mutated, log_key, witness_key)
            failures += 1
    assert failures >= 3 * len(cosigned) - 10


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_random_mutation_fails(
    cosigned: bytes, log_key: SigningPrivateKey, witness_key: SigningPrivateKey, data: st.DataObject
) -> None:
    start = data.draw(st.integers(0, len(cosigned)))
    end = data.draw(st.integers(start, min(len(cosigned), start + 8)))
    replacement = data.draw(st.binary(max_size=8))
    mutated = cosigned[:start] + replacement + cosigned[end:]
    if mutated != cosigned:
        with pytest.raises(CheckpointError):
            open_strictly(mutated, log_key, witness_key)
