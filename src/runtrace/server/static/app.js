// runtrace web UI: the little behaviour the server-rendered pages need. No libraries.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    // A filter drop-down applies as soon as it changes.
    var filters = document.getElementById("filters");
    if (filters) {
      filters.querySelectorAll("select").forEach(function (select) {
        select.addEventListener("change", function () {
          if (select.name === "period") {
            filters.querySelectorAll("input[type=date]").forEach(function (d) { d.value = ""; });
          }
          filters.submit();
        });
      });
    }
    // "/" jumps to the search box, as on most sites.
    var quick = document.getElementById("quick-search");
    document.addEventListener("keydown", function (event) {
      var tag = (event.target && event.target.tagName) || "";
      if (event.key === "/" && quick && tag !== "INPUT" && tag !== "TEXTAREA" && tag !== "SELECT") {
        event.preventDefault();
        quick.focus();
      }
    });
    // Expand or collapse every span of the timeline.
    var toggle = document.getElementById("expand-all");
    if (toggle) {
      toggle.addEventListener("click", function () {
        var spans = document.querySelectorAll("#waterfall details");
        var open = toggle.dataset.open !== "1";
        spans.forEach(function (d) { d.open = open; });
        toggle.dataset.open = open ? "1" : "0";
        toggle.textContent = open ? "collapse all" : "expand all";
      });
    }
    // On a narrow window the runs table hides its optional columns; this shows them (scrolling in its box).
    var columns = document.getElementById("columns-toggle");
    var runsTable = document.getElementById("runs-table");
    if (columns && runsTable) {
      columns.addEventListener("click", function () {
        var all = runsTable.classList.toggle("all-cols");
        columns.setAttribute("aria-pressed", all ? "true" : "false");
        columns.textContent = all ? "fewer columns" : "show all columns";
      });
    }
    // A link to one span (#span-...) opens it.
    function openTarget() {
      if (location.hash.indexOf("#span-") === 0) {
        var target = document.getElementById(location.hash.slice(1));
        if (target && target.tagName === "DETAILS") { target.open = true; target.scrollIntoView({block: "center"}); }
      }
    }
    window.addEventListener("hashchange", openTarget);
    openTarget();
  });
})();
