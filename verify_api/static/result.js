// Record this visit as a scan: only a real browser runs this, so previews do not count.
// The code comes from the page (data-input); a file, not an inline script, so the
// Content-Security-Policy allows scripts from this server only.
(function () {
  var line = document.getElementById("scans");
  fetch("/api/v1/verify", {method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({input: line.dataset.input, channel: "qr"})})
    .then(function (r) { return r.ok ? r.json() : null; })
    .then(function (a) {
      if (!a || !a.scans) return;
      var s = "该码已被查询 " + a.scans.count + " 次";
      if (a.scans.first_at) s += "，首次查询于 " + a.scans.first_at.slice(0, 10);
      if (a.scans.first_city) s += "（" + a.scans.first_city + "）";
      line.textContent = s + "。";
    }).catch(function () {});
})();
