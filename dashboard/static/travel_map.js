// A flag's travel map: the code's scans on a map of China (ECharts and the China map
// vendored under static/vendor/), joined in time order; scans since the flag in red.
// The points come from a JSON data block on the page (no inline script: CSP).
(function () {
  "use strict";
  var el = document.getElementById("travel-map");
  var data = document.getElementById("route-data");
  if (!el || !data || !window.echarts) { return; }
  var route = JSON.parse(data.textContent);
  var before = el.getAttribute("data-before");
  var after = el.getAttribute("data-after");
  fetch(el.getAttribute("data-map"))
    .then(function (answer) { return answer.json(); })
    .then(function (geo) {
      window.echarts.registerMap("china", geo);
      var chart = window.echarts.init(el, null, { renderer: "canvas" });
      var point = function (p) {
        return { name: p.city, value: [p.lng, p.lat], when: p.when };
      };
      var lines = [];
      for (var i = 1; i < route.length; i++) {
        var a = route[i - 1], b = route[i];
        if (a.lng !== b.lng || a.lat !== b.lat) {
          lines.push({ coords: [[a.lng, a.lat], [b.lng, b.lat]] });
        }
      }
      chart.setOption({
        animation: false,
        tooltip: {
          trigger: "item",
          formatter: function (p) { return p.data && p.data.when ? p.data.name + "<br>" + p.data.when : ""; }
        },
        legend: { bottom: 0, data: [before, after] },
        geo: {
          map: "china",
          roam: true,
          zoom: 1.1,
          itemStyle: { areaColor: "#eef3ef", borderColor: "#9aa8a0" },
          emphasis: { disabled: true },
          label: { show: false }
        },
        series: [
          {
            type: "lines",
            coordinateSystem: "geo",
            data: lines,
            symbol: ["none", "arrow"],
            symbolSize: 7,
            lineStyle: { color: "#5a6272", width: 1.2, opacity: 0.8, curveness: 0.15 },
            silent: true
          },
          {
            name: before,
            type: "scatter",
            coordinateSystem: "geo",
            data: route.filter(function (p) { return !p.since_flag; }).map(point),
            symbolSize: 9,
            itemStyle: { color: "#1f6f43" }
          },
          {
            name: after,
            type: "scatter",
            coordinateSystem: "geo",
            data: route.filter(function (p) { return p.since_flag; }).map(point),
            symbolSize: 11,
            itemStyle: { color: "#b42318" }
          }
        ]
      });
      window.addEventListener("resize", function () { chart.resize(); });
      el.setAttribute("data-ready", "1");
    });
})();
