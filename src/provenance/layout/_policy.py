"""The layout's own policy, signed inside the in-toto layout's readme: written and read only here.

in-toto's layout has no field for the model, the metric thresholds, the functionaries' names or
the steps whose links may lack a pipeline run id, so compiling writes each as one declaration
line in the readme (`ml-provenance model: {"products": "models/*", "step": "train"}`); upstream
`in-toto-verify` ignores the readme and verifies the same layout unchanged. Verification parses
the lines once, right after the layout's signatures are checked, into a `LayoutPolicy` that the
`VerificationResult` carries to every consumer. No other module reads the lines or the readme
(tests/unit/test_layout_policy.py fails if one does).

Reading fails closed: a declaration that is malformed, repeated, names a step or key the layout
does not hold, or is unknown to this version (a newer policy) is a LayoutError naming the layout,
never "no policy".
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from provenance._fs import load_json_bounded
from provenance.errors import LayoutError
from provenance.layout._model import ModelDecl, Threshold

if TYPE_CHECKING:
    from provenance.layout._model import LayoutSpec

PREFIX = "ml-provenance "
FUNCTIONARIES = "functionaries"  # {"name": "keyid", ...}: in-toto keeps only key ids
MODEL = "model"  # {"step": ..., "products": ...}
THRESHOLDS = "thresholds"  # [{"step", "file", "metric", "op", "value"}, ...]
RUN_ID_OPTIONAL = "run-id-optional"  # ["step", ...]
DECLARATIONS = (FUNCTIONARIES, MODEL, THRESHOLDS, RUN_ID_OPTIONAL)
# Any readme line of this shape is a declaration: the known ones above, or one this version
# cannot honour. The owner's own readme text may not take this shape (refused when loading).
# (The writer puts a space after the colon; a reader that required it would skip `model:{...}`.)
_DECLARATION = re.compile(r"ml-provenance ([a-z][a-z-]*):")


@dataclass(frozen=True)
class LayoutPolicy:
    """What a signed layout declares beyond in-toto, parsed once from its readme.

    `functionaries` holds (name, keyid) pairs sorted by name; `names` maps key ids to names for
    explanations. An empty policy is what a layout compiled elsewhere (no declarations) has.
    """

    functionaries: tuple[tuple[str, str], ...] = ()
    model: ModelDecl | None = None
    thresholds: tuple[Threshold, ...] = ()
    run_id_optional: frozenset[str] = frozenset()

    @property
    def names(self) -> dict[str, str]:
        """Map key ids to functionary names (empty for layouts compiled elsewhere)."""
        return {keyid: name for name, keyid in self.functionaries}

    @classmethod
    def from_spec(cls, spec: LayoutSpec) -> LayoutPolicy:
        """The policy a layout YAML declares (what compiling writes into the readme)."""
        return cls(
            functionaries=tuple(sorted((n, k.keyid) for n, k in spec.functionaries.items())),
            model=spec.model,
            thresholds=tuple(spec.thresholds),
            run_id_optional=frozenset(s.name for s in spec.steps if s.run_id_optional),
        )

    def to_readme(self, text: str = "") -> str:
        """`text` (the owner's readme) followed by this policy's declaration lines."""
        check_readme_text(text)
        lines = [text] if text else []
        names = dict(self.functionaries)
        lines.append(_line(FUNCTIONARIES, json.dumps(names, sort_keys=True)))
        if self.model is not None:
            lines.append(_line(MODEL, json.dumps(self.model.to_dict(), sort_keys=True)))
        if self.thresholds:
            value = [t.to_dict() for t in self.thresholds]
            lines.append(_line(THRESHOLDS, json.dumps(value, sort_keys=True, allow_nan=False)))
        if self.run_id_optional:
            lines.append(_line(RUN_ID_OPTIONAL, json.dumps(sorted(self.run_id_optional))))
        return "\n".join(lines)

    @classmethod
    def from_layout(cls, layout: Any, path: str) -> LayoutPolicy:
        """The policy of an in-toto Layout read from the signed layout at `path`.

        Raises:
            LayoutError: a declaration is malformed, repeated, unknown or names a step or key
                the layout does not hold.
        """
        return cls.from_readme(
            layout.readme or "",
            steps={s.name for s in layout.steps},
            keyids=set(layout.keys),
            path=path,
        )

    @classmethod
    def from_readme(
        cls,
        readme: str,
        *,
        steps: Collection[str],
        keyids: Collection[str] | None = None,
        path: str | None = None,
    ) -> LayoutPolicy:
        """Parse the declaration lines of `readme`; `steps` and `keyids` are the layout's.

        Raises:
            LayoutError: as for `from_layout`; `keyids=None` skips the key check.
        """
        found: dict[str, list[str]] = {}
        for line in readme.splitlines():
            m = _DECLARATION.match(line)
            if m is None:
                continue
            name = m.group(1)
            if name not in DECLARATIONS:
                raise LayoutError(
                    path,
                    f"the signed layout declares '{PREFIX}{name}:', which this version does not "
                    f"know (known: {', '.join(DECLARATIONS)}); refusing rather than ignoring it",
                )
            found.setdefault(name, []).append(line[m.end() :])
        values: dict[str, Any] = {}
        for name, texts in found.items():
            if len(texts) > 1:
                raise _malformed(path, name, f"it appears {len(texts)} times")
            values[name] = _json(texts[0], path, name)
        return cls(
            functionaries=_functionaries(values.get(FUNCTIONARIES, _ABSENT), keyids, path),
            model=_model(values.get(MODEL, _ABSENT), steps, path),
            thresholds=_thresholds(values.get(THRESHOLDS, _ABSENT), steps, path),
            run_id_optional=_run_id_optional(values.get(RUN_ID_OPTIONAL, _ABSENT), steps, path),
        )


def check_readme_text(text: str) -> None:
    """Refuse owner readme text holding a line that would read as a declaration.

    Raises:
        LayoutError: (without a path) naming the line.
    """
    for number, line in enumerate(text.splitlines(), 1):
        if _DECLARATION.match(line):
            raise LayoutError(
                None,
                f"readme line {number} starts with '{line[: line.index(':') + 1]}', which is "
                "reserved for the declarations ml-provenance writes; reword it",
            )


def compiled_readme(spec: LayoutSpec) -> str:
    """The signed layout's readme for `spec`: its own text, then its policy's declarations.

    Raises:
        LayoutError: naming `spec`'s file when its readme holds a reserved line.
    """
    try:
        return LayoutPolicy.from_spec(spec).to_readme(spec.readme)
    except LayoutError as exc:
        raise LayoutError(spec.path, str(exc), spec.lines.get("readme")) from None


def _line(name: str, value: str) -> str:
    return f"{PREFIX}{name}: {value}"


_ABSENT: Any = object()  # not declared (a declared JSON null is malformed, not absent)
_WHAT = {
    FUNCTIONARIES: "functionary names",
    MODEL: "model",
    THRESHOLDS: "thresholds",
    RUN_ID_OPTIONAL: "run-id-optional",
}


def _malformed(path: str | None, name: str, why: str) -> LayoutError:
    return LayoutError(path, f"the signed layout's {_WHAT[name]} declaration is malformed: {why}")


def _json(text: str, path: str | None, name: str) -> Any:
    """The declaration's value; any JSON refusal (syntax, duplicate keys, NaN) is malformed."""
    try:
        return load_json_bounded(text, "", what="the value", error=LayoutError)
    except LayoutError as exc:
        raise _malformed(path, name, str(exc)) from None


def _functionaries(
    data: Any, keyids: Collection[str] | None, path: str | None
) -> tuple[tuple[str, str], ...]:
    if data is _ABSENT:
        return ()
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and k and isinstance(v, str) and v for k, v in data.items()
    ):
        raise _malformed(path, FUNCTIONARIES, "not an object of names to key ids")
    unknown = sorted(v for v in data.values() if keyids is not None and v not in keyids)
    if unknown:
        raise _malformed(path, FUNCTIONARIES, f"key {unknown[0][:16]} is not a key of the layout")
    return tuple(sorted(data.items()))


