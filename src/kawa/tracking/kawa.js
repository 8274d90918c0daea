/* kawa.js: browser tracking for kawa, served by `kawa serve` at /kawa.js. No dependencies.
 *
 * <script>window.kawa=window.kawa||function(){(kawa.q=kawa.q||[]).push(arguments)}</script>
 * <script async src="https://KAWA_HOST/kawa.js" data-key="WRITE_KEY"></script>
 *
 * Sends page views (also SPA history changes), clicks on elements marked data-kawa-event="name"
 * (with data-kawa-* properties), and kawa('track', name, props) / kawa('identify', userId, traits) /
 * kawa('page', props) / kawa('reset') / kawa('flush') calls to POST /v1/events. Events wait in
 * localStorage until kawa acknowledged them: batched (data-batch-size, data-flush-interval ms), retried
 * with backoff, and handed to navigator.sendBeacon when the page is hidden or left.
 */
(function (window, document) {
  "use strict";
  var VERSION = "1";
  var script = document.currentScript || document.querySelector("script[data-key][src*='kawa.js']");
  if (!script) return;
  var prior = window.kawa;
  if (prior && prior.loaded) return; // the script was included twice
  var attr = function (name, fallback) {
    var value = script.getAttribute("data-" + name);
    return value === null || value === "" ? fallback : value;
  };
  var key = attr("key", "");
  var endpoint = attr("endpoint", new URL(script.src, document.baseURI).origin).replace(/\/+$/, "");
  var url = endpoint + "/v1/events";
  var batchSize = Math.max(1, parseInt(attr("batch-size", "10"), 10) || 10);
  var flushInterval = Math.max(50, parseInt(attr("flush-interval", "2000"), 10) || 2000);
  var autoPageviews = attr("auto-pageview", "true") !== "false";
  var SESSION_IDLE_MS = 30 * 60 * 1000;
  var MAX_QUEUE = 1000; // stored events beyond this drop the oldest (a site offline for days)
  var BEACON_BYTES = 60000; // browsers refuse beacons over 64 KiB in flight
  var RESERVED = { event_id: 1, event_name: 1, sync_date: 1, timestamp: 1, keys: 1, extra: 1 };
  var NUMBERS = { price: parseFloat, revenue: parseFloat, quantity: function (v) { return parseInt(v, 10); } };
  var QUEUE_KEY = "kawa_queue";

  function warn(message) {
    if (window.console && console.warn) console.warn("kawa: " + message);
  }
  if (!key) {
    warn("no write key; add data-key=\"WRITE_KEY\" to the kawa.js script tag");
    return;
  }

  // Storage: localStorage, else a first-party cookie (visitor id only), else this page's memory.
  var memory = {};
  function load(name) {
    try {
      var value = window.localStorage.getItem(name);
      if (value !== null) return value;
    } catch (e) { /* storage disabled */ }
    var match = document.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
    return match ? decodeURIComponent(match[1]) : memory[name] || null;
  }
  function save(name, value, cookieDays) {
    memory[name] = value;
    try {
      if (value === null) window.localStorage.removeItem(name);
      else window.localStorage.setItem(name, value);
      return;
    } catch (e) { /* storage disabled or full */ }
    if (cookieDays) {
      var age = value === null ? 0 : cookieDays * 86400;
      document.cookie = name + "=" + encodeURIComponent(value || "") + "; max-age=" + age + "; path=/; SameSite=Lax";
    }
  }
  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    var bytes = new Uint8Array(16);
    (window.crypto || window.msCrypto).getRandomValues(bytes);
    bytes[6] = (bytes[6] & 15) | 64;
    bytes[8] = (bytes[8] & 63) | 128;
    var hex = Array.prototype.map.call(bytes, function (b) { return (b + 256).toString(16).slice(1); }).join("");
    return hex.slice(0, 8) + "-" + hex.slice(8, 12) + "-" + hex.slice(12, 16) + "-" + hex.slice(16, 20) + "-" + hex.slice(20);
  }

  function visitorId() {
    var id = load("kawa_vid");
    if (!id) id = uuid();
    save("kawa_vid", id, 730); // refresh the cookie's two years on each visit
    return id;
  }
  // A session ends after 30 idle minutes; shared by the site's tabs, like web analytics sessions.
  function sessionId(now) {
    var stored = null;
    try { stored = JSON.parse(load("kawa_session") || "null"); } catch (e) { /* corrupt */ }
    if (!stored || typeof stored.id !== "string" || now - stored.last > SESSION_IDLE_MS) {
      stored = { id: uuid(), last: now };
    }
    stored.last = now;
    save("kawa_session", JSON.stringify(stored));
    return stored.id;
  }

  function readQueue() {
    try {
      var queue = JSON.parse(load(QUEUE_KEY) || "[]");
      return Array.isArray(queue) ? queue : [];
    } catch (e) {
      return [];
    }
  }
  function writeQueue(queue) {
    if (queue.length > MAX_QUEUE) queue = queue.slice(queue.length - MAX_QUEUE);
    save(QUEUE_KEY, queue.length ? JSON.stringify(queue) : null);
  }
  // Remove sent events by id from what is stored now: another tab may have added events meanwhile.
  function forget(events) {
    var sent = {};
    events.forEach(function (e) { sent[e.event_id] = 1; });
    writeQueue(readQueue().filter(function (e) { return !sent[e.event_id]; }));
  }

  function props(target, values) {
    if (!values || typeof values !== "object") return target;
    Object.keys(values).forEach(function (name) {
      var value = values[name];
      if (value === undefined) return;
      if (NUMBERS[name] && typeof value === "string") {
        var number = NUMBERS[name](value);
        if (isFinite(number)) value = number;
      }
      if (RESERVED[name]) {
        target.extra = target.extra || {};
        target.extra[name] = value;
      } else {
        target[name] = value;
      }
    });
    return target;
  }

  function enqueue(name, values) {
    if (typeof name !== "string" || !name) return warn("an event needs a name: kawa('track', 'signup', {...})");
    var now = Date.now();
    var keys = { visitor_id: visitorId(), session_id: sessionId(now) };
    var user = load("kawa_uid");
    if (user) keys.user_id = user;
    var event = props({ event_id: uuid(), event_name: String(name), timestamp: new Date(now).toISOString(), keys: keys }, values);
    if (!event.page) event.page = window.location.href;
    var queue = readQueue();
    queue.push(event);
    writeQueue(queue);
    if (queue.length >= batchSize) flush();
    else schedule(flushInterval);
  }

  function payload(events) {
    return JSON.stringify(events.map(function (e) {
      var copy = {};
      Object.keys(e).forEach(function (k) { copy[k] = e[k]; });
      copy.keys = {};
      Object.keys(e.keys).forEach(function (k) { copy.keys[k] = e.keys[k]; });
      copy.keys.api_key = key; // the key in the body keeps the request simple: text/plain, no preflight
      return copy;
    }));
  }

  var timer = null;
  var sending = false;
  var failures = 0;
  var backoffUntil = 0;
  function schedule(delay) {
    if (timer === null) timer = window.setTimeout(function () { timer = null; flush(); }, delay);
  }
  function retryLater() {
    failures += 1;
    var delay = Math.min(60000, 1000 * Math.pow(2, failures - 1));
    var wait = delay / 2 + (Math.random() * delay) / 2;
    backoffUntil = Date.now() + wait;
    schedule(wait);
  }

  // Sends up to 100 waiting events; while kawa is failing, not before the backoff is over unless forced.
  function flush(force) {
    if (sending) return;
    var wait = backoffUntil - Date.now();
    if (wait > 0 && !force) return schedule(wait);
    var events = readQueue().slice(0, 100);
    if (!events.length) return;
    if (timer !== null) { window.clearTimeout(timer); timer = null; }
    sending = true;
    var body = payload(events);
    window.fetch(url, {
      method: "POST",
      headers: { "Content-Type": "text/plain" },
      body: body,
      keepalive: body.length < BEACON_BYTES, // browsers refuse keepalive bodies over 64 KiB
      credentials: "omit",
      mode: "cors"
    }).then(function (response) {
      sending = false;
      if (response.ok || (response.status >= 400 && response.status < 500 && [408, 429].indexOf(response.status) < 0)) {
        // A 4xx other than 408/429 will not pass on a retry either: say why, and drop the events.
        if (!response.ok) response.text().then(function (t) { warn("kawa refused events: " + response.status + " " + t); });
        else response.json().then(function (r) { if (r.rejected) warn(r.rejected + " events refused: " + JSON.stringify(r.errors || r)); }, function () {});
        failures = 0;
        backoffUntil = 0;
        forget(events);
        if (readQueue().length) schedule(0);
        return;
      }
      retryLater();
    }, function () {
      sending = false; // offline, a CORS refusal, or kawa unreachable: keep the events and retry
      retryLater();
    });
  }

  // When the page is hidden or left, hand what is waiting to the browser, which sends it even after unload.
  function beacon() {
    if (!navigator.sendBeacon) return flush();
    var events = readQueue();
    while (events.length) {
      var chunk = events.splice(0, 100);
      var body = payload(chunk);
      while (body.length > BEACON_BYTES && chunk.length > 1) {
        events.unshift.apply(events, chunk.splice(Math.ceil(chunk.length / 2)));
        body = payload(chunk);
      }
      if (!navigator.sendBeacon(url, body)) return; // the browser's beacon quota is full: keep the rest
      // While kawa has been failing, a beacon may well be lost too: keep its events for the next page
      // (sent twice, they are stored once: kawa drops repeated event_ids).
      if (!failures) forget(chunk);
    }
  }

  var lastPage = null;
  function pageview() {
    var here = window.location.href.split("#")[0];
    if (here === lastPage) return;
    var referrer = lastPage || document.referrer || undefined;
    lastPage = here;
    enqueue("view", { page: window.location.href, title: document.title, referrer: referrer, path: window.location.pathname });
  }

  function onClick(event) {
    var element = event.target && event.target.closest ? event.target.closest("[data-kawa-event]") : null;
    if (!element) return;
    var values = {};
    Array.prototype.forEach.call(element.attributes, function (a) {
      if (a.name.indexOf("data-kawa-") === 0 && a.name !== "data-kawa-event") {
        values[a.name.slice(10).replace(/-/g, "_")] = a.value;
      }
    });
    enqueue(element.getAttribute("data-kawa-event"), values);
  }

  var api = function (command) {
    var args = Array.prototype.slice.call(arguments, 1);
    if (command === "track") enqueue(args[0], args[1]);
    else if (command === "page") enqueue("view", props({ page: window.location.href, title: document.title, path: window.location.pathname }, args[0]));
    else if (command === "identify") {
      if (args[0] !== undefined && args[0] !== null) save("kawa_uid", String(args[0]));
      enqueue("identify", args[1]);
    } else if (command === "reset") {
      save("kawa_uid", null);
      save("kawa_vid", null, 730);
      save("kawa_session", null);
    } else if (command === "flush") flush(true);
    else warn("unknown command " + JSON.stringify(command) + "; use track, page, identify, reset or flush");
  };
  api.loaded = true;
  api.version = VERSION;
  window.kawa = api;

  document.addEventListener("click", onClick, true);
  window.addEventListener("pagehide", beacon);
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") beacon();
  });
  ["pushState", "replaceState"].forEach(function (name) {
    var original = window.history[name];
    window.history[name] = function () {
      var result = original.apply(this, arguments);
      if (autoPageviews) pageview();
      return result;
    };
  });
  window.addEventListener("popstate", function () { if (autoPageviews) pageview(); });

  // Calls made before the script loaded (an identify comes before the first page view), then the page
  // view, then events left unsent by earlier pages.
  var early = (prior && prior.q) || [];
  for (var i = 0; i < early.length; i++) api.apply(null, early[i]);
  if (autoPageviews) pageview();
  if (readQueue().length) schedule(0);
})(window, document);
