// The code entry form (templates/_search.html): says what is wrong before anything is
// sent (empty, too long) and otherwise lets the plain GET form submit to /search. A file,
// not an inline handler, so the Content-Security-Policy allows scripts from this server only.
(function () {
  var form = document.getElementById("lookup");
  if (!form) return;
  var input = form.elements.code, error = document.getElementById("lookup-error");
  function show(text) {
    error.textContent = text;
    error.hidden = !text;
    input.setAttribute("aria-invalid", text ? "true" : "false");
  }
  form.addEventListener("submit", function (event) {
    var value = input.value.trim();
    var problem = !value ? input.dataset.errEmpty
      : value.length > Number(input.dataset.max) ? input.dataset.errLong : "";
    if (problem) {
      event.preventDefault();
      show(problem);
      input.focus();
    } else {
      input.value = value;
    }
  });
  input.addEventListener("input", function () { if (!error.hidden) show(""); });
})();
