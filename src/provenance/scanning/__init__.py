"""Model-file policy: an allow-list by content; containers opened; pickles only when allowed.

A file passes only when its name sends it to a loader that cannot run code (``_names``) and a
strict parser proves the content is that format: safetensors, ONNX with standard operator
domains, GGUF with chat templates inside a small grammar, .npy/.npz without object fields,
Keras archives and HDF5 whose config holds only built-in Keras classes, JSON, YAML with
core tags, UTF-8 text. Everything else is refused, naming the file and the loader that would
open it. A pickle-capable file (``--allow``) must open completely — every container layer and
member, every pickle stream — and import only allow-listed globals (``_globals``). Nothing is
ever loaded, unpickled, rendered or evaluated. Policy: docs/attestations.md#scan.
"""

from __future__ import annotations

import io
import mmap
import os
import re
import zipfile
from collections.abc import Iterable, Sequence
from typing import IO

from provenance.errors import ArtifactError, InputError, UsageError
from provenance.hashing import Excludes, collect, compile_patterns, hash_file
from provenance.scanning import _containers as ct
from provenance.scanning import _formats as fm
from provenance.scanning._gguf import check_gguf, check_template
from provenance.scanning._hdf5 import check_hdf5
from provenance.scanning._keras import KerasError, check_config
from provenance.scanning._model import FileReport, Finding, ScanReport
from provenance.scanning._names import Route, route
from provenance.scanning._onnx import check_onnx
from provenance.scanning._pickle import PickleRefusal, judge_pickle, sniff_pickle

__all__ = ["FileReport", "Finding", "ScanReport", "scan_paths"]

MAX_PICKLE_FILE = 8 * 1024**3  # an allowed pickle-capable file is read whole
MAX_SNIFF = 16 * 1024**2  # bytes of a safe-format file also walked as pickle.load reads them
_TORCH_RAW = re.compile(
    r"[^/]+/(data/\d+|version|byteorder|\.data/serialization_id|\.data/version"
    r"|\.format_version|\.storage_alignment)\Z"
)
_KERAS_MEMBERS = {"config.json", "metadata.json", "model.weights.h5", "model.weights.npz"}


def _within(label: str, part: str) -> str:
    """Where in a file: ``outer > inner`` through container layers."""
    return f"{label} > {part}" if label else part


def _pickle_blob(data: bytes, label: str, depth: int, budget: ct.Budget) -> list[Finding]:
    """Content a pickle-capable loader would open: containers opened, pickles walked."""
    who = f"{label}: " if label else ""
    if depth > ct.MAX_DEPTH:
        return [Finding("container", f"{who}containers nested deeper than {ct.MAX_DEPTH}")]
    kind = ct.sniff(data[:512])
    if kind != "zip" and zipfile.is_zipfile(io.BytesIO(data)):
        if kind is not None:  # e.g. a tar with a zip appended: tarfile and zipfile differ
            return [Finding("container", f"{who}both {kind} and zip data (which one loads?)")]
        kind = "zip"  # a zip after other bytes: zipfile (pandas, keras) opens it anyway
    if kind is not None:  # pickle.load reads the same bytes as opcodes (a tar name can be some)
        why = sniff_pickle(data)
        if why:
            return [Finding("polyglot", f"{who}{kind} data {why}")]
    try:
        if kind == "unsupported":
            return [Finding("container", f"{who}compression the scan cannot open (lz4/zstd/ZF)")]
        if kind in ("gzip", "bzip2", "xz", "lzma", "zlib"):
            inner = ct.decompress(data, kind, budget, label or "file")
            return _pickle_blob(inner, _within(label, f"{kind} data"), depth + 1, budget)
        if kind == "zip":
            return _zip_members(io.BytesIO(data), label, depth, budget)
        if kind == "tar":
            findings = []
            for name, body in ct.tar_members(data, budget, label or "tar"):
                findings += _pickle_blob(body, _within(label, name), depth + 1, budget)
            return findings
    except ct.ContainerError as exc:
        return [Finding("container", str(exc))]
    try:
        judge_pickle(data)
    except PickleRefusal as exc:
        return [Finding("pickle", f"{who}pickle stream {exc}")]
    return []


def _zip_members(f: IO[bytes], label: str, depth: int, budget: ct.Budget) -> list[Finding]:
    """Every member of a zip a pickle-capable loader opens, except torch's raw tensor bytes."""
    zf, infos = ct.open_zip(f, label or "zip")
    findings: list[Finding] = []
    files = [i for i in infos if not i.is_dir()]
    for info in files:
        if len(files) > 1 and _TORCH_RAW.match(info.filename):
            continue  # raw tensor bytes torch.load reads as storage, never unpickles
        body = ct.read_member(zf, info, budget, label or "zip")
        findings += _pickle_blob(body, _within(label, info.filename), depth + 1, budget)
    return findings


