"""The sections of pli's configuration, one pydantic model each (``[smtp]``, ``[vault]``…).

Every key's docstring is its user documentation (``pli config describe``,
``docs/configuration.md``); validators name the key at fault. The whole
file, the environment overrides and the paths derived from the data
directory are in :mod:`gateway.base.config`.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "AuditSettings",
    "DatabaseSettings",
    "DirectorySettings",
    "HttpSettings",
    "ImapSettings",
    "LdapSettings",
    "LogSettings",
    "Pkcs11Settings",
    "PolicySettings",
    "QueueSettings",
    "RetentionSettings",
    "S3Settings",
    "Section",
    "SmimeSettings",
    "SmtpSettings",
    "TlsSettings",
    "TuningSettings",
    "VaultSettings",
]


class Section(BaseModel):
    # Attribute docstrings become field descriptions: the user documentation that
    # `pli config describe` prints and docs/configuration.md is generated from.
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


Port = int


class SmtpSettings(Section):
    """The SMTP listeners: MTA (other operators), submission (users), implicit-TLS submission."""

    host: str = "127.0.0.1"
    """Address the three SMTP listeners bind to (``0.0.0.0`` for every interface)."""
    mta_port: Port = Field(2525, ge=0, le=65535)
    """Port where other operators deliver (deploy: 25). STARTTLS is offered. 0 picks a free
    port; the ports bound are logged and written to ``DATA_DIR/run/ports.json``."""
    submission_port: Port = Field(5587, ge=0, le=65535)
    """Port where users submit: STARTTLS, then AUTH PLAIN/LOGIN (deploy: 587)."""
    submission_tls_port: Port = Field(4465, ge=0, le=65535)
    """Submission with implicit TLS, RFC 8314 (deploy: 465). Takes no PROXY header."""
    require_tls: bool = False
    """Refuse MAIL before STARTTLS on the MTA port. STARTTLS is always offered and AUTH
    always requires TLS; MSSanté operators exchange over TLS only, so production sets this
    (``deploy/pli.toml.example`` does)."""
    max_message_size: int = Field(50 * 1024 * 1024, gt=0)
    """Largest message in bytes (50 MiB): the SIZE advertised, and the limit of IMAP APPEND."""
    max_recipients: int = Field(100, gt=0)
    """Recipients per message; one more is answered ``452 4.5.3`` (the client sends the rest
    in another transaction)."""
    proxy_protocol_from: tuple[str, ...] = ()
    """Load balancers (IP addresses or networks) whose PROXY protocol v1/v2 header is trusted.
    When set, the MTA and STARTTLS submission listeners expect the header first and close
    connections from any other address: a client cannot claim an address of its choice.
    From the environment: comma-separated."""
    client_ca_file: str = ""
    """Mutual TLS on the MTA port: PEM file of the CAs whose client certificates are accepted.
    A sender's domain must then be named by the certificate presented (``550 5.7.1``)."""
    require_client_cert: bool = False
    """Refuse MAIL from a peer that presented no client certificate (``530 5.7.0``); needs
    ``client_ca_file``."""

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


class ImapSettings(Section):
    """The IMAP listeners (STARTTLS and implicit TLS)."""

    host: str = "127.0.0.1"
    """Address both IMAP listeners bind to."""
    port: Port = Field(1143, ge=0, le=65535)
    """IMAP with STARTTLS; LOGIN is refused before TLS (deploy: 143). 0 picks a free port,
    and then ``tls_port`` too unless it is set."""
    tls_port: Port = Field(1993, ge=0, le=65535)
    """IMAP with implicit TLS, RFC 8314 (deploy: 993)."""
    max_connections: int = Field(1000, gt=0)
    """Simultaneous IMAP connections of this instance; the next one gets ``* BYE``."""
    idle_timeout: float = Field(1800.0, gt=0)
    """Seconds an authenticated session may stay silent (or in IDLE) before ``* BYE
    Autologout``; RFC 3501 asks for at least 30 minutes."""

    @model_validator(mode="before")
    @classmethod
    def _ephemeral_tls_port(cls, data: Any) -> Any:
        # An ephemeral STARTTLS port (tests, several instances on one host) makes the
        # implicit-TLS port ephemeral too unless it was set: two instances never collide.
        if isinstance(data, dict) and str(data.get("port", "")) == "0" and "tls_port" not in data:
            return {**data, "tls_port": 0}
        return data


