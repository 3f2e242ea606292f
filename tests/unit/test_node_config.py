"""A node's identity: init_node, node.toml and its validation, and loading the pinned keys."""

from __future__ import annotations

import dataclasses
import os
import stat
import tomllib
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gsomia import Registry, load_registry
from gsomia.core.errors import InputError, InvalidInstantError, UnknownPartyError
from gsomia.crypto.keys import (
    InsecureKeyFileError,
    KeyFileError,
    KeyPassphraseError,
    SigningPrivateKey,
    write_private_key,
)
from gsomia.node.config import (
    CONFIG_FILE,
    DEFAULT_MAX_PAYLOAD_BYTES,
    ENCRYPTION_KEY_FILE,
    SIGNING_KEY_FILE,
    NodeConfig,
    NodeConfigError,
    _toml_string,
    init_node,
    load_config,
    load_encryption_key,
    load_signing_key,
)

NOW = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=timezone(timedelta(hours=9)))


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry()


@pytest.fixture
def node(tmp_path: Path, registry: Registry) -> NodeConfig:
    return init_node(tmp_path / "jpn", "JPN", registry, "pw", now=NOW)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- init_node --------------------------------------------------------------------------------


def test_init_creates_the_keys_and_config_and_nothing_else(
    tmp_path: Path, node: NodeConfig
) -> None:
    directory = (tmp_path / "jpn").resolve()
    assert sorted(p.name for p in directory.iterdir()) == sorted(
        [CONFIG_FILE, SIGNING_KEY_FILE, ENCRYPTION_KEY_FILE]
    )
    assert mode(directory) & 0o077 == 0
    assert mode(directory / SIGNING_KEY_FILE) == 0o600
    assert mode(directory / ENCRYPTION_KEY_FILE) == 0o600
    assert node.party == "JPN"
    assert node.data_dir == directory
    assert node.config_file == directory / CONFIG_FILE
    assert node.signing_key_file == directory / SIGNING_KEY_FILE
    assert node.encryption_key_file == directory / ENCRYPTION_KEY_FILE
    assert node.database_url == f"sqlite:///{directory}/node.db"
    assert node.database_url.startswith("sqlite:////")
    assert node.max_payload_bytes == DEFAULT_MAX_PAYLOAD_BYTES == 1024 * 1024
    assert node.created_at == NOW
    assert node.created_at.tzinfo is UTC


def test_load_config_round_trips(node: NodeConfig) -> None:
    assert load_config(node.data_dir) == node


def test_the_keys_load_and_match_the_pinned_public_keys(node: NodeConfig) -> None:
    signing = load_signing_key(node, "pw")
    encryption = load_encryption_key(node, "pw")
    assert signing.public_key == node.signing_public_key
    assert encryption.public_key == node.encryption_public_key
    assert node.signing_key_id == signing.key_id
    assert node.encryption_key_id == encryption.key_id
    assert node.signing_public_key.is_valid_signature(signing.sign(b"x"), b"x")


def test_the_two_key_pairs_differ(node: NodeConfig) -> None:
    assert node.signing_public_key.raw != node.encryption_public_key.raw


def test_config_is_frozen(node: NodeConfig) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        node.party = "KOR"  # type: ignore[misc]


def test_party_code_is_canonicalised(tmp_path: Path, registry: Registry) -> None:
    assert init_node(tmp_path / "n", "kor", registry, now=NOW).party == "KOR"


def test_config_file_is_valid_toml_with_relative_key_files(node: NodeConfig) -> None:
    data = tomllib.loads(node.config_file.read_text(encoding="utf-8"))
    assert data["format"] == 1
    assert data["node"]["party"] == "JPN"
    assert data["keys"]["signing_file"] == SIGNING_KEY_FILE
    assert data["keys"]["signing_public"] == node.signing_public_key.to_text()
    assert data["keys"]["encryption_public"] == node.encryption_public_key.to_text()
    assert "url" not in data.get("database", {})


def test_a_moved_node_directory_still_loads(
    tmp_path: Path, node: NodeConfig, registry: Registry
) -> None:
    moved = tmp_path / "moved"
    node.data_dir.rename(moved)
    config = load_config(moved)
    assert config.data_dir == moved.resolve()
    assert config.database_url == f"sqlite:///{moved.resolve()}/node.db"
    assert load_signing_key(config, "pw").public_key == node.signing_public_key


def test_init_into_an_existing_empty_directory_keeps_its_mode(
    tmp_path: Path, registry: Registry
) -> None:
    directory = tmp_path / "existing"
    directory.mkdir(mode=0o750)
    os.chmod(directory, 0o750)
    init_node(directory, "USA", registry, now=NOW)
    assert mode(directory) == 0o750


