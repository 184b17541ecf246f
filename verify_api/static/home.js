// The home page's form: opens the result page of the typed code (/c/<code>). A file, not
// an inline handler, so the Content-Security-Policy allows scripts from this server only.
document.getElementById("lookup").addEventListener("submit", function (event) {
  event.preventDefault();
  location.href = "/c/" + encodeURIComponent(this.code.value.trim());
});
