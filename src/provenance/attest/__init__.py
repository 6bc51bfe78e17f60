"""Attestations: in-toto Statement v1 with typed predicates, signed as DSSE, read signature-first.

Predicates: SLSA Provenance v1 (`slsa_provenance`), SLSA Verification Summary (`vsa`), model
scan results (`scan`, in-toto test-result), OpenSSF Model Signing (`oms`, the model-signing
library's own format). Importing this package registers the predicate readers; it stays light
(no model-signing, no picklescan until used).
"""

from provenance.attest import scan, slsa_provenance, vsa
from provenance.attest._resource import ResourceDescriptor
from provenance.attest._signature import verified_keyids
from provenance.attest.scan import TestResult, build_scan_statement, check_scan_attestation
from provenance.attest.slsa_provenance import SlsaProvenance
from provenance.attest.statement import (
    PAYLOAD_TYPE,
    STATEMENT_TYPE,
    Predicate,
    SignedStatement,
    Statement,
    Subject,
    dumps_jsonl,
    predicate_class,
    read_statement,
    read_statements,
    register,
    write_jsonl,
)
from provenance.attest.vsa import (
    ML_LEVELS,
    ML_MODEL_SCANNED,
    ML_PROVENANCE_CHAIN_VERIFIED,
    InputAttestation,
    VerificationSummary,
    build_vsa,
    check_vsa,
)

__all__ = [
    "ML_LEVELS",
    "ML_MODEL_SCANNED",
    "ML_PROVENANCE_CHAIN_VERIFIED",
    "PAYLOAD_TYPE",
    "STATEMENT_TYPE",
    "InputAttestation",
    "Predicate",
    "ResourceDescriptor",
    "SignedStatement",
    "SlsaProvenance",
    "Statement",
    "Subject",
    "TestResult",
    "VerificationSummary",
    "build_scan_statement",
    "build_vsa",
    "check_scan_attestation",
    "check_vsa",
    "dumps_jsonl",
    "predicate_class",
    "read_statement",
    "read_statements",
    "register",
    "scan",
    "slsa_provenance",
    "verified_keyids",
    "vsa",
    "write_jsonl",
]
