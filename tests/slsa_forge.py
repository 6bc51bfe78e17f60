"""A private Sigstore instance for tests: a Fulcio-like CA, an RFC 3161 TSA, a trusted root.

It issues genuine certificates to any workflow identity with any Fulcio extensions, and
timestamp-only bundles over any statement, so tests can play an attacker who controls a workflow
(the certificate is real; only the statement is hostile) without a network. The TSA is
`openssl ts` (the machine's OpenSSL), the rest is `cryptography`.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

GH = "https://github.com"
IN_TOTO = "application/vnd.in-toto+json"
OIDS = {
    "issuer": "1.3.6.1.4.1.57264.1.8",
    "signer_uri": "1.3.6.1.4.1.57264.1.9",
    "signer_digest": "1.3.6.1.4.1.57264.1.10",
    "runner_environment": "1.3.6.1.4.1.57264.1.11",
    "source_repository": "1.3.6.1.4.1.57264.1.12",
    "source_commit": "1.3.6.1.4.1.57264.1.13",
    "source_ref": "1.3.6.1.4.1.57264.1.14",
    "owner": "1.3.6.1.4.1.57264.1.16",
    "build_config": "1.3.6.1.4.1.57264.1.18",
    "trigger": "1.3.6.1.4.1.57264.1.20",
    "run_invocation": "1.3.6.1.4.1.57264.1.21",
}
_PEM = serialization.Encoding.PEM
_DER = serialization.Encoding.DER


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _der_utf8(text: str) -> bytes:
    """A DER UTF8String, as Fulcio encodes its v2 extensions."""
    raw = text.encode()
    n = len(raw)
    length = (
        bytes([n]) if n < 128 else bytes([0x81, n]) if n < 256 else bytes([0x82, n >> 8, n & 255])
    )
    return b"\x0c" + length + raw


def _ca(name: str, key: ec.EllipticCurvePrivateKey, now: dt.datetime) -> x509.Certificate:
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "test"),
            x509.NameAttribute(NameOID.COMMON_NAME, name),
        ]
    )
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=30))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def workflow_facts(
    repo: str = "org/repo",
    workflow: str = ".github/workflows/build.yml",
    ref: str = "refs/heads/main",
    commit: str = "a" * 40,
    trigger: str = "push",
    signer: str | None = None,
) -> tuple[str, dict[str, str]]:
    """(SAN, Fulcio extensions) of a GitHub workflow run; `signer` for a reusable workflow."""
    san = signer or f"{GH}/{repo}/{workflow}@{ref}"
    return san, {
        "issuer": "https://token.actions.githubusercontent.com",
        "signer_uri": san,
        "runner_environment": "github-hosted",
        "source_repository": f"{GH}/{repo}",
        "source_commit": commit,
        "source_ref": ref,
        "owner": f"{GH}/{repo.split('/')[0]}",
        "build_config": f"{GH}/{repo}/{workflow}@{ref}",
        "trigger": trigger,
        "run_invocation": f"{GH}/{repo}/actions/runs/1/attempts/1",
    }


def statement_v1(
    sha256: str,
    repo: str = "org/repo",
    workflow: str = ".github/workflows/build.yml",
    ref: str = "refs/heads/main",
    commit: str = "a" * 40,
    trigger: str = "push",
    builder: str = f"{GH}/actions/runner/github-hosted",
) -> dict[str, Any]:
    """A statement shaped as GitHub's artifact attestations write them."""
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "artifact.bin", "digest": {"sha256": sha256}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {
                "buildType": "https://actions.github.io/buildtypes/workflow/v1",
                "externalParameters": {
                    "workflow": {"ref": ref, "repository": f"{GH}/{repo}", "path": workflow}
                },
                "internalParameters": {"github": {"event_name": trigger}},
                "resolvedDependencies": [
                    {"uri": f"git+{GH}/{repo}@{ref}", "digest": {"gitCommit": commit}}
                ],
            },
            "runDetails": {
                "builder": {"id": builder},
                "metadata": {"invocationId": f"{GH}/{repo}/actions/runs/1/attempts/1"},
            },
        },
    }


