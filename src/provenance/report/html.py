"""The report as ONE self-contained HTML file: inline CSS, an inline SVG diagram, no script.

Nothing is fetched: a Content-Security-Policy meta tag forbids every network source, so the
file can be opened from a CI artifact or an e-mail. Every text that comes from a layout, a link
or a file name is escaped (file names may hold `<`, `&`, quotes and newlines).
"""

from __future__ import annotations

from html import escape

from provenance.datasets import RecordedDataset
from provenance.report._chain import (
    FAIL,
    INPUTS,
    NOT_RUN,
    OUTPUTS,
    PASS,
    ChainView,
    Flow,
    Row,
    Signer,
    StepView,
)

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
BOX_W, BOX_H, GAP, MARGIN = 190, 78, 90, 24
FIRST_ITEMS = 5

CSS = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#1f2328;
background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid
#d0d7de;padding-bottom:4px}
.verdict{padding:10px 14px;border-radius:6px;font-weight:600;margin:12px 0}
.ok{background:#dafbe1;color:#116329}.bad{background:#ffebe9;color:#a40e26}
.meta{color:#59636e;font-size:13px}code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;
overflow-wrap:anywhere}
table{border-collapse:collapse;width:100%;margin:6px 0}
th,td{border:1px solid #d0d7de;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa}table.steps td:nth-child(4){max-width:260px}
.PASS,.VALID{color:#116329;font-weight:600}.FAIL,.INVALID{color:#a40e26;font-weight:600}
.s-other{color:#59636e;font-weight:600}
svg{max-width:100%;height:auto;border:1px solid #d0d7de;border-radius:6px;background:#fbfcfd}
svg .step{fill:#fff;stroke:#0969da;stroke-width:1.5}svg .step.failed{stroke:#cf222e}
svg .io{fill:#f6f8fa;stroke:#8c959f;stroke-dasharray:4 3}
svg text{font:12px system-ui,sans-serif;fill:#1f2328}svg .title{font-weight:700;font-size:13px}
svg .sub{fill:#59636e;font-size:11px}svg .edge{fill:none;stroke:#8c959f;stroke-width:1.4}
svg .label{fill:#0550ae;font-size:11px}
"""


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _clip(text: str, n: int = 26) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= n else one_line[: n - 1] + "…"


def _signers(signers: list[Signer]) -> str:
    return ", ".join(f"{s.name} ({s.keyid[:8]})" if s.name else s.keyid[:8] for s in signers)


def _status(status: str) -> str:
    cls = status if status in (PASS, FAIL, "VALID", "INVALID") else "s-other"
    return f'<span class="{_e(cls)}">{_e(status)}</span>'


def _columns(view: ChainView) -> list[str]:
    cols = [s.name for s in view.steps]
    if any(f.source == INPUTS for f in view.flows):
        cols.insert(0, INPUTS)
    if any(f.target == OUTPUTS for f in view.flows):
        cols.append(OUTPUTS)
    return cols


def _box(x: int, y: int, title: str, lines: list[str], cls: str) -> str:
    out = [f'<rect class="{cls}" x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="8"/>']
    out.append(f'<text class="title" x="{x + 10}" y="{y + 20}">{_e(_clip(title))}</text>')
    for i, line in enumerate(lines[:3]):
        out.append(
            f'<text class="sub" x="{x + 10}" y="{y + 38 + 14 * i}">{_e(_clip(line, 30))}</text>'
        )
    return "\n".join(out)


def _edge(x1: int, x2: int, y: int, flow: Flow, lane: int, label: str) -> str:
    """Adjacent columns: a straight arrow; farther ones arc above (inputs/outputs: below)."""
    if x2 - x1 <= BOX_W + GAP:
        path = f"M{x1},{y} L{x2 - 4},{y}"
        lx, ly = (x1 + x2) // 2, y - 6
    else:
        below = flow.source == INPUTS or flow.target == OUTPUTS
        sign = 1 if below else -1
        edge_y = y + sign * (BOX_H // 2)
        lift = edge_y + sign * (26 + 18 * lane)
        x1, x2 = x1 - BOX_W // 2, x2 + BOX_W // 2
        path = f"M{x1},{edge_y} C{x1},{lift} {x2},{lift} {x2},{edge_y + sign * 4}"
        lx, ly = (x1 + x2) // 2, lift + (12 if below else -4)
    title = "\n".join(p for p, _ in flow.artifacts[:20])
    return (
        f'<g><title>{_e(title)}</title><path class="edge" d="{path}" marker-end="url(#arrow)"/>'
        f'<text class="label" x="{lx}" y="{ly}" text-anchor="middle">{_e(label)}</text></g>'
    )


def diagram(view: ChainView) -> str:
    """Steps as boxes left to right, raw inputs first and final products last, flows between."""
    cols = _columns(view)
    x_of = {name: MARGIN + i * (BOX_W + GAP) for i, name in enumerate(cols)}
    # Flows between adjacent columns are straight; the others arc above (between steps) or
    # below (from raw inputs, to final products), each in its own lane.
    lane_of: dict[int, int] = {}
    counts = {True: 0, False: 0}
    for i, flow in enumerate(view.flows):
        far = flow.source in x_of and flow.target in x_of
        if far and cols.index(flow.target) - cols.index(flow.source) > 1:
            below = flow.source == INPUTS or flow.target == OUTPUTS
            lane_of[i] = counts[below]
            counts[below] += 1
    top = MARGIN + (30 + 18 * counts[False] if counts[False] else 0)
    height = top + BOX_H + (30 + 18 * counts[True] if counts[True] else 0) + MARGIN
    width = MARGIN * 2 + len(cols) * BOX_W + max(0, len(cols) - 1) * GAP
    steps = {s.name: s for s in view.steps}
    failed = {r.step for r in view.rules if r.status == FAIL}
    parts = [
        f'<svg viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="supply chain diagram">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="#8c959f"/></marker></defs>',
    ]
    for i, flow in enumerate(view.flows):
        if flow.source in x_of and flow.target in x_of:
            x1 = x_of[flow.source] + BOX_W
            x2 = x_of[flow.target]
            label = view.flow_label(flow)
            parts.append(_edge(x1, x2, top + BOX_H // 2, flow, lane_of.get(i, 0), label))
    for name in cols:
        if name in (INPUTS, OUTPUTS):
            paths = {p for f in view.flows if name in (f.source, f.target) for p, _ in f.artifacts}
            parts.append(_box(x_of[name], top, name, [f"{len(paths)} file(s)"], "io"))
            continue
        step = steps[name]
        who = _signers(step.signed_by) or "no valid link"
        lines = [f"signed by {who}"]
        if step.link_file:
            lines.append(f"{len(step.materials)} in → {len(step.products)} out")
        cls = "step failed" if name in failed or not step.signed_by else "step"
        parts.append(_box(x_of[name], top, name, lines, cls))
    parts.append("</svg>")
    return "\n".join(parts)


def _table(headers: list[str], rows: list[list[str]], cls: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    attr = f' class="{cls}"' if cls else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _artifact_list(items: dict[str, str], datasets: dict[str, RecordedDataset]) -> str:
    shown = [
        _artifact(p, datasets.get(p)).replace("<br>", " ") for p in sorted(items)[:FIRST_ITEMS]
    ]
    more = len(items) - FIRST_ITEMS
    return "<br>".join(shown) + (f"<br>… {more} more" if more > 0 else "")


def _step_rows(steps: list[StepView]) -> list[list[str]]:
    return [
        [
            f"<strong>{_e(s.name)}</strong>",
            _e(_signers(s.signed_by) or "—"),
            _e(_signers(s.allowed) or "—"),
            f"<code>{_e(' '.join(s.command))}</code>" if s.command else "—",
            f"{len(s.materials)}<br>{_artifact_list(s.materials, _side(s, 'materials'))}"
            if s.link_file
            else "—",
            f"{len(s.products)}<br>{_artifact_list(s.products, _side(s, 'products'))}"
            if s.link_file
            else "—",
        ]
        for s in steps
    ]


def _side(step: StepView, side: str) -> dict[str, RecordedDataset]:
    return {d.manifest: d for d in step.datasets if d.side == side}


def _flow_rows(view: ChainView) -> list[list[str]]:
    datasets = view.datasets
    return [
        [
            _artifact(path, datasets.get((path, sha))),
            f"<code>{_e(sha[:16])}…</code>",
            _e(f.source),
            _e(f.target),
        ]
        for f in view.flows
        for path, sha in f.artifacts
    ]


def _members(ds: RecordedDataset) -> str:
    return "?" if ds.members is None else f"{ds.members:,}"


def _artifact(path: str, ds: RecordedDataset | None) -> str:
    if ds is None:
        return f"<code>{_e(path)}</code>"
    return (
        f"<strong>dataset</strong> <code>{_e(ds.source or '?')}</code> "
        f"({_e(_members(ds))} members, {_e(ds.size)})<br>manifest <code>{_e(path)}</code>"
    )


def _dataset_rows(steps: list[StepView]) -> list[list[str]]:
    return [
        [
            _e(s.name),
            "material" if d.side == "materials" else "product",
            f"<code>{_e(d.source or '?')}</code>",
            _e(_members(d)),
            _e(d.size),
            f"<code>{_e(d.manifest)}</code>",
            f"<code>{_e(d.sha256)}</code>",
        ]
        for s in steps
        for d in s.datasets
    ]


def _verdict_rows(rows: list[Row], with_step: bool = False) -> list[list[str]]:
    return [
        ([_e(r.step)] if with_step else [])
        + [f"<code>{_e(r.name)}</code>" if with_step else _e(r.name), _status(r.status)]
        + [_e(r.detail)]
        for r in rows
    ]


def _datasets_section(view: ChainView) -> list[str]:
    rows = _dataset_rows(view.steps)
    if not rows:
        return []
    return [
        "<h2>Datasets</h2>",
        '<p class="meta">Each dataset is one manifest artifact; members and size are as the '
        "step recorded them (the manifest's digest is what verification checked).</p>",
        _table(
            ["step", "dataset", "source", "members", "size", "manifest", "manifest sha256"],
            rows,
        ),
    ]


def render_html(view: ChainView) -> str:
    """The whole report page."""
    cls = "ok" if view.ok else "bad"
    meta = [f"layout <code>{_e(view.layout)}</code>"]
    if view.layout_sha256:
        meta.append(f"sha256 <code>{_e(view.layout_sha256[:16])}…</code>")
    if view.run_id:
        meta.append(f"pipeline run <code>{_e(view.run_id)}</code>")
    if view.model:
        meta.append(f"model <code>{_e(view.model)}</code>")
    note = (
        ""
        if view.ok
        else '<p class="meta">Verification failed: artifacts are shown only for a verified '
        "chain.</p>"
    )
    ignored = [
        [_e(s.name), f"<code>{_e(i['file'])}</code>", _e(i["reason"])]
        for s in view.steps
        for i in s.ignored
    ] + [["—", f"<code>{_e(i['file'])}</code>", _e(i["reason"])] for i in view.ignored]
    sections = [
        "<h2>Supply chain</h2>",
        diagram(view),
        note,
        "<h2>Steps</h2>",
        _table(
            ["step", "signed by", "allowed signers", "command", "materials", "products"],
            _step_rows(view.steps),
            "steps",
        ),
        "<h2>Artifacts</h2>",
        _table(["artifact", "sha256", "from", "to"], _flow_rows(view))
        if view.flows
        else "<p>—</p>",
        *_datasets_section(view),
        "<h2>Verification phases</h2>",
        _table(["phase", "verdict", "detail"], _verdict_rows(view.phases)),
        "<h2>Rules</h2>",
        _table(["step", "rule", "verdict", "applies to"], _verdict_rows(view.rules, True)),
        "<h2>Attestations</h2>",
        _table(["attestation", "status", "detail"], _verdict_rows(view.attestations)),
    ]
    if view.failures:
        items = "".join(f"<li>{_e(f)}</li>" for f in view.failures)
        sections += ["<h2>Failures</h2>", f"<ul>{items}</ul>"]
    if ignored:
        sections += ["<h2>Ignored link files</h2>", _table(["step", "file", "why"], ignored)]
    status_text = PASS if view.ok else FAIL
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>Supply chain report: {status_text}</title>",
            f"<style>{CSS}</style></head><body>",
            "<h1>ML supply chain report</h1>",
            f'<p class="meta">{" · ".join(meta)}</p>',
            f'<div class="verdict {cls}" id="verdict">{_e(view.verdict)}</div>',
            *sections,
            '<p class="meta">Generated by ml-provenance (<code>provenance report</code>).</p>',
            "</body></html>",
            "",
        ]
    )


__all__ = ["CSP", "NOT_RUN", "diagram", "render_html"]