class HttpSettings(Section):
    """The HTTP API (FastAPI on uvicorn, inside pli's event loop), with /healthz, /readyz,
    /metrics."""

    host: str = "127.0.0.1"
    """Address the HTTP API binds to."""
    port: Port = Field(8080, ge=0, le=65535)
    """Port of the HTTP API."""
    max_upload: int = Field(70 * 1024 * 1024, gt=0)
    """Largest request body in bytes (413 beyond), 70 MiB: a 50 MiB message sent as JSON grows
    by 4/3 in base64."""
    max_page: int = Field(200, ge=1, le=10_000)
    """Messages per ``GET /v1/messages`` page, at most."""
    long_poll_max: float = Field(60.0, gt=0, le=600)
    """Seconds a ``GET /v1/messages/wait`` may hold, at most."""
    rate_limit: int = Field(600, ge=0)
    """API calls per minute per token (429 beyond); 0 turns the limit off."""
    tls: bool = False
    """Serve HTTPS with the server certificate of ``[tls]`` (deploy: true)."""
    client_ca_file: str = ""
    """Mutual TLS: PEM file of the CAs whose client certificates authenticate a shared mailbox
    (its address in the certificate's subjectAltName e-mail) for send and read, without a
    token. Needs ``tls = true``."""
    oidc_issuer: str = ""
    """OpenID Connect (Pro Santé Connect-style) bearer tokens, beside pli's own API tokens:
    the issuer expected in ``iss``. Empty turns OIDC off; set it with ``oidc_audience`` and
    ``oidc_jwks_url``."""
    oidc_audience: str = ""
    """The audience (``aud``) an OIDC token must carry."""
    oidc_jwks_url: str = ""
    """Where the issuer publishes its signing keys (JWKS); token signatures are checked
    against them."""
    oidc_mailbox_claim: str = "email"
    """The claim naming the mailbox a token acts for. The API scopes (send, read, audit) come
    from the token's space-separated ``scope`` claim."""
    oidc_algorithms: tuple[str, ...] = ("RS256", "ES256", "PS256")
    """Signature algorithms accepted; asymmetric only (a JWKS holds public keys)."""

    @model_validator(mode="after")
    def _oidc_complete(self) -> HttpSettings:
        if self.client_ca_file and not self.tls:
            raise ValueError("client_ca_file needs tls = true")
        if self.oidc_issuer and not (self.oidc_audience and self.oidc_jwks_url):
            raise ValueError("oidc_issuer needs oidc_audience and oidc_jwks_url")
        if any(a.upper().startswith("HS") or a.lower() == "none" for a in self.oidc_algorithms):
            raise ValueError(
                "oidc_algorithms: only asymmetric algorithms (a JWKS holds public keys)"
            )
        return self


class DatabaseSettings(Section):
    """The SQL database: metadata, mailboxes, queue, audit trail (never message bodies)."""

    url: str = ""
    """A SQLAlchemy async URL (``postgresql+asyncpg://user@host/db``: several instances share
    one PostgreSQL). Empty means the embedded default: SQLite (WAL) at ``DATA_DIR/pli.db``;
    ``sqlite+aiosqlite`` URLs get pli's one-trip driver (``gateway/base/tuning/sqlite.py``)."""


class S3Settings(Section):
    """An S3-compatible store for ``vault.backend = "s3"`` (MinIO with Object Lock in
    production)."""

    endpoint: str = ""
    """``host:port`` of the S3 server."""
    bucket: str = "pli-vault"
    """Bucket of the vault's objects; created if missing (with Object Lock when
    ``object_lock`` is set, which S3 allows only at creation)."""
    access_key: str = ""
    """The access key id."""
    secret_key: str = Field("", repr=False)
    """The secret key: give it in the environment (``PLI_VAULT__S3__SECRET_KEY``), not in a
    shared configuration file."""
    secure: bool = True
    """Talk HTTPS to the endpoint."""
    region: str = ""
    """The bucket's region; empty lets the client ask the server."""
    prefix: str = ""
    """Prefix of every object name in the bucket (several vaults in one bucket)."""
    object_lock: Literal["", "GOVERNANCE", "COMPLIANCE"] = ""
    """Object Lock retention mode set on every object; S3 then refuses to delete it before
    its date. Goes with a positive ``retention_days``."""
    retention_days: int = Field(0, ge=0)
    """With ``object_lock``: the minimum retention set on every object, in days (a floor
    under ``[vault.retention]``)."""
    part_size: int = Field(5 * 1024 * 1024, ge=5 * 1024 * 1024)
    """Bytes per multipart part: memory per streamed upload is about 3 parts; 5 MiB (the S3
    minimum) still allows 48 GiB objects (10,000 parts)."""