def _read(f: IO[bytes], size: int, limit: int) -> bytes | None:
    return f.read(size) if size <= limit else None


def _npy(f: IO[bytes], size: int, label: str, allowed: bool) -> list[Finding]:
    """A .npy file or .npz member; object arrays only when allowed, their pickle walked."""
    who = f"{label}: " if label else ""
    info = fm.npy_info(f)
    if isinstance(info, str):
        return [Finding("numpy", f"{who}{info}")]
    dtype, count, offset = info
    if dtype.hasobject:
        if not allowed:
            return [
                Finding(
                    "numpy",
                    f"{who}dtype {dtype} holds Python objects: numpy.load(allow_pickle=True) "
                    "unpickles them; refused unless --allow names the file",
                )
            ]
        rest = f.read(size - offset) if size - offset <= MAX_PICKLE_FILE else b""
        try:
            judge_pickle(rest)
        except PickleRefusal as exc:
            return [Finding("pickle", f"{who}object array pickle {exc}")]
        return []
    expected = offset + count * dtype.itemsize
    if expected != size:
        return [Finding("numpy", f"{who}data is {size} bytes, the header says {expected}")]
    return []


def _npz(f: IO[bytes], allowed: bool, budget: ct.Budget, what: str) -> list[Finding]:
    try:
        zf, infos = ct.open_zip(f, what)
        findings: list[Finding] = []
        for info in infos:
            if not info.filename.endswith(".npy"):
                findings.append(Finding("numpy", f"member {info.filename!r} is not a .npy array"))
                continue
            body = ct.read_member(zf, info, budget, what)
            findings += _npy(io.BytesIO(body), len(body), info.filename, allowed)
        return findings
    except ct.ContainerError as exc:
        return [Finding("container", str(exc))]


def _keras_zip(f: IO[bytes], allowed: bool, budget: ct.Budget) -> list[Finding]:
    try:
        zf, infos = ct.open_zip(f, "keras archive")
        names = {i.filename: i for i in infos if not i.is_dir()}
        if "config.json" not in names:
            return [Finding("keras", "no config.json in the .keras archive")]
        findings: list[Finding] = []
        for name, info in sorted(names.items()):
            body = ct.read_member(zf, info, budget, "keras archive")
            if name in ("config.json", "metadata.json"):
                try:
                    doc = fm.parse_json(body)
                    if name == "config.json":
                        check_config(doc)
                except (UnicodeDecodeError, ValueError) as exc:
                    findings.append(Finding("keras", f"{name} is not JSON ({exc})"))
                except KerasError as exc:
                    findings.append(Finding("keras", f"{name}: {exc}"))
            elif name.endswith(".h5") and name in _KERAS_MEMBERS:
                findings += [
                    Finding(x.check, f"{name}: {x.message}") for x in check_hdf5(io.BytesIO(body))
                ]
            elif name.endswith(".npz") and name in _KERAS_MEMBERS:
                findings += _npz(io.BytesIO(body), allowed, budget, name)
            elif name.startswith("assets/") and route(name).kind in ("json", "text"):
                check = fm.check_json if route(name).kind == "json" else fm.check_text
                findings += [Finding(x.check, f"{name}: {x.message}") for x in check(body)]
            else:
                findings.append(Finding("keras", f"member {name!r} is not part of a Keras model"))
        return findings
    except ct.ContainerError as exc:
        return [Finding("container", str(exc))]


def _safe_format(f: IO[bytes], size: int, r: Route, allowed: bool) -> list[Finding]:
    kind = r.kind
    budget = ct.Budget()
    if kind == "safetensors":
        return fm.check_safetensors(f, size)
    if kind == "gguf":
        return check_gguf(f, size)
    if kind == "npy":
        return _npy(f, size, "", allowed)
    if kind == "npz":
        return _npz(f, allowed, budget, "npz archive")
    if kind == "keras":
        return _keras_zip(f, allowed, budget)
    if kind == "hdf5":
        return check_hdf5(f)
    if kind == "onnx":
        if size == 0:
            return [Finding("onnx", "empty file")]
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            return check_onnx(memoryview(mm))
    raw = _read(f, size, fm.MAX_TEXT)
    if raw is None:
        return [Finding(kind, f"larger than {fm.MAX_TEXT} bytes")]
    if kind == "json":
        return fm.check_json(raw)
    if kind == "yaml":
        return fm.check_yaml(raw)
    findings = fm.check_text(raw)
    if kind == "template" and not findings:
        findings += check_template(raw.decode("utf-8"), "chat template")
    return findings


