"""OpenSSF Model Signing (OMS): sign and verify a model directory with the model-signing library.

The signature is model-signing's own Sigstore bundle (a DSSE envelope over an in-toto statement
whose predicate lists every file's digest), so ``model_signing verify key`` checks what we sign
and we check what it signs. Key mode takes elliptic-curve keys only (P-256/384/521): use
``provenance keygen NAME --type ecdsa``. The library is imported only here, on use.
"""

from __future__ import annotations

import ast
import json
import pathlib
import re
from typing import Any

from provenance._bounded import read_bounded
from provenance.errors import InputError, KeyLoadError, UsageError, VerificationError
from provenance.signing.keys import MAX_KEY_BYTES, is_uri

MAX_SIGNATURE_BYTES = 64 * 1024 * 1024
_EC_ONLY = (
    "model-signing key mode supports only ECDSA keys (P-256, P-384, P-521); "
    "generate one with `provenance keygen NAME --type ecdsa`"
)


def _library() -> Any:
    try:
        import model_signing
        import model_signing.hashing
        import model_signing.signing
        import model_signing.verifying
    except ImportError as exc:
        raise UsageError(
            f"OMS needs the model-signing library ({exc.name} is missing): "
            "pip install 'ml-provenance[oms]'"
        ) from None
    return model_signing


def _model_dir(path: str) -> pathlib.Path:
    p = pathlib.Path(path)
    if not p.is_dir():
        raise InputError(path, "model directory not found" if not p.exists() else "not a directory")
    return p


def _check_private_key(path: str) -> None:
    """Refuse early, with the file named, what model-signing would fail on obscurely."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from provenance.signing.keys import _check_permissions

    if is_uri(path):
        raise UsageError(
            f"OMS signing needs a PEM key file, not a signer URI ({path.split(':')[0]}:)"
        )
    _check_permissions(path)
    data = read_bounded(path, MAX_KEY_BYTES, "private key", KeyLoadError)
    try:
        key = load_pem_private_key(data, password=None)
    except TypeError:
        raise KeyLoadError(path, "private key is encrypted; decrypt it first") from None
    except ValueError:
        raise KeyLoadError(path, "not a PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        kind = type(key).__name__.removeprefix("_").removesuffix("PrivateKey") or "this"
        raise KeyLoadError(path, f"{kind} key: {_EC_ONLY}")


def _check_public_key(path: str) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    data = read_bounded(path, MAX_KEY_BYTES, "public key", KeyLoadError)
    if b"PRIVATE KEY" in data:
        raise KeyLoadError(path, "is a private key; give the .pub file")
    try:
        key = load_pem_public_key(data)
    except ValueError:
        raise KeyLoadError(path, "not a PEM public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise KeyLoadError(path, _EC_ONLY)


def _ignored(model: pathlib.Path, signature: str) -> list[pathlib.Path]:
    """The signature file is not part of the model when it is written inside it."""
    sig = pathlib.Path(signature).resolve()
    try:
        return [sig.relative_to(model.resolve())]
    except ValueError:
        return []


def _hashing_config(ms: Any, model: pathlib.Path, signature: str) -> Any:
    return ms.hashing.Config().set_ignored_paths(
        paths=_ignored(model, signature), ignore_git_paths=True
    )


def sign(model_dir: str, key: str, output: str) -> None:
    """Write an OMS signature of every file under `model_dir` to `output`."""
    model = _model_dir(model_dir)
    _check_private_key(key)
    ms = _library()
    try:
        ms.signing.Config().use_elliptic_key_signer(private_key=key).set_hashing_config(
            _hashing_config(ms, model, output)
        ).sign(model, output)
    except OSError as exc:
        raise InputError(exc.filename or model_dir, f"cannot sign: {exc.strerror}") from None
    except ValueError as exc:
        raise InputError(model_dir, f"model-signing refused to sign: {exc}") from None


def verify(model_dir: str, signature: str, public_key: str) -> None:
    """Check `signature` over `model_dir` with `public_key`; raise VerificationError if it fails.

    Tampered, missing and extra files all fail (unsigned files are not ignored).
    """
    model = _model_dir(model_dir)
    _check_public_key(public_key)
    raw = read_bounded(signature, MAX_SIGNATURE_BYTES, "OMS signature")
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise InputError(signature, "OMS signature is not JSON") from None
    if not isinstance(doc, dict) or "dsseEnvelope" not in doc:
        raise InputError(signature, "not an OMS signature (a Sigstore bundle with a DSSE envelope)")
    ms = _library()
    try:
        ms.verifying.Config().use_elliptic_key_verifier(public_key=public_key).set_hashing_config(
            _hashing_config(ms, model, signature)
        ).set_ignore_unsigned_files(False).verify(model, signature)
    except OSError as exc:
        raise InputError(exc.filename or model_dir, f"cannot verify: {exc.strerror}") from None
    except Exception as exc:  # noqa: BLE001 - the library raises ValueError and crypto errors
        reason = _readable(str(exc).strip() or type(exc).__name__)
        raise VerificationError(
            f"{model_dir}: OMS signature {signature} does not verify: {reason}"
        ) from None


_DIGEST_REPR = re.compile(
    r"Digest\(algorithm='([\w-]+)', digest_value=(b'(?:[^'\\]|\\.)*'|b\"(?:[^\"\\]|\\.)*\")\)"
)


def _readable(reason: str) -> str:
    """model-signing prints digests as Python bytes reprs; show them as algorithm:hex."""

    def hexed(m: re.Match[str]) -> str:
        try:
            # The digest repr sits inside the repr of a list of messages: unescape once.
            literal = m.group(2).replace("\\\\", "\\")
            return f"{m.group(1)}:{ast.literal_eval(literal).hex()}"
        except (ValueError, SyntaxError):
            return m.group(0)

    return _DIGEST_REPR.sub(hexed, reason.splitlines()[0])
