"""Ed25519 keys for the audit trail: the operator signs, a reviewer verifies with the public key.

The private key lives in a Secret only the operator's ServiceAccount may read, mounted as a PEM
file at `$VIGIL_AUDIT_KEY_FILE`. Public keys are named by `key_id()` so that a record or a
checkpoint says which key signed it without carrying the key itself.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from vigil.files import write_private

log = logging.getLogger("vigil.audit")
KEY_FILE_ENV = "VIGIL_AUDIT_KEY_FILE"
PRIVATE_FILE, PUBLIC_FILE = "private.pem", "public.pem"


class SigningKeyError(ValueError):
    """A key file that is missing, unreadable or not an Ed25519 key (the message names the file)."""


def key_id(public_key: Ed25519PublicKey) -> str:
    """`ed25519:` + the first 16 hex digits of sha256 over the raw 32-byte public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]


class Signer:
    """Signs with an Ed25519 private key; implements `vigil.audit.chain.RecordSigner`."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.public_key = private_key.public_key()
        self.key_id = key_id(self.public_key)

    def sign(self, message: bytes) -> str:
        """The signature of `message`, base64 (standard alphabet, padded)."""
        return base64.b64encode(self._key.sign(message)).decode("ascii")

    def __repr__(self) -> str:  # never print key material
        return f"Signer({self.key_id})"


def verify_signature(public_key: Ed25519PublicKey, message: bytes, signature: str) -> bool:
    """True when `signature` (base64) is `public_key`'s signature of `message`."""
    try:
        raw = base64.b64decode(signature, validate=True)
        public_key.verify(raw, message)
    except (InvalidSignature, binascii.Error, ValueError, TypeError):
        return False
    return True


def _read(path: str | Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as err:
        raise SigningKeyError(f"{what} {path}: cannot be read ({err.strerror or err})") from err


def load_signer(path: str | Path) -> Signer:
    """The signer for the PEM (PKCS#8) Ed25519 private key in `path`."""
    data = _read(path, "audit signing key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as err:
        raise SigningKeyError(f"audit signing key {path}: not an unencrypted PEM private key "
                              f"(expected an Ed25519 key as written by `vigil audit keygen`): {err}") from err
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"audit signing key {path}: is a {type(key).__name__}; only Ed25519 keys are allowed")
    return Signer(key)


def load_signer_from_env(env: Mapping[str, str] | None = None, *, missing_ok: bool = False) -> Signer | None:
    """The signer from `$VIGIL_AUDIT_KEY_FILE`, or None when it is unset or empty.

    A path that is set but unusable raises: an operator told to sign must not quietly write
    unsigned records. `missing_ok=True` returns None (with a warning) when the file does not
    exist, for a Secret mounted as optional; a file that exists but is no key still raises."""
    path = (os.environ if env is None else env).get(KEY_FILE_ENV, "").strip()
    if not path:
        return None
    if missing_ok and not Path(path).exists():
        log.warning("%s=%s does not exist: audit records will NOT be signed", KEY_FILE_ENV, path)
        return None
    return load_signer(path)


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    """The Ed25519 public key in the PEM file `path` (as written by `vigil audit keygen`)."""
    data = _read(path, "public key")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as err:
        hint = " (this looks like a private key: give public.pem)" if b"PRIVATE KEY" in data else ""
        raise SigningKeyError(f"public key {path}: not a PEM public key{hint}: {err}") from err
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(f"public key {path}: is a {type(key).__name__}; only Ed25519 keys are allowed")
    return key


@dataclass(frozen=True)
class KeyFiles:
    private: Path
    public: Path
    key_id: str


def generate(out_dir: str | Path) -> KeyFiles:
    """Write a new key pair to `out_dir`/private.pem (mode 0600 from its creation) and
    public.pem. Refuses to overwrite: replacing a signing key is a decision, not a side effect."""
    out = Path(out_dir)
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    private, public = out / PRIVATE_FILE, out / PUBLIC_FILE
    for existing in (private, public):
        if existing.exists():
            raise SigningKeyError(f"{existing} exists already; choose another --out directory")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    write_private(private, pem, replace=False)
    pub = key.public_key()
    write_private(public, pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
                  replace=False, mode=0o644)
    return KeyFiles(private, public, key_id(pub))
