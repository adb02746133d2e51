// Live regions: each fetches its data and redraws only when the data changed. One poller drives
// them all, every 2 s while things change, backing off to 20 s while they do not, and further
// (honouring Retry-After) while the server fails; it pauses while the tab is hidden.
import { ApiError } from "./api.js";
import { h } from "./dom.js";

const FAST = 2000;
const IDLE = 20000;
const FAILING = 60000;

let regions = [];
let delay = FAST;
let timer = null;
let running = false;
let onStatus = () => {};
let onUnauthorized = () => {};

export function configure(handlers) {
  onStatus = handlers.status;
  onUnauthorized = handlers.unauthorized;
}

export function reset() {
  regions = [];
  delay = FAST;
  clearTimeout(timer);
  timer = null;
}

export function errorState(err, retry) {
  const message = err instanceof ApiError ? err.message : String(err);
  const hint =
    err instanceof ApiError && err.status === 0
      ? "Check your connection; the Console keeps retrying."
      : err instanceof ApiError && err.status === 429
        ? "Too many requests for this key's rate limit; the Console slows down and retries."
        : "The Console retries on its own.";
  return h("div", { class: "error-box", role: "alert" },
    h("strong", {}, "Could not load this panel. "), message, h("p", {}, hint),
    retry ? h("button", { type: "button", class: "secondary", onclick: retry }, "Retry now") : null);
}

// A region of the page kept up to date; `render(data)` returns its content.
export function region(load, render, { poll = true } = {}) {
  const el = h("div", { class: "region" }, h("p", { class: "loading", role: "status" }, "Loading…"));
  const r = { el, load, render, last: undefined, poll };
  regions.push(r);
  refresh(r);
  return el;
}

async function update(r) {
  try {
    const data = await r.load();
    const json = JSON.stringify(data);
    if (json === r.last) return { changed: false };
    r.last = json;
    const focused = document.activeElement && r.el.contains(document.activeElement) ? document.activeElement.dataset.key : null;
    r.el.replaceChildren(r.render(data));
    if (focused) {
      const again = r.el.querySelector(`[data-key="${CSS.escape(focused)}"]`);
      if (again) again.focus();
    }
    return { changed: true };
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      onUnauthorized();
      return { error: err };
    }
    if (r.last === undefined) r.el.replaceChildren(errorState(err, () => refresh(r)));
    return { error: err };
  }
}

async function refresh(r) {
  await update(r);
}

async function tick() {
  timer = null;
  if (running || document.hidden) return;
  running = true;
  const current = regions;
  const results = await Promise.all(current.filter((r) => r.poll).map(update));
  running = false;
  if (current !== regions) {
    // Navigated meanwhile: the new view's first tick found this one running and gave way.
    schedule(true);
    return;
  }
  const failure = results.find((x) => x.error);
  if (failure) {
    const wait = Math.max(delay * 2, (failure.error.retryAfter || 0) * 1000);
    delay = Math.min(Math.max(wait, FAST), FAILING);
    onStatus({ ok: false, retryIn: delay / 1000, message: failure.error.message });
  } else {
    delay = results.some((x) => x.changed) ? FAST : Math.min(delay * 1.5, IDLE);
    onStatus({ ok: true, at: new Date() });
  }
  schedule();
}

export function schedule(now = false) {
  clearTimeout(timer);
  if (now) delay = FAST;
  timer = setTimeout(tick, now ? 0 : delay);
}

document.addEventListener("visibilitychange", () => {
  if (!document.hidden) schedule(true);
});
