// The search and the run panel (templates/datasets, templates/run): keyboard focus and
// history. Everything works without this file; it only makes the htmx paths as good.
(function () {
  "use strict";
  // Back/Forward: always ask the server for the page (a full page, not a fragment), so
  // the search fields and the results come from the same request and always agree
  // (htmx's own snapshots keep the results but not what was typed into the fields).
  htmx.config.historyCacheSize = 0;
  htmx.config.historyRestoreAsHxRequest = false;

  // After the run panel is swapped: focus the first invalid field (it carries
  // autofocus), else the error summary, so the user lands on what needs fixing.
  document.body.addEventListener("htmx:afterSettle", function (ev) {
    var panel = document.getElementById("run-panel");
    if (!panel || !(ev.target === panel || ev.target.contains(panel) || panel.contains(ev.target))) return;
    var first = panel.querySelector("[autofocus]");
    if (first && document.activeElement !== first) {
      first.focus();
      if (first.scrollIntoView) first.scrollIntoView({ block: "center" });
    }
  });

  // The search fields follow the results shown (after a history restore the page is
  // the server's, but a browser may refill the fields from its own form memory).
  function syncSearch() {
    var page = document.getElementById("results-page");
    var form = document.getElementById("search");
    if (!page || !form) return;
    [["name", "name"], ["type", "type"], ["investigation", "investigation"]].forEach(function (p) {
      var field = form.elements[p[0]];
      var want = page.getAttribute("data-" + p[1]) || "";
      if (field && field.value !== want) field.value = want;
    });
  }
  document.body.addEventListener("htmx:historyRestore", syncSearch);
  window.addEventListener("pageshow", syncSearch);

  // An interactive job's desktop is sized to this browser window (the portal keeps it
  // within 640x480 .. 3840x2160; without this file it is 1280x800).
  function fillGeometry() {
    var w = Math.round(window.innerWidth || 0), h = Math.round((window.innerHeight || 0) - 40);
    if (w < 1 || h < 1) return;
    document.querySelectorAll("input[data-desktop-geometry]").forEach(function (field) {
      field.value = w + "x" + h;
    });
  }
  document.body.addEventListener("htmx:afterSettle", fillGeometry);
  document.body.addEventListener("submit", fillGeometry, true);
  fillGeometry();
})();
