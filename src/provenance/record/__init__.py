"""Recording pipeline steps as signed in-toto links."""

from provenance.record._decorator import step
from provenance.record._lineage import BaseModel, BaseModelRecord, base_models_of
from provenance.record._recorder import StepSpec
from provenance.record._wrapper import run_step

__all__ = ["BaseModel", "BaseModelRecord", "StepSpec", "base_models_of", "run_step", "step"]
