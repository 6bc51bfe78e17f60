"""Scan model files for code that runs on load, and check data formats are well-formed.

Policy (docs/attestations.md#scan): pickle-based files (.pkl, .pt/.pth/.bin/.ckpt, joblib,
numpy object arrays) and Keras Lambda layers are unsafe unless the allow-list names the file;
even then a dangerous import (``posix.system``) fails. safetensors, ONNX and GGUF are checked for
well-formedness. The format is recognised from the content first (a pickle renamed ``.json`` is
still a pickle), then from the name. Nothing is ever loaded, unpickled or evaluated.
"""

from __future__ import annotations

import os
import posixpath
import zipfile
import zlib
from collections.abc import Iterable, Sequence
from typing import IO

from provenance._scanning import _formats as fm
from provenance._scanning._model import FileReport, Finding, ScanReport
from provenance._scanning._pickle import picklescan_version, scan_pickle_stream
from provenance.errors import ArtifactError, InputError, UsageError
from provenance.hashing import Excludes, check_relative, collect, compile_patterns, hash_file

__all__ = ["FileReport", "Finding", "ScanReport", "scan_paths"]

PICKLE_EXTS = frozenset({".pkl", ".pickle", ".joblib", ".dill", ".pt", ".pth", ".bin", ".ckpt"})
_TYPED_EXTS = {".npy": "numpy", ".npz": "numpy-npz", ".gguf": "gguf", ".keras": "keras"}
_H5_EXTS = frozenset({".h5", ".hdf5"})
_H5_MAGIC = b"\x89HDF\r\n\x1a\n"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
MAX_ZIP_MEMBERS = 100_000
MAX_PICKLE_MEMBER = 1024 * 1024 * 1024
MAX_KERAS_CONFIG = 64 * 1024 * 1024


def _is_pickle_magic(head: bytes) -> bool:
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def _unsafe_format(what: str, allowed: bool) -> list[Finding]:
    if allowed:
        return [Finding("unsafe-format", f"{what}: accepted by the allow-list", "info")]
    return [
        Finding(
            "unsafe-format",
            f"{what} can run code when loaded; convert it to safetensors or allow the file "
            "by name (--allow)",
        )
    ]


def _scan_pickle_file(f: IO[bytes], allowed: bool) -> tuple[str, list[Finding]]:
    findings = _unsafe_format("pickle-based file", allowed)
    findings += scan_pickle_stream(f, "", allowed=allowed)
    return "pickle", findings


def _scan_npy(f: IO[bytes], label: str, allowed: bool) -> list[Finding]:
    """A .npy file (label "") or .npz member (label = its name)."""
    who = f"{label}: " if label else ""
    header, why = fm.npy_header(f)
    if header is None:
        return [Finding("numpy-header", f"{who}{why}")]
    if not fm.npy_has_objects(header):
        return []
    findings = _unsafe_format(f"{who}object array (loading needs allow_pickle=True)", allowed)
    return findings + scan_pickle_stream(f, label, allowed=allowed)


def _scan_zip(f: IO[bytes], ext: str, allowed: bool) -> tuple[str, list[Finding]]:
    try:
        zf = zipfile.ZipFile(f)
        members = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        return "zip", [Finding("zip-structure", f"corrupt zip archive ({exc})")]
    if len(members) > MAX_ZIP_MEMBERS:
        return "zip", [Finding("zip-structure", f"more than {MAX_ZIP_MEMBERS} members")]
    findings: list[Finding] = []
    pickles, npys, names = [], [], {m.filename for m in members}
    try:
        for m in members:
            if m.is_dir():
                continue
            with zf.open(m) as member:
                head = member.read(8)
            if m.filename.endswith((".pkl", ".pickle")) or _is_pickle_magic(head):
                pickles.append(m)
            elif m.filename.endswith(".npy") or head.startswith(fm.NPY_MAGIC):
                npys.append(m)
        if ext == ".keras" or {"config.json", "metadata.json"} <= names:
            fmt = "keras"
            findings += _scan_keras(zf, allowed)
        elif pickles:
            fmt = "pytorch-zip" if any(p.filename.endswith("data.pkl") for p in pickles) else "zip"
        elif npys:
            fmt = "numpy-npz"
        else:
            fmt = "zip"
        if pickles:
            findings += _unsafe_format("zip archive holding pickles", allowed)
        for m in pickles:
            label = m.filename
            if m.file_size > MAX_PICKLE_MEMBER:
                findings.append(Finding("pickle-parse", f"{label}: too large to scan"))
                continue
            with zf.open(m) as member:
                findings += scan_pickle_stream(member, label, allowed=allowed)
        for m in npys:
            with zf.open(m) as member:
                findings += _scan_npy(member, m.filename, allowed)
    except (zipfile.BadZipFile, OSError, RuntimeError, EOFError, ValueError, zlib.error,
            NotImplementedError) as exc:  # fmt: skip
        findings.append(Finding("zip-structure", f"unreadable zip member ({exc})"))
        fmt = "zip"
    if fmt == "zip" and not pickles and not npys:
        findings.append(
            Finding("format", "zip archive without model content; not inspected", "info")
        )
    return fmt, findings


