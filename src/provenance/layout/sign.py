"""Compile a layout YAML and sign it into a DSSE envelope, refusing unsafe layouts by default."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import attr

from provenance._fs import canonical_json, write_atomic
from provenance.errors import VerificationError
from provenance.layout._compile import compile_layout
from provenance.layout._yaml import load_yaml
from provenance.layout.lint import Finding, lint
from provenance.signing import dsse


@dataclass(frozen=True)
class SignedLayout:
    """A signed layout written to `path`, the owner key that signed it and the lint findings."""

    path: str
    keyid: str
    findings: list[Finding]


def layout_payload(layout: Any) -> bytes:
    """The in-toto layout as compact, key-sorted JSON: the bytes the owner signs."""
    return canonical_json(attr.asdict(layout))


def sign_layout(
    yaml_path: str, signer: Any, output: str, *, allow_unsafe: bool = False
) -> SignedLayout:
    """Compile `yaml_path`, lint it, sign it with `signer` and write the envelope to `output`.

    Raises:
        LayoutError: the YAML is malformed.
        VerificationError: lint found errors (fail-open rules, …) and `allow_unsafe` is False.
    """
    spec = load_yaml(yaml_path)
    findings = lint(spec)
    errors = [f for f in findings if f.severity == "error"]
    if errors and not allow_unsafe:
        detail = "; ".join(f.render(yaml_path) for f in errors)
        raise VerificationError(
            f"refusing to sign {yaml_path}: {len(errors)} lint error(s): {detail} "
            "(--allow-unsafe overrides)"
        )
    envelope = dsse.sign(layout_payload(compile_layout(spec)), signer)
    write_atomic(output, dsse.dumps(envelope))
    return SignedLayout(output, signer.public_key.keyid, findings)
