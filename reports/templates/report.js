(function () {
  "use strict";
  var island = JSON.parse(document.getElementById("drilldown").textContent || "{}");
  function cellValue(row, i) {
    var cell = row.cells[i];
    if (!cell) { return ""; }
    var v = cell.getAttribute("data-v");
    return v === null ? cell.textContent.trim() : v;
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    table.querySelectorAll("th").forEach(function (th, i) {
      th.addEventListener("click", function () {
        var body = table.tBodies[0];
        var asc = th.getAttribute("aria-sort") !== "ascending";
        table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", asc ? "ascending" : "descending");
        var rows = Array.prototype.slice.call(body.rows).filter(function (r) { return !r.classList.contains("more"); });
        rows.sort(function (a, b) {
          var x = cellValue(a, i), y = cellValue(b, i);
          var nx = parseFloat(x), ny = parseFloat(y);
          var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
          return asc ? c : -c;
        });
        rows.forEach(function (r) { body.insertBefore(r, body.querySelector("tr.more")); });
      });
    });
  });
  var filter = document.getElementById("group-filter");
  var status = document.getElementById("group-status");
  function applyFilter() {
    var q = filter.value.toLowerCase();
    var s = status.value;
    var shown = 0;
    document.querySelectorAll("tr.group-row, tr.sig-row").forEach(function (row) {
      var ok = row.textContent.toLowerCase().indexOf(q) >= 0 && (s === "" || row.getAttribute("data-status") === s);
      row.hidden = !ok;
      if (ok && row.classList.contains("group-row")) { shown += 1; }
    });
    document.getElementById("group-count").textContent = shown + " shown";
  }
  if (filter && status) {
    filter.addEventListener("input", applyFilter);
    status.addEventListener("change", applyFilter);
  }
  document.querySelectorAll("button[data-raw]").forEach(function (button) {
    button.addEventListener("click", function () {
      var ex = (island.exemplars || {})[button.getAttribute("data-raw")];
      var pre = document.getElementById("raw-" + button.getAttribute("data-raw"));
      if (!ex || !pre) { return; }
      var role = button.getAttribute("data-role");
      var rec = (ex.records || {})[role];
      pre.textContent = rec === undefined ? "(no record for " + role + ")"
        : (typeof rec === "string" ? rec : JSON.stringify(rec, null, 1));
      pre.hidden = false;
    });
  });
})();
