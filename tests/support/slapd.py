"""A real OpenLDAP slapd for the tests: cn=config built from deploy/ldap, loopback, temp dir.

The configuration loads the same ``deploy/ldap/pli.ldif`` schema an operator
loads, plus Debian's core, cosine and inetorgperson schemas, and one MDB
database with the indexes of ``deploy/ldap/pli-database.ldif``. slapd runs in
the foreground (``-d 0``) on an ephemeral loopback port, and can be stopped
and started again on the same port (reconnection tests).
"""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.support.servers import free_port, stop_process

__all__ = ["BASE_DN", "ROOT_DN", "ROOT_PW", "Slapd", "new_subtree"]

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_DIR = Path("/etc/ldap/schema")
MODULE_DIR = Path("/usr/lib/ldap")
BASE_DN = "dc=pli,dc=test"
ROOT_DN = f"cn=admin,{BASE_DN}"
ROOT_PW = "slapd-test-secret"
_HINT = "install slapd and ldap-utils (deploy/dev/apt-deps.sh does it)"


def _indexes() -> list[str]:
    text = (ROOT / "deploy/ldap/pli-database.ldif").read_text()
    return [line for line in text.splitlines() if line.startswith("olcDbIndex:")]


class Slapd:
    """One slapd instance in ``root`` (config, data, log)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"ldap://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None
        self._conf = root / "slapd.d"
        self._data = root / "data"

    def _config_ldif(self) -> str:
        includes = "\n".join(
            f"include: file://{SCHEMA_DIR / n}.ldif" for n in ("core", "cosine", "inetorgperson")
        )
        indexes = "\n".join(_indexes())
        return f"""\
dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: {self.root / "slapd.pid"}

dn: cn=module{{0}},cn=config
objectClass: olcModuleList
cn: module{{0}}
olcModulePath: {MODULE_DIR}
olcModuleLoad: back_mdb

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

{includes}
include: file://{ROOT / "deploy/ldap/pli.ldif"}

dn: olcDatabase={{-1}}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {{-1}}frontend

dn: olcDatabase={{1}}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {{1}}mdb
olcSuffix: {BASE_DN}
olcRootDN: {ROOT_DN}
olcRootPW: {ROOT_PW}
olcDbDirectory: {self._data}
olcDbMaxSize: 8589934592
olcDbNoSync: TRUE
{indexes}
olcAccess: to * by dn.exact="{ROOT_DN}" write by * read
"""

    def setup(self) -> None:
        for tool in ("slapd", "slapadd"):
            if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
                raise RuntimeError(f"{tool} not found: {_HINT}")
        self._conf.mkdir(parents=True)
        self._data.mkdir(parents=True)
        ldif = self.root / "config.ldif"
        ldif.write_text(self._config_ldif())
        subprocess.run(
            ["slapadd", "-n0", "-F", str(self._conf), "-l", str(ldif)],
            check=True,
            capture_output=True,
        )
        base = self.root / "base.ldif"
        base.write_text(
            f"dn: {BASE_DN}\nobjectClass: dcObject\nobjectClass: organization\n"
            f"dc: pli\no: pli tests\n"
        )
        subprocess.run(
            ["slapadd", "-n1", "-F", str(self._conf), "-l", str(base)],
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        if self._proc is not None:
            return
        log = (self.root / "slapd.log").open("ab")
        self._proc = subprocess.Popen(
            ["slapd", "-d", "0", "-h", f"{self.url}/", "-F", str(self._conf)],
            stdout=log,
            stderr=log,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"slapd exited: see {self.root / 'slapd.log'}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("slapd did not start listening within 20 s")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        stop_process(proc)


def new_subtree(server: Slapd) -> str:
    """An empty ``ou=`` under the test suffix: one test's own directory base."""
    import ldap

    base = f"ou=t{secrets.token_hex(5)},{BASE_DN}"
    conn = ldap.initialize(server.url)
    conn.simple_bind_s(ROOT_DN, ROOT_PW)
    conn.add_s(
        base, [("objectClass", [b"organizationalUnit"]), ("ou", [base.split(",")[0][3:].encode()])]
    )
    conn.unbind_s()
    return base
