// Portolan web UI: the only script besides htmx. Served from /ui/assets (no inline scripts:
// the Content-Security-Policy allows scripts from this origin only).
document.addEventListener("keydown", function (ev) {
  // Ctrl/Cmd+Enter submits the JSON editor.
  if ((ev.ctrlKey || ev.metaKey) && ev.key === "Enter" && ev.target && ev.target.id === "json") {
    ev.target.form.requestSubmit();
  }
});
