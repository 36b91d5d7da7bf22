// Portolan web UI: the only script besides htmx. Served from /ui/assets (no inline scripts:
// the Content-Security-Policy allows scripts from this origin only).
document.addEventListener("keydown", function (ev) {
  // Ctrl/Cmd+Enter submits the JSON editor.
  if ((ev.ctrlKey || ev.metaKey) && ev.key === "Enter" && ev.target && ev.target.id === "json") {
    ev.target.form.requestSubmit();
  }
});
document.addEventListener("keydown", function (ev) {
  // Enter in an entity picker's search box searches; it does not submit (start) the run form.
  if (ev.key === "Enter" && ev.target && ev.target.matches && ev.target.matches(".picker input[type=search]")) {
    ev.preventDefault();
  }
});
// A form marked data-autosubmit submits itself once the page has loaded (the SAML sign-in posts
// the identity provider's answer again from this site, so that the browser sends its cookie).
document.addEventListener("DOMContentLoaded", function () {
  var f = document.querySelector("form[data-autosubmit]");
  if (f) f.submit();
});