class RetentionSettings(Section):
    """Days to keep each vault object, fixed when it is stored: the longest applicable rule
    wins (deleting early cannot be undone); the default applies when no rule names the
    object. 0 means no retention date."""

    default_days: int = Field(7300, ge=0)
    """Days for an object no rule names: 20 years, the common rule for medical records."""
    doc_types: dict[str, int] = Field(default_factory=lambda: {"audit-segment": 3650})
    """Days by kind of object: ``message``, ``evidence`` (an S/MIME original),
    ``notarisation`` (receipts), ``audit-segment`` (sealed audit trail)."""
    mailboxes: dict[str, int] = Field(default_factory=dict)
    """Days by mailbox: keys are addresses or ``@domain``."""

    @model_validator(mode="after")
    def _non_negative(self) -> RetentionSettings:
        for table in ("doc_types", "mailboxes"):
            for key, days in getattr(self, table).items():
                if days < 0:
                    raise ValueError(f"vault.retention.{table}.{key}: days must be >= 0")
        return self


class Pkcs11Settings(Section):
    """The HSM path for ``vault.kek = "pkcs11"``: an AES key-encryption key generated inside
    the token that never leaves it."""

    module: str = "/usr/lib/softhsm/libsofthsm2.so"
    """The HSM vendor's PKCS#11 library."""
    token_label: str = "pli"  # noqa: S105 - the token's name, not a secret
    """Label of the token holding the KEK."""
    pin_file: str = ""
    """File holding the user PIN of the token (or ``PLI_VAULT__PKCS11__PIN``)."""
    pin: str = Field("", repr=False)
    """The user PIN: give it in the environment (``PLI_VAULT__PKCS11__PIN``), not in a shared
    configuration file."""
    key_label: str = "pli-kek"
    """Label prefix of the KEKs in the token; rotation adds ``-0002``, ``-0003``…"""


class VaultSettings(Section):
    """The encrypted store of message bodies, evidence and sealed audit segments."""

    backend: Literal["fs", "s3"] = "fs"
    """Where encrypted objects live: ``fs`` (files, atomic writes) or ``s3`` (``[vault.s3]``)."""
    s3: S3Settings = S3Settings()
    kek: Literal["file", "pkcs11"] = "file"
    """Where the key-encryption key lives: ``file`` (``kek_file``) or ``pkcs11`` (an HSM,
    ``[vault.pkcs11]``)."""
    pkcs11: Pkcs11Settings = Pkcs11Settings()
    retention: RetentionSettings = RetentionSettings()
    path: str = ""
    """Directory of the filesystem vault; default ``DATA_DIR/vault``."""
    kek_file: str = ""
    """The key-encryption key file; default ``DATA_DIR/keys/kek.key``, or the key itself in
    ``PLI_VAULT_KEK_HEX``. Keep it on another volume than the vault, and back it up apart."""
    chunk_size: int = Field(64 * 1024, ge=4096, le=16 * 1024 * 1024)
    """Plaintext bytes per AES-GCM chunk of new objects (each object records its own)."""

    @model_validator(mode="after")
    def _s3_complete(self) -> VaultSettings:
        if self.backend == "s3" and not (self.s3.endpoint and self.s3.access_key):
            raise ValueError("backend 's3' needs s3.endpoint and s3.access_key")
        if bool(self.s3.object_lock) != (self.s3.retention_days > 0):
            raise ValueError("s3.object_lock and a positive s3.retention_days go together")
        return self


