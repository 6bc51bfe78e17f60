"""Verified loading: a consumer gets a model's files only if the gate signed exactly those files.

Artifacts can be overwritten after promotion, so the check happens at load time: the gate's
signature over (model, version, alias, artifacts digest) must verify, and the downloaded files
must hash to that digest. Files are downloaded into a scratch directory beside DEST and moved
into place only after the check; on any mismatch nothing is left in DEST.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any

from provenance.errors import UsageError, VerificationError
from provenance.gate import _client
from provenance.gate._decision import (
    TAG_SIGNATURE,
    artifacts_digest,
    check_tags,
    manifest_from_tags,
)
from provenance.gate._files import hash_tree

_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[\w-]+)|/(?P<version>\d+))$")


@dataclass(frozen=True)
class LoadedModel:
    name: str
    version: str
    alias: str
    path: str
    files: dict[str, str]


def parse_model_uri(uri: str) -> tuple[str, str | None, str | None]:
    m = _URI.match(uri)
    if not m:
        raise UsageError(f"'{uri}' is not models:/NAME@ALIAS or models:/NAME/VERSION")
    return m["name"], m["alias"], m["version"]


def _latest_alias(tags: dict[str, str]) -> str | None:
    prefix = TAG_SIGNATURE + "."
    aliases = [k[len(prefix) :] for k in tags if k.startswith(prefix)]
    return aliases[0] if len(aliases) == 1 else None


def load_verified(
    uri: str, dest: str, gate_key: Any = None, *, tracking_uri: str | None = None
) -> LoadedModel:
    """Download `uri` into `dest` (absent or empty) only if the gate's decision holds.

    `gate_key`: the gate's public key (path or key); default PROVENANCE_GATE_PUBLIC_KEY.
    """
    from provenance.signing import load_public_key

    name, alias, version = parse_model_uri(uri)
    if gate_key is None:
        gate_key = os.environ.get("PROVENANCE_GATE_PUBLIC_KEY")
        if not gate_key:
            raise UsageError(
                "no gate public key: pass gate_key / --gate-key or set PROVENANCE_GATE_PUBLIC_KEY"
            )
    if isinstance(gate_key, (str, os.PathLike)):
        gate_key = load_public_key(os.fspath(gate_key))
    if os.path.exists(dest) and (not os.path.isdir(dest) or os.listdir(dest)):
        raise UsageError(f"{dest} exists and is not empty")
    mc = _client.client(tracking_uri)
    with _client.mlflow_errors(f"resolving {uri}"):
        mv = (
            mc.get_model_version_by_alias(name, alias)
            if alias
            else mc.get_model_version(name, version)
        )
    version = str(mv.version)
    tags = dict(mv.tags)
    signed_alias = alias or _latest_alias(tags)
    if signed_alias is None:
        raise VerificationError(f"{uri}: version {version} carries no single gate decision")
    try:
        decision = check_tags(name, version, signed_alias, tags, gate_key)
    except ValueError as exc:
        raise VerificationError(f"{uri}: {exc}") from None
    parent = os.path.dirname(os.path.abspath(dest)) or "."
    os.makedirs(parent, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix=".provenance-fetch-", dir=parent)
    try:
        files_dir = _client.download_version(mc, name, version, os.path.join(scratch, "files"))
        files = hash_tree(files_dir)
        if artifacts_digest(files) != decision.artifacts_sha256:
            raise VerificationError(
                f"{uri}: {_describe(files, manifest_from_tags(tags, decision))}"
            )
        if os.path.isdir(dest):
            os.rmdir(dest)
        os.replace(files_dir, dest)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return LoadedModel(name, version, signed_alias, dest, files)


def _describe(files: dict[str, str], manifest: dict[str, str] | None) -> str:
    """Name the files that differ from what the gate verified."""
    if manifest is None:
        return (
            "the downloaded files do not match the artifacts the gate verified "
            "(no per-file manifest to say which)"
        )
    problems = []
    for path in sorted(set(files) | set(manifest)):
        got, want = files.get(path), manifest.get(path)
        if got == want:
            continue
        if want is None:
            problems.append(f"extra file '{path}'")
        elif got is None:
            problems.append(f"missing '{path}'")
        else:
            problems.append(f"hash mismatch for '{path}': expected {want}, actual {got}")
    return "artifacts changed after promotion: " + "; ".join(problems)
