// mendline's live updates: one EventSource per page, on the /live URL that <main data-live>
// names, each of its events fired as the "sse:<topic>" event that elements refresh on
// (hx-trigger="sse:issues"; htmx makes the request). It keeps the last event id itself: the
// first connect asks for what came after the page was rendered (data-live-since), and so does
// a reconnect after the browser gave up (an error status), which a new EventSource would not.
// No inline script anywhere (the Content-Security-Policy forbids it).
(function () {
  "use strict";
  var main = document.querySelector("main[data-live]");
  if (!main || !window.EventSource || !window.htmx) {
    return;
  }
  var url = main.getAttribute("data-live");
  var last = main.getAttribute("data-live-since") || "";
  var topics = new URL(url, window.location.href).searchParams.getAll("topic");
  var delay = 1000;
  var source = null;

  function follows(element, name) {
    var spec = element.getAttribute("hx-trigger") || element.getAttribute("data-hx-trigger") || "";
    return spec.split(",").some(function (part) {
      return part.trim().split(/\s+/)[0] === name;
    });
  }

  function fire(event) {
    if (event.lastEventId) {
      last = event.lastEventId;
    }
    var name = "sse:" + event.type;
    document.querySelectorAll("[hx-trigger], [data-hx-trigger]").forEach(function (element) {
      if (follows(element, name)) {
        window.htmx.trigger(element, name, { data: event.data });
      }
    });
  }

  function connect() {
    source = new EventSource(last ? url + "&last_id=" + encodeURIComponent(last) : url);
    topics.forEach(function (topic) {
      source.addEventListener(topic, fire);
    });
    source.addEventListener("hello", function (event) {
      last = event.lastEventId || last;
      delay = 1000;
    });
    source.onerror = function () {
      // CONNECTING: the browser reconnects by itself, with Last-Event-ID. CLOSED: it gave up.
      if (source.readyState === EventSource.CLOSED) {
        window.setTimeout(connect, delay);
        delay = Math.min(delay * 2, 60000);
      }
    };
  }

  window.addEventListener("pagehide", function () {
    source.close();
  });
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) {
      connect();
    }
  });
  connect();
})();