class Instance:
    """One private instance under `workdir`: `root()` writes its trusted root (no logs)."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.now = dt.datetime.now(dt.timezone.utc)
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ca = _ca("test-fulcio", self.ca_key, self.now)
        tsa_root_key = ec.generate_private_key(ec.SECP256R1())
        self.tsa_root = _ca("test-tsa-root", tsa_root_key, self.now)
        self.tsa_key = ec.generate_private_key(ec.SECP256R1())
        self.tsa = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-tsa")]))
            .issuer_name(self.tsa_root.subject)
            .public_key(self.tsa_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.now - dt.timedelta(days=10))
            .not_valid_after(self.now + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(tsa_root_key.public_key()),
                critical=False,
            )
            .sign(tsa_root_key, hashes.SHA256())
        )
        (self.dir / "tsa.pem").write_bytes(self.tsa.public_bytes(_PEM))
        (self.dir / "tsa.key").write_bytes(
            self.tsa_key.private_bytes(
                _PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        (self.dir / "tsaserial").write_text("01\n")
        (self.dir / "ts.cnf").write_text(
            "[ tsa ]\ndefault_tsa = t\n[ t ]\n"
            f"serial = {self.dir / 'tsaserial'}\ncrypto_device = builtin\n"
            "signer_digest = sha256\ndefault_policy = 1.2.3.4.1\ndigests = sha256\n"
            "accuracy = secs:1\nordering = no\ntsa_name = no\ness_cert_id_chain = no\n"
            "ess_cert_id_alg = sha256\n"
        )
        self._n = 0

    def root(self) -> Path:
        start = (self.now - dt.timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
        doc = {
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "certificateAuthorities": [
                {
                    "subject": {"organization": "test", "commonName": "test-fulcio"},
                    "uri": "https://fulcio.test",
                    "certChain": {"certificates": [{"rawBytes": _b64(self.ca.public_bytes(_DER))}]},
                    "validFor": {"start": start},
                }
            ],
            "timestampAuthorities": [
                {
                    "subject": {"organization": "test", "commonName": "test-tsa"},
                    "uri": "https://tsa.test",
                    "certChain": {
                        "certificates": [
                            {"rawBytes": _b64(self.tsa.public_bytes(_DER))},
                            {"rawBytes": _b64(self.tsa_root.public_bytes(_DER))},
                        ]
                    },
                    "validFor": {"start": start},
                }
            ],
            "tlogs": [],
            "ctlogs": [],
        }
        path = self.dir / "root.json"
        path.write_text(json.dumps(doc))
        return path

    def _leaf(
        self, san: str, extensions: dict[str, str], key: ec.EllipticCurvePrivateKey
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.now - dt.timedelta(minutes=5))
            .not_valid_after(self.now + dt.timedelta(minutes=30))
            .add_extension(
                x509.SubjectAlternativeName([x509.UniformResourceIdentifier(san)]), critical=True
            )
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca_key.public_key()),
                critical=False,
            )
        )
        for name, value in extensions.items():
            builder = builder.add_extension(
                x509.UnrecognizedExtension(x509.ObjectIdentifier(OIDS[name]), _der_utf8(value)),
                critical=False,
            )
        return builder.sign(self.ca_key, hashes.SHA256())

    def _timestamp(self, signature: bytes) -> bytes:
        self._n += 1
        data, query, reply = (self.dir / f"{self._n}.{x}" for x in ("sig", "tsq", "tsr"))
        data.write_bytes(signature)
        subprocess.run(
            ["openssl", "ts", "-query", "-data", str(data), "-sha256", "-cert", "-out", str(query)],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [
                "openssl",
                "ts",
                "-reply",
                "-queryfile",
                str(query),
                "-signer",
                str(self.dir / "tsa.pem"),
                "-inkey",
                str(self.dir / "tsa.key"),
                "-config",
                str(self.dir / "ts.cnf"),
                "-out",
                str(reply),
            ],
            check=True,
            capture_output=True,
        )
        return reply.read_bytes()

    def bundle(
        self,
        payload: bytes | dict[str, Any],
        facts: tuple[str, dict[str, str]],
        *,
        payload_type: str = IN_TOTO,
        extra_signatures: Sequence[dict[str, str]] = (),
    ) -> dict[str, Any]:
        """A timestamp-only bundle over `payload`, signed with a certificate for `facts`."""
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self._leaf(*facts, key)
        pae = b"DSSEv1 %d %b %d %b" % (len(payload_type), payload_type.encode(), len(raw), raw)
        signature = key.sign(pae, ec.ECDSA(hashes.SHA256()))
        return {
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {
                "certificate": {"rawBytes": _b64(cert.public_bytes(_DER))},
                "timestampVerificationData": {
                    "rfc3161Timestamps": [{"signedTimestamp": _b64(self._timestamp(signature))}]
                },
            },
            "dsseEnvelope": {
                "payload": _b64(raw),
                "payloadType": payload_type,
                "signatures": [{"sig": _b64(signature)}, *extra_signatures],
            },
        }
