"""The ``gsomia node`` commands, through the Typer sub-app and under the root error handler."""

from __future__ import annotations

import json
import shlex
import stat
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from gsomia.cli.main import _ErrorsAsOneLine
from gsomia.cli.node import PASSPHRASE_ENV, node_app
from gsomia.core.errors import InputError, UnknownPartyError
from gsomia.crypto.keys import EncryptionPublicKey, SigningPublicKey
from gsomia.node.config import (
    ENCRYPTION_KEY_FILE,
    SIGNING_KEY_FILE,
    NodeConfigError,
    load_config,
    load_encryption_key,
    load_signing_key,
)

runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_ambient_passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)


def invoke(*args: str, env: dict[str, str] | None = None, input: str | None = None) -> Result:
    return runner.invoke(node_app, list(args), env=env, input=input)


def ok(*args: str, env: dict[str, str] | None = None, input: str | None = None) -> Result:
    result = invoke(*args, env=env, input=input)
    assert result.exit_code == 0, (result.output, result.exception)
    return result


# The root command's group turns every GsomiaError into one line and its exit code; node_app is
# mounted under such a group here as main.py will mount it.
root = typer.Typer(cls=_ErrorsAsOneLine)


@root.callback()
def _root() -> None:
    pass


root.add_typer(node_app, name="node")


def fails_in_one_line(*args: str, exit_code: int = 2) -> str:
    result = runner.invoke(root, ["node", *args])
    assert result.exit_code == exit_code, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("gsomia: error: ")
    assert "Traceback" not in result.output
    return lines[0]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- init -------------------------------------------------------------------------------------


def test_init_with_passphrase_from_a_named_variable(tmp_path: Path) -> None:
    data = tmp_path / "jpn"
    result = ok(
        "init", "--party", "JPN", "--data", str(data), "--passphrase-env", "MY_PASS",
        env={"MY_PASS": "s3cret"},
    )  # fmt: skip
    config = load_config(data)
    out = result.stdout
    assert f"Created node JPN in {config.data_dir}" in out
    assert config.signing_key_id in out
    assert config.encryption_key_id in out
    assert config.signing_public_key.to_text() in out
    assert config.encryption_public_key.to_text() in out
    assert "passphrase from $MY_PASS" in out
    assert result.stderr == ""
    assert mode(data / SIGNING_KEY_FILE) == mode(data / ENCRYPTION_KEY_FILE) == 0o600
    assert load_signing_key(config, "s3cret").key_id == config.signing_key_id
    assert load_encryption_key(config, "s3cret").key_id == config.encryption_key_id


def test_init_uses_the_default_variable_when_set(tmp_path: Path) -> None:
    ok("init", "--party", "KOR", "--data", str(tmp_path), env={PASSPHRASE_ENV: "pw"})
    config = load_config(tmp_path)
    assert config.party == "KOR"
    load_signing_key(config, "pw")


def test_init_with_prompt(tmp_path: Path) -> None:
    ok("init", "--party", "USA", "--data", str(tmp_path), "--passphrase-prompt", input="pw\npw\n")
    load_signing_key(load_config(tmp_path), "pw")


def test_init_without_passphrase_warns(tmp_path: Path) -> None:
    result = ok("init", "--party", "NATO", "--data", str(tmp_path))
    assert "NOT encrypted" in result.stdout
    assert "warning" in result.stderr
    load_signing_key(load_config(tmp_path), None)


def test_init_json(tmp_path: Path) -> None:
    result = ok("init", "--party", "jpn", "--data", str(tmp_path), "--json", env={"P": "x"})
    doc = json.loads(result.stdout)
    config = load_config(tmp_path)
    assert doc["party"] == "JPN"
    assert doc["data_dir"] == str(config.data_dir)
    assert doc["signing_key"] == {
        "public": config.signing_public_key.to_text(),
        "key_id": config.signing_key_id,
    }
    assert doc["encryption_key"]["public"] == config.encryption_public_key.to_text()
    assert doc["keys_encrypted"] is False
    assert doc["database_url"] == config.database_url
    assert doc["created_at"] == config.created_at.isoformat()


def test_init_with_database_url(tmp_path: Path) -> None:
    url = "postgresql+psycopg://gsomia@db/jpn"
    ok("init", "--party", "JPN", "--data", str(tmp_path), "--database-url", url)
    assert load_config(tmp_path).database_url == url


def test_unknown_party_is_one_line_and_exit_2(tmp_path: Path) -> None:
    line = fails_in_one_line("init", "--party", "JPX", "--data", str(tmp_path / "n"))
    assert "unknown party 'JPX'" in line
    assert "[unknown-party]" in line
    assert not (tmp_path / "n").exists()
    assert isinstance(invoke("init", "--party", "JPX", "--data", "x").exception, UnknownPartyError)


