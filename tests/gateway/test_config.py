"""Configuration: TOML, PLI_ overrides with __ nesting, errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.base.config import load_settings
from gateway.base.errors import ConfigError


def test_defaults_are_the_dev_ports(tmp_path: Path) -> None:
    s = load_settings(None, tmp_path, environ={})
    assert (s.smtp.mta_port, s.smtp.submission_port, s.imap.port, s.http.port) == (
        2525,
        5587,
        1143,
        8080,
    )
    assert s.smtp.host == s.imap.host == s.http.host == "127.0.0.1"
    assert s.database_url().startswith("sqlite+aiosqlite:///")
    assert s.vault_path() == tmp_path / "vault"


def test_file_then_env_then_overrides(tmp_path: Path) -> None:
    cfg = tmp_path / "pli.toml"
    cfg.write_text('domains = ["a.mssante.fr"]\n[smtp]\nmta_port = 2600\nmax_recipients = 5\n')
    env = {"PLI_SMTP__MTA_PORT": "0", "PLI_CONFIG": str(cfg), "PLI_IMAP__PORT": "1999"}
    s = load_settings(None, tmp_path, environ=env, overrides={"imap": {"port": 2000}})
    assert s.smtp.mta_port == 0  # env beats file
    assert s.smtp.max_recipients == 5  # file kept where env is silent
    assert s.imap.port == 2000  # explicit override beats env
    assert s.domains == ("a.mssante.fr",)


def test_data_dir_config_is_found(tmp_path: Path) -> None:
    (tmp_path / "pli.toml").write_text('hostname = "mx.example.test"\n')
    assert load_settings(None, tmp_path, environ={}).hostname == "mx.example.test"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"PLI_SMTP__MTA_PORT": "abc"}, "smtp.mta_port"),
        ({"PLI_SMTP__MTA_PORT": "70000"}, "smtp.mta_port"),
        ({"PLI_IMAP__NO_SUCH_KEY": "1"}, "imap.no_such_key"),
        ({"PLI_LOG__LEVEL": "chatty"}, "log.level"),
        ({"PLI_SMTP__MAX_MESSAGE_SIZE": "-1"}, "smtp.max_message_size"),
    ],
)
def test_invalid_values_name_the_key(tmp_path: Path, env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(None, tmp_path, environ=env)
    assert named in str(err.value)


def test_bad_toml_names_the_file(tmp_path: Path) -> None:
    cfg = tmp_path / "broken.toml"
    cfg.write_text("[smtp\nport = 1\n")
    with pytest.raises(ConfigError, match=r"broken\.toml"):
        load_settings(cfg, tmp_path, environ={})
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "missing.toml", tmp_path, environ={})


def test_the_deploy_example_is_valid() -> None:
    from gateway.base.config import load_settings

    example = Path(__file__).parents[2] / "deploy" / "pli.toml.example"
    s = load_settings(example, Path("/nonexistent"), environ={})
    assert s.smtp.require_tls and s.smtp.mta_port == 25 and s.smtp.submission_tls_port == 465
