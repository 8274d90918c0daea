// kawa's web UI glue: draws the charts and graphs that pages declare in data-* attributes.
// Pages hold the data (rendered by the server); this file only hands it to Chart.js and Cytoscape,
// again after every htmx swap, so live parts redraw without reloading the page.
(function () {
  "use strict";
  const charts = new WeakMap();

  function drawChart(canvas) {
    const config = JSON.parse(canvas.dataset.chart);
    const old = charts.get(canvas);
    if (old) { old.destroy(); }
    config.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false }, config.options || {});
    charts.set(canvas, new Chart(canvas, config));
  }

  // Graph data: {"elements": [...], "roots": [ids], "direction": "LR" (left to right; default top down),
  //              "selected": id (selected, its details loaded, on first draw)}.
  // Node data: id, label, color; optional border (colour), shape (a Cytoscape shape), details (URL loaded
  // into data-details-target on click) or href (followed on click). Edge data: source, target; optional label.
  function drawGraph(box) {
    const data = JSON.parse(box.dataset.graph);
    const old = box.cy;
    if (old) { old.destroy(); }
    const sideways = data.direction === "LR";
    const cy = cytoscape({
      container: box,
      elements: data.elements,
      layout: { name: "breadthfirst", directed: true, spacingFactor: 1.1, padding: 20,
                roots: data.roots && data.roots.length ? data.roots : undefined,
                // breadthfirst lays levels top down; swapping x and y turns them left to right.
                transform: sideways ? function (node, pos) { return { x: pos.y * 1.6, y: pos.x / 1.6 }; } : undefined },
      wheelSensitivity: 0.3,
      style: [
        { selector: "node", style: {
            "label": "data(label)", "font-size": 11, "text-valign": "center", "text-halign": "center",
            "shape": "round-rectangle", "width": "label", "height": 26, "padding": "8px",
            "background-color": "data(color)", "color": "#1d2330", "border-width": 1, "border-color": "#9aa4b2" } },
        { selector: "node[shape]", style: { "shape": "data(shape)" } },
        { selector: "node[border]", style: { "border-color": "data(border)", "border-width": 2 } },
        { selector: "node:selected", style: { "border-width": 3, "border-color": "#1f6feb" } },
        { selector: "edge", style: { "width": 1.5, "line-color": "#9aa4b2", "target-arrow-color": "#9aa4b2",
            "target-arrow-shape": "triangle", "curve-style": "bezier" } },
        { selector: "edge[label]", style: { "label": "data(label)", "font-size": 9, "color": "#667085",
            "text-rotation": "autorotate", "text-background-color": "#fcfcfd", "text-background-opacity": 1 } },
      ],
    });
    // A small graph would be blown up to fill the box; keep its text at a readable size.
    if (cy.zoom() > 1.4) { cy.zoom(1.4); cy.center(); }
    box.cy = cy;
    const target = box.dataset.detailsTarget;
    function open(node) {
      const url = node.data("details");
      if (url && target) {
        htmx.ajax("GET", url, { target: target, swap: "innerHTML" });
      } else if (node.data("href")) {
        window.location.href = node.data("href");
      }
    }
    cy.on("tap", "node", function (evt) { open(evt.target); });
    if (data.selected) {
      const node = cy.getElementById(data.selected);
      if (node.nonempty()) { node.select(); if (node.data("details")) { open(node); } }
    }
  }

  // Charts and graphs in content that htmx removes are destroyed with it (live parts redraw often).
  function cleanup(elt) {
    if (elt.cy) { elt.cy.destroy(); elt.cy = null; }
    const chart = charts.get(elt);
    if (chart) { chart.destroy(); charts.delete(elt); }
  }

  function init(root) {
    root.querySelectorAll("canvas[data-chart]").forEach(drawChart);
    root.querySelectorAll("div[data-graph]").forEach(drawGraph);
    if (root.matches && root.matches("canvas[data-chart]")) { drawChart(root); }
    if (root.matches && root.matches("div[data-graph]")) { drawGraph(root); }
  }

  document.addEventListener("DOMContentLoaded", function () {
    htmx.onLoad(init);
    document.body.addEventListener("htmx:beforeCleanupElement", function (evt) { cleanup(evt.target); });
    // A followed log (<pre data-autoscroll> fed by server-sent events) stays at its end, unless its
    // reader scrolled up to read.
    document.body.addEventListener("htmx:sseBeforeMessage", function (evt) {
      const el = evt.target;
      if (el.hasAttribute && el.hasAttribute("data-autoscroll")) {
        el.kawaAtEnd = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
      }
    });
    document.body.addEventListener("htmx:sseMessage", function (evt) {
      const el = evt.target;
      if (el.hasAttribute && el.hasAttribute("data-autoscroll") && el.kawaAtEnd !== false) {
        el.scrollTop = el.scrollHeight;
      }
    });
  });
})();
