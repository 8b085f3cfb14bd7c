// mendline's own few lines: confirmation before a destructive button, "select all" boxes,
// ticked boxes kept across a live refresh of their part of the page, and what went wrong with
// an htmx request said on the page. No inline script anywhere (the Content-Security-Policy
// forbids it); htmx does the rest.
(function () {
  "use strict";
  document.addEventListener("submit", function (event) {
    var button = event.submitter;
    var text = button && button.getAttribute("data-confirm");
    if (text && !window.confirm(text)) {
      event.preventDefault();
    }
  }, true);
  document.addEventListener("change", function (event) {
    var box = event.target;
    if (!box.matches || !box.matches("input[data-select-all]")) {
      return;
    }
    var name = box.getAttribute("data-select-all");
    document.querySelectorAll('input[type=checkbox][name="' + name + '"]').forEach(function (other) {
      other.checked = box.checked;
    });
  });

  // A live refresh swaps a part of the page for its new rendering: the boxes ticked in it
  // (name and value) are ticked again in the new one, so a bulk action survives it.
  var ticked = {};
  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    if (!target || !target.id) {
      return;
    }
    ticked[target.id] = Array.prototype.map.call(
      target.querySelectorAll("input[type=checkbox]:checked"),
      function (box) { return box.name + "=" + box.value; }
    );
  });
  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail.target;
    var id = target && target.id;
    var kept = id && ticked[id];
    if (!kept) {
      return;
    }
    delete ticked[id];
    var now = document.getElementById(id);
    if (!now) {
      return;
    }
    now.querySelectorAll("input[type=checkbox]").forEach(function (box) {
      if (kept.indexOf(box.name + "=" + box.value) >= 0) {
        box.checked = true;
      }
    });
  });

  // A request that went well clears what a failed one said.
  document.addEventListener("htmx:afterRequest", function (event) {
    var flash = document.getElementById("flash");
    if (flash && event.detail.successful) {
      flash.hidden = true;
    }
  });

  // An htmx request that failed: its answer's message (JSON, as the server answers htmx)
  // shown in the page's flash area instead of nothing happening.
  document.addEventListener("htmx:responseError", function (event) {
    var flash = document.getElementById("flash");
    var xhr = event.detail.xhr;
    if (!flash || !xhr) {
      return;
    }
    var message = "the server answered " + xhr.status;
    try {
      message = JSON.parse(xhr.responseText).error.message || message;
    } catch (ignored) {
      // not JSON: the status says enough
    }
    flash.textContent = message;
    flash.hidden = false;
  });
})();
