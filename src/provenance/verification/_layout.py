"""Phase 1-2: the layout's signatures (checked before its payload is parsed) and its expiry.

The layout's own policy (model, thresholds, functionary names, run-id opt-ins) is parsed here,
once, right after the signatures: every later phase and consumer reads the LayoutPolicy.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from provenance._fs import load_json_bounded, parse_utc, read_bounded
from provenance.errors import LayoutError
from provenance.layout import LayoutPolicy, prefix_problem
from provenance.signing import dsse
from provenance.verification.result import Failure

if TYPE_CHECKING:
    from securesystemslib.signer import Key


def load_signed_layout(
    path: str, layout_keys: Sequence[Key]
) -> tuple[Any | None, LayoutPolicy | None, bytes, list[Failure]]:
    """Return (in-toto Layout, its policy, the exact signed bytes, failures).

    Every key must have signed. The bytes are read once: what is verified here is what the
    digest and consumers use.

    Raises:
        LayoutError: the file, its envelope, its payload or its policy declarations are
            malformed (a malformed declaration is never read as "no policy").
    """
    from in_toto.models.layout import Layout

    data = read_bounded(path, dsse.MAX_ENVELOPE_BYTES, "signed layout", LayoutError)
    envelope = dsse.parse(data, path, "signed layout")
    if envelope.payload_type != dsse.IN_TOTO_PAYLOAD_TYPE:
        raise LayoutError(path, f"payload type '{envelope.payload_type}' is not an in-toto layout")
    keys = {k.keyid: k for k in layout_keys}
    good = set(envelope.verified_keyids(keys))
    failures = []
    for keyid in keys:
        if keyid not in good:
            signers = ", ".join(k[:8] for k in envelope.keyids) or "nobody"
            failures.append(
                Failure(
                    "layout-signature",
                    f"layout {path} has no valid signature by key {keyid[:8]} "
                    f"(signed by: {signers}); it was signed by another key or edited after signing",
                )
            )
    if failures:
        return None, None, data, failures
    try:
        doc = load_json_bounded(envelope.payload, path, what="layout payload", error=LayoutError)
        if not isinstance(doc, dict) or doc.get("_type") != "layout":
            raise LayoutError(path, "signed payload is not an in-toto layout")
        layout = Layout.read(doc)
    except LayoutError:
        raise
    except Exception as exc:  # noqa: BLE001 - in-toto raises several types for bad layouts
        raise LayoutError(path, f"invalid layout payload: {exc}") from None
    for insp in layout.inspect:  # in-toto accepts `run: []`, which could never run
        if not insp.run or not all(isinstance(arg, str) for arg in insp.run):
            raise LayoutError(path, f"inspection '{insp.name}' does not name a command to run")
    for item in [*layout.steps, *layout.inspect]:
        for rule in [*item.expected_materials, *item.expected_products]:
            _check_match_prefixes(rule, item.name, path)
    return layout, LayoutPolicy.from_layout(layout, path), data, []


def _check_match_prefixes(rule: Any, where: str, path: str) -> None:
    """A signed MATCH whose IN prefix matches nothing is dead: refused, as the YAML refuses it.

    Layouts signed before the YAML check (or by another tool) are read here too.
    """
    if not isinstance(rule, list) or not rule or str(rule[0]).upper() != "MATCH":
        return
    for i in range(2, len(rule) - 1):
        if str(rule[i]).upper() == "IN":
            prefix = str(rule[i + 1])
            problem = prefix_problem(prefix)
            if problem is not None:
                shown = " ".join(map(str, rule))
                raise LayoutError(
                    path, f"step '{where}', rule '{shown[:160]}': prefix '{prefix}' {problem}"
                )


def check_expiry(layout: Any, path: str, now: dt.datetime | None = None) -> list[Failure]:
    now = now or dt.datetime.now(dt.timezone.utc)
    expires = parse_utc(layout.expires, path, LayoutError)
    if expires <= now:
        return [
            Failure(
                "layout-expiry",
                f"layout {path} expired on {layout.expires}",
                expected=f"expires after {now:%Y-%m-%dT%H:%M:%SZ}",
                actual=layout.expires,
            )
        ]
    return []
