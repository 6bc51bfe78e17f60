"""The MLflow adapter of the gate: `MlflowRegistry`, plain-file registration, and the
registry-store plugin (`provenance-sqlite|postgresql|mysql` store URIs). mlflow is imported
lazily, by the functions that talk to it."""

from provenance.gate.mlflow._register import Registered, register_files
from provenance.gate.mlflow._registry import MlflowRegistry

__all__ = ["MlflowRegistry", "Registered", "register_files"]
