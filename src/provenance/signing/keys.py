"""Key generation and loading: PEM files or securesystemslib signer URIs (KMS, HSM, Sigstore).

`--key` accepts a PKCS#8 PEM path (plain or passphrase-encrypted) or a URI such as
``gcpkms:…``/``awskms:…``/``file2:…``. A URI signer needs its public key: ``PATH.pub`` beside a
file key, or the ``pub`` argument. Every private key is loaded here, in `load_signer`, so every
command accepts an encrypted key: the passphrase comes from ``PROVENANCE_KEY_PASSPHRASE`` or, in
a terminal, from a prompt.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import stat
import sys
from dataclasses import dataclass
from typing import Any

from provenance import _config
from provenance._fs import is_key_file, read_bounded, write_atomic
from provenance.errors import KeyLoadError, UsageError

KEY_TYPES = ("ed25519", "ecdsa")
PASSPHRASE_ENV = "PROVENANCE_KEY_PASSPHRASE"  # noqa: S105 - a variable name
_URI = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)
MAX_KEY_BYTES = 64 * 1024
GITIGNORE = ".gitignore"
_GITIGNORE_TEXT = b"""\
# Written by `provenance keygen`: private keys stay out of git, public keys may be committed.
*
!*.pub
!.gitignore
"""


@dataclass(frozen=True)
class KeyPair:
    """The files `generate` wrote and the key id in-toto computes for the public key."""

    private_path: str
    public_path: str
    keyid: str
    encrypted: bool = False
    gitignore: str | None = None  # the .gitignore written beside the keys, if one was


def _private_key_pem(key_type: str, passphrase: bytes | None = None) -> tuple[bytes, bytes]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    if key_type == "ed25519":
        priv: Any = ed25519.Ed25519PrivateKey.generate()
    elif key_type == "ecdsa":
        priv = ec.generate_private_key(ec.SECP256R1())
    else:
        raise UsageError(f"unknown key type '{key_type}' (expected one of {', '.join(KEY_TYPES)})")
    encryption: Any = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    private_pem = priv.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    public_pem = priv.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, public_pem


def generate(
    name: str,
    directory: str = "keys",
    key_type: str = "ed25519",
    *,
    force: bool = False,
    passphrase: str | None = None,
) -> KeyPair:
    """Write `directory/name` (PKCS#8 PEM, 0600) and `directory/name.pub`; refuse to overwrite.

    With a `passphrase` the private key is encrypted (PKCS#8, best available encryption). A
    `.gitignore` that keeps everything but public keys out of git is written into `directory`
    unless one exists.

    Raises:
        UsageError: invalid name, key type or empty passphrase.
        KeyLoadError: a key file exists (without `force`) or cannot be written.
    """
    if not name or "/" in name or name.startswith("."):
        raise UsageError(f"invalid key name '{name}': a plain file name is expected")
    if passphrase is not None and not passphrase:
        raise UsageError("the passphrase is empty")
    private_pem, public_pem = _private_key_pem(
        key_type, passphrase.encode() if passphrase else None
    )
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
    keyid = public_key_from_pem(public_pem, pub_path).keyid
    return KeyPair(priv_path, pub_path, keyid, bool(passphrase), _write_gitignore(directory))


def _write_gitignore(directory: str) -> str | None:
    """Keep private keys out of git; an existing .gitignore is the owner's and is left alone."""
    path = os.path.join(directory, GITIGNORE)
    try:
        write_atomic(path, _GITIGNORE_TEXT, overwrite=False)
    except FileExistsError:
        return None
    except OSError as exc:
        raise KeyLoadError(path, f"cannot write: {exc.strerror}") from exc
    return path


def _read(path: str, what: str) -> bytes:
    return read_bounded(path, MAX_KEY_BYTES, what, KeyLoadError)


def signer_api() -> Any:
    """The securesystemslib signer package, imported without boto3 unless a caller needs it.

    Its AWS KMS signer imports boto3 eagerly, which costs more than everything else a recording
    step imports. Hidden while the package loads, that signer is left without boto3;
    `_aws_kms_signer` re-imports it, with boto3, when an ``awskms:`` URI is used. boto3 itself
    stays importable for everything else in the process.
    """
    if "securesystemslib.signer" not in sys.modules and "boto3" not in sys.modules:
        sys.modules["boto3"] = None  # type: ignore[assignment]  # `import boto3` fails
        try:
            import securesystemslib.signer  # noqa: F401
        finally:
            del sys.modules["boto3"]
    import securesystemslib.signer as api

    return api


def _aws_kms_signer(api: Any) -> None:
    """Make ``awskms:`` URIs work after `signer_api` imported the AWS signer without boto3."""
    import importlib

    from securesystemslib.signer import _aws_signer

    if _aws_signer.AWS_IMPORT_ERROR is None:
        return
    module = importlib.reload(_aws_signer)
    if module.AWS_IMPORT_ERROR is None:  # else boto3 is really missing: its error stands
        api.SIGNER_FOR_URI_SCHEME[module.AWSSigner.SCHEME] = module.AWSSigner
        api.AWSSigner = module.AWSSigner


def public_key_from_pem(data: bytes, path: str) -> Any:
    """An SSlibKey from a SubjectPublicKeyInfo PEM; keyid as in-toto computes it."""
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    key_class = signer_api().SSlibKey

    try:
        return key_class.from_crypto(load_pem_public_key(data))
    except (ValueError, TypeError) as exc:
        raise KeyLoadError(path, f"not a PEM public key ({_reason(exc)})") from None
    except Exception as exc:  # noqa: BLE001 - unsupported algorithm etc.; keep the file name
        raise KeyLoadError(path, f"unsupported public key: {_reason(exc)}") from None


def key_material(key: Any) -> str:
    """What a public key is, however it is spelled: equal for one key under two key ids.

    A key id hashes the key's JSON (type, scheme label, text), so upper-case or spaced hex,
    another PEM wrapping or another scheme label give one key a second id; a threshold must
    count keys. The key is read as securesystemslib reads it to verify a signature.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    crypto_key = getattr(key, "_crypto_key", None)  # SSlibKey: the key its verify uses
    if crypto_key is not None:
        try:
            loaded = crypto_key()
        except Exception:  # noqa: BLE001, S110 - such a key verifies nothing; compared as written
            pass
        else:
            if isinstance(loaded, Ed25519PublicKey):
                raw = loaded.public_bytes(
                    serialization.Encoding.Raw, serialization.PublicFormat.Raw
                )
                return "raw:" + raw.hex()
            der: bytes = loaded.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            return "spki:" + der.hex()
    return "keyval:" + json.dumps([key.keytype, key.keyval], sort_keys=True)


def load_public_key(path: str) -> Any:
    """Load a public key PEM; a private key is refused so it never ends up inside a layout.

    Raises:
        KeyLoadError: unreadable, a private key, or not a supported public key.
    """
    data = _read(path, "public key")
    if b"PRIVATE KEY" in data:
        raise KeyLoadError(path, "is a private key; give the .pub file")
    return public_key_from_pem(data, path)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def is_uri(key: str) -> bool:
    """True for a signer URI (``scheme:…``) that is not also the name of an existing file."""
    return bool(_URI.match(key)) and not os.path.exists(key)


def load_signer(key: str, pub: str | None = None, *, passphrase: str | None = None) -> Any:
    """A securesystemslib Signer for a PEM path or a signer URI. Never logs key material.

    An encrypted PEM key is decrypted with `passphrase`, else ``PROVENANCE_KEY_PASSPHRASE``,
    else a prompt when stdin is a terminal.

    Raises:
        UsageError: a signer URI without its public key.
        KeyLoadError: the key is missing, unreadable, too open, a public key, encrypted without
            a passphrase, the passphrase is wrong, or the signer cannot be loaded.
    """
    api = signer_api()
    if is_uri(key):
        if pub is None:
            raise UsageError(
                f"signer URI '{key.split(':', 1)[0]}:…' needs its public key (--pub-key)"
            )
        public = load_public_key(pub)
        if key.split(":", 1)[0].lower() == "awskms":
            _aws_kms_signer(api)
        try:
            return api.Signer.from_priv_key_uri(key, public)
        except (ValueError, OSError) as exc:
            raise KeyLoadError(
                key.split("?", 1)[0], f"cannot load signer: {_reason(exc)}"
            ) from None
        except Exception as exc:  # noqa: BLE001 - KMS client errors of many types
            raise KeyLoadError(key.split("?", 1)[0], f"signer failed: {_reason(exc)}") from None
    data = _read(key, "private key")
    if b"PUBLIC KEY" in data and b"PRIVATE KEY" not in data:
        raise KeyLoadError(
            key, "is a public key; a private key is needed here (the file without .pub)"
        )
    _check_permissions(key)
    private = _private_key(data, key, passphrase)
    try:
        public = load_public_key(pub) if pub else None
        return api.CryptoSigner(private, public)
    except KeyLoadError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise KeyLoadError(key, f"unsupported private key: {_reason(exc)}") from None


def _private_key(data: bytes, path: str, passphrase: str | None) -> Any:
    """Parse a PEM private key, decrypting it when it is encrypted (PKCS#8 or OpenSSL legacy)."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    password = _passphrase(path, passphrase).encode() if b"ENCRYPTED" in data else None
    try:
        return load_pem_private_key(data, password=password)
    except ValueError:
        if password is not None:
            raise KeyLoadError(path, "wrong passphrase for the encrypted private key") from None
        raise KeyLoadError(path, "not a PEM private key") from None
    except Exception:  # noqa: BLE001 - cryptography raises several types for garbage
        raise KeyLoadError(path, "not a PEM private key") from None


def _passphrase(path: str, given: str | None) -> str:
    """The passphrase: given, else PROVENANCE_KEY_PASSPHRASE, else a prompt in a terminal."""
    if given:
        return given
    env = _config.environment(PASSPHRASE_ENV)
    if env:
        return env
    if sys.stdin is not None and sys.stdin.isatty():
        try:
            return getpass.getpass(f"passphrase for {path}: ")
        except (EOFError, KeyboardInterrupt):
            pass
    raise KeyLoadError(path, f"private key is encrypted; set {PASSPHRASE_ENV}")


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
