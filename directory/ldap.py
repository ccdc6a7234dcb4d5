"""The LDAP directory (python-ldap): a pool of connections used from a thread executor.

python-ldap blocks, so every operation runs on one of ``pool_size`` worker
threads, each taking an idle connection (or opening one) for the duration of
the call. A connection that fails with a transport error (server restarted,
replica behind HAProxy gone, timeout) is thrown away and the call is retried
once on a fresh one; a second failure is :class:`DirectoryUnavailable`, which
SMTP answers with 451 4.4.3. Every value put in a filter goes through
``escape_filter_chars`` and every DN value through ``escape_dn_chars``, so an
address such as ``*)(mail=*`` matches nothing instead of everything.

Layout under the configured base: ``mail=ADDRESS,ou=mailboxes`` entries of
class ``pliMailbox`` and ``pliDomain=DOMAIN,ou=trust`` entries of class
``pliTrustedDomain`` (schema in ``deploy/ldap/pli.ldif``). Lookups search the
whole base by ``mail``, so entries loaded by other tools under other DNs are
found too.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import ldap
from ldap.controls import SimplePagedResultsControl
from ldap.dn import escape_dn_chars
from ldap.filter import escape_filter_chars
from ldap.ldapobject import LDAPObject

from directory.base import (
    DELEGABLE_KINDS,
    DelegationRefused,
    DirectoryStats,
    DirectoryUnavailable,
    Entry,
    InvalidAddress,
    MailboxKind,
    NotInDirectory,
    normalize_address,
)
from directory.searchtext import words

__all__ = [
    "ATTRIBUTES",
    "CERT_ATTR",
    "LdapConfig",
    "LdapDirectory",
    "LdapError",
    "describe_error",
    "ensure_containers",
    "entry_attrs",
    "entry_from_ldap",
    "filter_eq",
]

T = TypeVar("T")

# Entry field -> LDAP attribute (the schema in deploy/ldap/pli.ldif).
ATTRIBUTES = {
    "address": "mail",
    "kind": "pliMailboxKind",
    "display_name": "displayName",
    "id_nat_pp": "pliIdNatPP",
    "profession_code": "pliProfessionCode",
    "profession_label": "pliProfessionLabel",
    "specialty_code": "pliSpecialtyCode",
    "specialty_label": "pliSpecialtyLabel",
    "structure_id": "pliStructureId",
    "structure_name": "pliStructureName",
    "service": "pliService",
    "postal_address": "pliPostalAddress",
    "postcode": "postalCode",
    "department": "pliDepartment",
}
CERT_ATTR = "userCertificate;binary"
_READ_ATTRS = [*ATTRIBUTES.values(), "pliListeRouge", CERT_ATTR]
_SEARCH_LIMIT = 500
_MAX_WORDS = 8
_PAGE = 1000
# Transport failures: the connection is dropped and the call retried once.
_TRANSIENT = (
    ldap.SERVER_DOWN,
    ldap.TIMEOUT,
    ldap.CONNECT_ERROR,
    ldap.UNAVAILABLE,
    ldap.BUSY,
    ldap.TIMELIMIT_EXCEEDED,
    ldap.ADMINLIMIT_EXCEEDED,
    OSError,
)


class LdapError(DirectoryUnavailable):
    """The LDAP server refused or failed an operation in a way a retry will not fix."""


@dataclass(frozen=True, slots=True)
class LdapConfig:
    """Where and how to reach the directory server(s)."""

    url: str  # one or more space-separated URLs: ldap://a ldaps://b (tried in order)
    base_dn: str
    bind_dn: str = ""
    bind_password: str = ""
    pool_size: int = 4
    timeout: float = 5.0  # seconds, for connecting and for each operation
    start_tls: bool = False
    ca_file: str = ""

    @property
    def mailboxes_dn(self) -> str:
        return f"ou=mailboxes,{self.base_dn}"

    @property
    def trust_dn(self) -> str:
        return f"ou=trust,{self.base_dn}"

    def mailbox_dn(self, address: str) -> str:
        return f"mail={escape_dn_chars(address)},{self.mailboxes_dn}"

    def domain_dn(self, domain: str) -> str:
        return f"pliDomain={escape_dn_chars(domain)},{self.trust_dn}"


def _text(attrs: dict[str, list[bytes]], name: str) -> str:
    values = attrs.get(name)
    return values[0].decode("utf-8", "replace") if values else ""


def entry_from_ldap(attrs: dict[str, list[bytes]]) -> Entry | None:
    """The Entry of a pliMailbox's attributes; None if it is not a usable mailbox."""
    try:
        kind = MailboxKind(_text(attrs, "pliMailboxKind").upper())
        address = normalize_address(_text(attrs, "mail"))
    except (ValueError, InvalidAddress):
        return None  # a foreign or broken entry is no mailbox, rather than a crash
    fields = {f: _text(attrs, a) for f, a in ATTRIBUTES.items() if f not in ("address", "kind")}
    return Entry(
        address=address,
        kind=kind,
        liste_rouge=_text(attrs, "pliListeRouge").upper() == "TRUE",
        certificates=tuple(attrs.get(CERT_ATTR, attrs.get("userCertificate", []))),
        **fields,
    )