def _scan_keras(zf: zipfile.ZipFile, allowed: bool) -> list[Finding]:
    import json

    try:
        info = zf.getinfo("config.json")
    except KeyError:
        return [Finding("keras-config", "no config.json in the .keras archive")]
    if info.file_size > MAX_KERAS_CONFIG:
        return [Finding("keras-config", "config.json is too large")]
    try:
        config = json.loads(zf.read(info))
    except (ValueError, RecursionError) as exc:
        return [Finding("keras-config", f"config.json is not JSON ({exc})")]
    lambdas = fm.keras_lambdas(config)
    if not lambdas:
        return []
    return _unsafe_format(f"Keras Lambda layer(s) {', '.join(sorted(lambdas))}", allowed)


def _inspect(f: IO[bytes], size: int, rel: str, allowed: bool) -> tuple[str, list[Finding]]:
    ext = posixpath.splitext(rel)[1].lower()
    head = f.read(16)
    f.seek(0)
    if ext == ".safetensors":
        return "safetensors", fm.check_safetensors(f, size)
    if ext == ".onnx":
        return "onnx", fm.check_onnx(f, size)
    if head.startswith(_ZIP_MAGICS):
        return _scan_zip(f, ext, allowed)
    if _is_pickle_magic(head):
        return _scan_pickle_file(f, allowed)
    if head.startswith(fm.NPY_MAGIC):
        return "numpy", _scan_npy(f, "", allowed)
    if head.startswith(b"GGUF"):
        return "gguf", fm.check_gguf(f, size)
    if head.startswith(_H5_MAGIC):
        if fm.h5_mentions_lambda(f):
            return "hdf5", _unsafe_format("Keras Lambda layer in the HDF5 model config", allowed)
        return "hdf5", []
    if ext in PICKLE_EXTS:  # protocol 0/1 pickles have no magic; a loader would unpickle it
        return _scan_pickle_file(f, allowed)
    if ext in _TYPED_EXTS or ext in _H5_EXTS:
        kind = _TYPED_EXTS.get(ext, "hdf5")
        return kind, [Finding("format", f"named {ext} but the content is not {kind}")]
    return "other", [Finding("format", "not a model format; not inspected", "info")]


def _scan_file(base: str, rel: str, allowed: bool) -> FileReport:
    full = os.path.join(base, rel)
    try:
        before = os.stat(full)
    except OSError as exc:
        raise ArtifactError(rel, f"cannot read: {exc.strerror}") from None
    sha256 = hash_file(full, rel).hex()
    try:
        with open(full, "rb") as f:
            fmt, findings = _inspect(f, before.st_size, rel, allowed)
        after = os.stat(full)
    except OSError as exc:
        raise ArtifactError(rel, f"cannot read: {exc.strerror}") from None
    if (before.st_size, before.st_mtime_ns, before.st_ino) != (
        after.st_size,
        after.st_mtime_ns,
        after.st_ino,
    ):
        raise ArtifactError(rel, "file changed while it was being scanned")
    return FileReport(rel, sha256, fmt, allowed, tuple(findings))


def _relative(path: str, base: str) -> str:
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(base)).replace(os.sep, "/")
    return check_relative(rel, what="scan path")


def scan_paths(paths: Sequence[str], *, base: str = ".", allow: Iterable[str] = ()) -> ScanReport:
    """Scan files and directories (recursively) under `base`; `allow` names accepted pickles.

    Raises ArtifactError/InputError (exit 3) for a path that is missing or unreadable.
    """
    if not paths:
        raise UsageError("give at least one file or directory to scan")
    allowed = {_relative(a, base) for a in allow}
    rels: list[str] = []
    for path in paths:
        if not os.path.lexists(path):
            raise InputError(path, "no such file or directory")
        rel = _relative(path, base)
        found = collect(base, compile_patterns([rel]), Excludes(Excludes.DEFAULT))
        if not found:
            raise InputError(path, "no file to scan")
        rels.extend(found)
    files = sorted(set(rels))
    unknown = sorted(allowed - set(files))
    if unknown:
        raise UsageError(f"--allow names file(s) that are not scanned: {', '.join(unknown)}")
    reports = tuple(_scan_file(base, rel, rel in allowed) for rel in files)
    from provenance._version import __version__

    return ScanReport(
        reports,
        {"ml-provenance": __version__, "picklescan": picklescan_version()},
        tuple(sorted(allowed)),
    )
