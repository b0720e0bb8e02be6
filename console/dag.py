"""A workflow's DAG as a server-side SVG (as ``console.charts``: plain Python, every text escaped).

Nodes are laid out in columns by depth (the longest path from a root), left to right, in the workflow's
order within a column. Each node is a box coloured by its state in a run (or neutral for the workflow
itself), linking to its execution when it has one. Edges are arrows: solid for on_success, dashed red for
on_failure, dotted grey for always.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from console.charts import STATUS_COLOURS
from core.workflows import Edge, topological_order

NODE_W, NODE_H = 150, 40
GAP_X, GAP_Y, PAD = 70, 24, 16
WAITING_COLOUR = "#e5e7eb"
EDGE_STYLE = {
    "on_success": 'stroke="#2e9e5b"',
    "on_failure": 'stroke="#d64541" stroke-dasharray="6 4"',
    "always": 'stroke="#6b7280" stroke-dasharray="2 3"',
}
_FONT = 'font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif"'


@dataclass(frozen=True)
class DagNode:
    name: str
    detail: str = ""  # the second line: the task's name
    status: str = ""  # an execution status (colours the box); "" waiting or not in a run
    url: str = ""  # where the box links to (its execution)


def layout(nodes: Sequence[DagNode], edges: Sequence[Edge]) -> dict[str, tuple[int, int]]:
    """(column, row) of each node: column = depth, row = position among the nodes of that depth."""
    names = [node.name for node in nodes]
    depth: dict[str, int] = {}
    for name in topological_order(names, edges):
        depth[name] = max((depth[e.parent] + 1 for e in edges if e.child == name and e.parent in depth), default=0)
    rows: dict[int, int] = {}
    placed = {}
    for name in names:
        column = depth.get(name, 0)
        placed[name] = (column, rows.get(column, 0))
        rows[column] = rows.get(column, 0) + 1
    return placed


def dag_svg(nodes: Sequence[DagNode], edges: Sequence[Edge]) -> str:
    if not nodes:
        return ""
    places = layout(nodes, edges)
    columns = max(column for column, _ in places.values()) + 1
    rows = max(row for _, row in places.values()) + 1
    width = PAD * 2 + columns * NODE_W + (columns - 1) * GAP_X
    height = PAD * 2 + rows * NODE_H + (rows - 1) * GAP_Y

    def box(name: str) -> tuple[int, int]:
        column, row = places[name]
        return PAD + column * (NODE_W + GAP_X), PAD + row * (NODE_H + GAP_Y)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="console-dag" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="workflow graph" {_FONT} font-size="12">',
             '<defs><marker id="dag-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
             'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#6b7280"/></marker></defs>']
    for edge in edges:
        (x1, y1), (x2, y2) = box(edge.parent), box(edge.child)
        style = EDGE_STYLE.get(edge.condition, EDGE_STYLE["on_success"])
        parts.append(f'<path class="dag-edge" d="M{x1 + NODE_W},{y1 + NODE_H // 2} C{x1 + NODE_W + GAP_X // 2},'
                     f'{y1 + NODE_H // 2} {x2 - GAP_X // 2},{y2 + NODE_H // 2} {x2},{y2 + NODE_H // 2}" fill="none" '
                     f'stroke-width="1.5" {style} marker-end="url(#dag-arrow)"><title>{escape(edge.parent)} → '
                     f'{escape(edge.child)}: {escape(edge.condition)}</title></path>')
    for node in nodes:
        parts.append(_node(node, *box(node.name)))
    parts.append("</svg>")
    return "".join(parts)


def _node(node: DagNode, x: int, y: int) -> str:
    fill = STATUS_COLOURS.get(node.status, WAITING_COLOUR)
    ink = "#ffffff" if node.status in STATUS_COLOURS else "#111827"
    state = node.status or "waiting"
    title = f"{node.name} ({node.detail}): {state}" if node.detail else f"{node.name}: {state}"
    inner = (f'<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="6" fill="{fill}" stroke="#374151" '
             f'stroke-width="1"/><text x="{x + 8}" y="{y + 16}" fill="{ink}" font-weight="600">'
             f'{escape(_clip(node.name))}</text><text x="{x + 8}" y="{y + 32}" fill="{ink}" font-size="11">'
             f'{escape(_clip(node.detail or state))}</text><title>{escape(title)}</title>')
    group = f'<g class="dag-node" data-node="{escape(node.name)}" data-status="{escape(state)}">{inner}</g>'
    return f'<a href="{escape(node.url)}">{group}</a>' if node.url else group


def _clip(text: str, limit: int = 22) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"
