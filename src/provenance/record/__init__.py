"""Recording pipeline steps as signed in-toto links."""

from provenance.record._decorator import step
from provenance.record._recorder import StepSpec
from provenance.record._wrapper import run_step

__all__ = ["StepSpec", "run_step", "step"]