def _model(data: Any, steps: Collection[str], path: str | None) -> ModelDecl | None:
    if data is _ABSENT:
        return None
    if not isinstance(data, dict) or set(data) != {"step", "products"}:
        raise _malformed(path, MODEL, "not an object of exactly step and products")
    if not isinstance(data["step"], str) or not isinstance(data["products"], str):
        raise _malformed(path, MODEL, "step and products must be strings")
    if data["step"] not in steps:
        raise _malformed(path, MODEL, f"unknown step {_shown(data['step'])}")
    try:
        return ModelDecl(data["step"], data["products"])
    except LayoutError as exc:
        raise _malformed(path, MODEL, str(exc)) from None


def _thresholds(data: Any, steps: Collection[str], path: str | None) -> tuple[Threshold, ...]:
    if data is _ABSENT:
        return ()
    if not isinstance(data, list):
        raise _malformed(path, THRESHOLDS, "not a list")
    out = []
    for item in data:
        if not isinstance(item, dict) or set(item) != {"step", "file", "metric", "op", "value"}:
            raise _malformed(path, THRESHOLDS, "an entry lacks or adds fields")
        if not all(isinstance(item[k], str) for k in ("step", "file", "metric", "op")):
            raise _malformed(path, THRESHOLDS, "step, file, metric and op must be strings")
        if item["step"] not in steps:
            raise _malformed(path, THRESHOLDS, f"unknown step {_shown(item['step'])}")
        try:
            out.append(
                Threshold(item["step"], item["file"], item["metric"], item["op"], item["value"])
            )
        except LayoutError as exc:
            raise _malformed(path, THRESHOLDS, str(exc)) from None
    return tuple(out)


def _run_id_optional(data: Any, steps: Collection[str], path: str | None) -> frozenset[str]:
    if data is _ABSENT:
        return frozenset()
    if not isinstance(data, list) or not all(isinstance(n, str) for n in data):
        raise _malformed(path, RUN_ID_OPTIONAL, "not a list of step names")
    unknown = sorted(set(data) - set(steps))
    if unknown:
        raise _malformed(path, RUN_ID_OPTIONAL, f"unknown step {_shown(unknown[0])}")
    return frozenset(data)


def _shown(value: Any) -> str:
    return f"'{value[:130]}'" if isinstance(value, str) else repr(value)[:60]
