// runtrace web UI, What-if page: keep the form's two ways of naming a model from fighting.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("whatif-form");
    if (!form) { return; }
    var pick = document.getElementById("wi-pick");
    var typed = document.getElementById("wi-model");
    // A typed name wins over the list on the server: picking from the list clears it, typing clears the pick.
    if (pick && typed) {
      pick.addEventListener("change", function () { if (pick.value) { typed.value = ""; } });
      typed.addEventListener("input", function () { if (typed.value.trim()) { pick.value = ""; } });
    }
    // Choosing a target provider lists its models: the page is asked again for that provider's list.
    var provider = document.getElementById("wi-provider");
    if (provider && pick) {
      provider.addEventListener("change", function () {
        pick.value = "";
        if (typed) { typed.value = ""; }
        form.submit();
      });
    }
    // Choosing a period drops explicit dates, which would otherwise win over it (as on the other pages).
    var period = form.querySelector("select[name=period]");
    if (period) {
      period.addEventListener("change", function () {
        form.querySelectorAll("input[type=date]").forEach(function (d) { d.value = ""; });
      });
    }
  });
})();
