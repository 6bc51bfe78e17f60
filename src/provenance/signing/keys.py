"""Key generation and loading: PEM files or securesystemslib signer URIs (KMS, HSM, Sigstore).

`--key` accepts a PKCS#8 PEM path or a URI such as ``gcpkms:…``/``awskms:…``/``file2:…``. A URI
signer needs its public key: ``PATH.pub`` beside a file key, or the ``pub`` argument.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from typing import Any

from provenance._fs import is_key_file, read_bounded, write_atomic
from provenance.errors import KeyLoadError, UsageError

KEY_TYPES = ("ed25519", "ecdsa")
_URI = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)
MAX_KEY_BYTES = 64 * 1024


@dataclass(frozen=True)
class KeyPair:
    private_path: str
    public_path: str
    keyid: str


def _private_key_pem(key_type: str) -> tuple[bytes, bytes]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    if key_type == "ed25519":
        priv: Any = ed25519.Ed25519PrivateKey.generate()
    elif key_type == "ecdsa":
        priv = ec.generate_private_key(ec.SECP256R1())
    else:
        raise UsageError(f"unknown key type '{key_type}' (expected one of {', '.join(KEY_TYPES)})")
    private_pem = priv.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = priv.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, public_pem


def generate(
    name: str, directory: str = "keys", key_type: str = "ed25519", *, force: bool = False
) -> KeyPair:
    """Write `directory/name` (PKCS#8 PEM, 0600) and `directory/name.pub`; refuse to overwrite."""
    if not name or "/" in name or name.startswith("."):
        raise UsageError(f"invalid key name '{name}': a plain file name is expected")
    private_pem, public_pem = _private_key_pem(key_type)
    priv_path = os.path.join(directory, name)
    pub_path = priv_path + ".pub"
    for p in (priv_path, pub_path):
        if not os.path.lexists(p):
            continue
        if not force:
            raise KeyLoadError(p, "already exists; use --force to replace it")
        if not is_key_file(p):  # --force replaces keys, never a layout or a model
            raise KeyLoadError(p, "exists and is not a key file; --force only replaces keys")
    try:
        write_atomic(priv_path, private_pem, mode=0o600, overwrite=force)
        write_atomic(pub_path, public_pem, mode=0o644, overwrite=force)
    except FileExistsError as exc:
        raise KeyLoadError(
            exc.filename or priv_path, "already exists; use --force to replace it"
        ) from exc
    except OSError as exc:
        raise KeyLoadError(priv_path, f"cannot write key: {exc.strerror}") from exc
    return KeyPair(priv_path, pub_path, public_key_from_pem(public_pem, pub_path).keyid)


def _read(path: str, what: str) -> bytes:
    return read_bounded(path, MAX_KEY_BYTES, what, KeyLoadError)


def public_key_from_pem(data: bytes, path: str) -> Any:
    """An SSlibKey from a SubjectPublicKeyInfo PEM; keyid as in-toto computes it."""
    from cryptography.hazmat.primitives.serialization import load_pem_public_key
    from securesystemslib.signer import SSlibKey

    try:
        return SSlibKey.from_crypto(load_pem_public_key(data))
    except (ValueError, TypeError) as exc:
        raise KeyLoadError(path, f"not a PEM public key ({_reason(exc)})") from None
    except Exception as exc:  # noqa: BLE001 - unsupported algorithm etc.; keep the file name
        raise KeyLoadError(path, f"unsupported public key: {_reason(exc)}") from None


def load_public_key(path: str) -> Any:
    """Load a public key PEM; a private key is refused so it never ends up inside a layout."""
    data = _read(path, "public key")
    if b"PRIVATE KEY" in data:
        raise KeyLoadError(path, "is a private key; give the .pub file")
    return public_key_from_pem(data, path)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def is_uri(key: str) -> bool:
    return bool(_URI.match(key)) and not os.path.exists(key)


def load_signer(key: str, pub: str | None = None) -> Any:
    """A securesystemslib Signer for a PEM path or a signer URI. Never logs key material."""
    from securesystemslib.signer import CryptoSigner, Signer

    if is_uri(key):
        if pub is None:
            raise UsageError(
                f"signer URI '{key.split(':', 1)[0]}:…' needs its public key (--pub-key)"
            )
        public = load_public_key(pub)
        try:
            return Signer.from_priv_key_uri(key, public)
        except (ValueError, OSError) as exc:
            raise KeyLoadError(
                key.split("?", 1)[0], f"cannot load signer: {_reason(exc)}"
            ) from None
        except Exception as exc:  # noqa: BLE001 - KMS client errors of many types
            raise KeyLoadError(key.split("?", 1)[0], f"signer failed: {_reason(exc)}") from None
    data = _read(key, "private key")
    # What the file is comes first: a public key is not "too open", it is the wrong file.
    if b"PRIVATE KEY-----" not in data:
        if b"PUBLIC KEY-----" in data:
            raise KeyLoadError(
                key, "is a public key; a private key is needed here (the file without .pub)"
            )
        raise KeyLoadError(key, "not a PEM private key")
    _check_permissions(key)
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        private = load_pem_private_key(data, password=None)
    except TypeError:
        raise KeyLoadError(
            key, "private key is encrypted; decrypt it or use a signer URI"
        ) from None
    except Exception as exc:  # noqa: BLE001 - cryptography raises several types
        raise KeyLoadError(key, f"not a PEM private key ({_reason(exc)})") from None
    try:
        public = load_public_key(pub) if pub else None
        return CryptoSigner(private, public)
    except KeyLoadError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise KeyLoadError(key, f"unsupported private key: {_reason(exc)}") from None


def _check_permissions(path: str) -> None:
    """Refuse private keys readable by others, like ssh does: they may already be leaked."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # _read reports it
    if os.name == "posix" and stat.S_IMODE(mode) & 0o077:
        raise KeyLoadError(
            path, f"private key permissions {stat.S_IMODE(mode):04o} are too open; run chmod 600"
        )
