"""What the policy needs to know of a message's MIME structure: its parts' types.

Parsing runs off the event loop (a 50 MB message takes a while) and only
after a cheap bound: a message whose boundary-looking lines exceed the part
limit is refused without building a tree (MIME bombs). Part names are never
returned: attachment names are content and stay out of logs and decisions.
"""

from __future__ import annotations

import asyncio
import email.message
import email.parser
import email.policy

__all__ = [
    "MAX_DEPTH",
    "MAX_HEADER_BYTES",
    "MAX_HEADER_FIELDS",
    "MimeSummary",
    "header_problem",
    "parse",
    "summarize",
]

MAX_DEPTH = 16  # nesting of multiparts; deeper is a bomb, not a document
MAX_HEADER_BYTES = 256 * 1024  # the top-level header section (Postfix: 100 KB)
MAX_HEADER_FIELDS = 1000


def header_problem(content: bytes) -> str:
    """Why the message's header section is unacceptable ('' when it is fine)."""
    end = content.find(b"\r\n\r\n")
    head = content[: MAX_HEADER_BYTES + 4] if end < 0 else content[: end + 2]
    if len(head) > MAX_HEADER_BYTES:
        return f"header section larger than {MAX_HEADER_BYTES} bytes"
    fields = sum(1 for line in head.split(b"\r\n") if line and line[:1] not in b" \t")
    if fields > MAX_HEADER_FIELDS:
        return f"more than {MAX_HEADER_FIELDS} header fields"
    return ""


class MimeSummary:
    """``message`` is the parsed tree, kept so that later steps of the same delivery
    (patients, notarisation) reuse it: a 100 KB message took three full parses."""

    __slots__ = ("depth", "message", "part_types", "too_many_parts")

    def __init__(
        self,
        part_types: list[str],
        depth: int,
        too_many_parts: bool,
        message: email.message.Message | None = None,
    ) -> None:
        self.part_types = part_types
        self.depth = depth
        self.too_many_parts = too_many_parts
        self.message = message


def parse(content: bytes) -> email.message.Message:
    """The whole tree (compat32: bytes in, bytes out, no header refolding)."""
    return email.parser.BytesParser(policy=email.policy.compat32).parsebytes(content)


def _summarize(content: bytes, max_parts: int) -> MimeSummary:
    if content.count(b"\n--") > 2 * max_parts + 2:
        return MimeSummary([], 0, True)
    msg = parse(content)
    types: list[str] = []
    depth = 0
    stack = [(msg, 1)]
    while stack:
        part, level = stack.pop()
        depth = max(depth, level)
        types.append(part.get_content_type())
        if len(types) > max_parts:
            return MimeSummary(types, depth, True)  # no tree kept: nobody may walk a bomb
        if part.is_multipart() and level <= MAX_DEPTH:
            payload = part.get_payload()
            if isinstance(payload, list):
                stack.extend(
                    (p, level + 1)
                    for p in reversed(payload)
                    if isinstance(p, email.message.Message)
                )
    return MimeSummary(types, depth, False, msg)


async def summarize(content: bytes, max_parts: int) -> MimeSummary:
    """The content types of every part (depth first), in a worker thread."""
    return await asyncio.to_thread(_summarize, content, max_parts)
