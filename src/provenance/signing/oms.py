"""OpenSSF Model Signing (OMS): sign and verify a model directory with the model-signing library.

The signature is model-signing's own Sigstore bundle (a DSSE envelope over an in-toto statement
whose predicate lists every file's digest), so ``model_signing verify key`` checks what we sign
and we check what it signs. Key mode takes elliptic-curve keys only (P-256/384/521): use
``provenance keygen NAME --type ecdsa``. The library is imported only here, on use.

Why here and not in ``attest/`` (where DESIGN.md's package map lists OMS): recording a
fine-tuning step verifies its base model's OMS signature before the step runs, and ``record``
sits below ``attest``. Checking a signature over files with a public key is the signing
layer's job; ``provenance.attest.oms`` re-exports this module for the attestation layer.
"""

from __future__ import annotations

import ast
import base64
import binascii
import hashlib
import json
import pathlib
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from provenance._fs import read_bounded
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


def library_version() -> str:
    """The installed model-signing version, recorded with each verified base model."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("model-signing")
    except PackageNotFoundError:
        _library()  # raises the UsageError that says how to install it
        return "unknown"


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


@dataclass(frozen=True)
class VerifiedModel:
    """What an OMS signature vouched for, once verified: for lineage records (link, SLSA, BOM).

    `manifest_sha256` is the statement subject's digest (it changes with any file); `files`
    maps each file, relative to the model directory, to its sha256.
    """

    path: str
    signature_sha256: str
    public_key_sha256: str
    manifest_sha256: str
    files: Mapping[str, str]

    def as_resolved_dependency(self) -> dict[str, Any]:
        """A SLSA resourceDescriptor for `resolvedDependencies`: the base model, by manifest."""
        return {
            "name": self.path,
            "digest": {"sha256": self.manifest_sha256},
            "annotations": {
                "oms.signature.sha256": self.signature_sha256,
                "oms.publicKey.sha256": self.public_key_sha256,
            },
        }

    def to_dict(self) -> dict[str, Any]:
        """The JSON form `provenance oms verify --json` prints."""
        return {
            "path": self.path,
            "signature_sha256": self.signature_sha256,
            "public_key_sha256": self.public_key_sha256,
            "manifest_sha256": self.manifest_sha256,
            "files": dict(self.files),
        }


def _manifest(raw: bytes, signature: str) -> tuple[str, dict[str, str]]:
    """Subject digest and file digests from a (verified) OMS bundle; strict on what we use."""
    try:
        bundle = json.loads(raw)
        statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"], validate=True))
        [subject] = statement["subject"]
        manifest = subject["digest"]["sha256"]
        files = {
            str(r["name"]): str(r["digest"])
            for r in statement["predicate"]["resources"]
            if r["algorithm"] == "sha256"
        }
    except (KeyError, TypeError, ValueError, binascii.Error, RecursionError):
        raise InputError(signature, "OMS statement lacks a sha256 subject or resources") from None
    if not isinstance(manifest, str) or len(manifest) != 64:
        raise InputError(signature, "OMS subject digest is not a sha256")
    return manifest, files


def verify(model_dir: str, signature: str, public_key: str) -> VerifiedModel:
    """Check `signature` over `model_dir` with `public_key`; raise VerificationError if it fails.

    Tampered, missing and extra files all fail (unsigned files are not ignored). The library
    checks a private copy of the signature bytes, so what is returned is what was verified.
    """
    model = _model_dir(model_dir)
    _check_public_key(public_key)
    key_pem = read_bounded(public_key, MAX_KEY_BYTES, "public key", KeyLoadError)
    raw = read_bounded(signature, MAX_SIGNATURE_BYTES, "OMS signature")
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise InputError(signature, "OMS signature is not JSON") from None
    if not isinstance(doc, dict) or "dsseEnvelope" not in doc:
        raise InputError(signature, "not an OMS signature (a Sigstore bundle with a DSSE envelope)")
    ms = _library()
    with tempfile.TemporaryDirectory(prefix="provenance-oms-") as tmp:
        copy = pathlib.Path(tmp) / "model.sig"
        copy.write_bytes(raw)
        try:
            ms.verifying.Config().use_elliptic_key_verifier(
                public_key=public_key
            ).set_hashing_config(_hashing_config(ms, model, signature)).set_ignore_unsigned_files(
                False
            ).verify(model, copy)
        except OSError as exc:
            raise InputError(exc.filename or model_dir, f"cannot verify: {exc.strerror}") from None
        except Exception as exc:  # noqa: BLE001 - the library raises ValueError and crypto errors
            reason = _readable(str(exc).strip() or type(exc).__name__)
            raise VerificationError(
                f"{model_dir}: OMS signature {signature} does not verify: {reason}"
            ) from None
    manifest, files = _manifest(raw, signature)
    return VerifiedModel(
        path=model_dir,
        signature_sha256=hashlib.sha256(raw).hexdigest(),
        public_key_sha256=hashlib.sha256(key_pem).hexdigest(),
        manifest_sha256=manifest,
        files=files,
    )


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