def test_init_refuses_an_existing_node(node: NodeConfig, registry: Registry) -> None:
    before = {p.name: p.read_bytes() for p in node.data_dir.iterdir()}
    with pytest.raises(NodeConfigError, match="already"):
        init_node(node.data_dir, "JPN", registry, "pw", now=NOW)
    assert {p.name: p.read_bytes() for p in node.data_dir.iterdir()} == before


def test_a_failed_init_removes_what_it_created(tmp_path: Path, registry: Registry) -> None:
    directory = tmp_path / "half"
    directory.mkdir()
    stray = directory / ENCRYPTION_KEY_FILE
    stray.write_text("someone else's file")
    with pytest.raises(KeyFileError, match="refusing to overwrite"):
        init_node(directory, "JPN", registry, now=NOW)
    assert [p.name for p in directory.iterdir()] == [ENCRYPTION_KEY_FILE]
    assert stray.read_text() == "someone else's file"


def test_a_failed_init_removes_the_directory_it_made(tmp_path: Path, registry: Registry) -> None:
    directory = tmp_path / "made"

    class BoomError(Exception):
        pass

    def explode(*_: object, **__: object) -> str:
        raise BoomError

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("gsomia.node.config._render", explode)
        with pytest.raises(BoomError):
            init_node(directory, "JPN", registry, now=NOW)
    assert not directory.exists()


@pytest.mark.parametrize("party", ["XYZ", "JAP"])
def test_unknown_party_creates_nothing(tmp_path: Path, registry: Registry, party: str) -> None:
    with pytest.raises(UnknownPartyError) as info:
        init_node(tmp_path / "n", party, registry, now=NOW)
    assert info.value.exit_code == 2
    assert not (tmp_path / "n").exists()


def test_party_without_a_scheme_creates_nothing(tmp_path: Path, registry: Registry) -> None:
    assert registry.party("FRA").scheme is None
    with pytest.raises(InputError, match="FRA has no classification scheme") as info:
        init_node(tmp_path / "n", "FRA", registry, now=NOW)
    assert info.value.exit_code == 2
    assert not (tmp_path / "n").exists()


def test_naive_now_is_refused(tmp_path: Path, registry: Registry) -> None:
    with pytest.raises(InvalidInstantError):
        init_node(tmp_path / "n", "JPN", registry, now=datetime(2026, 3, 1))
    assert not (tmp_path / "n").exists()


def test_empty_passphrase_creates_nothing(tmp_path: Path, registry: Registry) -> None:
    with pytest.raises(KeyPassphraseError):
        init_node(tmp_path / "n", "JPN", registry, "", now=NOW)
    assert not (tmp_path / "n").exists()


def test_a_file_where_the_directory_should_be(tmp_path: Path, registry: Registry) -> None:
    (tmp_path / "f").write_text("")
    with pytest.raises(NodeConfigError, match="not a directory"):
        init_node(tmp_path / "f", "JPN", registry, now=NOW)


def test_database_url_and_payload_limit_round_trip(tmp_path: Path, registry: Registry) -> None:
    url = 'postgresql+psycopg://gsomia:p"a\\ss@db.example/jpn?x=\n'
    config = init_node(
        tmp_path / "n", "JPN", registry, now=NOW, database_url=url, max_payload_bytes=4096
    )
    assert config.database_url == url
    assert load_config(config.data_dir) == config


def test_bad_limits_are_refused(tmp_path: Path, registry: Registry) -> None:
    with pytest.raises(NodeConfigError, match="max_payload_bytes"):
        init_node(tmp_path / "n", "JPN", registry, now=NOW, max_payload_bytes=0)
    with pytest.raises(NodeConfigError, match="database url"):
        init_node(tmp_path / "n", "JPN", registry, now=NOW, database_url=" ")
    assert not (tmp_path / "n").exists()


# -- loading the keys -------------------------------------------------------------------------


def test_wrong_passphrase(node: NodeConfig) -> None:
    with pytest.raises(KeyPassphraseError, match="wrong passphrase"):
        load_signing_key(node, "nope")
    with pytest.raises(KeyPassphraseError, match="no passphrase"):
        load_encryption_key(node, None)


def test_a_swapped_key_file_is_refused(node: NodeConfig) -> None:
    node.signing_key_file.unlink()
    write_private_key(node.signing_key_file, SigningPrivateKey.generate(), "pw")
    with pytest.raises(KeyFileError, match=f"pins {node.signing_key_id}"):
        load_signing_key(node, "pw")


