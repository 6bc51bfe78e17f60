"""The MLflow promotion gate: verify, then promote; verified loading; a registry-store plugin.

mlflow is imported lazily, only by the functions that talk to it.
"""

from provenance.gate._load import LoadedModel, load_verified
from provenance.gate._promote import PromotionResult, SlsaCheck, promote
from provenance.gate._register import Registered, register_files

__all__ = [
    "LoadedModel",
    "PromotionResult",
    "Registered",
    "SlsaCheck",
    "load_verified",
    "promote",
    "register_files",
]
