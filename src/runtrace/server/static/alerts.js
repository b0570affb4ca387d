// runtrace Alerts page: the Retry button of a failed firing posts it again (POST /api/alerts/ID/retry).
// JSON, not a form: the server takes state changes as JSON only (a cross-site form cannot send it).
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("button[data-retry]").forEach(function (button) {
      button.addEventListener("click", function () {
        button.disabled = true;
        button.textContent = "Retrying…";
        fetch("/api/alerts/" + encodeURIComponent(button.dataset.retry) + "/retry", {
          method: "POST", headers: {"Content-Type": "application/json"}, body: "{}", credentials: "same-origin"
        }).then(function (response) {
          return response.json().then(function (body) {
            if (!response.ok) { throw new Error(body.error || ("HTTP " + response.status)); }
            window.location.reload();
          });
        }).catch(function (error) {
          button.disabled = false;
          button.textContent = "Retry";
          button.title = String(error.message || error);
          window.alert("Retry failed: " + (error.message || error));
        });
      });
    });
  });
})();
