"""Selected-state commands (RFC 3501 §6.4): FETCH, STORE, SEARCH, COPY, EXPUNGE, CLOSE,
CHECK, with UID forms, UNSELECT (RFC 3691), UID EXPUNGE and COPYUID (RFC 4315), MOVE
(RFC 6851), IDLE (RFC 2177) and the CONDSTORE modifiers (RFC 7162).

Every message is addressed through the session's own view (sequence numbers
and UIDs the client was told about), and every body the server reads goes
through the backend's audited read. Nothing here logs flags, keys or content.
"""

from __future__ import annotations

import asyncio
import contextlib

from gateway.base.errors import MessageNotFound
from gateway.core.ports import MessageInfo, StoreMode
from gateway.imap.fetch import parse_fetch_items, render_fetch
from gateway.imap.parser import Command, ParseError, Token
from gateway.imap.responses import tagged
from gateway.imap.search import Target, matches, needs_content, parse_search
from gateway.imap.session_base import (
    No,
    Outcome,
    Send,
    SessionBase,
    State,
    mailbox_name,
    parse_flags,
    uid_set,
)

__all__ = ["MessageCommands"]

_CHARSETS = ("US-ASCII", "UTF-8")


def _modifier(tok: Token, name: str) -> int:
    """``(CHANGEDSINCE n)`` / ``(UNCHANGEDSINCE n)`` (RFC 7162 §3.1.3, §3.1.4)."""
    if (
        not isinstance(tok, list)
        or len(tok) != 2
        or not isinstance(tok[0], str)
        or tok[0].upper() != name
        or not isinstance(tok[1], str)
        or not tok[1].isdigit()
        or len(tok[1]) > 20
    ):
        raise ParseError(f"expected ({name} <mod-sequence>)")
    return int(tok[1])


