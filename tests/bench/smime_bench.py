"""S/MIME benchmark: pli's sign+encrypt and decrypt+verify vs raw ``cryptography`` on 1 MB.

The same MIME entity (a 1 MB attachment, base64) goes through:
* outbound — pli ``sign`` then ``encrypt`` (AuthEnvelopedData, AES-256-GCM,
  RSA-OAEP) vs raw ``PKCS7SignatureBuilder`` (S/MIME detached) then a bare
  AES-256-GCM encryption of the signed bytes plus an RSA-OAEP wrap of its key,
  base64-encoded (the transfer encoding every S/MIME sender must apply);
* inbound — pli ``decrypt`` then ``verify`` (MIME parsing, digest, signature,
  chain, CRL) vs the raw inverse: base64 decoding of the same transport bytes,
  RSA-OAEP unwrap + AES-GCM decrypt, then SHA-256 of the content and one RSA
  signature check (cryptography has no CMS verifier, so this is the floor any
  verifier pays). The raw figures without the base64 step are recorded too.
  pli keeps the certification path it built, as a running pli's TrustStore
  does between messages; the CRL is still looked up on every message.
``PKCS7EnvelopeBuilder``/``pkcs7_decrypt_der`` (AES-256-CBC) are timed too,
for reference, and so is notarisation (a detached receipt over a 4 KB message,
the per-message fixed cost of ingest) next to the one RSA signature it cannot
avoid. Ratio = raw time / pli time (goal ≥ 0.8: pli at least 80 % of raw
speed). Medians of ``--runs`` (default 3) of ``--iterations`` each; the JSON
lands in ``bench-results/smime.json``.

    .venv/bin/python tests/bench/smime_bench.py [--runs 3] [--iterations 10]
"""

from __future__ import annotations

import argparse
import base64
import binascii
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import cryptography  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import padding, rsa  # noqa: E402
from cryptography.hazmat.primitives.ciphers import algorithms  # noqa: E402
from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402
from cryptography.hazmat.primitives.serialization import pkcs7  # noqa: E402

from gateway.smime import pki  # noqa: E402
from gateway.smime.envelope import decrypt, encrypt  # noqa: E402
from gateway.smime.notary import notarise  # noqa: E402
from gateway.smime.signing import sign  # noqa: E402
from gateway.smime.trustcache import ChainCache  # noqa: E402
from gateway.smime.verification import verify  # noqa: E402

ADDRESS = "bench@hopital.example.fr"
_OAEP = padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None)


def _entity(size: int) -> bytes:
    body = base64.encodebytes(os.urandom(size)).replace(b"\n", b"\r\n")
    return (
        b'Content-Type: application/pdf; name="cr.pdf"\r\n'
        b"Content-Transfer-Encoding: base64\r\n"
        b'Content-Disposition: attachment; filename="cr.pdf"\r\n\r\n' + body
    )


