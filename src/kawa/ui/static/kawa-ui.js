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

  function drawGraph(box) {
    const data = JSON.parse(box.dataset.graph);
    const cy = cytoscape({
      container: box,
      elements: data.elements,
      layout: { name: "breadthfirst", directed: true, spacingFactor: 1.1, padding: 20,
                roots: data.roots && data.roots.length ? data.roots : undefined },
      wheelSensitivity: 0.3,
      style: [
        { selector: "node", style: {
            "label": "data(label)", "font-size": 11, "text-valign": "center", "text-halign": "center",
            "shape": "round-rectangle", "width": "label", "height": 26, "padding": "8px",
            "background-color": "data(color)", "color": "#1d2330", "border-width": 1, "border-color": "#9aa4b2" } },
        { selector: "node:selected", style: { "border-width": 3, "border-color": "#1f6feb" } },
        { selector: "edge", style: { "width": 1.5, "line-color": "#9aa4b2", "target-arrow-color": "#9aa4b2",
            "target-arrow-shape": "triangle", "curve-style": "bezier" } },
      ],
    });
    box.cy = cy;
    const target = box.dataset.detailsTarget;
    cy.on("tap", "node", function (evt) {
      const url = evt.target.data("details");
      if (url && target) {
        htmx.ajax("GET", url, { target: target, swap: "innerHTML" });
      } else if (evt.target.data("href")) {
        window.location.href = evt.target.data("href");
      }
    });
  }

  function init(root) {
    root.querySelectorAll("canvas[data-chart]").forEach(drawChart);
    root.querySelectorAll("div[data-graph]").forEach(drawGraph);
    if (root.matches && root.matches("canvas[data-chart]")) { drawChart(root); }
    if (root.matches && root.matches("div[data-graph]")) { drawGraph(root); }
  }

  document.addEventListener("DOMContentLoaded", function () {
    htmx.onLoad(init);
  });
})();
