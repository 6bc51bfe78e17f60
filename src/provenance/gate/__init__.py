"""The promotion gate: verify, then promote; revoke; verified loading; the registry seam.

Registry-agnostic: MLflow lives in `provenance.gate.mlflow` and is imported lazily.
"""

from provenance.gate._checks import AttestationCheck, CheckOutcome, SlsaCheck
from provenance.gate._decision import Decision, Revocation
from provenance.gate._load import LoadedModel, load_verified
from provenance.gate._promote import PromotionResult, promote, revoke
from provenance.gate.registry import ModelVersion, Registry, parse_model_uri

__all__ = [
    "AttestationCheck",
    "CheckOutcome",
    "Decision",
    "LoadedModel",
    "ModelVersion",
    "PromotionResult",
    "Registry",
    "Revocation",
    "SlsaCheck",
    "load_verified",
    "parse_model_uri",
    "promote",
    "revoke",
]