def _median_seconds(fn: Callable[[], object], runs: int, iterations: int) -> float:
    fn()  # warm-up
    per_run = []
    for _ in range(runs):
        start = time.perf_counter()
        for _ in range(iterations):
            fn()
        per_run.append((time.perf_counter() - start) / iterations)
    return statistics.median(per_run)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--size", type=int, default=1024 * 1024, help="attachment bytes")
    ap.add_argument("--key-size", type=int, default=3072, choices=(2048, 3072, 4096))
    ap.add_argument("--out", type=Path, default=ROOT / "bench-results" / "smime.json")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        paths = pki.init_pki(Path(tmp) / "pki", [], [ADDRESS], None, key_size=args.key_size)
        ident = pki.load_identity(*paths.mailbox(ADDRESS))
        root = pki.load_certificate(paths.root_cert)
        crl = pki.load_crl(paths.crl)
    assert isinstance(ident.key, rsa.RSAPrivateKey)
    key: rsa.RSAPrivateKey = ident.key
    public = key.public_key()
    entity = _entity(args.size)

    # --- pli
    def pli_out() -> bytes:
        return encrypt(sign(entity, ident.cert, key, ident.chain), [ident.cert])

    sealed = pli_out()

    chain_cache = ChainCache()  # what a running pli's TrustStore keeps between messages

    def pli_in() -> None:
        result = verify(
            decrypt(sealed, ident.cert, key), [root], crls=[crl], chain_cache=chain_cache
        )
        assert result.ok

    # --- raw cryptography
    def raw_sign() -> bytes:
        return (
            pkcs7.PKCS7SignatureBuilder()
            .set_data(entity)
            .add_signer(ident.cert, key, hashes.SHA256())
            .add_certificate(ident.chain[0])
            .sign(serialization.Encoding.SMIME, [pkcs7.PKCS7Options.DetachedSignature])
        )

    def raw_out_bare() -> tuple[bytes, bytes, bytes]:
        signed = raw_sign()
        cek, nonce = AESGCM.generate_key(256), os.urandom(12)
        return public.encrypt(cek, _OAEP), nonce, AESGCM(cek).encrypt(nonce, signed, None)

    def raw_out() -> bytes:
        return base64.encodebytes(raw_out_bare()[2])

    wrapped, nonce, ct = raw_out_bare()
    transport = base64.encodebytes(ct).replace(b"\n", b"\r\n")
    signature = key.sign(b"x" * 200, padding.PKCS1v15(), hashes.SHA256())

    def raw_in_bare(body: bytes | None = None) -> None:
        signed = AESGCM(key.decrypt(wrapped, _OAEP)).decrypt(nonce, body or ct, None)
        h = hashes.Hash(hashes.SHA256())
        h.update(signed[: len(entity)])
        h.finalize()
        public.verify(signature, b"x" * 200, padding.PKCS1v15(), hashes.SHA256())

    def raw_in() -> None:
        raw_in_bare(binascii.a2b_base64(transport))

    cbc = (
        pkcs7.PKCS7EnvelopeBuilder()
        .set_data(entity)
        .add_recipient(ident.cert)
        .set_content_encryption_algorithm(algorithms.AES256)
    )
    cbc_der = cbc.encrypt(serialization.Encoding.DER, [])
    small = entity[:4096]
    received = datetime.datetime.now(datetime.UTC)

    timings = {
        "pli_sign_encrypt": _median_seconds(pli_out, args.runs, args.iterations),
        "raw_sign_encrypt": _median_seconds(raw_out, args.runs, args.iterations),
        "pli_decrypt_verify": _median_seconds(pli_in, args.runs, args.iterations),
        "raw_decrypt_verify": _median_seconds(raw_in, args.runs, args.iterations),
        "raw_sign_encrypt_no_base64": _median_seconds(raw_out_bare, args.runs, args.iterations),
        "raw_decrypt_verify_no_base64": _median_seconds(raw_in_bare, args.runs, args.iterations),
        "ref_pkcs7_envelope_cbc": _median_seconds(
            lambda: cbc.encrypt(serialization.Encoding.DER, []), args.runs, args.iterations
        ),
        "ref_pkcs7_decrypt_cbc": _median_seconds(
            lambda: pkcs7.pkcs7_decrypt_der(cbc_der, ident.cert, key, []),
            args.runs,
            args.iterations,
        ),
        "pli_notarise_4k": _median_seconds(
            lambda: notarise(small, received, ident.cert, key, ident.chain),
            args.runs,
            args.iterations * 10,
        ),
        "ref_rsa_sign": _median_seconds(
            lambda: key.sign(small[:200], padding.PKCS1v15(), hashes.SHA256()),
            args.runs,
            args.iterations * 10,
        ),
    }
    ratios = {
        "sign_encrypt": timings["raw_sign_encrypt"] / timings["pli_sign_encrypt"],
        "decrypt_verify": timings["raw_decrypt_verify"] / timings["pli_decrypt_verify"],
    }
    bare = {
        "sign_encrypt": timings["raw_sign_encrypt_no_base64"] / timings["pli_sign_encrypt"],
        "decrypt_verify": timings["raw_decrypt_verify_no_base64"] / timings["pli_decrypt_verify"],
    }
    report = {
        "benchmark": "smime",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "cryptography": cryptography.__version__,
        },
        "parameters": {
            "attachment_bytes": args.size,
            "entity_bytes": len(entity),
            "rsa_bits": args.key_size,
            "runs": args.runs,
            "iterations": args.iterations,
        },
        "seconds_median": timings,
        "ratio_raw_over_pli": ratios,
        "ratio_raw_without_base64_over_pli": bare,
        "goal": "ratio >= 0.8 for both",
        "met": all(r >= 0.8 for r in ratios.values()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    for name, seconds in timings.items():
        print(f"{name:24} {seconds * 1000:8.2f} ms")
    for name, ratio in ratios.items():
        print(
            f"ratio raw/pli {name:16} {ratio:5.2f}  (goal >= 0.80; "
            f"{bare[name]:.2f} against raw without base64)"
        )
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
