"""Mailbox and notary keys held in a PKCS#11 token: RSA keys that sign and decrypt there.

The S/MIME code calls ``key.sign(data, padding, hash)`` and ``key.decrypt(data,
padding)`` on what it is given; :class:`TokenRsaKey` is an RSA private key
whose two operations run inside the token (CKM_SHA*_RSA_PKCS[_PSS],
CKM_RSA_PKCS[_OAEP]) and whose private half can never be read: exporting it
raises. Keys are found by label (the mailbox address). ``import_key`` moves a
PEM key into the token as sensitive and not extractable, the migration path
from files to an HSM (``pli pki hsm-import``). Calls block: callers already run
crypto off the event loop; one lock serialises the session (PKCS#11 sessions
are not thread-safe). Tested with SoftHSM 2;
opening the session is shared with the vault's KEK provider (vault.pkcs11).
"""

from __future__ import annotations

import hmac
import threading
from typing import Any, NoReturn

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import NoDigestInfo, Prehashed
from pkcs11 import Attribute, Mechanism, ObjectClass, exceptions
from pkcs11.exceptions import PKCS11Error
from pkcs11.mechanisms import MGF
from pkcs11.util.rsa import decode_rsa_private_key

from gateway.base.errors import Unavailable
from gateway.smime.cms import SmimeError
from vault.pkcs11 import TokenOpenError, open_session

__all__ = ["HsmError", "HsmUnavailable", "Token", "TokenRsaKey"]

_SIGN = {
    "sha256": Mechanism.SHA256_RSA_PKCS,
    "sha384": Mechanism.SHA384_RSA_PKCS,
    "sha512": Mechanism.SHA512_RSA_PKCS,
}
_SIGN_PSS = {
    "sha256": Mechanism.SHA256_RSA_PKCS_PSS,
    "sha384": Mechanism.SHA384_RSA_PKCS_PSS,
    "sha512": Mechanism.SHA512_RSA_PKCS_PSS,
}
_HASH = {
    "sha1": (Mechanism.SHA_1, MGF.SHA1),
    "sha256": (Mechanism.SHA256, MGF.SHA256),
    "sha384": (Mechanism.SHA384, MGF.SHA384),
    "sha512": (Mechanism.SHA512, MGF.SHA512),
}


class HsmError(SmimeError):
    """The token refused what was asked, and would refuse it again (a mechanism it does not
    offer, data its key cannot decrypt): permanent."""


class HsmUnavailable(Unavailable):
    """The token or its session is gone or failing (removed, closed, out of memory): a
    temporary failure, so SMTP answers 451 and the sender retries — never a message
    delivered as undecryptable because the HSM hiccuped."""

    default_reason = "hsm-unavailable"

    def __init__(self) -> None:
        super().__init__("The HSM is unavailable, try again later")


# PKCS#11 failures of the device or the session, not of the request (PKCS#11 v2.40 §5.1).
_DEVICE_FAILURES: tuple[type[PKCS11Error], ...] = (
    exceptions.DeviceError,
    exceptions.DeviceMemory,
    exceptions.DeviceRemoved,
    exceptions.FunctionFailed,
    exceptions.GeneralError,
    exceptions.HostMemory,
    exceptions.SessionClosed,
    exceptions.SessionCount,
    exceptions.SessionHandleInvalid,
    exceptions.TokenNotPresent,
    exceptions.TokenNotRecognised,
    exceptions.UserNotLoggedIn,
)


class Token:
    """One logged-in session on a token, shared by the keys found on it."""

    def __init__(self, module: str, token_label: str, pin: str) -> None:
        try:
            self._session = open_session(module, token_label, pin)
        except TokenOpenError as exc:
            raise HsmError(
                {
                    "module": f"cannot load the PKCS#11 module {module}: {exc.detail}",
                    "token_label": f"no PKCS#11 token labelled {token_label!r}",
                    "pin": "the token refused the PIN",
                }[exc.field]
            ) from None
        self.lock = threading.Lock()

    def key(self, label: str, public: rsa.RSAPublicKey) -> TokenRsaKey | None:
        """The private key labelled ``label``, if the token has it."""
        with self.lock:
            found = list(
                self._session.get_objects(
                    {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: label}
                )
            )
        return TokenRsaKey(self, found[0], public) if found else None

    def import_key(self, label: str, key: rsa.RSAPrivateKey) -> None:
        """Store ``key`` in the token as sensitive, not extractable; refuse a second copy."""
        der = key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        attrs = decode_rsa_private_key(der)
        attrs.update(
            {
                Attribute.LABEL: label,
                Attribute.ID: label.encode(),
                Attribute.TOKEN: True,
                Attribute.PRIVATE: True,
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False,
                Attribute.SIGN: True,
                Attribute.DECRYPT: True,
            }
        )
        with self.lock:
            if list(
                self._session.get_objects(
                    {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: label}
                )
            ):
                raise HsmError(f"the token already holds a key labelled {label}")
            self._session.create_object(attrs)

    def run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            try:
                return fn(*args, **kwargs)
            except _DEVICE_FAILURES as exc:
                raise HsmUnavailable() from exc
            except PKCS11Error as exc:
                raise HsmError(f"the token refused the operation: {type(exc).__name__}") from None

    def close(self) -> None:
        with self.lock:
            self._session.close()