# Servers answer with the schema's spelling; pli looks attributes up by one spelling.
_CANON = {a.lower(): a for a in (*_READ_ATTRS, "userCertificate", "pliDelegate")}


def _lower_attrs(attrs: dict[str, list[bytes]]) -> dict[str, list[bytes]]:
    return {_CANON.get(k.lower(), k): v for k, v in attrs.items()}


def filter_eq(attr: str, value: str) -> str:
    return f"({attr}={escape_filter_chars(value)})"


class LdapDirectory:
    """:class:`~directory.base.Directory` and ``DirectoryAdmin`` over an LDAP server."""

    name = "ldap"

    def __init__(
        self, config: LdapConfig, connect: Callable[[str], LDAPObject] | None = None
    ) -> None:
        if config.pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        self.config = config
        self._connect = connect or (ldap.initialize)
        self._executor = ThreadPoolExecutor(
            max_workers=config.pool_size, thread_name_prefix="pli-ldap"
        )
        self._idle: collections.deque[LDAPObject] = collections.deque()
        self._lock = threading.Lock()
        self._closed = False

    # --- connections (worker threads only) ---------------------------------------

    def _open(self) -> LDAPObject:
        conn = self._connect(self.config.url)
        t = self.config.timeout
        conn.set_option(ldap.OPT_PROTOCOL_VERSION, ldap.VERSION3)
        conn.set_option(ldap.OPT_REFERRALS, 0)
        conn.set_option(ldap.OPT_NETWORK_TIMEOUT, t)
        conn.set_option(ldap.OPT_TIMEOUT, t)
        if self.config.ca_file:
            conn.set_option(ldap.OPT_X_TLS_CACERTFILE, self.config.ca_file)
            conn.set_option(ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_DEMAND)
            conn.set_option(ldap.OPT_X_TLS_PROTOCOL_MIN, 0x303)  # TLS 1.2
            conn.set_option(ldap.OPT_X_TLS_NEWCTX, 0)
        if self.config.start_tls:
            conn.start_tls_s()
        conn.simple_bind_s(self.config.bind_dn, self.config.bind_password)
        return conn

    def _call(self, op: Callable[[LDAPObject], T]) -> T:
        for attempt in (1, 2):
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            try:
                if conn is None:
                    conn = self._open()
                result = op(conn)
            except _TRANSIENT as exc:
                _drop(conn)
                if attempt == 2:
                    raise DirectoryUnavailable(
                        f"LDAP directory unavailable: {type(exc).__name__}"
                    ) from exc
                continue
            except ldap.INVALID_CREDENTIALS as exc:
                _drop(conn)
                raise LdapError(
                    "LDAP bind refused: check directory.ldap.bind_dn and its password"
                ) from exc
            except ldap.LDAPError:
                self._release(conn)
                raise
            self._release(conn)
            return result
        raise AssertionError("unreachable")

    def _release(self, conn: LDAPObject | None) -> None:
        if conn is None:
            return
        with self._lock:
            if self._closed:
                _drop(conn)
            else:
                self._idle.append(conn)

    async def run(self, op: Callable[[LDAPObject], T]) -> T:
        """Run a blocking python-ldap operation on a pooled connection, off the loop."""
        if self._closed:
            raise DirectoryUnavailable("LDAP directory closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, self._call, op)
        except ldap.LDAPError as exc:
            raise LdapError(f"LDAP operation failed: {describe_error(exc)}") from exc

    async def aclose(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = list(self._idle), collections.deque()

        def drop_all() -> None:
            for conn in idle:
                _drop(conn)

        await asyncio.get_running_loop().run_in_executor(self._executor, drop_all)
        self._executor.shutdown(wait=False)

    # --- searches --------------------------------------------------------------------

    def _search(
        self,
        conn: LDAPObject,
        flt: str,
        attrs: Sequence[str],
        limit: int = 0,
        base: str | None = None,
    ) -> list[dict[str, list[bytes]]]:
        """Entries of a subtree search; with ``limit``, at most that many (no error)."""
        msgid = conn.search_ext(
            base or self.config.base_dn,
            ldap.SCOPE_SUBTREE,
            flt,
            list(attrs),
            sizelimit=limit,
            timeout=self.config.timeout,
        )
        out: list[dict[str, list[bytes]]] = []
        try:
            while True:
                rtype, data, _, _ = conn.result3(msgid, all=0, timeout=self.config.timeout)
                for dn, attrs_ in data or ():
                    if dn is not None and isinstance(attrs_, dict):
                        out.append(_lower_attrs(attrs_))
                if rtype == ldap.RES_SEARCH_RESULT:
                    return out
        except ldap.SIZELIMIT_EXCEEDED:
            return out
        except ldap.NO_SUCH_OBJECT:
            return out  # base (or ou=trust) not created yet: nothing there

    def paged(
        self, conn: LDAPObject, flt: str, attrs: Sequence[str]
    ) -> Iterator[tuple[str, dict[str, list[bytes]]]]:
        """Every matching entry, page by page (server size limits do not apply)."""
        ctrl = SimplePagedResultsControl(True, size=_PAGE, cookie="")
        while True:
            try:
                msgid = conn.search_ext(
                    self.config.base_dn,
                    ldap.SCOPE_SUBTREE,
                    flt,
                    list(attrs),
                    serverctrls=[ctrl],
                    timeout=self.config.timeout,
                )
                _, data, _, sctrls = conn.result3(msgid, timeout=self.config.timeout)
            except ldap.NO_SUCH_OBJECT:
                return
            for dn, attrs_ in data or ():
                if dn is not None and isinstance(attrs_, dict):
                    yield dn, _lower_attrs(attrs_)
            cookie = next(
                (
                    c.cookie
                    for c in sctrls
                    if c.controlType == SimplePagedResultsControl.controlType
                ),
                b"",
            )
            if not cookie:
                return
            ctrl.cookie = cookie

    async def _find(self, address: str, attrs: Sequence[str]) -> list[dict[str, list[bytes]]]:
        flt = f"(&(objectClass=pliMailbox){filter_eq('mail', address)})"
        return await self.run(lambda c: self._search(c, flt, attrs, limit=2))

    # --- Directory -------------------------------------------------------------------

    async def resolve(self, address: str) -> Entry | None:
        try:
            key = normalize_address(address)
        except InvalidAddress:
            return None
        found = await self._find(key, _READ_ATTRS)
        return entry_from_ldap(found[0]) if found else None

    async def is_trusted_domain(self, domain: str) -> bool:
        key = domain.strip().lower().rstrip(".")
        if not key:
            return False
        flt = f"(&(objectClass=pliTrustedDomain){filter_eq('pliDomain', key)})"
        return bool(await self.run(lambda c: self._search(c, flt, ["pliDomain"], limit=1)))

    async def search(self, text: str, limit: int = 50) -> list[Entry]:
        needles = words(text)[:_MAX_WORDS]
        if not needles:
            return []
        limit = max(1, min(limit, _SEARCH_LIMIT))
        subs = "".join(f"(pliSearchText=*{escape_filter_chars(w)}*)" for w in needles)
        flt = f"(&(objectClass=pliMailbox)(!(pliListeRouge=TRUE)){subs})"
        found = await self.run(lambda c: self._search(c, flt, _READ_ATTRS, limit=limit))
        entries = [e for e in map(entry_from_ldap, found) if e is not None and not e.liste_rouge]
        return sorted(entries, key=lambda e: e.address)[:limit]

    async def certificates(self, address: str) -> tuple[bytes, ...]:
        entry = await self.resolve(address)
        return entry.certificates if entry else ()

    async def delegates(self, mailbox: str) -> frozenset[str]:
        try:
            key = normalize_address(mailbox)
        except InvalidAddress:
            return frozenset()
        found = await self._find(key, ["pliDelegate"])
        values = found[0].get("pliDelegate", []) if found else []
        return frozenset(v.decode("ascii", "replace").lower() for v in values)

    async def delegated_mailboxes(self, user: str) -> frozenset[str]:
        try:
            key = normalize_address(user)
        except InvalidAddress:
            return frozenset()
        flt = f"(&(objectClass=pliMailbox){filter_eq('pliDelegate', key)})"
        found = await self.run(lambda c: self._search(c, flt, ["mail"], limit=_SEARCH_LIMIT))
        return frozenset(_text(a, "mail").lower() for a in found)

    # --- DirectoryAdmin ----------------------------------------------------------------

    async def _dn_and_kind(self, address: str) -> tuple[str, str]:
        flt = f"(&(objectClass=pliMailbox){filter_eq('mail', address)})"

        def op(conn: LDAPObject) -> list[tuple[str, str]]:
            res = conn.search_ext_s(
                self.config.base_dn,
                ldap.SCOPE_SUBTREE,
                flt,
                ["pliMailboxKind"],
                timeout=self.config.timeout,
                sizelimit=2,
            )
            return [
                (dn, _text(_lower_attrs(a), "pliMailboxKind").upper())
                for dn, a in res
                if dn is not None and isinstance(a, dict)
            ]

        found = await self.run(op)
        if not found:
            raise NotInDirectory(f"{address} is not in the directory")
        return found[0]

    async def set_delegation(self, mailbox: str, user: str, *, revoke: bool = False) -> bool:
        org, person = normalize_address(mailbox), normalize_address(user)
        dn, kind = await self._dn_and_kind(org)
        if not revoke:
            if kind not in DELEGABLE_KINDS:
                raise DelegationRefused(
                    f"{org} is a {kind} mailbox: only ORG, APP and CAB mailboxes are shared"
                )
            _, user_kind = await self._dn_and_kind(person)
            if user_kind != "PER":
                raise DelegationRefused(
                    f"{person} is a {user_kind} mailbox: only a person "
                    "(PER) acts for a shared mailbox"
                )
        mod = ldap.MOD_DELETE if revoke else ldap.MOD_ADD

        def op(conn: LDAPObject) -> bool:
            try:
                conn.modify_s(dn, [(mod, "pliDelegate", [person.encode()])])
            except (ldap.TYPE_OR_VALUE_EXISTS, ldap.NO_SUCH_ATTRIBUTE):
                return False
            return True

        return await self.run(op)

    async def stats(self) -> DirectoryStats:
        def op(conn: LDAPObject) -> DirectoryStats:
            kinds: collections.Counter[str] = collections.Counter()
            rouge = delegations = certs = 0
            domains: set[str] = set()
            attrs = [
                "mail",
                "pliMailboxKind",
                "pliListeRouge",
                "pliDelegate",
                "userCertificate;binary",
            ]
            for _, a in self.paged(conn, "(objectClass=pliMailbox)", attrs):
                kinds[_text(a, "pliMailboxKind").upper()] += 1
                rouge += _text(a, "pliListeRouge").upper() == "TRUE"
                delegations += len(a.get("pliDelegate", []))
                certs += len(a.get(CERT_ATTR, a.get("userCertificate", [])))
                domains.add(_text(a, "mail").rpartition("@")[2].lower())
            trusted = sum(
                1 for _ in self.paged(conn, "(objectClass=pliTrustedDomain)", ["pliDomain"])
            )
            return DirectoryStats(
                backend=self.name,
                entries_by_kind=dict(kinds),
                liste_rouge=rouge,
                domains=len(domains),
                trusted_domains=trusted,
                delegations=delegations,
                certificates=certs,
            )

        return await self.run(op)


def _drop(conn: LDAPObject | None) -> None:
    if conn is None:
        return
    with contextlib.suppress(ldap.LDAPError):  # already broken: nothing to tell the server
        conn.unbind_s()


def describe_error(exc: ldap.LDAPError) -> str:
    info = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    return str(info.get("desc") or type(exc).__name__) + (
        f" ({info['info']})" if info.get("info") else ""
    )


def entry_attrs(entry: Entry, row_hash: str, search_text: str) -> dict[str, list[bytes]]:
    """The LDAP attributes an import writes for an entry (empty fields left out)."""
    out: dict[str, list[bytes]] = {}
    for f, attr in ATTRIBUTES.items():
        value = getattr(entry, f)
        value = value.value if isinstance(value, MailboxKind) else value
        if value:
            out[attr] = [str(value).encode()]
    out["pliRowHash"] = [row_hash.encode()]
    out["pliSearchText"] = [search_text.encode()]
    return out


def ensure_containers(directory: LdapDirectory, conn: LDAPObject) -> None:
    """Create ou=mailboxes and ou=trust under the base if they are missing."""
    for dn, ou in (
        (directory.config.mailboxes_dn, "mailboxes"),
        (directory.config.trust_dn, "trust"),
    ):
        with contextlib.suppress(ldap.ALREADY_EXISTS):
            conn.add_s(dn, [("objectClass", [b"organizationalUnit"]), ("ou", [ou.encode()])])