def _inspect(f: IO[bytes], size: int, rel: str, allowed: bool) -> tuple[str, list[Finding]]:
    r = route(rel)
    if r.kind == "pickle" or (r.kind == "unknown" and allowed):
        findings = []
        if not allowed:
            findings.append(
                Finding(
                    "loader",
                    f"opened by {r.loader}, which can run code: refused unless --allow names it",
                )
            )
        if ct.sniff(f.read(512)) == "zip":  # opened in place: a large checkpoint is not read whole
            f.seek(0)
            head = f.read(MAX_SNIFF)
            why = sniff_pickle(head, size=size)
            if why:
                return "pickle", [*findings, Finding("polyglot", f"zip data {why}")]
            f.seek(0)
            try:
                return "pickle", findings + _zip_members(f, "", 0, ct.Budget())
            except ct.ContainerError as exc:
                return "pickle", [*findings, Finding("container", str(exc))]
        f.seek(0)
        data = _read(f, size, MAX_PICKLE_FILE)
        if data is None:
            return "pickle", [*findings, Finding("pickle", "too large to inspect")]
        return "pickle", findings + _pickle_blob(data, "", 0, ct.Budget())
    if r.kind == "unknown":
        return "unknown", [
            Finding("format", f"not a format on the allow-list (would be opened by {r.loader})")
        ]
    findings = _safe_format(f, size, r, allowed)
    f.seek(0)
    head = f.read(min(size, MAX_SNIFF))
    why = sniff_pickle(head, size=size)
    if why:
        findings.append(Finding("polyglot", f"{r.kind} file {why}"))
    return r.kind, findings


def _scan_file(full: str, shown: str, recorded: str, allowed: bool) -> FileReport:
    try:
        before = os.stat(full)
    except OSError as exc:
        raise ArtifactError(shown, f"cannot read: {exc.strerror}") from None
    sha256 = hash_file(full, shown).hex()
    try:
        with open(full, "rb") as f:
            fmt, findings = _inspect(f, before.st_size, full, allowed)
        after = os.stat(full)
    except OSError as exc:
        raise ArtifactError(shown, f"cannot read: {exc.strerror}") from None
    if (before.st_size, before.st_mtime_ns, before.st_ino) != (
        after.st_size,
        after.st_mtime_ns,
        after.st_ino,
    ):
        raise ArtifactError(shown, "file changed while it was being scanned")
    return FileReport(recorded, sha256, fmt, allowed, tuple(findings), shown)


def _recorded(full: str, base: str) -> str:
    """The path as the signed result records it: relative to `base`, else absolute."""
    rel = os.path.relpath(full, os.path.abspath(base)).replace(os.sep, "/")
    if rel == ".." or rel.startswith("../"):
        return os.path.abspath(full).replace(os.sep, "/")
    return rel


def scan_paths(paths: Sequence[str], *, base: str = ".", allow: Iterable[str] = ()) -> ScanReport:
    """Scan files and directories (recursively); `allow` names pickle-capable files accepted.

    Files are shown as the user named them (a directory's files joined to it; the files of
    `base` itself relative to it) and recorded relative to `base`. Raises InputError or
    ArtifactError (exit 3) for a path that is missing or unreadable, UsageError for an
    --allow naming no scanned file.
    """
    if not paths:
        raise UsageError("give at least one file or directory to scan")
    found: dict[str, str] = {}  # absolute path -> as shown
    for path in paths:
        if not os.path.lexists(path):
            raise InputError(path, "no such file or directory")
        if os.path.isdir(path):
            rels = collect(path, compile_patterns(["**"]), Excludes(Excludes.DEFAULT))
            if not rels:
                raise InputError(path, "no file to scan")
            # The --base directory itself is shown as it is recorded: relative to it.
            same = os.path.realpath(path) == os.path.realpath(base)
            for rel in rels:
                shown = rel if same else _join(path, rel)
                found.setdefault(os.path.abspath(os.path.join(path, rel)), shown)
        else:
            found.setdefault(os.path.abspath(path), path)
    allowed = {os.path.abspath(a) for a in allow}
    unknown = sorted(a for a in allow if os.path.abspath(a) not in found)
    if unknown:
        raise UsageError(f"--allow names file(s) that are not scanned: {', '.join(unknown)}")
    reports = tuple(
        _scan_file(full, shown, _recorded(full, base), full in allowed)
        for full, shown in sorted(found.items(), key=lambda item: item[1])
    )
    from provenance._version import __version__

    return ScanReport(
        reports,
        {"ml-provenance": __version__, "policy": "allow-list/1"},
        tuple(sorted(r.path for r in reports if r.allowed)),
    )


def _join(directory: str, rel: str) -> str:
    if directory in (".", "./"):
        return rel
    return directory.rstrip("/") + "/" + rel
