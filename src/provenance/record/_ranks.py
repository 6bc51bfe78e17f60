"""Which process of a distributed job records the step's link.

Under ``torchrun``, ``accelerate``, DeepSpeed, ``mpirun`` or ``srun`` every process runs the same
decorated function. One signed link per step is what the layout expects, so exactly one rank (0
unless configured) records it; the others run the function and write nothing. The launcher's
variables are read strictly: a half-set or out-of-range pair is refused before the step runs,
because a guess could leave a pipeline with no link, or with one per rank.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from provenance import _config
from provenance.errors import UsageError

log = logging.getLogger("provenance.record")

# (rank variable, size variable, launcher) in order of precedence: the torch-style pair is what
# torchrun/accelerate/DeepSpeed set, also when they themselves run under MPI or Slurm.
_SOURCES = (
    ("RANK", "WORLD_SIZE", "torchrun/accelerate"),
    ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "Open MPI"),
    ("PMI_RANK", "PMI_SIZE", "MPICH/Intel MPI"),
    ("SLURM_PROCID", "SLURM_NTASKS", "Slurm"),
)
_MAX_WORLD = 1_000_000


@dataclass(frozen=True)
class Ranks:
    """This process's place in a distributed job and the rank that records links."""

    rank: int
    world_size: int
    recorder: int
    source: str

    @property
    def records(self) -> bool:
        return self.rank == self.recorder

    def to_dict(self) -> dict[str, object]:
        """What the link's environment says about the job it was recorded in."""
        return {
            "world_size": self.world_size,
            "recorded_by_rank": self.recorder,
            "launcher": self.source,
        }


def _int(name: str, value: str) -> int:
    text = value.strip()
    if not text.isdecimal() or len(text) > 7:
        raise UsageError(f"{name}={value!r}: not a rank or size (a non-negative integer)")
    return int(text)


def current(step: str, record_rank: int | None = None, *, root: str = ".") -> Ranks | None:
    """The distributed job this process belongs to, or None for a single process.

    `record_rank` (decorator argument) > ``PROVENANCE_RECORD_RANK`` > ``[tool.provenance]
    record_rank`` > 0.
    """
    for rank_var, size_var, source in _SOURCES:
        rank_text, size_text = _config.environment(rank_var), _config.environment(size_var)
        if source == "Slurm" and size_text is None:
            size_text = _config.environment("SLURM_NPROCS")
            if rank_text is not None and size_text is None and rank_text.strip() == "0":
                continue  # a plain batch job without --ntasks: one process
        if rank_text is None and size_text is None:
            continue
        if rank_text is None or size_text is None:
            missing = size_var if rank_text is not None else rank_var
            raise UsageError(
                f"step '{step}': {rank_var if rank_text is not None else size_var} is set but "
                f"{missing} is not; cannot tell which process records the link"
            )
        rank, size = _int(rank_var, rank_text), _int(size_var, size_text)
        if not 1 <= size <= _MAX_WORLD or rank >= size:
            raise UsageError(f"step '{step}': {rank_var}={rank} is outside {size_var}={size}")
        recorder = _recorder(step, record_rank, root)
        if recorder >= size:
            raise UsageError(
                f"step '{step}': record rank {recorder} is outside {size_var}={size}; "
                "no process would record the link"
            )
        return Ranks(rank, size, recorder, source)
    return None


def check_record_rank(step: str, value: object) -> int:
    """A rank given in code: refused where the step is declared, not on the cluster."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _MAX_WORLD:
        raise UsageError(f"step '{step}': record_rank must be a non-negative integer")
    return value


def _recorder(step: str, explicit: int | None, root: str) -> int:
    if explicit is not None:
        return check_record_rank(step, explicit)
    configured = _config.setting("record_rank", root=root)
    return 0 if configured is None else _int("record_rank", configured)


def skip_message(step: str, ranks: Ranks) -> str:
    return (
        f"step '{step}': rank {ranks.rank} of {ranks.world_size} ({ranks.source}) runs without "
        f"recording; rank {ranks.recorder} writes the link"
    )
