// mendline's live updates: one EventSource per page, on the /live URL that <main data-live>
// names, each of its events fired as the "sse:<topic>" event that elements refresh on
// (hx-trigger="sse:issues"; htmx makes the request). It keeps the last event id itself: the
// first connect asks for what came after the page was rendered (data-live-since), and so does
// a reconnect after the browser gave up (an error status), which a new EventSource would not.
// An element with data-live-every="<ms>" refreshes at most that often, and never misses the
// last change: one that comes too soon is put off to the end of the wait, not dropped (htmx's
// own throttle modifier drops it). No inline script anywhere (the Content-Security-Policy
// forbids it).
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

  // Per element (by id, which outlives an outerHTML swap): when it last refreshed, and the
  // refresh put off to the end of its wait.
  var refreshed = {};
  var pending = {};

  function refresh(element, name, data) {
    var every = parseInt(element.getAttribute("data-live-every") || "0", 10);
    var key = element.id || name;
    var now = Date.now();
    var wait = (refreshed[key] || 0) + every - now;
    if (element.classList.contains("htmx-request")) {
      // Its refresh is still on the way: htmx would queue this one on the element its answer
      // replaces, and drop it. Asked again once that answer is in.
      wait = Math.max(wait, 200);
    }
    if (wait <= 0) {
      refreshed[key] = now;
      window.htmx.trigger(element, name, { data: data });
      return;
    }
    if (pending[key]) {
      return; // already put off: it will read whatever changed meanwhile
    }
    pending[key] = window.setTimeout(function () {
      delete pending[key];
      var current = (element.id ? document.getElementById(element.id) : element) || element;
      if (current.classList.contains("htmx-request")) {
        refresh(current, name, data); // still on the way: wait a little more
        return;
      }
      refreshed[key] = Date.now();
      window.htmx.trigger(current, name, { data: data });
    }, wait);
  }

  function fire(event) {
    if (event.lastEventId) {
      last = event.lastEventId;
    }
    var name = "sse:" + event.type;
    document.querySelectorAll("[hx-trigger], [data-hx-trigger]").forEach(function (element) {
      if (follows(element, name)) {
        refresh(element, name, event.data);
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
