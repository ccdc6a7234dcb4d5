"""Which patients a message is about, as pseudonyms the audit trail can carry.

A patient's right to know who accessed their documents needs a link from the
INS to every access; the INS itself is a health identifier and must not sit
in audit entries or logs. So each INS found in a message (IHE XDM packages,
CDA documents sent as such) becomes a keyed pseudonym, HMAC-SHA256 under a
per-installation key held apart (``keys/patient-ref.key``), recorded on the
message's acceptance entry; ``pli audit patient INS`` computes the same
pseudonym to find them. Without the key, the pseudonyms cannot be linked to
an INS by trying all numbers. Parsing runs off the loop and never refuses a
message: a broken package is a policy question, answered elsewhere.
"""

from __future__ import annotations

import email.message
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from gateway.core import mime
from gateway.xdm import XdmError, XdmLimits, read_xdm
from gateway.xdm.ins import Ins, ins_from_cda

__all__ = ["create_patient_key", "load_patient_key", "patient_ins", "patient_ref"]

_MAX_PARTS = 64  # bounded work per message; a bomb was refused before this runs
_CDA_HINT = b"ClinicalDocument"


def create_patient_key(path: Path) -> None:
    """A new random pseudonymisation key (0600); never overwrite one (refs would break)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32) + "\n")


def load_patient_key(path: Path) -> bytes:
    return bytes.fromhex(path.read_text().strip())


def patient_ref(key: bytes, ins: Ins) -> str:
    """The pseudonym of one patient: stable per installation, 80 bits."""
    return hmac.new(key, f"pli-patient\n{ins.value}".encode(), hashlib.sha256).hexdigest()[:20]


def _parts(msg: email.message.Message) -> list[email.message.Message]:
    found: list[email.message.Message] = []
    for part in msg.walk():
        if len(found) >= _MAX_PARTS:
            break
        if not part.is_multipart():
            found.append(part)
    return found


def patient_ins(data: bytes, parsed: email.message.Message | None = None) -> list[Ins]:
    """Every distinct INS carried by the message's XDM packages and CDA documents
    (``parsed``: the tree of ``data`` when the caller has it already)."""
    found: dict[str, Ins] = {}
    for part in _parts(parsed if parsed is not None else mime.parse(data)):
        ctype = part.get_content_type()
        name = (part.get_filename() or "").lower()
        if not (
            ctype
            in (
                "application/zip",
                "application/x-zip-compressed",
                "application/xml",
                "text/xml",
                "application/octet-stream",
            )
            or name.endswith((".zip", ".xml"))
        ):
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes) or not payload:
            continue
        try:
            if payload[:4] == b"PK\x03\x04":
                ins = read_xdm(payload, XdmLimits(), require_ins=False).patient_ins
            elif _CDA_HINT in payload[:4096]:
                ins = ins_from_cda(payload)
            else:
                continue
        except XdmError:
            continue
        if ins is not None:
            found.setdefault(ins.value, ins)
    return list(found.values())
