// Progressive enhancement: confirmation dialogs instead of confirmation pages, and a page that
// follows a running purge. Without JavaScript every link leads to a plain confirmation page.
(function () {
  "use strict";
  document.querySelectorAll("[data-dialog]").forEach(function (link) {
    var dialog = document.getElementById(link.dataset.dialog);
    if (!dialog || typeof dialog.showModal !== "function") return;
    link.addEventListener("click", function (event) {
      event.preventDefault();
      dialog.showModal();
    });
    dialog.querySelectorAll("[data-close]").forEach(function (button) {
      button.addEventListener("click", function () { dialog.close(); });
    });
    // Annuler, Escape: the focus goes back to the link that opened the dialog.
    dialog.addEventListener("close", function () { link.focus(); });
    // One request per confirmation, even if Valider is pressed twice.
    dialog.querySelectorAll("form").forEach(function (form) {
      form.addEventListener("submit", function () {
        form.querySelectorAll("button[type=submit]").forEach(function (button) {
          window.setTimeout(function () { button.disabled = true; }, 0);
        });
      });
    });
  });
  // A refused address comes back with its dialog open (non-modal without JavaScript): made modal, on the field.
  document.querySelectorAll("dialog[data-open-on-load]").forEach(function (dialog) {
    if (typeof dialog.showModal !== "function") return;
    dialog.removeAttribute("open");  // not close(): its event would send the focus back to the link
    dialog.showModal();
    var invalid = dialog.querySelector("[aria-invalid=true]");
    if (invalid) invalid.focus();
  });
  // Back to a page kept in the browser's cache: its Valider buttons work again.
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) return;
    document.querySelectorAll("dialog button[type=submit]").forEach(function (button) { button.disabled = false; });
  });

  var service = document.getElementById("service");
  if (service && service.dataset.statusUrl) {
    var initial = service.dataset.state;
    var poll = function () {
      fetch(service.dataset.statusUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (response) { return response.json(); })
        .then(function (status) {
          if (status.state !== initial) { window.location.reload(); return; }
          window.setTimeout(poll, 3000);
        })
        .catch(function () { window.setTimeout(poll, 10000); });
    };
    window.setTimeout(poll, 3000);
  }
})();
