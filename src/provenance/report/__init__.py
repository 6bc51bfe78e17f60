"""See and explain a supply chain: describe one file, trace one artifact, render a report.

Sits between the CLI and the gate: it reads only what verification, attestation reading and
the link reader return, and renders it (HTML with an inline SVG diagram, Markdown with Mermaid).
"""

from provenance.report._attestations import check as attestation_status
from provenance.report._chain import ChainView, Flow, Row, StepView, build_view
from provenance.report._inspect import Description, describe_document, inspect_file
from provenance.report._trace import (
    Lineage,
    Node,
    model_versions,
    on_disk,
    trace,
    unverified_records,
    verified_chain,
    verified_records,
)
from provenance.report.html import render_html
from provenance.report.markdown import render_markdown

__all__ = [
    "ChainView",
    "Description",
    "Flow",
    "Lineage",
    "Node",
    "Row",
    "StepView",
    "attestation_status",
    "build_view",
    "describe_document",
    "inspect_file",
    "model_versions",
    "on_disk",
    "render_html",
    "render_markdown",
    "trace",
    "unverified_records",
    "verified_chain",
    "verified_records",
]