def test_a_group_readable_key_is_refused(node: NodeConfig) -> None:
    os.chmod(node.encryption_key_file, 0o640)
    with pytest.raises(InsecureKeyFileError):
        load_encryption_key(node, "pw")


def test_an_absolute_key_file_path(tmp_path: Path, node: NodeConfig) -> None:
    elsewhere = tmp_path / "secrets"
    elsewhere.mkdir()
    node.signing_key_file.rename(elsewhere / "sign.pem")
    _edit(
        node,
        f'signing_file = "{SIGNING_KEY_FILE}"',
        f"signing_file = {_toml_string(str(elsewhere / 'sign.pem'))}",
    )
    config = load_config(node.data_dir)
    assert config.signing_key_file == elsewhere / "sign.pem"
    assert load_signing_key(config, "pw").public_key == node.signing_public_key


# -- load_config validation -------------------------------------------------------------------


def test_a_directory_that_is_not_a_node(tmp_path: Path) -> None:
    with pytest.raises(NodeConfigError, match="no such node directory"):
        load_config(tmp_path / "absent")
    with pytest.raises(NodeConfigError, match="not a gsomia node"):
        load_config(tmp_path)


def _edit(node: NodeConfig, old: str, new: str) -> None:
    text = node.config_file.read_text(encoding="utf-8")
    assert old in text
    node.config_file.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_invalid_toml_names_the_file(node: NodeConfig) -> None:
    _edit(node, "[keys]", "[keys")
    with pytest.raises(NodeConfigError, match="not valid TOML") as info:
        load_config(node.data_dir)
    assert str(node.config_file) in info.value.message


@pytest.mark.parametrize(
    ("old", "new", "field", "why"),
    [
        ('party = "JPN"', 'party = "jpn"', "node.party", "pattern"),
        ('party = "JPN"', "party = 392", "node.party", "string"),
        ('party = "JPN"', "", "node.party", "required"),
        ("max_payload_bytes = 1048576", "max_payload_bytes = 0", "node.max_payload_bytes", "0"),
        ("max_payload_bytes = 1048576", "max_payload_bytes = true", "node.max_payload_bytes", ""),
        ("max_payload_bytes = 1048576", 'max_payload_bytes = "1"', "node.max_payload_bytes", ""),
        (
            "created_at = 2026-03-01T00:30:15.123456+00:00",
            "created_at = 2026-03-01T00:30:15",
            "node.created_at",
            "timezone",
        ),
        (
            "created_at = 2026-03-01T00:30:15.123456+00:00",
            'created_at = "2026-03-01T00:30:15+00:00"',
            "node.created_at",
            "",
        ),
        ("format = 1", "format = 2", "format", "1"),
        ("format = 1", "", "format", "required"),
        ('signing_file = "signing-key.pem"', 'signing_file = ""', "keys.signing_file", ""),
        (
            'signing_public = "ed25519:',
            'signing_public = "x25519:',
            "keys.signing_public",
            "want a ed25519: key",
        ),
        (
            'signing_public = "ed25519:',
            'signing_public = "ed25519:A',
            "keys.signing_public",
            "43 base64url",
        ),
        (
            'encryption_public = "x25519:',
            'encryption_public = "ed25519:',
            "keys.encryption_public",
            "want a x25519: key",
        ),
        ("[database]", '[database]\nurl = ""', "database.url", ""),
        ("[database]", '[database]\nhost = "db"', "database.host", "Extra"),
        ('party = "JPN"', 'party = "JPN"\nbase_url = 1', "node.base_url", "Extra"),
    ],
)
def test_validation_errors_name_the_file_and_the_field(
    node: NodeConfig, old: str, new: str, field: str, why: str
) -> None:
    _edit(node, old, new)
    with pytest.raises(NodeConfigError) as info:
        load_config(node.data_dir)
    message = info.value.message
    assert message.startswith(f"{node.config_file}: {field}: "), message
    assert why in message
    assert "\n" not in message
    assert info.value.code == "invalid-node-config"
    assert info.value.exit_code == 2


def test_several_errors_are_counted(node: NodeConfig) -> None:
    _edit(node, 'party = "JPN"', 'party = "jpn"')
    _edit(node, "format = 1", "format = 3")
    with pytest.raises(NodeConfigError, match=r"\(and 1 more\)"):
        load_config(node.data_dir)


# -- writing TOML by hand ---------------------------------------------------------------------


@given(st.text(alphabet=st.characters(codec="utf-8")))
def test_toml_strings_round_trip(value: str) -> None:
    assert tomllib.loads(f"x = {_toml_string(value)}")["x"] == value
