"""The promotion gate: verify, then promote; revoke; register; verified loading.

Registry-agnostic: every function speaks the `Registry` protocol (`gate.registry`), chosen from
the model URI's scheme or passed in; MLflow lives in `provenance.gate.mlflow` and is imported
lazily.
"""

from provenance.gate._checks import AttestationCheck, CheckOutcome, SlsaCheck
from provenance.gate._decision import DECISION_PREFIX, Decision, Revocation, open_record
from provenance.gate._load import LoadedModel, load_verified
from provenance.gate._promote import PromotionResult, promote, revoke
from provenance.gate._register import register
from provenance.gate.registry import (
    ModelRef,
    ModelVersion,
    Registered,
    Registry,
    RegistryFactory,
    open_registry,
    parse_model_uri,
    register_scheme,
    registry_factory,
    resolve,
)

__all__ = [
    "DECISION_PREFIX",
    "AttestationCheck",
    "CheckOutcome",
    "Decision",
    "LoadedModel",
    "ModelRef",
    "ModelVersion",
    "PromotionResult",
    "Registered",
    "Registry",
    "RegistryFactory",
    "Revocation",
    "SlsaCheck",
    "load_verified",
    "open_record",
    "open_registry",
    "parse_model_uri",
    "promote",
    "register",
    "register_scheme",
    "registry_factory",
    "resolve",
    "revoke",
]
