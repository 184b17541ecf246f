// The code entry form (templates/_search.html): says what is wrong before anything is
// sent (empty, too long, an identity code without nine digits) and otherwise lets the
// plain GET form submit to /search. A file,
// not an inline handler, so the Content-Security-Policy allows scripts from this server only.
(function () {
  var form = document.getElementById("lookup");
  if (!form) return;
  var input = form.elements.code, error = document.getElementById("lookup-error");
  var identity = form.elements.identity;
  function show(text) {
    error.textContent = text;
    error.hidden = !text;
    input.setAttribute("aria-invalid", text ? "true" : "false");
  }
  form.addEventListener("submit", function (event) {
    var value = input.value.trim();
    var typed = identity ? identity.value.trim() : "";
    // Whatever the server accepts (domain.codes.normalize_identity, which decides) holds
    // exactly nine digits, full-width ones folded: fewer or more is told here at once.
    var digits = typed.replace(/[\uFF10-\uFF19]/g, function (c) {
      return String.fromCharCode(c.charCodeAt(0) - 0xFEE0);
    }).replace(/[^0-9]/g, "");
    var problem = !value ? input.dataset.errEmpty
      : value.length > Number(input.dataset.max) ? input.dataset.errLong
      : typed && digits.length !== 9 ? identity.dataset.errIdentity : "";
    if (problem) {
      event.preventDefault();
      show(problem);
      (problem === input.dataset.errEmpty || problem === input.dataset.errLong ? input : identity).focus();
    } else {
      input.value = value;
      // An empty optional identity code stays out of the address (a clean link to share).
      if (identity && !identity.value.trim()) identity.disabled = true;
    }
  });
  // Back from the result (the page restored as it was left): the field is usable again.
  window.addEventListener("pageshow", function () { if (identity) identity.disabled = false; });
  input.addEventListener("input", function () { if (!error.hidden) show(""); });
})();