class LdapSettings(Section):
    """The LDAP directory for ``directory.backend = "ldap"`` (OpenLDAP with
    ``deploy/ldap/pli.ldif`` loaded)."""

    url: str = ""
    """One or more space-separated URLs (``ldap://``, ``ldaps://``), tried in order: replicas
    or one HAProxy front."""
    base_dn: str = ""
    """Where pli's entries live."""
    bind_dn: str = ""
    """Who pli binds as (read access; write access where imports and delegations run)."""
    bind_password: str = Field("", repr=False)
    """The bind password: give it in the environment (``PLI_DIRECTORY__LDAP__BIND_PASSWORD``)
    or in ``bind_password_file``, not in a shared configuration file."""
    bind_password_file: str = ""
    """File holding the bind password."""
    pool_size: int = Field(4, ge=1, le=64)
    """Connections, each on its own worker thread (python-ldap blocks)."""
    timeout: float = Field(5.0, gt=0, le=120)
    """Seconds for connecting and for each operation."""
    start_tls: bool = False
    """Send StartTLS on ``ldap://`` connections."""
    ca_file: str = ""
    """PEM file of the CAs trusted for the LDAP servers' certificates."""


class DirectorySettings(Section):
    """The professional directory and the trust space (liste blanche)."""

    backend: Literal["sql", "ldap"] = "sql"
    """``sql`` (tables in pli's database) or ``ldap`` (``[directory.ldap]``)."""
    cache_size: int = Field(20_000, ge=0)
    """Directory answers kept in a read-through cache; 0 turns the cache off. Imports and
    delegation changes clear it on every instance within a second."""
    cache_ttl: float = Field(300.0, ge=0)
    """Seconds an answer stays cached."""
    negative_ttl: float = Field(60.0, ge=0)
    """Seconds a "no such mailbox" answer stays cached."""
    ldap: LdapSettings = LdapSettings()

    @model_validator(mode="after")
    def _ldap_complete(self) -> DirectorySettings:
        if self.backend == "ldap" and not (self.ldap.url and self.ldap.base_dn):
            raise ValueError("backend 'ldap' needs ldap.url and ldap.base_dn")
        return self


class QueueSettings(Section):
    """The outbound queue: delivery to other operators over SMTP with STARTTLS, retries,
    DSNs."""

    routes: dict[str, str] = Field(default_factory=dict)
    """Static routes ``"domain" = "host:port"`` (tests, private links); other domains are
    reached by MX on ``port``."""
    port: Port = Field(25, ge=1, le=65535)
    """Port of the MX hosts."""
    require_tls: bool = True
    """Deliver only over STARTTLS (MSSanté: operators exchange over TLS only); a server that
    offers none is a temporary failure, retried."""
    ca_file: str = ""
    """PEM file of the CAs trusted for remote servers; default: the system store."""
    verify_hostname: bool = True
    """Check that the remote certificate names the host connected to."""
    client_cert_file: str = ""
    """The operator's certificate (PEM), presented for mutual TLS."""
    client_key_file: str = ""
    """Its private key, if not in ``client_cert_file``."""
    max_age: float = Field(5 * 86400, gt=0)
    """Seconds a message may wait (5 days); then it bounces (``4.4.7``) with a DSN."""
    delay_warning: float = Field(4 * 3600, gt=0)
    """Seconds after which one "delayed" DSN goes to the sender (4 hours)."""
    retry_base: float = Field(60.0, gt=0)
    """Seconds before the first retry; the wait doubles per attempt."""
    retry_max: float = Field(3600.0, gt=0)
    """Longest wait between two attempts, in seconds."""
    concurrency: int = Field(4, ge=1, le=64)
    """Deliveries in flight per instance."""
    poll_interval: float = Field(5.0, gt=0)
    """Seconds between looks at the queue when nothing wakes the worker (other instances'
    messages, retries falling due)."""
    lease: float = Field(600.0, gt=0)
    """Seconds a claim on a queue entry lasts: a crashed instance's work is taken over after
    this."""
    timeout: float = Field(60.0, gt=0)
    """Seconds per SMTP step towards a remote server."""

    @field_validator("routes")
    @classmethod
    def _routes(cls, v: dict[str, str]) -> dict[str, str]:
        for domain, target in v.items():
            host, sep, port = target.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"route for {domain!r} must be host:port, not {target!r}")
        return {d.lower().rstrip("."): t for d, t in v.items()}


