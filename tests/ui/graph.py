"""Reading and clicking the Cytoscape graphs of the UI's pages from a browser test."""

from __future__ import annotations

from typing import Any


def wait_for_graph(page: Any, selector: str) -> None:
    """Wait until the graph in `selector` is drawn (Cytoscape has laid out its nodes)."""
    page.wait_for_function(
        "sel => { const b = document.querySelector(sel); return !!(b && b.cy && b.cy.nodes().length); }",
        arg=selector,
    )


def graph_nodes(page: Any, selector: str) -> dict[str, dict[str, Any]]:
    """The nodes of the graph in `selector`, by id, with their data."""
    nodes: dict[str, dict[str, Any]] = page.evaluate(
        """sel => {
            const out = {};
            document.querySelector(sel).cy.nodes().forEach(n => { out[n.id()] = n.data(); });
            return out;
        }""",
        selector,
    )
    return nodes


def graph_edges(page: Any, selector: str) -> list[tuple[str, str]]:
    """The edges of the graph in `selector` as (source, target)."""
    edges = page.evaluate(
        "sel => document.querySelector(sel).cy.edges().map(e => [e.source().id(), e.target().id()])", selector
    )
    return [(a, b) for a, b in edges]


def click_node(page: Any, selector: str, node_id: str) -> None:
    """Click node `node_id` of the graph in `selector` with the mouse, where it is drawn."""
    page.locator(selector).scroll_into_view_if_needed()
    where = page.evaluate(
        """([sel, id]) => {
            const box = document.querySelector(sel);
            const node = box.cy.getElementById(id);
            if (node.empty()) { return null; }
            const p = node.renderedPosition();
            const r = box.getBoundingClientRect();
            return {x: r.left + p.x, y: r.top + p.y};
        }""",
        [selector, node_id],
    )
    assert where is not None, f"no node {node_id!r} in the graph {selector}"
    page.mouse.click(where["x"], where["y"])
