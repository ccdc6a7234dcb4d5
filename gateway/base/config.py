"""Settings: one TOML file, overridable key by key from ``PLI_`` environment variables.

The file path comes from ``--config`` or ``PLI_CONFIG``, else ``DATA_DIR/pli.toml``
if it exists. ``PLI_SMTP__MTA_PORT=0`` overrides ``[smtp] mta_port``: nested keys
are joined with ``__``. Everything is validated at start-up and an invalid value
fails with a :class:`ConfigError` naming the key, never later in a request.
Backends are chosen here by name; only ``gateway/app/services.py`` turns names into objects.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from gateway.base.errors import ConfigError

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
    "VaultSettings",
    "load_settings",
]

_ENV_PREFIX = "PLI_"
_NOT_KEYS = {"PLI_CONFIG"}  # environment variables that are not configuration keys


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Port = int


class SmtpSettings(_Section):
    host: str = "127.0.0.1"
    mta_port: Port = Field(2525, ge=0, le=65535)
    submission_port: Port = Field(5587, ge=0, le=65535)
    submission_tls_port: Port = Field(4465, ge=0, le=65535)  # implicit TLS (deploy 465)
    # STARTTLS is always offered; set true to refuse MAIL before it (MSSanté operators
    # exchange over TLS: deploy/pli.toml.example sets it). AUTH always requires TLS.
    require_tls: bool = False
    max_message_size: int = Field(50 * 1024 * 1024, gt=0)
    max_recipients: int = Field(100, gt=0)
    # Load balancers (IPs or networks) whose PROXY protocol v1/v2 header is trusted. When
    # set, the MTA and submission listeners expect the header first, and connections from
    # any other address are closed: a client cannot claim an address of its choice.
    proxy_protocol_from: tuple[str, ...] = ()
    # Mutual TLS on the MTA port: CAs whose client certificates are accepted; a sender's
    # domain must then match the certificate presented. require_client_cert refuses MAIL
    # from a peer that presented none (530 5.7.0).
    client_ca_file: str = ""
    require_client_cert: bool = False

    @model_validator(mode="after")
    def _client_certs(self) -> SmtpSettings:
        if self.require_client_cert and not self.client_ca_file:
            raise ValueError("require_client_cert needs client_ca_file")
        return self

    @field_validator("proxy_protocol_from")
    @classmethod
    def _networks(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for net in v:
            ipaddress.ip_network(net, strict=False)  # ValueError names the bad value
        return v


class ImapSettings(_Section):
    host: str = "127.0.0.1"
    port: Port = Field(1143, ge=0, le=65535)  # STARTTLS (deploy 143)
    tls_port: Port = Field(1993, ge=0, le=65535)  # implicit TLS, RFC 8314 (deploy 993)
    max_connections: int = Field(1000, gt=0)
    idle_timeout: float = Field(1800.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _ephemeral_tls_port(cls, data: Any) -> Any:
        # An ephemeral STARTTLS port (tests, several instances on one host) makes the
        # implicit-TLS port ephemeral too unless it was set: two instances never collide.
        if isinstance(data, dict) and str(data.get("port", "")) == "0" \
                and "tls_port" not in data:
            return {**data, "tls_port": 0}
        return data


class HttpSettings(_Section):
    host: str = "127.0.0.1"
    port: Port = Field(8080, ge=0, le=65535)
    # Largest request body (413 beyond): a 50 MiB message sent as JSON grows by 4/3 in base64.
    max_upload: int = Field(70 * 1024 * 1024, gt=0)
    max_page: int = Field(200, ge=1, le=10_000)  # messages per GET /v1/messages page
    long_poll_max: float = Field(60.0, gt=0, le=600)  # seconds a GET /v1/messages/wait may hold
    rate_limit: int = Field(600, ge=0)  # API calls per minute per token (429 beyond); 0 = off
    tls: bool = False  # HTTPS with the server certificate of [tls] (deploy: true)
    # Mutual TLS: CAs whose client certificates authenticate a shared mailbox (its address
    # in the certificate's subjectAltName e-mail) for send and read, without a token.
    client_ca_file: str = ""
    # OpenID Connect bearer tokens (Pro Santé Connect-style), beside pli's own API tokens:
    # signatures checked against the issuer's JWKS; the mailbox comes from oidc_mailbox_claim,
    # the API scopes (send, read, audit) from the token's space-separated "scope" claim.
    oidc_issuer: str = ""
    oidc_audience: str = ""
    oidc_jwks_url: str = ""
    oidc_mailbox_claim: str = "email"
    oidc_algorithms: tuple[str, ...] = ("RS256", "ES256", "PS256")

    @model_validator(mode="after")
    def _oidc_complete(self) -> HttpSettings:
        if self.client_ca_file and not self.tls:
            raise ValueError("client_ca_file needs tls = true")
        if self.oidc_issuer and not (self.oidc_audience and self.oidc_jwks_url):
            raise ValueError("oidc_issuer needs oidc_audience and oidc_jwks_url")
        if any(a.upper().startswith("HS") or a.lower() == "none" for a in self.oidc_algorithms):
            raise ValueError("oidc_algorithms: only asymmetric algorithms (a JWKS holds public "
                             "keys)")
        return self


class DatabaseSettings(_Section):
    # Empty means the embedded default: SQLite (WAL) at DATA_DIR/pli.db.
    url: str = ""


class S3Settings(_Section):
    # An S3-compatible store (MinIO with Object Lock in production). The secret key comes
    # from the environment (PLI_VAULT__S3__SECRET_KEY), not from a shared config file.
    endpoint: str = ""  # host:port
    bucket: str = "pli-vault"
    access_key: str = ""
    secret_key: str = Field("", repr=False)
    secure: bool = True
    region: str = ""
    prefix: str = ""
    object_lock: Literal["", "GOVERNANCE", "COMPLIANCE"] = ""
    retention_days: int = Field(0, ge=0)  # with object_lock: S3 refuses deletion before
    # Bytes per multipart part: memory per streamed upload is ~3 parts; 5 MiB (the S3 minimum)
    # still allows 48 GiB objects (10,000 parts).
    part_size: int = Field(5 * 1024 * 1024, ge=5 * 1024 * 1024)


class RetentionSettings(_Section):
    # Days to keep each object: the longest applicable rule wins (deleting early cannot be
    # undone). Keys of `mailboxes` are addresses or "@domain"; 0 = no retention date.
    default_days: int = Field(7300, ge=0)  # 20 years, the common rule for medical records
    doc_types: dict[str, int] = Field(default_factory=lambda: {"audit-segment": 3650})
    mailboxes: dict[str, int] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _non_negative(self) -> RetentionSettings:
        for table in ("doc_types", "mailboxes"):
            for key, days in getattr(self, table).items():
                if days < 0:
                    raise ValueError(f"vault.retention.{table}.{key}: days must be >= 0")
        return self


class Pkcs11Settings(_Section):
    # The HSM path: an AES key-encryption key that never leaves the token.
    module: str = "/usr/lib/softhsm/libsofthsm2.so"
    token_label: str = "pli"  # noqa: S105 - the token's name, not a secret
    pin_file: str = ""  # or PLI_VAULT__PKCS11__PIN
    pin: str = Field("", repr=False)
    key_label: str = "pli-kek"  # prefix; rotation adds "-0002", "-0003"…


class VaultSettings(_Section):
    backend: Literal["fs", "s3"] = "fs"
    s3: S3Settings = S3Settings()
    kek: Literal["file", "pkcs11"] = "file"
    pkcs11: Pkcs11Settings = Pkcs11Settings()
    retention: RetentionSettings = RetentionSettings()
    path: str = ""  # default DATA_DIR/vault
    kek_file: str = ""  # default DATA_DIR/keys/kek.key; or PLI_VAULT_KEK_HEX
    chunk_size: int = Field(64 * 1024, ge=4096, le=16 * 1024 * 1024)

    @model_validator(mode="after")
    def _s3_complete(self) -> VaultSettings:
        if self.backend == "s3" and not (self.s3.endpoint and self.s3.access_key):
            raise ValueError("backend 's3' needs s3.endpoint and s3.access_key")
        if bool(self.s3.object_lock) != (self.s3.retention_days > 0):
            raise ValueError("s3.object_lock and a positive s3.retention_days go together")
        return self


class LdapSettings(_Section):
    # One or more space-separated URLs (ldap://, ldaps://), tried in order: replicas
    # or an HAProxy front. The password comes from bind_password_file or the
    # environment (PLI_DIRECTORY__LDAP__BIND_PASSWORD), not from a shared config file.
    url: str = ""
    base_dn: str = ""
    bind_dn: str = ""
    bind_password: str = Field("", repr=False)
    bind_password_file: str = ""
    pool_size: int = Field(4, ge=1, le=64)
    timeout: float = Field(5.0, gt=0, le=120)
    start_tls: bool = False
    ca_file: str = ""


class DirectorySettings(_Section):
    backend: Literal["sql", "ldap"] = "sql"
    # Read-through cache of directory answers; cache_size 0 turns it off.
    cache_size: int = Field(20_000, ge=0)
    cache_ttl: float = Field(300.0, ge=0)
    negative_ttl: float = Field(60.0, ge=0)
    ldap: LdapSettings = LdapSettings()

    @model_validator(mode="after")
    def _ldap_complete(self) -> DirectorySettings:
        if self.backend == "ldap" and not (self.ldap.url and self.ldap.base_dn):
            raise ValueError("backend 'ldap' needs ldap.url and ldap.base_dn")
        return self


class QueueSettings(_Section):
    # Static routes "domain" = "host:port" (tests, private links); other domains by MX, port 25.
    routes: dict[str, str] = Field(default_factory=dict)
    port: Port = Field(25, ge=1, le=65535)
    require_tls: bool = True  # MSSanté: operators exchange over TLS only
    ca_file: str = ""  # CAs trusted for remote servers (default: the system store)
    verify_hostname: bool = True
    client_cert_file: str = ""  # the operator's certificate, for mutual TLS
    client_key_file: str = ""
    max_age: float = Field(5 * 86400, gt=0)  # then the message bounces (4.4.7)
    delay_warning: float = Field(4 * 3600, gt=0)  # one "delayed" DSN after this long
    retry_base: float = Field(60.0, gt=0)  # seconds; doubles per attempt
    retry_max: float = Field(3600.0, gt=0)
    concurrency: int = Field(4, ge=1, le=64)  # deliveries in flight per instance
    poll_interval: float = Field(5.0, gt=0)
    lease: float = Field(600.0, gt=0)  # a crashed worker's claim expires after this
    timeout: float = Field(60.0, gt=0)  # per SMTP step

    @field_validator("routes")
    @classmethod
    def _routes(cls, v: dict[str, str]) -> dict[str, str]:
        for domain, target in v.items():
            host, sep, port = target.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"route for {domain!r} must be host:port, not {target!r}")
        return {d.lower().rstrip("."): t for d, t in v.items()}


class AuditSettings(_Section):
    # Ed25519 key signing checkpoints of the audit chain (public half beside it, .pub);
    # default DATA_DIR/keys/audit-signing.key.
    signing_key_file: str = ""
    # Keyed pseudonyms of patients' INS on acceptance entries (pli audit patient INS);
    # default DATA_DIR/keys/patient-ref.key. Losing it unlinks past entries from patients.
    patient_key_file: str = ""
    checkpoint_interval: float = Field(60.0, gt=0)  # seconds
    checkpoint_every: int = Field(10_000, gt=0)  # entries
    # Sealed segments: entries exported into a (locked) vault object every interval,
    # at most segment_max entries per segment.
    seal_interval: float = Field(3600.0, gt=0)  # seconds
    segment_max: int = Field(100_000, gt=0)


class PolicySettings(_Section):
    # The rule file (TOML, see deploy/policies.toml); default DATA_DIR/policies.toml if
    # it exists, else the built-in defaults. Reloaded on SIGHUP.
    file: str = ""


class TlsSettings(_Section):
    cert_file: str = ""  # default DATA_DIR/tls/server.crt
    key_file: str = ""  # default DATA_DIR/tls/server.key


class LogSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"


class SmimeSettings(_Section):
    # S/MIME and notarisation (gateway/core/secure.py). The development PKI lives in
    # DATA_DIR/pki; production adds the health PKI's roots, intermediates and CRLs here.
    passphrase_file: str = ""  # passphrase of the mailbox keys in DATA_DIR/pki/mailboxes
    extra_roots: tuple[str, ...] = ()  # PEM files of further trusted root CAs
    extra_intermediates: tuple[str, ...] = ()  # PEM files of intermediate CAs
    crl_files: tuple[str, ...] = ()  # CRLs (PEM or DER) besides DATA_DIR/pki/crl.pem
    # Mailbox and notary keys in an HSM (PKCS#11), found by label = address; a key file
    # beside the certificate is used when the token has no such key.
    pkcs11_module: str = ""  # e.g. /usr/lib/softhsm/libsofthsm2.so; empty: key files only
    pkcs11_token_label: str = "pli-smime"  # noqa: S105 - the token's name, not a secret
    pkcs11_pin_file: str = ""  # or PLI_SMIME__PKCS11_PIN
    pkcs11_pin: str = Field("", repr=False)


class Settings(_Section):
    data_dir: Path = Path("var")
    hostname: str = "pli.localhost"
    # Mail domains this gateway serves (holds mailboxes for); others are never relayed to.
    domains: tuple[str, ...] = ()
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
            raise ConfigError(f"invalid configuration key '{key}_file': cannot read {file}: "
                              f"{exc.strerror}") from None
    raise ConfigError(f"{key}_file (or {env}) is required")