class AuditSettings(Section):
    """The audit trail: a hash chain in the database, signed checkpoints, sealed segments."""

    signing_key_file: str = ""
    """Ed25519 key signing checkpoints and segments of the audit chain (public half beside
    it, ``.pub``); default ``DATA_DIR/keys/audit-signing.key``."""
    patient_key_file: str = ""
    """Key of the pseudonyms of patients' INS on acceptance entries (``pli audit patient``);
    default ``DATA_DIR/keys/patient-ref.key``. Losing it unlinks past entries from
    patients."""
    checkpoint_interval: float = Field(60.0, gt=0)
    """Seconds between signed checkpoints of the chain's head."""
    checkpoint_every: int = Field(10_000, gt=0)
    """Entries after which a checkpoint is signed sooner."""
    seal_interval: float = Field(3600.0, gt=0)
    """Seconds between sealings of new entries into a (locked) vault object."""
    segment_max: int = Field(100_000, gt=0)
    """Entries per sealed segment, at most."""


class PolicySettings(Section):
    """The policy rule file (``policies/``)."""

    file: str = ""
    """The rule file (TOML); default ``DATA_DIR/policies.toml`` if it exists, else the
    built-in defaults. SIGHUP re-reads the file; naming another one needs a restart."""


class TlsSettings(Section):
    """The server certificate of every TLS listener."""

    cert_file: str = ""
    """Certificate chain (PEM); default ``DATA_DIR/tls/server.crt``."""
    key_file: str = ""
    """Its private key (PEM); default ``DATA_DIR/tls/server.key``."""


class LogSettings(Section):
    """Logs: JSON lines on stderr (readable key=value on a terminal)."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    """The least severe level written."""


class SmimeSettings(Section):
    """S/MIME and notarisation (``gateway/core/secure.py``). The development PKI lives in
    ``DATA_DIR/pki``; production adds the health PKI's roots, intermediates and CRLs here.
    SIGHUP re-reads the files (and ``DATA_DIR/pki``); a changed key needs a restart."""

    passphrase_file: str = ""
    """File holding the passphrase of the private keys in ``DATA_DIR/pki`` (mailbox keys, and
    the CA's when pli issues the notary's certificate)."""
    extra_roots: tuple[str, ...] = ()
    """PEM files of further trusted root CAs."""
    extra_intermediates: tuple[str, ...] = ()
    """PEM files of intermediate CAs."""
    crl_files: tuple[str, ...] = ()
    """CRLs (PEM or DER) besides ``DATA_DIR/pki/crl.pem``."""
    pkcs11_module: str = ""
    """PKCS#11 library of an HSM holding mailbox and notary keys (found by label = address;
    a key file beside the certificate is used when the token has no such key). Empty: key
    files only."""
    pkcs11_token_label: str = "pli-smime"  # noqa: S105 - the token's name, not a secret
    """Label of that token."""
    pkcs11_pin_file: str = ""
    """File holding its user PIN (or ``PLI_SMIME__PKCS11_PIN``)."""
    pkcs11_pin: str = Field("", repr=False)
    """The user PIN: give it in the environment (``PLI_SMIME__PKCS11_PIN``), not in a shared
    configuration file."""


class TuningSettings(Section):
    """Where pli leans on another project's internals for speed or memory
    (``gateway/base/tuning`` lists them, with what each relies on and buys). All on by
    default; turn one off to get that project's stock behaviour back, e.g. when an upgrade
    breaks it."""

    sqlite_one_trip: bool = True
    """SQLite statements in one trip to aiosqlite's thread (SQLAlchemy and aiosqlite
    internals). Off: SQLAlchemy's own aiosqlite dialect."""
    malloc: bool = True
    """glibc allocator settings at ``pli serve`` start: a fixed mmap threshold, eager trimming,
    two arenas. Off: glibc's defaults."""
    tls_read_buffer: bool = True
    """A 32 KiB read buffer per TLS connection (asyncio's ``SSLProtocol``, patched for the
    process). Off: asyncio's 256 KiB."""
    smtp_bulk_data: bool = True
    """SMTP DATA read in bulk rather than line by line (aiosmtpd and asyncio internals). Off:
    aiosmtpd's own DATA."""
    s3_direct: bool = True
    """S3 uploads and whole reads through minio's private calls, which spare copies of the
    object. Off: minio's public ``put_object`` and ``get_object``."""
