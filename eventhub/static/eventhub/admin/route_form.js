// The route form shows each destination field only for the kind it belongs to: a handler route
// picks a handler; a webhook route has a URL and a signing secret; an AMQP route an exchange.
// Fields and notes carry their kinds in data-eventhub-kinds (set by eventhub/admin/forms.py).
"use strict";
(function () {
  function show(kind) {
    for (const element of document.querySelectorAll("[data-eventhub-kinds]")) {
      const kinds = element.dataset.eventhubKinds.split(" ");
      const box = element.closest(".form-row") || element;
      box.style.display = kinds.includes(kind) ? "" : "none";
    }
  }
  function start() {
    const select = document.getElementById("id_destination_kind");
    if (!select) return;
    select.addEventListener("change", () => show(select.value));
    show(select.value);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
