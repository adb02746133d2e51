// The Console's shell: sign-in, navigation, the hash router (the URL names the view, never the key).
import { ApiError, request, session } from "./api.js";
import { h } from "./dom.js";
import * as live from "./live.js";
import * as views from "./views.js";

const NAV = [
  ["#/overview", "Overview"],
  ["#/tasks", "Tasks"],
  ["#/quality", "Quality"],
  ["#/webhooks", "Webhooks"],
  ["#/settings", "Settings & usage"],
];
const app = document.getElementById("app");
let statusLine = null;
let notice = "";

function route() {
  const hash = location.hash || "#/overview";
  const [path, search = ""] = hash.slice(1).split("?");
  const params = new URLSearchParams(search);
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const go = (target) => { location.hash = target; };
  switch (parts[0]) {
    case undefined:
    case "overview": return { nav: "#/overview", title: "Overview", body: () => views.overview() };
    case "tasks": return parts[1]
      ? { nav: "#/tasks", title: `Task ${parts[1]}`, body: () => views.taskDetail(parts[1]) }
      : { nav: "#/tasks", title: "Tasks", body: () => views.taskList(params, go) };
    case "tx": return { nav: "#/tasks", title: "Transaction", body: () => views.transaction(parts[1] || "") };
    case "quality": return { nav: "#/quality", title: "Quality", body: () => views.quality() };
    case "webhooks": return parts[1]
      ? { nav: "#/webhooks", title: "Delivery log", body: () => views.deliveries(parts[1]) }
      : { nav: "#/webhooks", title: "Webhooks", body: () => views.webhooks() };
    case "settings": return { nav: "#/settings", title: "Settings & usage", body: () => views.settings() };
    default: return { nav: null, title: "Not found", body: () => views.notFound() };
  }
}

function signOut(message = "") {
  session.signOut();
  notice = message;
  live.reset();
  render();
}

function login() {
  const error = h("p", { class: "bad", role: "alert", id: "login-error" }, notice);
  notice = "";
  const input = h("input", {
    id: "api-key", name: "api_key", type: "password", required: true, autocomplete: "off",
    spellcheck: "false", placeholder: "sk_sandbox_…", "aria-describedby": "login-error",
  });
  const button = h("button", { type: "submit" }, "Sign in");
  const form = h("form", { class: "login", "aria-labelledby": "login-title" },
    h("h1", { id: "login-title" }, "ASG Console"),
    h("label", { for: "api-key" }, "API key"), input,
    h("p", { class: "muted" }, "Paste an sk_sandbox_… or sk_live_… key. It is kept in this tab only (sessionStorage) and sent as a Bearer token."),
    button, error);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const key = input.value.trim();
    error.textContent = "";
    if (!/^sk_(sandbox|live)_\S+$/.test(key)) {
      error.textContent = "That is not an API key: keys start with sk_sandbox_ or sk_live_.";
      input.focus();
      return;
    }
    button.disabled = true;
    try {
      await request("/v1/customers/me", { key });
      session.signIn(key);
      render();
    } catch (err) {
      error.textContent = err instanceof ApiError && err.status === 401
        ? "That API key was not accepted. Check that you pasted the whole key, and that it was not rotated away."
        : `Could not sign in: ${err.message}`;
      button.disabled = false;
      input.focus();
    }
  });
  app.replaceChildren(h("main", { id: "main", class: "login-page" }, form));
  input.focus();
}

function shell(current) {
  const key = session.key() || "";
  const env = key.startsWith("sk_live_") ? "Live" : "Sandbox";
  statusLine = h("span", { class: "live-status", role: "status", "aria-live": "polite" }, "Connecting…");
  const menu = h("nav", { class: "nav", "aria-label": "Console" },
    h("ul", {}, NAV.map(([href, label]) => h("li", {}, h("a", { href, "aria-current": href === current.nav ? "page" : null }, label)))));
  const header = h("header", { class: "top" },
    h("a", { class: "brand", href: "#/overview" }, "ASG Console"),
    h("span", { class: `env env-${env.toLowerCase()}`, title: "The key's environment" }, env),
    menu,
    h("div", { class: "session" }, statusLine, h("button", { type: "button", class: "secondary", id: "sign-out", onclick: () => signOut() }, "Sign out")));
  const main = h("main", { id: "main", tabindex: "-1" }, current.body());
  app.replaceChildren(header, main);
  document.title = `${current.title} · ASG Console`;
}

function render() {
  live.reset();
  if (!session.key()) {
    document.title = "Sign in · ASG Console";
    login();
    return;
  }
  const current = route();
  shell(current);
  const heading = app.querySelector("main h1");
  if (heading && document.activeElement === document.body) heading.focus({ preventScroll: true });
  live.schedule(true);
}

live.configure({
  status: (s) => {
    if (!statusLine) return;
    statusLine.className = s.ok ? "live-status" : "live-status bad";
    statusLine.textContent = s.ok
      ? `Live · updated ${s.at.toLocaleTimeString("en-GB")}`
      : `Reconnecting in ${Math.round(s.retryIn)} s (${s.message})`;
  },
  unauthorized: () => signOut("Your API key is no longer accepted; sign in again."),
});

window.addEventListener("hashchange", () => {
  render();
  const heading = app.querySelector("main h1");
  if (heading) heading.focus({ preventScroll: true });
});
render();
