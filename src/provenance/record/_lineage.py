"""Fine-tuning lineage: the base models a step starts from, verified before the step runs.

A base model is declared with its directory, its OpenSSF Model Signing (OMS) signature and the
public key of whoever published it. When the step is recorded, before it runs, model-signing
checks the directory against the signature (a changed, missing or extra file refuses the step).
The directory then becomes a material of the step (added to its patterns automatically), and
the hashed materials must hold exactly the bytes the signature vouched for, file by file: the
link cannot record other weights than the ones that verified. The link names each base model in
``environment.base_models``; SLSA provenance and the ML-BOM read it from the verified link.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from provenance.errors import LinkFormatError, UsageError, VerificationError
from provenance.hashing import has_glob

if TYPE_CHECKING:
    from provenance.hashing import ArtifactSet
    from provenance.links import LinkData

OMS_FORMAT = "https://github.com/sigstore/model-transparency (OpenSSF Model Signing, key mode)"
_HEX64 = re.compile(r"^[0-9a-f]{64}\Z")
_MAX_TEXT = 4096


@dataclass(frozen=True)
class BaseModel:
    """A model directory a step fine-tunes, with its OMS signature and the signer's public key.

    All three paths are relative to the project root (the step's base directory), like material
    patterns; absolute paths are allowed for the signature and the key.
    """

    path: str
    signature: str
    key: str

    def __post_init__(self) -> None:
        for name in ("path", "signature", "key"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise UsageError(f"base model: {name} must be a non-empty path")


@dataclass(frozen=True)
class BaseModelRecord:
    """What a link records about one verified base model (`environment.base_models[i]`)."""

    path: str  # directory relative to the project root, POSIX, no trailing '/'
    signature: str  # the signature file as declared
    signature_sha256: str  # of the signature bundle's bytes, as verified
    public_key_sha256: str  # of the PEM public key it verified with
    manifest_sha256: str  # the OMS statement's subject: the model-signing manifest digest
    files: int  # how many files the signature covers
    model_signing: str  # library version that verified it

    @property
    def prefix(self) -> str:
        """The directory as a path prefix of its files among the step's materials."""
        return self.path + "/"

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "signature": self.signature,
            "signature_sha256": self.signature_sha256,
            "public_key_sha256": self.public_key_sha256,
            "manifest_sha256": self.manifest_sha256,
            "files": self.files,
            "format": "oms",
            "model_signing": self.model_signing,
        }

    @classmethod
    def from_dict(cls, data: Any, source: str) -> BaseModelRecord:
        """Strict: a verified link whose base-model entry is malformed is refused, not guessed."""

        def bad(why: str) -> LinkFormatError:
            return LinkFormatError(source, f"environment.base_models: {why}")

        if not isinstance(data, dict) or data.get("format") != "oms":
            raise bad("each entry must be an object with format 'oms'")
        fields: dict[str, Any] = {}
        for name in ("path", "signature", "model_signing"):
            value = data.get(name)
            if not isinstance(value, str) or not value or len(value) > _MAX_TEXT:
                raise bad(f"'{name}' must be a non-empty string")
            fields[name] = value
        for name in ("signature_sha256", "public_key_sha256", "manifest_sha256"):
            value = data.get(name)
            if not isinstance(value, str) or not _HEX64.match(value):
                raise bad(f"'{name}' must be a sha256 hex digest")
            fields[name] = value
        files = data.get("files")
        if type(files) is not int or files < 1:
            raise bad("'files' must be a positive integer")
        path = fields["path"]
        if path.startswith("/") or path.endswith("/") or ".." in path.split("/"):
            raise bad(f"path {path!r} is not a directory relative to the project root")
        return cls(files=files, **fields)

    def as_resolved_dependency(self) -> dict[str, Any]:
        """A SLSA resourceDescriptor: the base model by its OMS manifest digest."""
        return {
            "name": self.prefix,
            "digest": {"sha256": self.manifest_sha256},
            "annotations": {
                "kind": "base-model",
                "format": OMS_FORMAT,
                "oms.signature": self.signature,
                "oms.signature.sha256": self.signature_sha256,
                "oms.publicKey.sha256": self.public_key_sha256,
                "oms.files": self.files,
                "modelSigning.version": self.model_signing,
            },
        }


