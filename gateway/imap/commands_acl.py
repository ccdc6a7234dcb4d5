"""Access control commands (RFC 4314): MYRIGHTS, GETACL, LISTRIGHTS, SETACL, DELETEACL.

pli shares ORG/APP mailboxes with the users the directory delegates to them;
rights refine what each delegate may do there and are checked by the
backend on every operation. These commands only read and set those rights,
through the backend, after a syntax check of the rights string. Nothing here
logs an identifier or a right.
"""

from __future__ import annotations

import re

from gateway.core.ports import ALL_RIGHTS
from gateway.imap.parser import Command, ParseError
from gateway.imap.responses import quote, tagged
from gateway.imap.session_base import Outcome, Send, SessionBase, astring, mailbox_name

__all__ = ["AclCommands"]

# RFC 4314 §2.1 rights, plus the obsolete "c" and "d" of RFC 2086 (§2.1.1 maps them).
_RIGHTS = re.compile(r"^[+-]?[lrswipkxteacd]{0,12}$", re.ASCII)
_LEGACY = {"c": "k", "d": "xte"}


def _canonical(rights: str) -> str:
    expanded = "".join(_LEGACY.get(r, r) for r in rights)
    return "".join(r for r in ALL_RIGHTS if r in expanded)


class AclCommands(SessionBase):
    async def myrights(self, cmd: Command, send: Send) -> Outcome:
        if len(cmd.args) != 1:
            raise ParseError("MYRIGHTS needs a mailbox name")
        name = mailbox_name(cmd.args[0])
        mine, _ = await self.backend.get_acl(self.user, name)
        await send(
            b"* MYRIGHTS "
            + quote(name)
            + b" "
            + quote(mine)
            + b"\r\n"
            + tagged(cmd.tag, "OK", "MYRIGHTS completed")
        )
        return Outcome()

    async def getacl(self, cmd: Command, send: Send) -> Outcome:
        if len(cmd.args) != 1:
            raise ParseError("GETACL needs a mailbox name")
        name = mailbox_name(cmd.args[0])
        mine, entries = await self.backend.get_acl(self.user, name)
        if "a" not in mine:  # RFC 4314 §3.3: GETACL needs the a right
            await send(tagged(cmd.tag, "NO", "[NOPERM] Missing right a"))
            return Outcome()
        out = (
            b"* ACL "
            + quote(name)
            + b"".join(b" " + quote(i) + b" " + quote(r) for i, r in entries)
        )
        await send(out + b"\r\n" + tagged(cmd.tag, "OK", "GETACL completed"))
        return Outcome()

    async def listrights(self, cmd: Command, send: Send) -> Outcome:
        if len(cmd.args) != 2:
            raise ParseError("LISTRIGHTS needs a mailbox name and an identifier")
        name = mailbox_name(cmd.args[0])
        ident = astring(cmd.args[1], "identifier")
        mine, _ = await self.backend.get_acl(self.user, name)
        if "a" not in mine:
            await send(tagged(cmd.tag, "NO", "[NOPERM] Missing right a"))
            return Outcome()
        # Nothing is granted unconditionally; each right can be given on its own.
        await send(
            b"* LISTRIGHTS "
            + quote(name)
            + b" "
            + quote(ident)
            + b' ""'
            + b"".join(b" " + r.encode() for r in ALL_RIGHTS)
            + b"\r\n"
            + tagged(cmd.tag, "OK", "LISTRIGHTS completed")
        )
        return Outcome()

    async def setacl(self, cmd: Command, send: Send) -> Outcome:
        deleting = cmd.name == "DELETEACL"
        if len(cmd.args) != (2 if deleting else 3):
            raise ParseError(
                f"{cmd.name} needs a mailbox name, an identifier"
                + ("" if deleting else " and rights")
            )
        name = mailbox_name(cmd.args[0])
        ident = astring(cmd.args[1], "identifier")
        rights: str | None = None
        if not deleting:
            text = astring(cmd.args[2], "rights")
            if not _RIGHTS.fullmatch(text):
                raise ParseError("invalid rights string")  # RFC 4314 §3.1
            _, entries = await self.backend.get_acl(self.user, name)
            current = dict(entries).get(ident.lower(), "")
            wanted = _canonical(text.lstrip("+-"))
            rights = (
                _canonical(current + wanted)
                if text.startswith("+")
                else _canonical("".join(r for r in current if r not in wanted))
                if text.startswith("-")
                else wanted
            )
        await self.backend.set_acl(self.user, name, ident, rights)
        await send(tagged(cmd.tag, "OK", f"{cmd.name} completed"))
        return Outcome()
