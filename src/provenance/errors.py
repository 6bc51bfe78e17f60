"""One exception tree for the whole package.

Every error names what it is about (file, step, rule, artifact) in its message, and carries the
process exit code the CLI uses for it, so callers never map exceptions to codes themselves.
"""

from __future__ import annotations


class ProvenanceError(Exception):
    """Base of every error raised on purpose by ml-provenance."""

    exit_code = 3


class UsageError(ProvenanceError):
    """The caller combined options or arguments that cannot work together."""

    exit_code = 2


class OutputError(UsageError):
    """An output path cannot be used: it would replace an input or a key, or is not writable."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(f"{path}: {message}")


class InputError(ProvenanceError):
    """An input file (key, layout, link, YAML, bundle, artifact) is unreadable or invalid."""

    exit_code = 3

    def __init__(self, path: str | None, message: str) -> None:
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class KeyLoadError(InputError):
    """A private or public key cannot be loaded."""


class LayoutError(InputError):
    """A layout (YAML or signed) is malformed."""

    def __init__(self, path: str | None, message: str, line: int | None = None) -> None:
        self.line = line
        where = f"{path}:{line}" if path and line is not None else path
        super().__init__(where, message)


class LinkFormatError(InputError):
    """A link file is not a well-formed signed in-toto link."""


class UnsupportedProvenanceError(InputError):
    """Provenance in a form this verifier cannot check offline: refused, never a pass."""


class ArtifactError(InputError):
    """An artifact cannot be hashed: unreadable, changed while read, or outside the base dir."""


class PatternError(InputError):
    """A glob pattern is malformed (empty, NUL, unbalanced or empty brackets, bad range)."""


class PathEscapeError(ArtifactError):
    """A pattern, symlink or recorded path reaches outside the base directory."""


class VerificationError(ProvenanceError):
    """Verification or policy failed; the message says which check and why."""

    exit_code = 1


class InfrastructureError(ProvenanceError):
    """A service the command depends on (MLflow, a KMS) is unreachable or failed."""

    exit_code = 4


class StepFailedError(ProvenanceError):
    """A wrapped command exited non-zero; no link was written."""

    def __init__(self, step: str, returncode: int) -> None:
        self.step = step
        self.returncode = returncode
        # A signal-killed command (negative status) exits like a shell reports it: 128 + signal.
        self.exit_code = (
            returncode if 0 < returncode < 256 else 128 - returncode if returncode < 0 else 1
        )
        super().__init__(f"step '{step}': command exited with status {returncode}; no link written")


class ComponentError(InfrastructureError):
    """One named server (PostgreSQL, the S3 store, MLflow) is unreachable, refuses or failed."""

    def __init__(self, component: str, message: str) -> None:
        self.component = component
        super().__init__(f"{component}: {message}")
