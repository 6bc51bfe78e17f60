"""The report as GitHub-flavoured Markdown: a Mermaid `flowchart LR` and tables.

Made for `$GITHUB_STEP_SUMMARY` and PR comments, which render Mermaid blocks natively. Text
from layouts, links and file names is escaped for both contexts: inside Mermaid labels
(quotes, brackets, newlines) and inside table cells (HTML, pipes, Markdown emphasis).
"""

from __future__ import annotations

from provenance.report._chain import INPUTS, OUTPUTS, ChainView, Row, Signer, StepView

FIRST_ITEMS = 3
_CELL = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        '"': "&quot;",
        "'": "&#x27;",
        "|": "&#124;",
        "`": "&#96;",
        "*": "&#42;",
        "_": "&#95;",
        "[": "&#91;",
        "]": "&#93;",
        "\\": "&#92;",
        "#": "&#35;",
        "~": "&#126;",
        "\n": " ",
        "\r": " ",
    }
)


def cell(text: object) -> str:
    """Safe inside a GFM table cell: no HTML, no column breaks, no Markdown markup."""
    return str(text).translate(_CELL)  # one pass: entities are never escaped twice


def label(text: object) -> str:
    """Safe inside a quoted Mermaid label: entity codes for what would end or break it."""
    out = " ".join(str(text).split())
    for char, code in (
        ("&", "#amp;"),
        ('"', "#quot;"),
        ("<", "#lt;"),
        (">", "#gt;"),
        ("`", "#96;"),
        ("|", "#124;"),
        ("[", "#91;"),
        ("]", "#93;"),
        ("{", "#123;"),
        ("}", "#125;"),
    ):
        out = out.replace(char, code)
    return out


def _signers(signers: list[Signer]) -> str:
    return ", ".join(s.name or s.keyid[:8] for s in signers)


def mermaid(view: ChainView) -> str:
    """The chain as a mermaid flowchart: steps, and the artifacts passed between them."""
    ids = {s.name: f"s{i}" for i, s in enumerate(view.steps)}
    ids[INPUTS], ids[OUTPUTS] = "inputs", "outputs"
    lines = ["```mermaid", "flowchart LR"]
    used = {n for f in view.flows for n in (f.source, f.target)}
    if INPUTS in used:
        lines.append(f'  inputs[("{label(INPUTS)}")]')
    for step in view.steps:
        who = _signers(step.signed_by) or "no valid link"
        lines.append(f'  {ids[step.name]}["{label(step.name)}<br/>{label(who)}"]')
    if OUTPUTS in used:
        lines.append(f'  outputs[("{label(OUTPUTS)}")]')
    for flow in view.flows:
        lines.append(f'  {ids[flow.source]} -->|"{view.flow_label(flow)}"| {ids[flow.target]}')
    if not view.flows:  # a failed verification: the order of the steps only
        pairs = zip(view.steps, view.steps[1:], strict=False)
        lines += [f"  {ids[a.name]} --> {ids[b.name]}" for a, b in pairs]
    failed = [ids[s.name] for s in view.steps if not s.signed_by]
    if failed:
        lines.append("  classDef failed stroke:#cf222e,stroke-width:2px")
        lines.append(f"  class {','.join(failed)} failed")
    lines.append("```")
    return "\n".join(lines)


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return out


def _first(items: dict[str, str], datasets: dict[str, str] | None = None) -> str:
    """The count and the first few names; a dataset's manifest shown as the dataset."""
    names = sorted(items)
    shown = ", ".join(
        (datasets or {}).get(p) or f"<code>{cell(p)}</code>" for p in names[:FIRST_ITEMS]
    )
    more = f" … +{len(names) - FIRST_ITEMS}" if len(names) > FIRST_ITEMS else ""
    return f"{len(names)}: {shown}{more}" if names else "0"


def _named(step: StepView, side: str) -> dict[str, str]:
    """Manifest path -> how the steps table names the dataset it stands for."""
    return {
        d.manifest: f"dataset <code>{cell(d.source or '?')}</code> "
        f"({'?' if d.members is None else f'{d.members:,}'} members)"
        for d in step.datasets
        if d.side == side
    }


def _rows(rows: list[Row]) -> list[list[str]]:
    return [[cell(r.name), f"**{cell(r.status)}**", cell(r.detail)] for r in rows]


def render_markdown(view: ChainView) -> str:
    """The chain report as markdown: verdict, steps, phases, rules and attestations."""
    mark = "✅" if view.ok else "❌"
    out = [f"## {mark} ML supply chain: {cell(view.verdict)}", ""]
    meta = [f"layout <code>{cell(view.layout)}</code>"]
    if view.run_id:
        meta.append(f"pipeline run <code>{cell(view.run_id)}</code>")
    if view.model:
        meta.append(f"model <code>{cell(view.model)}</code>")
    out += [" · ".join(meta), "", mermaid(view), ""]
    out += ["### Steps", ""]
    out += _table(
        ["step", "signed by", "command", "materials", "products"],
        [
            [
                f"**{cell(s.name)}**",
                cell(_signers(s.signed_by) or "—"),
                f"<code>{cell(' '.join(s.command))}</code>" if s.command else "—",
                _first(s.materials, _named(s, "materials")) if s.link_file else "—",
                _first(s.products, _named(s, "products")) if s.link_file else "—",
            ]
            for s in view.steps
        ],
    )
    datasets = [(s.name, d) for s in view.steps for d in s.datasets]
    if datasets:
        out += ["", "### Datasets", ""]
        out += [
            "Each dataset is one manifest artifact; members and size are as the step "
            "recorded them.",
            "",
        ]
        out += _table(
            ["step", "dataset", "source", "members", "size", "manifest", "manifest sha256"],
            [
                [
                    cell(step),
                    "material" if d.side == "materials" else "product",
                    f"<code>{cell(d.source or '?')}</code>",
                    "?" if d.members is None else f"{d.members:,}",
                    cell(d.size),
                    f"<code>{cell(d.manifest)}</code>",
                    f"<code>{cell(d.sha256)}</code>",
                ]
                for step, d in datasets
            ],
        )
    out += ["", "### Verification phases", ""]
    out += _table(["phase", "verdict", "detail"], _rows(view.phases))
    out += ["", "### Rules", ""]
    out += _table(
        ["step", "rule", "verdict"],
        [
            [cell(r.step), f"<code>{cell(r.name)}</code>", f"**{cell(r.status)}**"]
            for r in view.rules
        ],
    )
    out += ["", "### Attestations", ""]
    out += _table(["attestation", "status", "detail"], _rows(view.attestations))
    if view.failures:
        out += ["", "### Failures", ""] + [f"- {cell(f)}" for f in view.failures]
    ignored = [(s.name, i) for s in view.steps for i in s.ignored]
    ignored += [("—", i) for i in view.ignored]
    if ignored:
        out += ["", "### Ignored link files", ""]
        out += _table(
            ["step", "file", "why"],
            [[cell(s), f"<code>{cell(i['file'])}</code>", cell(i["reason"])] for s, i in ignored],
        )
    return "\n".join(out) + "\n"
