/* The Overview page's charts, drawn with the vendored ECharts (vendor/echarts) and China map
   (vendor/china-map) from the numbers the server put in #overview-data. No inline script or
   style: the page's Content-Security-Policy allows neither, so tooltips are drawn on the
   canvas (renderMode richText), not as HTML. */
(function () {
  "use strict";
  var source = document.getElementById("overview-data");
  if (!source || !window.echarts) { return; }
  var data = JSON.parse(source.textContent);
  var words = data.words;
  var charts = [];
  var ink = "#1d2330", muted = "#5a6272", line = "#dde1e8";

  function chart(id) {
    var el = document.getElementById(id);
    if (!el) { return null; }
    var c = echarts.init(el, null, { renderer: "canvas" });
    charts.push(c);
    return c;
  }

  function tooltip(extra) {
    var t = { renderMode: "richText", confine: true, textStyle: { color: ink }, borderColor: line };
    for (var k in extra) { t[k] = extra[k]; }
    return t;
  }

  function empty(c, el) {
    c.setOption({
      graphic: [{ type: "text", left: "center", top: "middle", style: { text: words.no_data, fill: muted, fontSize: 14 } }]
    });
    el.setAttribute("data-empty", "true");
  }

  function total(series) {
    var n = 0;
    series.forEach(function (s) { s.data.forEach(function (v) { n += v; }); });
    return n;
  }

  function perDay(id, series, colours) {
    var c = chart(id);
    if (!c) { return; }
    if (!series.length || total(series) === 0) { empty(c, document.getElementById(id)); return; }
    c.setOption({
      color: colours,
      tooltip: tooltip({ trigger: "axis" }),
      legend: { type: "scroll", bottom: 0, textStyle: { color: ink } },
      grid: { left: 48, right: 16, top: 16, bottom: 56 },
      xAxis: { type: "category", data: data.days, axisLabel: { color: muted }, axisLine: { lineStyle: { color: line } } },
      yAxis: { type: "value", minInterval: 1, axisLabel: { color: muted }, splitLine: { lineStyle: { color: line } } },
      dataZoom: data.days.length > 60 ? [{ type: "inside" }] : [],
      series: series.map(function (s) {
        return { name: s.name, type: "bar", stack: "all", data: s.data, barMaxWidth: 18, emphasis: { focus: "series" } };
      })
    });
  }

  // Each verdict and rule keeps its colour whatever the period or scope (set by the server).
  function colours(series) { return series.map(function (s) { return s.colour || "#607d8b"; }); }
  perDay("chart-scans", data.scans, colours(data.scans));
  perDay("chart-flags", data.flags, colours(data.flags));

  function ranked(id, rows) {
    var el = document.getElementById(id);
    if (!el) { return; }
    // As tall as its bars need: ten rows get room, one row is not a lone bar in a big box.
    el.style.height = Math.max(140, 48 + 30 * rows.length) + "px";
    var c = chart(id);
    if (!rows.length) { empty(c, document.getElementById(id)); return; }
    var shown = rows.slice().reverse();
    c.setOption({
      tooltip: tooltip({ trigger: "item", formatter: function (p) {
        var r = shown[p.dataIndex];
        return r.name + "\n" + r.detail + "\n" + words.flags + ": " + r.flags;
      } }),
      grid: { left: 8, right: 40, top: 8, bottom: 8, containLabel: true },
      xAxis: { type: "value", minInterval: 1, axisLabel: { color: muted }, splitLine: { lineStyle: { color: line } } },
      yAxis: {
        type: "category",
        data: shown.map(function (r) { return r.name; }),
        axisLabel: { color: ink, width: 160, overflow: "truncate" }
      },
      series: [{
        type: "bar", data: shown.map(function (r) { return r.flags; }), itemStyle: { color: "#b42318" },
        barMaxWidth: 16, label: { show: true, position: "right", color: ink }
      }]
    });
  }

  ranked("chart-certificates", data.top_certificates);
  ranked("chart-products", data.top_products);

  function gauge() {
    var c = chart("chart-gauge");
    if (!c) { return; }
    var top = data.gauge.filter(function (g) { return g.ratio !== null; })[0];
    if (!top) {
      // The table beside it says why; an empty dial would only repeat it.
      var el = document.getElementById("chart-gauge");
      c.dispose();
      charts.splice(charts.indexOf(c), 1);
      el.hidden = true;
      el.setAttribute("data-empty", "true");
      el.parentNode.classList.add("no-dial");
      return;
    }
    var pct = Math.round(top.ratio * 1000) / 10;
    c.setOption({
      series: [{
        type: "gauge", min: 0, max: 150, startAngle: 200, endAngle: -20, radius: "95%", center: ["50%", "60%"],
        axisLine: { lineStyle: { width: 14, color: [[0.533, "#2e8b57"], [0.667, "#f9a825"], [1, "#c62828"]] } },
        pointer: { width: 5, itemStyle: { color: ink } },
        axisTick: { distance: -14, length: 6, lineStyle: { color: "#fff" } },
        splitLine: { distance: -14, length: 14, lineStyle: { color: "#fff", width: 2 } },
        axisLabel: { distance: 18, color: muted, formatter: "{value}%" },
        title: { offsetCenter: [0, "38%"], color: ink, fontSize: 13 },
        detail: { valueAnimation: false, formatter: "{value}%", offsetCenter: [0, "12%"], fontSize: 24, color: top.ratio > 1 ? "#b42318" : ink },
        data: [{ value: pct, name: top.product + " · " + top.certificate }]
      }]
    });
  }

  gauge();

  function map() {
    var el = document.getElementById("chart-map");
    if (!el) { return; }
    var c = chart("chart-map");
    c.showLoading({ text: "", color: "#1f6f43" });
    fetch(data.map.url, { credentials: "same-origin" })
      .then(function (r) { if (!r.ok) { throw new Error("map " + r.status); } return r.json(); })
      .then(function (geo) {
        echarts.registerMap("china", geo);
        c.hideLoading();
        var max = 0;
        var byName = {};
        data.provinces.forEach(function (p) { max = Math.max(max, p.scans); byName[p.name] = p; });
        // Every province gets a value (0 without scans), so the colour scale paints all of them.
        var provinces = Object.keys(data.map.names).map(function (short) {
          var full = data.map.names[short];
          var p = byName[full] || { scans: 0, suspicious: 0 };
          return { name: full, value: p.scans, scans: p.scans, suspicious: p.suspicious };
        });
        var cityMax = 1;
        data.cities.forEach(function (p) { cityMax = Math.max(cityMax, p.value[2]); });
        c.setOption({
          tooltip: tooltip({ trigger: "item", formatter: function (p) {
            if (p.seriesType === "scatter") {
              return p.data.province + " " + p.name + "\n" + words.scans + ": " + p.data.value[2] +
                "\n" + words.suspicious + ": " + p.data.value[3];
            }
            var d = p.data || { scans: 0, suspicious: 0 };
            return p.name + "\n" + words.scans + ": " + (d.scans || 0) + "\n" + words.suspicious + ": " + (d.suspicious || 0);
          } }),
          visualMap: {
            min: 0, max: Math.max(max, 1), left: 8, bottom: 8, calculable: false, seriesIndex: 0,
            text: [String(Math.max(max, 1)), "0"],
            inRange: { color: ["#e8f3ec", "#7fc59b", "#1f6f43"] }, textStyle: { color: muted }, itemHeight: 90
          },
          geo: {
            map: "china", roam: true, nameMap: data.map.names, zoom: 1.15, top: 10, bottom: 10,
            itemStyle: { areaColor: "#f1f3f6", borderColor: "#ffffff" },
            emphasis: { itemStyle: { areaColor: "#ffe08a" }, label: { show: false } }
          },
          series: [
            {
              type: "map", geoIndex: 0, name: words.scans,
              data: provinces
            },
            {
              type: "scatter", coordinateSystem: "geo", name: words.suspicious,
              data: data.cities,
              symbolSize: function (v) { return 4 + 18 * Math.sqrt(v[2] / cityMax); },
              itemStyle: {
                color: function (p) { return p.data.value[3] > 0 ? "rgba(198, 40, 40, 0.8)" : "rgba(21, 101, 192, 0.6)"; },
                borderColor: "#fff", borderWidth: 1
              }
            }
          ]
        });
        el.setAttribute("data-drawn", "true");
      })
      .catch(function (err) {
        c.hideLoading();
        empty(c, el);
        el.setAttribute("data-error", String(err));
      });
  }

  map();

  var pending = null;
  window.addEventListener("resize", function () {
    if (pending) { window.clearTimeout(pending); }
    pending = window.setTimeout(function () { charts.forEach(function (c) { c.resize(); }); }, 120);
  });
  document.documentElement.setAttribute("data-overview", "drawn");
})();