class TokenRsaKey(rsa.RSAPrivateKey):
    """An RSA private key that never leaves the token; see the module docstring."""

    def __init__(self, token: Token, handle: Any, public: rsa.RSAPublicKey) -> None:
        self._token = token
        self._handle = handle
        self._public = public

    @property
    def key_size(self) -> int:
        return self._public.key_size

    def public_key(self) -> rsa.RSAPublicKey:
        return self._public

    def sign(
        self,
        data: bytes,
        padding: padding.AsymmetricPadding,
        algorithm: Prehashed | hashes.HashAlgorithm | NoDigestInfo,
    ) -> bytes:
        if isinstance(algorithm, Prehashed | NoDigestInfo):
            raise HsmError("pre-hashed signing is not offered by the token key")
        name = algorithm.name
        if isinstance(padding, _PSS) and name in _SIGN_PSS:
            mech, mgf = _HASH[name]
            salt = algorithm.digest_size  # RFC 8017 §9.1 recommendation; what pli asks for
            return bytes(
                self._token.run(
                    self._handle.sign,
                    data,
                    mechanism=_SIGN_PSS[name],
                    mechanism_param=(mech, mgf, salt),
                )
            )
        if isinstance(padding, _V15) and name in _SIGN:
            return bytes(self._token.run(self._handle.sign, data, mechanism=_SIGN[name]))
        raise HsmError(f"signature {type(padding).__name__}/{name} not offered by the token")

    def decrypt(self, ciphertext: bytes, padding: padding.AsymmetricPadding) -> bytes:
        if isinstance(padding, _V15):
            return bytes(
                self._token.run(self._handle.decrypt, ciphertext, mechanism=Mechanism.RSA_PKCS)
            )
        if isinstance(padding, _OAEP):
            algorithm = padding.algorithm
            if algorithm.name not in _HASH:
                raise HsmError(f"OAEP with {algorithm.name} not offered by the token")
            mech, mgf = _HASH[algorithm.name]
            try:
                return bytes(
                    self._token.run(
                        self._handle.decrypt,
                        ciphertext,
                        mechanism=Mechanism.RSA_PKCS_OAEP,
                        mechanism_param=(mech, mgf, None),
                    )
                )
            except HsmError:
                if algorithm.name == "sha1":
                    raise
            # Some tokens (SoftHSM 2) do OAEP with SHA-1 only: the RSA operation still
            # runs in the token (raw, CKM_RSA_X_509), only the padding is removed here.
            k = (self.key_size + 7) // 8
            em = bytes(
                self._token.run(self._handle.decrypt, ciphertext, mechanism=Mechanism.RSA_X_509)
            )
            return _oaep_decode(em.rjust(k, b"\0"), k, algorithm)
        raise HsmError(f"decryption {type(padding).__name__} not offered by the token")

    def private_numbers(self) -> NoReturn:
        raise HsmError("the private key stays in the token")

    def private_bytes(
        self,
        encoding: serialization.Encoding,
        format: serialization.PrivateFormat,
        encryption_algorithm: serialization.KeySerializationEncryption,
    ) -> NoReturn:
        raise HsmError("the private key stays in the token")

    def __copy__(self) -> TokenRsaKey:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> TokenRsaKey:
        return self


def _mgf1(seed: bytes, length: int, algorithm: hashes.HashAlgorithm) -> bytes:
    out = b""
    counter = 0
    while len(out) < length:
        h = hashes.Hash(algorithm)
        h.update(seed + counter.to_bytes(4, "big"))
        out += h.finalize()
        counter += 1
    return out[:length]


def _oaep_decode(em: bytes, k: int, algorithm: hashes.HashAlgorithm) -> bytes:
    """EME-OAEP decoding, empty label (RFC 8017 §7.1.2 step 3).

    Every failure is the same error, raised after all checks ran, so that the
    caller (which maps it to one "decryption failed") offers no padding oracle.
    """
    h_len = algorithm.digest_size
    if len(em) != k or k < 2 * h_len + 2:
        raise HsmError("decryption error")
    label_hash = hashes.Hash(algorithm)
    l_hash = label_hash.finalize()
    masked_seed, masked_db = em[1 : 1 + h_len], em[1 + h_len :]
    seed = bytes(
        a ^ b for a, b in zip(masked_seed, _mgf1(masked_db, h_len, algorithm), strict=True)
    )
    db = bytes(a ^ b for a, b in zip(masked_db, _mgf1(seed, k - h_len - 1, algorithm), strict=True))
    rest = db[h_len:]
    separator = rest.find(b"\x01")
    bad = em[0] != 0
    bad |= not hmac.compare_digest(db[:h_len], l_hash)
    bad |= separator < 0 or any(rest[: max(separator, 0)])
    if bad:
        raise HsmError("decryption error")
    return rest[separator + 1 :]


_V15 = padding.PKCS1v15
_PSS = padding.PSS
_OAEP = padding.OAEP
