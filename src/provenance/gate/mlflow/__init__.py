"""The MLflow adapter of the gate.

`MlflowRegistry` (the `Registry` and `RegistryFactory` of ``models:`` URIs), plain-file
registration, and the registry-store plugin (``provenance-sqlite|postgresql|mysql`` store URIs).
mlflow is imported lazily, by the functions that talk to it.
"""

from provenance.gate.mlflow._client import mlflow_errors
from provenance.gate.mlflow._register import register_files
from provenance.gate.mlflow._registry import MlflowRegistry
from provenance.gate.registry import Registered

__all__ = ["MlflowRegistry", "Registered", "mlflow_errors", "register_files"]
