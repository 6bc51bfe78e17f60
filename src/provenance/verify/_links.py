"""Phases 3-5: find each step's links, check who signed them, thresholds, run id and paths.

Links are read from untrusted storage, so: the signature is verified before the payload is
parsed, the payload is validated field by field, and every artifact path must stay relative.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

from provenance.errors import LinkFormatError
from provenance.hashing import unsafe_paths
from provenance.signing import dsse
from provenance.verify.result import Failure, StepReport

_HEX64 = re.compile(r"^[0-9a-f]{64}\Z")
_ALL_HEX64 = re.compile(r"(?:[0-9a-f]{64}\n)*")


@dataclass
class LinkData:
    """The parts of an in-toto link that verification reads (in-toto's rule functions included)."""

    name: str
    command: list[str]
    materials: dict[str, dict[str, str]]
    products: dict[str, dict[str, str]]
    byproducts: dict[str, Any]
    environment: dict[str, Any]
    file: str = ""
    keyid: str = ""
    payload_sha256: str = ""

    @property
    def run_id(self) -> str | None:
        value = self.environment.get("pipeline_run_id")
        return value if isinstance(value, str) and value else None

    def patterns(self, kind: str) -> list[str]:
        pats = self.environment.get("patterns", {})
        value = pats.get(kind, []) if isinstance(pats, dict) else []
        return [p for p in value if isinstance(p, str)] if isinstance(value, list) else []


def _artifacts(value: Any, what: str, path: str) -> dict[str, dict[str, str]]:
    if not isinstance(value, dict):
        raise LinkFormatError(path, f"{what} must be an object")
    # Fast path for the shape every link written here has ({"sha256": <64 hex>}): one regex over
    # all digests at once. Anything else is checked entry by entry below.
    shas = [d.get("sha256") for d in value.values() if type(d) is dict and len(d) == 1]
    strings = [s for s in shas if type(s) is str]
    if len(strings) == len(value) and _ALL_HEX64.fullmatch("".join(s + "\n" for s in strings)):
        return value
    hex64 = _HEX64.match
    for name, digests in value.items():
        if not isinstance(digests, dict) or not digests:
            raise LinkFormatError(path, f"{what} entry '{name}' has no digests")
        for hexd in digests.values():
            if not isinstance(hexd, str):
                raise LinkFormatError(path, f"{what} entry '{name}' has a malformed digest")
        # sha256 is the interop digest the real-file check compares: a link without it for any
        # artifact could hide a swapped file, so it is refused.
        sha = digests.get("sha256")
        if sha is None:
            raise LinkFormatError(path, f"{what} entry '{name}' has no sha256 digest")
        if not hex64(sha):
            raise LinkFormatError(path, f"{what} entry '{name}' has a malformed sha256")
    return value


def parse_link(payload: bytes, path: str) -> LinkData:
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise LinkFormatError(path, f"payload is not JSON ({exc.__class__.__name__})") from None
    if not isinstance(data, dict) or data.get("_type") != "link":
        raise LinkFormatError(path, "payload is not an in-toto link (_type must be 'link')")
    name, command = data.get("name"), data.get("command", [])
    if not isinstance(name, str) or not name:
        raise LinkFormatError(path, "link has no name")
    if not isinstance(command, list) or not all(isinstance(c, str) for c in command):
        raise LinkFormatError(path, "link command must be a list of strings")
    byproducts, environment = data.get("byproducts", {}), data.get("environment", {})
    if not isinstance(byproducts, dict) or not isinstance(environment, dict):
        raise LinkFormatError(path, "link byproducts and environment must be objects")
    return LinkData(
        name,
        command,
        _artifacts(data.get("materials", {}), "materials", path),
        _artifacts(data.get("products", {}), "products", path),
        byproducts,
        environment,
    )


def _label(keyid: str, names: dict[str, str]) -> str:
    name = names.get(keyid)
    return f"{name} ({keyid[:8]})" if name else keyid[:8]


def _why_rejected(
    env: dsse.ParsedEnvelope,
    allowed: dict[str, Any],
    all_keys: dict[str, Any],
    names: dict[str, str],
) -> str:
    claimed = [k for k in env.keyids if k in allowed]
    if claimed:
        return (
            f"the signature by {_label(claimed[0], names)} does not verify: the link was "
            "changed after it was signed"
        )
    others = env.verified_keyids(all_keys)
    if others:
        return f"signed by {_label(others[0], names)}, which is not allowed to sign this step"
    claimed_ids = ", ".join(k[:8] for k in env.keyids) or "(no signature)"
    return f"signed by unknown key {claimed_ids}, which is not allowed to sign this step"


@dataclass
class Chain:
    """Accepted links per step (one per functionary key) and what was reported about them."""

    links: dict[str, dict[str, LinkData]] = field(default_factory=dict)
    reports: list[StepReport] = field(default_factory=list)


def _step_files(links_dir: str, step: str) -> list[str]:
    pattern = re.compile(re.escape(step) + r"\.[0-9a-f]{8}\.link\Z")
    try:
        names = os.listdir(links_dir)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise LinkFormatError(links_dir, f"cannot list links: {exc.strerror}") from None
    return sorted(os.path.join(links_dir, n) for n in names if pattern.match(n))


def load_chain(layout: Any, links_dir: str, names: dict[str, str]) -> tuple[Chain, list[Failure]]:
    """Accept each step's links that an authorized functionary validly signed; check thresholds."""
    from securesystemslib.signer import Key

    all_keys = {kid: Key.from_dict(kid, dict(k)) for kid, k in layout.keys.items()}
    chain, failures = Chain(), []
    for step in layout.steps:
        allowed = {k: all_keys[k] for k in step.pubkeys if k in all_keys}
        allowed_text = ", ".join(_label(k, names) for k in sorted(allowed)) or "none"
        accepted: dict[str, LinkData] = {}
        rejected: list[str] = []
        for path in _step_files(links_dir, step.name):
            env = dsse.read(path)
            good = env.verified_keyids(allowed)
            if not good:
                rejected.append(
                    f"{os.path.basename(path)}: {_why_rejected(env, allowed, all_keys, names)}"
                )
                continue
            link = parse_link(env.payload, path)
            if link.name != step.name:
                rejected.append(
                    f"{os.path.basename(path)} records step '{link.name}', not '{step.name}'"
                )
                continue
            link.file, link.keyid = os.path.basename(path), good[0]
            link.payload_sha256 = _sha256(env.payload)
            accepted.setdefault(good[0], link)
        report = StepReport(
            step.name,
            [
                {"file": lk.file, "keyid": lk.keyid, "functionary": names.get(lk.keyid, "")}
                for lk in accepted.values()
            ],
        )
        if accepted:
            first = next(iter(accepted.values()))
            report.materials, report.products = len(first.materials), len(first.products)
        chain.reports.append(report)
        if len(accepted) < step.threshold:
            failures.append(
                Failure(
                    "links",
                    f"step '{step.name}' needs {step.threshold} link(s) signed by its "
                    f"functionaries, found {len(accepted)} valid",
                    step=step.name,
                    expected=f"signed by: {allowed_text}",
                    actual="; ".join(rejected)
                    or f"no link file {step.name}.<keyid>.link in {links_dir}",
                    details=(*rejected, f"allowed keys: {allowed_text}"),
                )
            )
            continue
        first = next(iter(accepted.values()))
        if any(
            lk.materials != first.materials or lk.products != first.products
            for lk in accepted.values()
        ):
            failures.append(
                Failure(
                    "links",
                    f"step '{step.name}': links of its functionaries "
                    "disagree on materials or products",
                    step=step.name,
                )
            )
        chain.links[step.name] = accepted
    return chain, failures


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def check_consistency(chain: Chain) -> tuple[str | None, list[Failure]]:
    """All links carry one pipeline run id; all artifact paths are relative and stay inside."""
    failures: list[Failure] = []
    run_ids: dict[str, list[str]] = {}
    # A dataset path usually appears in several links: check each distinct path once.
    unsafe = set(
        unsafe_paths(
            {
                p
                for by_key in chain.links.values()
                for lk in by_key.values()
                for kind in (lk.materials, lk.products)
                for p in kind
            }
        )
    )
    for step, by_key in chain.links.items():
        for link in by_key.values():
            run_ids.setdefault(link.run_id or "<none>", []).append(f"{step} ({link.file})")
            for kind in ("materials", "products"):
                bad = sorted(unsafe.intersection(getattr(link, kind))) if unsafe else []
                for p in bad[:20]:
                    failures.append(
                        Failure(
                            "paths",
                            f"step '{step}': {kind[:-1]} path '{p}' is absolute, not "
                            "normalised or escapes the base directory",
                            step=step,
                            artifact=p,
                        )
                    )
    if "<none>" in run_ids:
        failures.append(
            Failure("run-id", "link(s) without a pipeline run id: " + ", ".join(run_ids["<none>"]))
        )
    if len(run_ids) > 1:
        failures.append(
            Failure(
                "run-id",
                f"links come from {len(run_ids)} different pipeline runs",
                details=tuple(
                    f"run {rid[:16]}: {', '.join(steps)}" for rid, steps in run_ids.items()
                ),
            )
        )
    run_id = next(iter(run_ids)) if len(run_ids) == 1 else None
    return (None if run_id == "<none>" else run_id), failures
