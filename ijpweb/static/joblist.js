// The job list (templates/jobs/index.jinja2): select all on the page or a submission's
// jobs, keep the ticks and the open groups while the rows refresh. Everything here is an
// improvement: without it the page works with plain links and forms.
(function () {
  "use strict";
  function boxes(root) {
    return Array.prototype.slice.call((root || document).querySelectorAll('input[name="id"][form="bulk-form"]'));
  }
  // a group's own box ticks its jobs: it needs this script, so it shows only with it
  function showGroupBoxes() {
    document.querySelectorAll("input.pick-group").forEach(function (g) { g.hidden = false; });
  }
  document.addEventListener("DOMContentLoaded", showGroupBoxes);
  document.addEventListener("click", function (evt) {
    var link = evt.target.closest && evt.target.closest("#select-page");
    if (link) {
      evt.preventDefault();
      var all = boxes();
      var on = all.some(function (b) { return !b.checked; });
      all.forEach(function (b) { b.checked = on; });
      document.querySelectorAll("input.pick-group").forEach(function (g) { g.checked = on; });
      link.textContent = on ? "Select none" : "Select all on this page";
    }
  });
  document.addEventListener("change", function (evt) {
    var group = evt.target;
    if (group.classList && group.classList.contains("pick-group")) {
      var table = document.querySelector('table.in-group[data-submission="' + group.dataset.submission + '"]');
      boxes(table).forEach(function (b) { b.checked = group.checked; });
    }
  });
  // the 3-second refresh waits while jobs are ticked (it would untick them)
  document.addEventListener("htmx:beforeRequest", function (evt) {
    var elt = evt.detail && evt.detail.elt;
    if (elt && elt.id === "job-rows" && boxes().some(function (b) { return b.checked; })) {
      evt.preventDefault();
    }
  });
  var open = [];
  document.addEventListener("htmx:beforeSwap", function () {
    open = Array.prototype.map.call(document.querySelectorAll("#job-rows details[open]"), function (d) { return d.id; });
  });
  document.addEventListener("htmx:afterSwap", function () {
    showGroupBoxes();
    open.forEach(function (id) {
      var d = document.getElementById(id);
      if (d) { d.open = true; }
    });
    var result = document.getElementById("bulk-result") || document.getElementById("bulk-error");
    if (result && !result.dataset.seen) {
      result.dataset.seen = "1";
      result.focus();
    }
  });
})();
