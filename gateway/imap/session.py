"""The IMAP session state machine (RFC 3501 §3): which command may run in which state.

:class:`Session` joins the command groups (``commands_auth``,
``commands_mailbox``, ``commands_message``, ``commands_acl``) and owns the one place where a
command's failure becomes a tagged reply: protocol errors are BAD, refusals
NO with an RFC 5530 code, anything unexpected ``NO [SERVERBUG]`` with the
session id — never ``str(exc)``. Only command names are logged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog

from gateway.base import events
from gateway.imap.commands_acl import AclCommands
from gateway.imap.commands_auth import AuthCommands
from gateway.imap.commands_mailbox import MailboxCommands
from gateway.imap.commands_message import MessageCommands
from gateway.imap.parser import Command, ParseError
from gateway.imap.responses import error_reply, expected, tagged
from gateway.imap.session_base import No, Outcome, Send, State

__all__ = ["Outcome", "Session", "State"]

log = structlog.get_logger("pli.imap")


class Session(AuthCommands, MailboxCommands, MessageCommands, AclCommands):
    """One connection's IMAP state; :meth:`handle` answers one parsed command."""

    async def handle(self, cmd: Command, send: Send) -> Outcome:
        """Run one command; every failure becomes a tagged reply, never an exception."""
        handler = _HANDLERS.get(cmd.name)
        log.debug(events.IMAP_COMMAND, command=cmd.name if handler else "unknown")
        if handler is None:
            await send(tagged(cmd.tag, "BAD", "Unknown command"))
            return Outcome()
        allowed, method = handler
        if self.state not in allowed:
            await send(
                tagged(cmd.tag, "BAD", f"{cmd.name} not allowed in state {self.state.value}")
            )
            return Outcome()
        try:
            return await method(self, cmd, send)
        except No as exc:
            await send(tagged(cmd.tag, "NO", str(exc)))
        except ParseError as exc:
            await send(tagged(cmd.tag, "BAD", exc.reason))
        except (ConnectionError, OSError):
            raise  # the peer is gone: the server closes the connection
        except Exception as exc:  # answered by the one error->reply function; session kept
            if not expected(exc):  # a bug or a dependency down
                log.error(
                    events.IMAP_COMMAND,
                    command=cmd.name,
                    result="exception",
                    error=type(exc).__name__,
                    exc_info=exc,
                )
            await send(error_reply(cmd.tag, exc, self.session_id))
        return Outcome()


_ANY = frozenset({State.NOT_AUTHENTICATED, State.AUTHENTICATED, State.SELECTED})
_NOT_AUTH = frozenset({State.NOT_AUTHENTICATED})
_AUTH = frozenset({State.AUTHENTICATED, State.SELECTED})
_SEL = frozenset({State.SELECTED})
_Handler = Callable[[Session, Command, Send], Awaitable[Outcome]]
_HANDLERS: dict[str, tuple[frozenset[State], _Handler]] = {
    "CAPABILITY": (_ANY, Session.capability),
    "NOOP": (_ANY, Session.noop),
    "LOGOUT": (_ANY, Session.logout),
    "ID": (_ANY, Session.id),
    "STARTTLS": (_NOT_AUTH, Session.starttls),
    "LOGIN": (_NOT_AUTH, Session.login),
    "AUTHENTICATE": (_NOT_AUTH, Session.authenticate),
    "ENABLE": (_AUTH, Session.enable),
    "NAMESPACE": (_AUTH, Session.namespace),
    "SELECT": (_AUTH, Session.select),
    "EXAMINE": (_AUTH, Session.select),
    "CREATE": (_AUTH, Session.create),
    "DELETE": (_AUTH, Session.delete),
    "RENAME": (_AUTH, Session.rename),
    "SUBSCRIBE": (_AUTH, Session.subscribe),
    "UNSUBSCRIBE": (_AUTH, Session.subscribe),
    "LIST": (_AUTH, Session.list),
    "LSUB": (_AUTH, Session.list),
    "STATUS": (_AUTH, Session.status),
    "APPEND": (_AUTH, Session.append),
    "IDLE": (_AUTH, Session.idle),
    "MYRIGHTS": (_AUTH, Session.myrights),
    "GETACL": (_AUTH, Session.getacl),
    "LISTRIGHTS": (_AUTH, Session.listrights),
    "SETACL": (_AUTH, Session.setacl),
    "DELETEACL": (_AUTH, Session.setacl),
    "CHECK": (_SEL, Session.noop),
    "FETCH": (_SEL, Session.fetch),
    "UID FETCH": (_SEL, Session.fetch),
    "STORE": (_SEL, Session.store),
    "UID STORE": (_SEL, Session.store),
    "SEARCH": (_SEL, Session.search),
    "UID SEARCH": (_SEL, Session.search),
    "COPY": (_SEL, Session.copy),
    "UID COPY": (_SEL, Session.copy),
    "MOVE": (_SEL, Session.copy),
    "UID MOVE": (_SEL, Session.copy),
    "EXPUNGE": (_SEL, Session.expunge),
    "UID EXPUNGE": (_SEL, Session.expunge),
    "CLOSE": (_SEL, Session.close),
    "UNSELECT": (_SEL, Session.close),
}
