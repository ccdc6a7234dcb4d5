"""Settings: one TOML file, overridable key by key from ``PLI_`` environment variables.

The file path comes from ``--config`` or ``PLI_CONFIG``, else ``DATA_DIR/pli.toml``
if it exists. ``PLI_SMTP__MTA_PORT=0`` overrides ``[smtp] mta_port``: nested keys
are joined with ``__``. Everything is validated at start-up and an invalid value
fails with a :class:`ConfigError` naming the key, never later in a request.
Backends are chosen here by name; the composition roots turn names into objects
(``gateway/app/backends.py``, which the CLI uses too). The sections are in
:mod:`gateway.base.sections` (re-exported here); each key's docstring is its user
documentation: ``pli config describe`` prints it, and ``docs/configuration.md`` is
generated from it (``make docs``).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gateway.base.errors import ConfigError
from gateway.base.sections import (
    AuditSettings,
    DatabaseSettings,
    DirectorySettings,
    HttpSettings,
    ImapSettings,
    LdapSettings,
    LogSettings,
    PolicySettings,
    QueueSettings,
    S3Settings,
    Section,
    SmimeSettings,
    SmtpSettings,
    TlsSettings,
    TuningSettings,
    VaultSettings,
)

__all__ = [
    "AuditSettings",
    "DatabaseSettings",
    "DirectorySettings",
    "HttpSettings",
    "ImapSettings",
    "LdapSettings",
    "LogSettings",
    "PolicySettings",
    "QueueSettings",
    "S3Settings",
    "Settings",
    "SmimeSettings",
    "SmtpSettings",
    "TlsSettings",
    "TuningSettings",
    "VaultSettings",
    "load_settings",
]

_ENV_PREFIX = "PLI_"
_NOT_KEYS = {"PLI_CONFIG"}  # environment variables that are not configuration keys


class Settings(Section):
    """The whole configuration: top-level keys, then one table per section."""

    data_dir: Path = Path("var")
    """The data directory: set by ``--data-dir`` or ``PLI_DATA_DIR``, never by the file (a
    ``data_dir`` key there is ignored). Default paths of keys, TLS, vault and database are
    under it."""
    hostname: str = "pli.localhost"
    """This gateway's name: in SMTP banners, ``Received:`` and generated Message-IDs; the
    notary is ``notary@<hostname>``."""
    domains: tuple[str, ...] = ()
    """Mail domains this gateway serves (holds mailboxes for); ``pli serve`` needs one at
    least. Other operators may deliver only to these; users (submission, API) may also send
    to a domain of the trust space (liste blanche), through the outbound queue. Nothing else
    is ever relayed. From the environment: comma-separated."""
    smtp: SmtpSettings = SmtpSettings()
    imap: ImapSettings = ImapSettings()
    http: HttpSettings = HttpSettings()
    database: DatabaseSettings = DatabaseSettings()
    vault: VaultSettings = VaultSettings()
    directory: DirectorySettings = DirectorySettings()
    policy: PolicySettings = PolicySettings()
    queue: QueueSettings = QueueSettings()
    audit: AuditSettings = AuditSettings()
    tls: TlsSettings = TlsSettings()
    log: LogSettings = LogSettings()
    smime: SmimeSettings = SmimeSettings()
    tuning: TuningSettings = TuningSettings()

    # Derived paths: defaults live under the data dir.
    def database_url(self) -> str:
        if self.database.url:
            return self.database.url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'pli.db').resolve()}"

    def vault_path(self) -> Path:
        return Path(self.vault.path) if self.vault.path else self.data_dir / "vault"

    def kek_path(self) -> Path:
        if self.vault.kek_file:
            return Path(self.vault.kek_file)
        return self.data_dir / "keys/kek.key"

    def tls_files(self) -> tuple[Path, Path]:
        cert = Path(self.tls.cert_file) if self.tls.cert_file else self.data_dir / "tls/server.crt"
        key = Path(self.tls.key_file) if self.tls.key_file else self.data_dir / "tls/server.key"
        return cert, key

    def patient_key_path(self) -> Path:
        if self.audit.patient_key_file:
            return Path(self.audit.patient_key_file)
        return self.data_dir / "keys/patient-ref.key"

    def audit_key_path(self) -> Path:
        if self.audit.signing_key_file:
            return Path(self.audit.signing_key_file)
        return self.data_dir / "keys/audit-signing.key"

    def policy_path(self) -> Path | None:
        if self.policy.file:
            return Path(self.policy.file)
        default = self.data_dir / "policies.toml"
        return default if default.is_file() else None

    def run_dir(self) -> Path:
        return self.data_dir / "run"

    def pki_dir(self) -> Path:
        return self.data_dir / "pki"


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(_ENV_PREFIX) or name in _NOT_KEYS:
            continue
        if name == "PLI_VAULT_KEK_HEX":  # a secret handed to the key provider, not a setting
            continue
        path = name[len(_ENV_PREFIX) :].lower().split("__")
        node = tree
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"environment variable {name} conflicts with another")
            node = child
        leaf = path[-1]
        if leaf in ("domains", "proxy_protocol_from"):  # a list: PLI_DOMAINS=a.fr,b.fr
            node[leaf] = [v.strip() for v in value.split(",") if v.strip()]
        else:
            node[leaf] = value
    return tree


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def load_settings(
    config_file: Path | None = None,
    data_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Read file, then environment, then explicit overrides (CLI flags), and validate."""
    env = os.environ if environ is None else environ
    if config_file is None and env.get("PLI_CONFIG"):
        config_file = Path(env["PLI_CONFIG"])
    env_tree = _env_overrides(env)
    if data_dir is None:
        data_dir = Path(env_tree.get("data_dir") or "var")
    if config_file is None and (data_dir / "pli.toml").is_file():
        config_file = data_dir / "pli.toml"
    raw: dict[str, Any] = {}
    if config_file is not None:
        try:
            raw = tomllib.loads(config_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"configuration file not found: {config_file}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{config_file}: invalid TOML: {exc}") from None
    merged = _merge(_merge(raw, env_tree), dict(overrides or {}))
    merged["data_dir"] = str(data_dir)
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        env_name = _ENV_PREFIX + "__".join(str(p) for p in err["loc"]).upper()
        raise ConfigError(
            f"invalid configuration key '{key}' (env {env_name}): {err['msg']}"
        ) from None


def read_secret(value: str, file: str, key: str, env: str) -> str:
    """A secret given in the configuration (from the environment) or in a file named there.

    Blocking file I/O: call it at startup or in a thread. The error names the
    configuration key, never the secret.
    """
    if value:
        return value
    if file:
        try:
            return Path(file).read_text().strip()
        except OSError as exc:
            raise ConfigError(
                f"invalid configuration key '{key}_file': cannot read {file}: {exc.strerror}"
            ) from None
    raise ConfigError(f"{key}_file (or {env}) is required")
