// monitorapp's only script besides htmx. No inline handlers anywhere (CSP).
(function () {
  "use strict";
  // htmx 2 does not swap error responses; tell the user something went wrong
  // instead of leaving the page silently unchanged.
  document.addEventListener("htmx:responseError", function (event) {
    var flashes = document.getElementById("flashes");
    if (!flashes) { return; }
    var status = event.detail.xhr ? event.detail.xhr.status : 0;
    var notice = document.createElement("div");
    notice.className = "notice notice-error";
    notice.setAttribute("role", "alert");
    notice.textContent = status === 403
      ? "Your role in this team does not allow that."
      : status === 429
        ? "Too many requests. Wait a moment and try again."
        : "The request failed (" + status + "). Please try again.";
    flashes.replaceChildren(notice);
  });
  document.addEventListener("htmx:sendError", function () {
    var flashes = document.getElementById("flashes");
    if (!flashes) { return; }
    var notice = document.createElement("div");
    notice.className = "notice notice-error";
    notice.setAttribute("role", "alert");
    notice.textContent = "The server could not be reached. Check your connection and try again.";
    flashes.replaceChildren(notice);
  });
})();