class MessageCommands(SessionBase):
    def _writable(self) -> None:
        if self.readonly:
            raise No("[READ-ONLY] Mailbox is read-only")

    async def fetch(self, cmd: Command, send: Send) -> Outcome:
        by_uid = cmd.name == "UID FETCH"
        if len(cmd.args) not in (2, 3):
            raise ParseError("FETCH needs a sequence set and items")
        items = parse_fetch_items(cmd.args[1])
        changed_since = _modifier(cmd.args[2], "CHANGEDSINCE") if len(cmd.args) == 3 else None
        if changed_since is not None or any(i.name == "MODSEQ" for i in items):
            self.condstore = True  # RFC 7162 §3.1: a CONDSTORE-enabling command
        if by_uid and not any(i.name == "UID" for i in items):
            items.insert(0, parse_fetch_items("UID")[0])
        if changed_since is not None and not any(i.name == "MODSEQ" for i in items):
            items.append(parse_fetch_items("MODSEQ")[0])
        targets = self.targets(cmd.args[0], by_uid)
        if changed_since is not None:
            targets = [(s, m) for s, m in targets if m.modseq > changed_since]
        need_body = any(i.needs_body for i in items)
        need_structure = not need_body and any(i.needs_structure for i in items)
        mark_seen = not self.readonly and any(i.sets_seen for i in items)
        for seq, info in targets:
            body = None
            stored = None
            try:
                if need_body:
                    body = await self.backend.fetch_body(
                        self.user, self.selected, info.uid, self.remote
                    )
                elif need_structure:
                    stored = await self.backend.fetch_structure(
                        self.user, self.selected, info.uid, self.remote
                    )
            except MessageNotFound:
                continue  # expunged by another session meanwhile
            shown = items
            if mark_seen and "\\Seen" not in info.flags:
                result = await self.backend.store_flags(
                    self.user, self.selected, [info.uid], StoreMode.ADD, frozenset({"\\Seen"})
                )
                for new in result.changed:
                    info = self.infos[new.uid] = new
                if not any(i.name == "FLAGS" for i in items):
                    shown = [*items, parse_fetch_items("FLAGS")[0]]
                if self.condstore and not any(i.name == "MODSEQ" for i in shown):
                    shown = [*shown, parse_fetch_items("MODSEQ")[0]]  # RFC 7162 §3.2
            await send(render_fetch(seq, info, shown, body, info.flags, stored))
        await send(tagged(cmd.tag, "OK", f"{cmd.name} completed"))
        return Outcome()

    async def store(self, cmd: Command, send: Send) -> Outcome:
        args = list(cmd.args)
        unchanged_since = None
        if len(args) == 4:
            unchanged_since = _modifier(args.pop(1), "UNCHANGEDSINCE")
            self.condstore = True
        if len(args) != 3 or not isinstance(args[1], str):
            raise ParseError("STORE needs a sequence set, an operation and flags")
        op = args[1].upper()
        base = op.removesuffix(".SILENT")
        if base not in ("FLAGS", "+FLAGS", "-FLAGS"):
            raise ParseError("STORE operation must be [+-]FLAGS[.SILENT]")
        mode = (
            StoreMode.ADD
            if base[0] == "+"
            else StoreMode.REMOVE
            if base[0] == "-"
            else StoreMode.REPLACE
        )
        flags = parse_flags(args[2])
        self._writable()
        by_uid = cmd.name == "UID STORE"
        targets = self.targets(args[0], by_uid)
        seq_of = {m.uid: s for s, m in targets}
        result = await self.backend.store_flags(
            self.user, self.selected, list(seq_of), mode, flags, unchanged_since
        )
        for new in result.changed:
            if new.uid in self.infos:
                self.infos[new.uid] = new
        silent = op.endswith(".SILENT")
        for new in result.changed:
            # RFC 7162 §3.2: with UNCHANGEDSINCE the FETCH is sent even when silent.
            if new.uid in seq_of and (not silent or unchanged_since is not None):
                await send(self.flag_fetch(seq_of[new.uid], new, uid=by_uid))
        text = f"{cmd.name} completed"
        if result.refused:
            ids = sorted(result.refused) if by_uid else sorted(seq_of[u] for u in result.refused)
            text = f"[MODIFIED {uid_set(ids)}] Conditional STORE failed for some"
        await send(tagged(cmd.tag, "OK", text))
        return Outcome()

    async def search(self, cmd: Command, send: Send) -> Outcome:
        key, charset = parse_search(cmd.args)
        if charset is not None and charset not in _CHARSETS:
            raise No(f"[BADCHARSET ({' '.join(_CHARSETS)})] Unsupported charset")
        by_uid = cmd.name == "UID SEARCH"
        content = needs_content(key)
        found: list[MessageInfo] = []
        largest_uid = self.uids[-1] if self.uids else 0
        hits: list[int] = []
        for seq, uid in enumerate(list(self.uids), 1):
            info = self.infos[uid]
            body = None
            if content:
                try:
                    body = await self.backend.fetch_body(
                        self.user, self.selected, uid, self.remote, purpose="search"
                    )
                except MessageNotFound:
                    continue
            if matches(key, Target(seq, info, len(self.uids), largest_uid), body):
                found.append(info)
                hits.append(uid if by_uid else seq)
        line = "* SEARCH" + "".join(f" {n}" for n in hits)
        if _uses_modseq(cmd.args) and found:  # RFC 7162 §3.1.5
            self.condstore = True
            line += f" (MODSEQ {max(m.modseq for m in found)})"
        await send(line.encode() + b"\r\n" + tagged(cmd.tag, "OK", f"{cmd.name} completed"))
        return Outcome()

    async def copy(self, cmd: Command, send: Send) -> Outcome:
        move = cmd.name in ("MOVE", "UID MOVE")
        if len(cmd.args) != 2:
            raise ParseError(f"{cmd.name} needs a sequence set and a mailbox")
        by_uid = cmd.name.startswith("UID ")
        targets = self.targets(cmd.args[0], by_uid)
        dest = mailbox_name(cmd.args[1])
        if move:
            self._writable()
        if not targets:
            await send(tagged(cmd.tag, "OK", f"{cmd.name} completed, nothing to do"))
            return Outcome()
        result = await self.backend.copy(
            self.user, self.selected, [m.uid for _, m in targets], dest, self.remote, move=move
        )
        code = ""
        if result.pairs:
            code = (
                f"[COPYUID {result.uid_validity} {uid_set([s for s, _ in result.pairs])} "
                f"{uid_set([d for _, d in result.pairs])}] "
            )
        if move:
            # RFC 6851 §4.3: COPYUID in an untagged OK before the EXPUNGEs.
            if code:
                await send(f"* OK {code}Moved\r\n".encode())
            await self.announce_expunged([s for s, _ in result.pairs], send)
            await send(tagged(cmd.tag, "OK", f"{cmd.name} completed"))
        else:
            await send(tagged(cmd.tag, "OK", f"{code}{cmd.name} completed"))
        if dest == self.mailbox:
            await self.sync(send)
        return Outcome()

    async def expunge(self, cmd: Command, send: Send) -> Outcome:
        self._writable()
        uids = None
        if cmd.name == "UID EXPUNGE":  # RFC 4315 §2.1
            if len(cmd.args) != 1:
                raise ParseError("UID EXPUNGE needs a UID set")
            uids = [m.uid for _, m in self.targets(cmd.args[0], True)]
        elif cmd.args:
            raise ParseError("EXPUNGE takes no arguments")
        gone = await self.backend.expunge(self.user, self.selected, uids, self.remote)
        await self.announce_expunged(gone, send)
        await self.sync(send)
        await send(tagged(cmd.tag, "OK", f"{cmd.name} completed"))
        return Outcome()

    async def close(self, cmd: Command, send: Send) -> Outcome:
        if cmd.name == "CLOSE" and not self.readonly:  # RFC 3501 §6.4.2: silent expunge
            await self.backend.expunge(self.user, self.selected, None, self.remote)
        self.deselect()
        self.state = State.AUTHENTICATED
        await send(tagged(cmd.tag, "OK", f"{cmd.name} completed"))
        return Outcome()

    async def idle(self, cmd: Command, send: Send) -> Outcome:
        """RFC 2177: report changes as they happen until the client says DONE.

        Woken by the notifier when this mailbox owner's mail changes, and by a
        poll interval (changes made by another instance); the idle timeout
        still ends a session that never says DONE.
        """
        if cmd.args:
            raise ParseError("IDLE takes no arguments")
        if self.read_line is None:
            raise No("[CANNOT] IDLE not available")
        event = self.notifier.subscribe(self.owner) if self.notifier and self.owner else None
        await send(b"+ idling\r\n")
        reader = asyncio.ensure_future(self.read_line())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.idle_timeout
        try:
            await self.sync(send)
            while True:
                waits: set[asyncio.Future[object]] = {reader}  # type: ignore[arg-type]
                woken = asyncio.ensure_future(event.wait()) if event else None
                if woken is not None:
                    waits.add(woken)  # type: ignore[arg-type]
                timeout = min(self.idle_poll, max(0.0, deadline - loop.time()))
                await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                if woken is not None and not woken.done():
                    woken.cancel()
                if reader.done():
                    break
                if loop.time() >= deadline:
                    await send(b"* BYE Autologout; idle for too long\r\n")
                    return Outcome(close=True)
                if event is not None:
                    event.clear()
                await self.sync(send)
        finally:
            if event is not None and self.notifier is not None:
                self.notifier.unsubscribe(self.owner, event)
            if not reader.done():
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await reader
        line = reader.result()
        if line.rstrip(b"\r\n").upper() != b"DONE":
            await send(tagged(cmd.tag, "BAD", "Expected DONE"))
            return Outcome()
        await send(tagged(cmd.tag, "OK", "IDLE terminated"))
        return Outcome()


def _uses_modseq(tokens: tuple[Token, ...]) -> bool:
    for tok in tokens:
        if isinstance(tok, list) and _uses_modseq(tuple(tok)):
            return True
        if isinstance(tok, str) and tok.upper() == "MODSEQ":
            return True
    return False
