"""Verify SLSA provenance for an artifact: built in (offline), or through slsa-verifier if asked.

Outcomes: a result whose `ok` is True (exit 0); a result with failures (exit 1) when the
provenance is authentic but does not match the artifact, source, builder or ref, or when its
signature, log entry or certificate chain do not verify against the trusted root; an
`InputError` (exit 3) when the file is not valid provenance or is in a form this verifier does
not support (it names the form). Keyless bundles go through sigstore-python (`_bundle`);
key-signed DSSE envelopes through the project's DSSE code, without importing sigstore.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from importlib import resources
from typing import TYPE_CHECKING

from provenance.attest.slsa import _policy
from provenance.attest.slsa._claims import check_statement
from provenance.attest.slsa._expect import Expectations
from provenance.attest.slsa._formats import Provenance, ProvenanceFile, load
from provenance.attest.slsa._result import Failure, SlsaResult
from provenance.errors import InputError, UsageError

if TYPE_CHECKING:
    from securesystemslib.signer import Key
    from sigstore.models import TrustedRoot

__all__ = [
    "Expectations",
    "Failure",
    "ProvenanceFile",
    "SlsaResult",
    "default_trusted_root",
    "verify_builtin",
    "verify_with_slsa_verifier",
]

_DIGESTS = {
    "sha256": re.compile(r"(?:sha256:)?([0-9a-f]{64})\Z"),
    "sha512": re.compile(r"(?:sha512:)?([0-9a-f]{128})\Z"),
}
# slsa-verifier prints the builder it verified from the certificate on stderr.
_VERIFIED_BUILDER = re.compile(r'Verified build using builder "([^"]+)"')


def default_trusted_root() -> str:
    """The public-good root pinned inside the installed sigstore-python (never refreshed)."""
    path = (
        resources.files("sigstore._store")
        / "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev"
        / "trusted_root.json"
    )
    if not path.is_file():
        raise InputError(
            None, "sigstore-python ships no production trusted root: pass --trusted-root"
        )
    return str(path)


def sha256_file(path: str) -> str:
    from provenance.hashing import hash_file

    return hash_file(path, path).hex()


def _file_digest(path: str, alg: str) -> str:
    if alg == "sha256":
        return sha256_file(path)
    import hashlib

    from provenance._fs import read_chunks

    h = hashlib.new(alg)
    for piece in read_chunks(path, 1 << 62, 1 << 20, "artifact"):
        h.update(piece)
    return h.hexdigest()


def artifact_digest(
    artifact: str | None, digest: str | None, alg: str = "sha256"
) -> tuple[str, str]:
    """(name, hex digest in `alg`) of the artifact, from its bytes or a given `ALG:HEX`."""
    if alg not in _DIGESTS:
        raise UsageError(f"--digest-alg {alg!r}: expected one of {', '.join(_DIGESTS)}")
    if bool(artifact) == bool(digest):
        raise UsageError("give exactly one of ARTIFACT or --artifact-digest")
    if digest:
        m = _DIGESTS[alg].match(digest.strip().lower())
        if not m:
            size = 64 if alg == "sha256" else 128
            raise UsageError(
                f"--artifact-digest {digest!r}: expected {alg}:<{size} hex digits> "
                f"(--digest-alg {alg})"
            )
        return f"{alg}:{m.group(1)}", m.group(1)
    return str(artifact), _file_digest(str(artifact), alg)


def _verify_keyed(prov: Provenance, result: SlsaResult, expect: Expectations, key: Key) -> bool:
    from provenance.signing import dsse

    env = dsse.parse(json.dumps(prov.document).encode(), prov.source)
    if env.payload_type != dsse.IN_TOTO_PAYLOAD_TYPE:
        result.failures.append(
            Failure("DSSE payload type", dsse.IN_TOTO_PAYLOAD_TYPE, env.payload_type)
        )
        return False
    if not env.verified_keyids({key.keyid: key}):
        result.failures.append(
            Failure(
                "signature",
                f"signed by key {key.keyid[:8]}",
                f"signature does not verify (signed by: "
                f"{', '.join(k[:8] for k in env.keyids) or 'nobody'})",
            )
        )
        return False
    result.producer = "key-signed"
    result.facts = {"key": key.keyid}
    check_statement(env.payload, prov.source, result, expect, producer="key-signed")
    return True


def verify_builtin(
    artifact: str | None,
    provenance: str | ProvenanceFile,
    expect: Expectations,
    *,
    trusted_root: str | None = None,
    key: Key | None = None,
    digest: str | None = None,
    digest_alg: str = "sha256",
) -> SlsaResult:
    """Verify `provenance` for the artifact; several documents: the one for this artifact wins.

    Give a `ProvenanceFile` to verify bytes already read (the gate signs their digest); a path
    is read once here.
    """
    name, sha256 = artifact_digest(artifact, digest, digest_alg)
    loaded = (
        provenance if isinstance(provenance, ProvenanceFile) else ProvenanceFile.read(provenance)
    )
    docs = load(loaded)
    usable = [d for d in docs if isinstance(d, Provenance)]
    errors = [d for d in docs if isinstance(d, InputError)]
    # The documents naming this digest first, as slsa-verifier does with .intoto.jsonl files.
    usable.sort(key=lambda p: not p.claims(sha256, digest_alg))
    if any(p.kind == "bundle" for p in usable):
        import sigstore

        verifier = f"built-in (sigstore-python {sigstore.__version__}, offline)"
    else:
        verifier = "built-in key verifier"
    best: SlsaResult | None = None
    root: TrustedRoot | None = None
    for prov in usable:
        result = SlsaResult(
            name,
            verifier,
            sha256,
            provenance=prov.source,
            provenance_sha256=loaded.sha256,
            digest_alg=digest_alg,
        )
        if prov.kind == "dsse":
            if key is None:
                errors.append(
                    InputError(
                        prov.source,
                        "a DSSE envelope without a certificate (key-signed): keyless "
                        "verification is impossible; pass the signer's public key with --key",
                    )
                )
                continue
            result.authentic = _verify_keyed(prov, result, expect, key)
        elif key is not None:
            # --key asks for provenance signed by that key: a keyless bundle, however genuine,
            # is not signed by it (and would otherwise raise the level a key can claim).
            result.failures.append(
                Failure(
                    "signature: a Sigstore bundle (keyless), not signed by the key given",
                    f"key {key.keyid[:16]}",
                    "a Fulcio certificate",
                )
            )
        else:
            from provenance.attest.slsa import _bundle

            root_path = resolve_root(trusted_root)
            if root is None:
                root = _bundle.load_trusted_root(root_path)
            result.authentic = _bundle.verify_bundle(prov, result, expect, root, root_path)
        if result.ok:
            return result
        # Keep the most telling failure: authentic and about this artifact beats the rest.
        if best is None or (result.authentic and not best.authentic):
            best = result
    if best is not None:
        return best
    raise errors[0] if errors else InputError(loaded.path, "no provenance document")


def resolve_root(trusted_root: str | None) -> str:
    """A root file path: a named root (`github`, `public-good`) or a file; default public-good."""
    from provenance.signing.sigstore import NAMES, named_root

    if trusted_root in NAMES:
        return named_root(str(trusted_root))
    return trusted_root or default_trusted_root()


def find_slsa_verifier(explicit: str | None) -> str | None:
    if explicit:
        if not (os.path.isfile(explicit) and os.access(explicit, os.X_OK)):
            raise UsageError(f"--slsa-verifier {explicit}: not an executable file")
        return explicit
    return shutil.which("slsa-verifier")


def verify_with_slsa_verifier(
    binary: str, artifact: str, provenance: str, expect: Expectations
) -> SlsaResult:
    """Hand off to slsa-verifier `verify-artifact` with the same expectations."""
    if not expect.source_uri:
        raise UsageError("slsa-verifier needs --source-uri")
    argv = [
        binary,
        "verify-artifact",
        artifact,
        "--provenance-path",
        provenance,
        "--source-uri",
        _policy.normalize_repo(expect.source_uri),
    ]
    if expect.builder_id:
        argv += ["--builder-id", expect.builder_id]
    if expect.branch:
        argv += ["--source-branch", expect.branch]
    if expect.tag:
        argv += ["--source-tag", expect.tag]
    if expect.versioned_tag:
        argv += ["--source-versioned-tag", expect.versioned_tag]
    for name, value in expect.workflow_inputs:
        argv += ["--build-workflow-input", f"{name}={value}"]
    result = SlsaResult(artifact, f"slsa-verifier ({binary})", sha256_file(artifact))
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        from provenance.errors import InfrastructureError

        raise InfrastructureError(f"slsa-verifier could not run: {exc}") from None
    output = (proc.stdout + proc.stderr).strip()
    result.authentic = proc.returncode == 0
    if result.authentic:
        # What slsa-verifier checked: the source it was given and the builder it reports.
        result.facts["source_repository"] = _policy.repo_url(expect.source_uri)
        if expect.ref:
            result.facts["source_ref"] = expect.ref
        found = _VERIFIED_BUILDER.search(output)
        if found:
            result.facts["signer"] = found.group(1)
    if not result.authentic:
        lines = [ln for ln in output.splitlines() if ln.strip()]
        result.failures.append(
            Failure(
                f"slsa-verifier exited {proc.returncode}",
                None,
                lines[-1] if lines else "no output",
            )
        )
    return result
