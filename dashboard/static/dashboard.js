// The dashboard's few behaviours, with no inline script (the Content-Security-Policy allows
// scripts from this site's files only). Pages work without it; it only adds conveniences.
(function () {
  "use strict";
  // "Select all" in the flag queue ticks every flag of the page.
  var all = document.getElementById("select-all");
  if (all) {
    var boxes = function () {
      return document.querySelectorAll('#flag-table input[name="ids"]');
    };
    all.addEventListener("change", function () {
      boxes().forEach(function (box) { box.checked = all.checked; });
    });
  }
  // A bulk review with nothing ticked says so instead of sending an empty form.
  var review = document.getElementById("review-form");
  if (review) {
    review.addEventListener("submit", function (event) {
      // Only the queue ticks flags; a flag's own page names its flag in a hidden field.
      var boxes = review.querySelectorAll('input[type="checkbox"][name="ids"]');
      if (boxes.length && !review.querySelector('input[type="checkbox"][name="ids"]:checked')) {
        event.preventDefault();
        var message = review.getAttribute("data-empty") || "";
        if (message) { window.alert(message); }
      }
    });
  }
  // The invite link is selected for copying when it is shown.
  var link = document.getElementById("invite-link");
  if (link) { link.focus(); link.select(); }
})();
