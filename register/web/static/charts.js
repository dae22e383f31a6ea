/* Draw every chart whose data the page left in a JSON block. The data table beside each
   chart carries the same numbers, so the page reads fully without this script. */
(function () {
  "use strict";
  if (typeof window.Chart === "undefined") { return; }
  var blocks = document.querySelectorAll("script[type='application/json'][data-chart]");
  Array.prototype.forEach.call(blocks, function (block) {
    var spec = JSON.parse(block.textContent);
    var canvas = document.getElementById(block.getAttribute("data-chart"));
    if (!canvas) { return; }
    var datasets = [{
      label: spec.label, data: spec.values, borderColor: "#005eb8", backgroundColor: "#005eb8",
      pointBackgroundColor: (spec.markers || []).map(function (m) {
        return m === "high" ? "#d5281b" : (m === "low" ? "#330072" : (m ? "#ed8b00" : "#005eb8"));
      }),
      pointRadius: 4, tension: 0
    }];
    (spec.lines || []).forEach(function (line) {
      datasets.push({ label: line.label, data: line.values, borderColor: line.colour || "#768692",
        borderDash: line.dashed ? [6, 4] : [], pointRadius: 0, fill: false });
    });
    new window.Chart(canvas, {
      type: "line",
      data: { labels: spec.labels, datasets: datasets },
      options: { responsive: true, maintainAspectRatio: false, animation: false,
        plugins: { legend: { position: "bottom" } },
        scales: { y: { title: { display: !!spec.unit, text: spec.unit || "" } } } }
    });
  });
}());