def base_models_of(link: LinkData, source: str) -> list[BaseModelRecord]:
    """The base models a (verified) link records; [] when it records none."""
    value = link.environment.get("base_models")
    if value is None:
        return []
    if not isinstance(value, list):
        raise LinkFormatError(source, "environment.base_models must be a list")
    return [BaseModelRecord.from_dict(item, source) for item in value]


@dataclass(frozen=True)
class VerifiedBaseModel:
    """A base model that verified at record time, with the file digests its signature lists."""

    record: BaseModelRecord
    signed_files: Mapping[str, str]  # path relative to the model directory -> sha256


def _in_root(path: str, base: str, step: str) -> tuple[str, str]:
    """(path to open, POSIX path relative to the root) for a declared base-model directory."""
    rel = os.path.relpath(os.path.abspath(os.path.join(base, path)), base).replace(os.sep, "/")
    if rel == "." or rel == ".." or rel.startswith("../") or os.path.isabs(rel):
        raise UsageError(
            f"step '{step}': base model {path} must be a directory inside the project root "
            f"{base} (its files become the step's materials)"
        )
    if has_glob(rel):
        raise UsageError(f"step '{step}': base model {path}: directory names may not hold * ? [")
    return _at_root(path, base), rel


def _at_root(path: str, base: str) -> str:
    """A declared path resolved against the project root, shown as short as messages can."""
    if os.path.isabs(path):
        return path
    full = os.path.join(base, path)
    rel = os.path.relpath(full)
    return rel if len(rel) < len(full) else full


def verify_base_models(
    step: str, models: Sequence[BaseModel], base: str
) -> list[VerifiedBaseModel]:
    """Verify each base model's OMS signature; raise before the step may run.

    VerificationError (exit 1) when a signature does not verify (changed, missing or extra file,
    another key); InputError (exit 3) for an unreadable directory, signature or key.
    """
    if not models:
        return []
    from provenance.signing import oms

    version = oms.library_version()
    out: list[VerifiedBaseModel] = []
    seen: set[str] = set()
    for model in models:
        where, rel = _in_root(model.path, base, step)
        if rel in seen:
            raise UsageError(f"step '{step}': base model {model.path} is declared twice")
        seen.add(rel)
        signature, key = _at_root(model.signature, base), _at_root(model.key, base)
        try:
            verified = oms.verify(where, signature, key)
        except VerificationError as exc:
            raise VerificationError(f"step '{step}' refused: base model {exc}") from None
        if not verified.files:
            raise VerificationError(
                f"step '{step}' refused: base model {model.path}: OMS signature {signature} "
                "lists no file hashed with sha256 (only file-mode sha256 signatures are supported)"
            )
        out.append(
            VerifiedBaseModel(
                BaseModelRecord(
                    path=rel,
                    signature=model.signature,
                    signature_sha256=verified.signature_sha256,
                    public_key_sha256=verified.public_key_sha256,
                    manifest_sha256=verified.manifest_sha256,
                    files=len(verified.files),
                    model_signing=version,
                ),
                dict(verified.files),
            )
        )
    return out


def material_patterns(patterns: Sequence[str], verified: Sequence[VerifiedBaseModel]) -> list[str]:
    """The step's material patterns plus each base-model directory (whole) not already listed."""
    out = list(patterns)
    for v in verified:
        if v.record.path not in out and v.record.prefix not in out:
            out.append(v.record.path)
    return out


def check_materials(
    step: str, verified: Sequence[VerifiedBaseModel], materials: ArtifactSet
) -> None:
    """The hashed materials must hold every signed file with the digest the signature lists.

    Closes the window between the signature check and the hashing of the materials, and a
    default exclude (e.g. `__pycache__/`) that would leave a signed file unrecorded.
    """
    for v in verified:
        for name, signed in sorted(v.signed_files.items()):
            path = v.record.prefix + name
            recorded = materials.digests.get(path)
            if recorded is None:
                raise VerificationError(
                    f"step '{step}' refused: {path}, signed by the base model's OMS signature, "
                    "is not among the step's materials (excluded?)"
                )
            if recorded != signed:
                raise VerificationError(
                    f"step '{step}' refused: {path} changed after its OMS signature verified: "
                    f"hash mismatch: signed sha256:{signed}, recorded sha256:{recorded}"
                )
