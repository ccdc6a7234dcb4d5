"""The HSM path for key-encryption keys: AES-256 keys that never leave a PKCS#11 token.

Each data key is wrapped by AES-GCM computed *inside* the token (C_Encrypt
with CKM_AES_GCM), so the KEK is generated there as sensitive and not
extractable, and pli never holds it. KEKs are named ``<key_label>-0001``,
``-0002``…; the highest is current, so rotation is "generate the next one"
and every process sees it at its next unknown id. PKCS#11 sessions are not
thread-safe and their calls block: every call runs on one dedicated thread.
Tested with SoftHSM 2; production points ``module`` at the HSM vendor's library.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, TypeVar

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11.exceptions import PKCS11Error
from pkcs11.mechanisms import GCMParams

from vault.base import IntegrityError, VaultError
from vault.keys import FOLLOW_INTERVAL

__all__ = ["Pkcs11KeyProvider", "TokenOpenError", "open_session"]

T = TypeVar("T")
_AAD = b"pli-dek"


class TokenOpenError(VaultError):
    """A session could not be opened; ``field`` says which setting is wrong."""

    def __init__(self, field: Literal["module", "token_label", "pin"], detail: str = "") -> None:
        super().__init__(field)
        self.field = field
        self.detail = detail


def open_session(module: str, token_label: str, pin: str) -> Any:
    """A logged-in read-write session on the token (blocking: call it from a thread).

    Shared by every PKCS#11 user in pli (this KEK provider, S/MIME keys), so the
    quirks are handled once: a token created after the library was loaded needs
    a re-initialisation to be seen, and logins are per process, so a second
    session in the same process is already logged in.
    """
    try:
        lib = pkcs11.lib(module)
    except (OSError, RuntimeError, PKCS11Error) as exc:
        raise TokenOpenError("module", type(exc).__name__) from None
    try:
        token = lib.get_token(token_label=token_label)
    except pkcs11.NoSuchToken:
        lib.reinitialize()
        try:
            token = lib.get_token(token_label=token_label)
        except pkcs11.NoSuchToken:
            raise TokenOpenError("token_label") from None
    try:
        return token.open(rw=True, user_pin=pin)
    except pkcs11.PinIncorrect:
        raise TokenOpenError("pin") from None
    except pkcs11.UserAlreadyLoggedIn:
        return token.open(rw=True)


class Pkcs11KeyProvider:
    """A :class:`vault.base.KeyProvider` over one token; build with :meth:`open`."""

    def __init__(self, module: str, token_label: str, pin: str, key_label: str) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,26}", key_label):
            raise VaultError("vault.pkcs11.key_label: 1-26 letters, digits, '_', '.', '-'")
        self._module, self._token_label, self._pin = module, token_label, pin
        self._prefix = key_label
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pli-pkcs11")
        self._session: Any = None
        self._keys: dict[str, Any] = {}
        self._current = ""
        self._checked = 0.0

    @classmethod
    async def open(
        cls, module: str, token_label: str, pin: str, key_label: str
    ) -> Pkcs11KeyProvider:
        """Log in and load the KEKs; create the first one on a token that has none."""
        provider = cls(module, token_label, pin, key_label)
        await provider._run(provider._login)
        if not provider._current:
            await provider.rotate()
        return provider

    async def _run(self, fn: Any, *args: Any) -> Any:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)
        except PKCS11Error as exc:
            raise VaultError(f"HSM error: {type(exc).__name__}") from exc

    def _login(self) -> None:
        try:
            self._session = open_session(self._module, self._token_label, self._pin)
        except TokenOpenError as exc:
            detail = {
                "module": f"cannot load {self._module}: {exc.detail}",
                "token_label": f"no token labelled {self._token_label!r}",
                "pin": "the token refused the PIN",
            }[exc.field]
            raise VaultError(f"vault.pkcs11.{exc.field}: {detail}") from None
        self._load()

    def _load(self) -> None:
        pattern = re.compile(re.escape(self._prefix) + r"-(\d{4})")
        found = {}
        for key in self._session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY}):
            label = key[Attribute.LABEL]
            if pattern.fullmatch(label):
                found[label] = key
        self._keys = found  # keys destroyed by another process disappear here too
        self._current = max(found, default="")
        self._checked = time.monotonic()

    def current_kek_id(self) -> str:
        return self._current

    def kek_ids(self) -> list[str]:
        return sorted(self._keys)

    async def rotate(self) -> str:
        """Generate the next KEK inside the token; it wraps every new data key from now."""

        def _generate() -> str:
            self._load()  # another process may have rotated meanwhile
            number = int(self._current.rsplit("-", 1)[1]) + 1 if self._current else 1
            label = f"{self._prefix}-{number:04d}"
            self._keys[label] = self._session.generate_key(
                KeyType.AES,
                256,
                label=label,
                id=label.encode(),
                store=True,
                capabilities=MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT,
                template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False},
            )
            self._current = label
            return label

        return str(await self._run(_generate))

    async def wrap(self, dek: bytes) -> tuple[str, bytes]:
        if time.monotonic() - self._checked >= FOLLOW_INTERVAL:
            await self._run(self._load)  # follow a rotation made by another process
        label, nonce = self._current, os.urandom(12)
        key = self._keys[label]
        wrapped = await self._run(
            lambda: key.encrypt(
                dek, mechanism=Mechanism.AES_GCM, mechanism_param=GCMParams(nonce, _AAD, 128)
            )
        )
        return label, nonce + bytes(wrapped)

    async def unwrap(self, kek_id: str, wrapped: bytes) -> bytes:
        key = self._keys.get(kek_id)
        if key is None:  # rotated by another process: look again
            await self._run(self._load)
            key = self._keys.get(kek_id)
        if key is None:
            raise VaultError(f"unknown key-encryption key id {kek_id} in the HSM")
        try:
            return bytes(
                await self._run(
                    lambda: key.decrypt(
                        wrapped[12:],
                        mechanism=Mechanism.AES_GCM,
                        mechanism_param=GCMParams(wrapped[:12], _AAD, 128),
                    )
                )
            )
        except VaultError as exc:
            raise IntegrityError("wrapped data key failed authentication in the HSM") from exc

    async def destroy(self, kek_ids: list[str]) -> None:
        """Remove KEKs nothing references any more (never the current one)."""

        def _destroy() -> None:
            for kek_id in kek_ids:
                if kek_id != self._current and kek_id in self._keys:
                    self._keys.pop(kek_id).destroy()

        await self._run(_destroy)

    async def aclose(self) -> None:
        def _close() -> None:
            if self._session is not None:
                self._session.close()
                self._session = None

        await self._run(_close)
        self._thread.shutdown(wait=True)