def test_party_without_scheme_is_one_line_and_exit_2(tmp_path: Path) -> None:
    line = fails_in_one_line("init", "--party", "AUS", "--data", str(tmp_path / "n"))
    assert "AUS has no classification scheme" in line
    assert not (tmp_path / "n").exists()


def test_a_party_without_scheme_is_refused_before_the_prompt(tmp_path: Path) -> None:
    result = invoke("init", "--party", "FRA", "--data", str(tmp_path), "--passphrase-prompt")
    assert isinstance(result.exception, InputError)
    assert "passphrase" not in result.output.lower()


def test_an_unset_named_variable_is_refused(tmp_path: Path) -> None:
    line = fails_in_one_line(
        "init", "--party", "JPN", "--data", str(tmp_path / "n"), "--passphrase-env", "NOPE_UNSET"
    )
    assert "NOPE_UNSET is not set" in line
    assert not (tmp_path / "n").exists()


def test_an_empty_passphrase_is_refused_not_taken_as_none(tmp_path: Path) -> None:
    result = invoke(
        "init", "--party", "JPN", "--data", str(tmp_path / "m"), "--passphrase-env", "E",
        env={"E": ""},
    )  # fmt: skip
    assert isinstance(result.exception, InputError)
    assert "empty" in str(result.exception)
    assert not (tmp_path / "m").exists()
    result = invoke("init", "--party", "JPN", "--data", str(tmp_path / "k"),
                    env={PASSPHRASE_ENV: ""})  # fmt: skip
    assert isinstance(result.exception, InputError)
    assert not (tmp_path / "k").exists()


def test_both_passphrase_sources_are_refused(tmp_path: Path) -> None:
    line = fails_in_one_line(
        "init", "--party", "JPN", "--data", str(tmp_path), "--passphrase-env", "X",
        "--passphrase-prompt",
    )  # fmt: skip
    assert "not both" in line


def test_a_second_init_is_refused(tmp_path: Path) -> None:
    ok("init", "--party", "JPN", "--data", str(tmp_path))
    before = (tmp_path / "node.toml").read_bytes()
    line = fails_in_one_line("init", "--party", "KOR", "--data", str(tmp_path))
    assert "already" in line
    assert "[invalid-node-config]" in line
    assert (tmp_path / "node.toml").read_bytes() == before


# -- keys -------------------------------------------------------------------------------------


@pytest.fixture
def node_dir(tmp_path: Path) -> Path:
    ok("init", "--party", "JPN", "--data", str(tmp_path), env={PASSPHRASE_ENV: "pw"})
    return tmp_path


def test_keys_prints_a_peer_command_that_pastes_on_one_line(node_dir: Path) -> None:
    config = load_config(node_dir)
    out = ok("keys", "--data", str(node_dir)).stdout
    command = next(line.strip() for line in out.splitlines() if "peers add" in line)
    assert command == (
        f"gsomia peers add JPN URL --signing-key {config.signing_public_key} "
        f"--encryption-key {config.encryption_public_key}"
    )
    assert config.signing_key_id in out and config.encryption_key_id in out
    argv = shlex.split(command)
    assert SigningPublicKey.from_text(argv[argv.index("--signing-key") + 1]) == (
        config.signing_public_key
    )
    assert EncryptionPublicKey.from_text(argv[argv.index("--encryption-key") + 1]) == (
        config.encryption_public_key
    )


def test_keys_needs_no_passphrase(node_dir: Path) -> None:
    # Public keys are in node.toml: showing them must not unlock the private keys.
    ok("keys", "--data", str(node_dir))


def test_keys_with_url(node_dir: Path) -> None:
    out = ok("keys", "--data", str(node_dir), "--url", "https://jpn.example:8443").stdout
    assert "gsomia peers add JPN https://jpn.example:8443 --signing-key ed25519:" in out


def test_keys_json(node_dir: Path) -> None:
    config = load_config(node_dir)
    doc = json.loads(ok("keys", "--data", str(node_dir), "--json").stdout)
    assert doc["party"] == "JPN"
    assert doc["signing_key"]["public"] == config.signing_public_key.to_text()
    assert doc["signing_key"]["key_id"] == config.signing_key_id
    assert doc["encryption_key"]["public"] == config.encryption_public_key.to_text()
    assert doc["encryption_key"]["key_id"] == config.encryption_key_id
    assert doc["peer_command"].startswith("gsomia peers add JPN URL --signing-key ed25519:")


def test_keys_of_a_directory_that_is_not_a_node(tmp_path: Path) -> None:
    line = fails_in_one_line("keys", "--data", str(tmp_path))
    assert "not a gsomia node" in line
    assert isinstance(invoke("keys", "--data", str(tmp_path)).exception, NodeConfigError)


def test_keys_of_a_broken_config_names_the_field(node_dir: Path) -> None:
    path = node_dir / "node.toml"
    path.write_text(path.read_text().replace('signing_public = "ed25519:', 'signing_public = "'))
    line = fails_in_one_line("keys", "--data", str(node_dir))
    assert f"{path}: keys.signing_public: " in line
