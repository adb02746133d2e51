// The Console's panels (seed 000), each fed by the public /v1 API only.
import { api, ApiError, query, request } from "./api.js";
import { histogram, labelBars, lineChart, STATUS_LABEL, STATUS_ORDER, statusBar } from "./charts.js";
import { fmt, h, saveJson } from "./dom.js";
import { errorState, region, schedule } from "./live.js";
import { verifyReceipt } from "./verify.js";

const enc = encodeURIComponent;
const SORTS = { created_at_desc: "Newest first", created_at_asc: "Oldest first" };
const PER_PAGE = [10, 25, 50, 100];
const EVENTS = ["task.verified", "task.settled", "task.failed", "task.cancelled", "task.expired", "job.completed", "job.failed"];

const badge = (status) => h("span", { class: `badge fill-${status}` }, STATUS_LABEL[status] || status);
const card = (label, value, extra) => h("div", { class: "card" }, h("span", { class: "card-label" }, label), h("span", { class: "card-value" }, value), extra || null);
const empty = (title, ...body) => h("div", { class: "empty" }, h("h2", {}, title), ...body);
const section = (title, ...body) => h("section", { class: "panel", "aria-label": title }, h("h2", {}, title), ...body);
const table = (headers, rows, caption) =>
  h("div", { class: "table-wrap" },
    h("table", {}, caption ? h("caption", { class: "sr-only" }, caption) : null,
      h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col" }, x)))),
      h("tbody", {}, rows)));

// ---- overview ----------------------------------------------------------------------------

export function overview() {
  return [
    h("h1", { tabindex: "-1" }, "Overview"),
    region(() => api("/v1/dashboard/overview"), (o) => {
      if (o.total === 0) {
        return empty("No tasks yet",
          h("p", {}, "Submit a task with the API and it shows up here within seconds:"),
          h("pre", {}, 'curl -X POST /v1/tasks -H "Authorization: Bearer $API_KEY" \\\n  -d \'{"type":"image_classification","data_url":"https://…/1.jpg","label_spec":{"question":"Animal?","options":["cat","dog"]}}\''));
      }
      const b = o.by_status;
      return h("div", {},
        h("div", { class: "cards", "data-testid": "overview-cards" },
          card("Total tasks", fmt.int(o.total)),
          card("Pending", fmt.int(b.pending)),
          card("In progress", fmt.int(b.in_progress)),
          card("Settled", fmt.int(b.settled))),
        h("div", { class: "cards small" },
          card("Verified", fmt.int(b.verified)),
          card("Failed", fmt.int(b.failed)),
          card("Cancelled", fmt.int(b.cancelled)),
          card("Expired", fmt.int(b.expired)),
          card("Avg confidence", fmt.conf(o.avg_confidence)),
          card("Avg settlement time", fmt.seconds(o.avg_settlement_seconds))),
        section("Status mix", statusBar(b, o.total)),
        section("Tasks per day (last 30 days, UTC)", lineChart(o.tasks_per_day)));
    }),
  ];
}

// ---- task list ---------------------------------------------------------------------------

export function taskList(params, go) {
  const page = Math.max(1, parseInt(params.get("page") || "1", 10) || 1);
  const perPage = PER_PAGE.includes(Number(params.get("per_page"))) ? Number(params.get("per_page")) : 25;
  const status = STATUS_ORDER.includes(params.get("status")) ? params.get("status") : "";
  const sort = params.get("sort") in SORTS ? params.get("sort") : "created_at_desc";
  const view = (changes) => {
    const next = { status, sort, per_page: perPage === 25 ? "" : perPage, page, ...changes };
    if (next.page === 1) next.page = "";
    if (next.sort === "created_at_desc") next.sort = "";
    go(`#/tasks${query(next)}`);
  };
  const select = (id, label, value, options, onchange) =>
    h("label", { for: id }, label,
      h("select", { id, onchange },
        Object.entries(options).map(([v, text]) => h("option", { value: v, selected: v === String(value) }, text))));
  const controls = h("form", { class: "controls", onsubmit: (e) => e.preventDefault() },
    select("filter-status", "Status", status, { "": "All", ...Object.fromEntries(STATUS_ORDER.map((st) => [st, STATUS_LABEL[st]])) },
      (e) => view({ status: e.target.value, page: 1 })),
    select("sort", "Sort", sort, SORTS, (e) => view({ sort: e.target.value, page: 1 })),
    select("per-page", "Per page", perPage, Object.fromEntries(PER_PAGE.map((n) => [n, String(n)])), (e) => view({ per_page: Number(e.target.value), page: 1 })));
  const load = () => api(`/v1/dashboard/tasks${query({ page, per_page: perPage, status, sort })}`);
  return [
    h("h1", { tabindex: "-1" }, "Tasks"),
    controls,
    region(load, (p) => {
      const pager = h("nav", { class: "pager", "aria-label": "Pages" },
        h("button", { type: "button", class: "secondary", disabled: page <= 1, onclick: () => view({ page: page - 1 }), "data-key": "prev" }, "← Previous"),
        h("span", { "data-testid": "page-of" }, `Page ${fmt.int(p.page)} / ${fmt.int(p.pages)}`),
        h("button", { type: "button", class: "secondary", disabled: page >= p.pages, onclick: () => view({ page: page + 1 }), "data-key": "next" }, "Next →"),
        h("form", { class: "goto", onsubmit: (e) => { e.preventDefault(); const n = parseInt(e.target.elements.page.value, 10); if (n >= 1) view({ page: Math.min(n, p.pages) }); } },
          h("label", { for: "goto-page" }, "Go to page"),
          h("input", { id: "goto-page", name: "page", type: "number", min: 1, max: p.pages, inputmode: "numeric" }),
          h("button", { type: "submit", class: "secondary" }, "Go")));
      if (p.tasks.length === 0) {
        const msg = p.total === 0
          ? (status ? `No ${STATUS_LABEL[status].toLowerCase()} tasks.` : "No tasks yet: submit one with POST /v1/tasks.")
          : `Page ${page} is past the last page (${p.pages}).`;
        return h("div", {}, empty(status || p.total ? "Nothing on this page" : "No tasks yet", h("p", {}, msg)), p.total ? pager : null);
      }
      const rows = p.tasks.map((t) =>
        h("tr", {},
          h("td", {}, h("a", { href: `#/tasks/${enc(t.task_id)}`, "data-key": t.task_id, class: "mono" }, t.task_id)),
          h("td", {}, badge(t.status)),
          h("td", {}, t.task_type),
          h("td", {}, t.consensus_label ?? "—"),
          h("td", { class: "num" }, fmt.conf(t.confidence)),
          h("td", { class: "mono" }, t.bsv_txid ? fmt.short(t.bsv_txid, 12) : "—"),
          h("td", {}, fmt.time(t.created_at))));
      return h("div", {},
        h("p", { class: "muted" }, `${fmt.int(p.total)} task${p.total === 1 ? "" : "s"}`),
        table(["Task", "Status", "Type", "Consensus", "Confidence", "bsv_txid", "Created"], rows, "Tasks"),
        pager);
    }),
  ];
}

// ---- task detail -------------------------------------------------------------------------

async function settlementOf(taskId, txid) {
  // The local ledger answers for its own transactions; a 404 means another network (ARC).
  let tx = null;
  try {
    tx = await api(`/v1/chain/tx/${enc(txid)}`);
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 404)) throw err;
  }
  if (!tx) return { local: false };
  if (tx.block_height === null) return { local: true, tx, receipt: null, note: "The payout is accepted; the next block will hold it." };
  const receipt = await api(`/v1/tasks/${enc(taskId)}/receipt`);
  const headers = await api(`/v1/chain/headers${query({ from: receipt.block.height, count: 1 })}`);
  const chainHeader = headers.headers.length ? headers.headers[0].header : null;
  return { local: true, tx, receipt, checks: await verifyReceipt(receipt, tx, chainHeader) };
}

export function taskDetail(taskId) {
  const load = async () => {
    const task = await api(`/v1/tasks/${enc(taskId)}`);
    const result = await request(`/v1/tasks/${enc(taskId)}/result`);
    const settled = result.status === 200 && result.data.settlement ? await settlementOf(taskId, result.data.settlement.bsv_txid) : null;
    return { task, result: result.status === 200 ? result.data : null, pending: result.status === 202 ? result.data : null, settled };
  };
  const render = ({ task, result, pending, settled }) => {
    const preview = task.task_type === "image_classification"
      ? h("figure", { class: "preview" },
          h("img", { src: task.data_url, alt: `The image of task ${task.task_id}`, loading: "lazy", referrerpolicy: "no-referrer",
            onerror: (e) => e.target.replaceWith(h("p", { class: "muted" }, "The image could not be loaded from its data_url.")) }),
          h("figcaption", {}, "Preview loaded from the task's data_url"))
      : null;
    const facts = h("dl", { class: "facts" },
      h("dt", {}, "data_url"), h("dd", { class: "mono break" }, task.data_url),
      h("dt", {}, "Type"), h("dd", {}, task.task_type),
      h("dt", {}, "Question"), h("dd", {}, task.label_spec.question),
      h("dt", {}, "Options"), h("dd", {}, task.label_spec.options.join(", ")),
      h("dt", {}, "Threshold"), h("dd", {}, String(task.consensus_threshold)),
      h("dt", {}, "Created"), h("dd", {}, fmt.time(task.created_at)));
    const outcome = result
      ? section("Consensus",
          h("div", { class: "cards small" },
            card("Consensus", result.consensus_label ?? (result.failure_reason ? `none (${result.failure_reason})` : "—")),
            card("Confidence", fmt.conf(result.confidence)),
            card("Workers", fmt.int(result.worker_count)),
            card("Agree", fmt.int(result.agreement_count))),
          result.labels.length
            ? table(["Worker", "Label", "At"], result.labels.map((l) => h("tr", {}, h("td", { class: "mono" }, l.worker_id), h("td", {}, l.option), h("td", {}, fmt.time(l.created_at)))), "Labels")
            : h("p", { class: "muted" }, "No labels were collected."))
      : section("Consensus", h("p", { "data-testid": "pending" }, pending ? pending.message : "Not decided yet."), h("p", { class: "muted" }, "This page updates by itself as labels arrive."));
    return h("div", {},
      h("div", { class: "detail-head" }, h("p", {}, "Status: ", badge(task.status))),
      h("div", { class: "detail-grid" }, section("Task", facts), preview ? section("Image", preview) : null),
      outcome,
      result && result.settlement ? settlementPanel(task, result.settlement, settled) : null);
  };
  return [h("h1", { tabindex: "-1" }, "Task ", h("span", { class: "mono" }, taskId)), h("p", {}, h("a", { href: "#/tasks" }, "← All tasks")), region(load, render)];
}

function settlementPanel(task, settlement, settled) {
  const txid = settlement.bsv_txid;
  const explorer = settled && settled.local
    ? h("a", { href: `#/tx/${enc(txid)}`, class: "button", "data-testid": "explorer-link" }, "Open on the local ledger")
    : h("a", { href: `https://whatsonchain.com/tx/${enc(txid)}`, class: "button", rel: "noopener noreferrer", target: "_blank", "data-testid": "explorer-link" }, "Open on WhatsOnChain");
  const receipt = settled && settled.receipt
    ? h("div", { class: "receipt" },
        h("button", { type: "button", onclick: () => saveJson(`receipt-${task.task_id}.json`, settled.receipt), "data-testid": "receipt-download" }, "Download receipt (JSON)"),
        h("ul", { class: "checks", "data-testid": "receipt-checks" },
          settled.checks.map((c) => h("li", { class: c.ok ? "ok" : "bad" }, h("span", { "aria-hidden": "true" }, c.ok ? "✓ " : "✗ "), `${c.check}`, h("span", { class: "muted" }, ` — ${c.detail}`)))),
        h("p", { "data-testid": "receipt-verdict", class: settled.checks.every((c) => c.ok) ? "ok" : "bad" },
          settled.checks.every((c) => c.ok) ? "The receipt verifies." : "The receipt does NOT verify."))
    : h("p", { class: "muted" }, settled && settled.note ? settled.note : "The receipt is served by the local ledger only.");
  return section("Settlement",
    h("dl", { class: "facts" },
      h("dt", {}, "bsv_txid"), h("dd", { class: "mono break", "data-testid": "txid" }, txid),
      h("dt", {}, "Cost"), h("dd", {}, `${fmt.int(settlement.total_cost_sats)} sats`),
      h("dt", {}, "Settled"), h("dd", {}, fmt.time(settlement.settled_at))),
    explorer, receipt);
}

// ---- the local ledger's transaction page (the explorer link) ------------------------------

export function transaction(txid) {
  return [
    h("h1", { tabindex: "-1" }, "Transaction"),
    region(() => api(`/v1/chain/tx/${enc(txid)}`), (tx) =>
      h("div", {},
        h("dl", { class: "facts" },
          h("dt", {}, "txid"), h("dd", { class: "mono break", "data-testid": "tx-txid" }, tx.txid),
          h("dt", {}, "Block"), h("dd", {}, tx.block_height === null ? "not mined yet" : `${tx.block_height} (${fmt.short(tx.block_hash, 16)})`),
          h("dt", {}, "Fee"), h("dd", {}, `${fmt.int(tx.fee)} sats`),
          h("dt", {}, "Size"), h("dd", {}, `${fmt.int(tx.hex.length / 2)} bytes`)),
        section("Outputs", table(["vout", "Satoshis", "Address"], tx.outputs.map((o) => h("tr", {}, h("td", { class: "num" }, String(o.vout)), h("td", { class: "num" }, fmt.int(o.satoshis)), h("td", { class: "mono" }, o.address ?? "(data)"))), "Outputs")),
        h("button", { type: "button", class: "secondary", onclick: () => saveJson(`tx-${tx.txid}.json`, tx) }, "Download transaction (JSON)"))),
  ];
}

// ---- quality -----------------------------------------------------------------------------

export function quality() {
  return [
    h("h1", { tabindex: "-1" }, "Quality"),
    region(() => api("/v1/dashboard/quality"), (q) => {
      if (q.decided === 0) return empty("No decided tasks yet", h("p", {}, "Agreement and confidence appear once consensus decides a task."));
      return h("div", {},
        h("div", { class: "cards" },
          card("Decided tasks", fmt.int(q.decided)),
          card("Perfect agreement", fmt.pct(q.perfect_agreement_rate), h("span", { class: "muted" }, `${fmt.int(q.perfect_agreement)} tasks`))),
        section("Confidence distribution", histogram(q.confidence_histogram)),
        section("Label distribution", q.label_distribution.length ? labelBars(q.label_distribution) : h("p", { class: "muted" }, "No consensus labels yet.")));
    }),
  ];
}

// ---- webhooks ----------------------------------------------------------------------------

export function webhooks() {
  const note = h("p", { role: "status", class: "note" });
  const form = h("form", { class: "stack", "aria-label": "New webhook" },
    h("label", { for: "wh-url" }, "Callback URL", h("input", { id: "wh-url", name: "callback_url", type: "url", required: true, placeholder: "https://example.com/hooks/asg", autocomplete: "off" })),
    h("label", { for: "wh-secret" }, "Signing secret (8–256 characters; never shown again)",
      h("input", { id: "wh-secret", name: "secret", type: "password", required: true, minlength: 8, maxlength: 256, autocomplete: "off" })),
    h("fieldset", {}, h("legend", {}, "Events (none ticked: all)"),
      EVENTS.map((ev) => h("label", { class: "inline" }, h("input", { type: "checkbox", name: "events", value: ev }), ev))),
    h("button", { type: "submit" }, "Create webhook"), note);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const events = [...form.querySelectorAll("input[name=events]:checked")].map((i) => i.value);
    const body = { callback_url: form.elements.callback_url.value.trim(), secret: form.elements.secret.value };
    if (events.length) body.events = events;
    note.className = "note";
    try {
      await api("/v1/webhooks", { method: "POST", body });
      form.reset();
      note.textContent = "Webhook created. Its secret signs every delivery and is never shown again.";
      schedule(true);
    } catch (err) {
      form.elements.secret.value = "";
      note.className = "note bad";
      note.textContent = `Not created: ${err.message}`;
    }
  });
  const list = region(() => api("/v1/webhooks"), ({ webhooks: hooks }) => {
    if (!hooks.length) return empty("No webhooks", h("p", {}, "Register an HTTPS endpoint below to be told when tasks are decided and settled."));
    return table(["Callback URL", "Events", "Active", "Created", ""], hooks.map((w) => h("tr", {},
      h("td", { class: "mono break" }, w.callback_url),
      h("td", {}, w.events.join(", ")),
      h("td", {}, w.active ? "yes" : "no"),
      h("td", {}, fmt.time(w.created_at)),
      h("td", { class: "actions" },
        h("a", { href: `#/webhooks/${enc(w.webhook_id)}`, "data-key": `log-${w.webhook_id}` }, "Delivery log"),
        deleteButton(w)))), "Webhooks");
  });
  return [h("h1", { tabindex: "-1" }, "Webhooks"), list, section("Register a webhook", form)];
}

function deleteButton(w) {
  const box = h("span", { class: "confirm" });
  const ask = h("button", { type: "button", class: "danger", "data-key": `del-${w.webhook_id}`, "aria-label": `Delete webhook ${w.callback_url}` }, "Delete");
  ask.addEventListener("click", () => {
    const yes = h("button", { type: "button", class: "danger", "data-key": `yes-${w.webhook_id}` }, "Confirm delete");
    const no = h("button", { type: "button", class: "secondary" }, "Cancel");
    yes.addEventListener("click", async () => {
      yes.disabled = true;
      try {
        await api(`/v1/webhooks/${enc(w.webhook_id)}`, { method: "DELETE" });
        schedule(true);
      } catch (err) {
        box.replaceChildren(h("span", { class: "bad", role: "alert" }, `Not deleted: ${err.message}`));
      }
    });
    no.addEventListener("click", () => { box.replaceChildren(ask); ask.focus(); });
    box.replaceChildren(yes, " ", no);
    yes.focus();
  });
  box.append(ask);
  return box;
}

export function deliveries(webhookId) {
  return [
    h("h1", { tabindex: "-1" }, "Delivery log"),
    h("p", {}, h("a", { href: "#/webhooks" }, "← Webhooks"), " ", h("span", { class: "mono muted" }, webhookId)),
    region(() => api(`/v1/webhooks/${enc(webhookId)}/deliveries`), ({ deliveries: items }) =>
      items.length
        ? table(["Event", "State", "Attempts", "Last status", "Last error", "Created", "Delivered"], items.map((d) => h("tr", {},
            h("td", {}, d.event), h("td", {}, d.state), h("td", { class: "num" }, String(d.attempts)),
            h("td", {}, d.last_status_code ?? "—"), h("td", { class: "break" }, d.last_error ?? "—"),
            h("td", {}, fmt.time(d.created_at)), h("td", {}, fmt.time(d.delivered_at)))), "Deliveries")
        : empty("No deliveries yet", h("p", {}, "Events are delivered here as tasks are decided and settled."))),
  ];
}

// ---- settings & usage --------------------------------------------------------------------

export function settings() {
  const usage = region(() => api("/v1/dashboard/usage"), (u) => {
    const used = u.label_quota - u.quota_remaining;
    const meter = h("meter", { min: 0, max: u.label_quota || 1, value: Math.max(0, used), "aria-label": "Label quota used" });
    const m = u.usage;
    return h("div", {},
      h("div", { class: "cards" },
        card("Tier", u.tier),
        card("Label quota remaining", `${fmt.int(u.quota_remaining)} / ${fmt.int(u.label_quota)}`, meter),
        card("Rate limit", `${u.rate_limit.per_second}/s, burst ${u.rate_limit.burst}`, h("span", { class: "muted" }, `${u.rate_limit_tier} tier${u.rate_limit.enforced ? "" : " (not enforced)"}`)),
        card("API key", h("span", { class: "mono", "data-testid": "key-hint" }, u.key_hint))),
      section(`Usage in ${m.month}`,
        h("div", { class: "cards small" },
          card("Tasks submitted", fmt.int(m.tasks_submitted)),
          card("Tasks charged", fmt.int(m.tasks_charged)),
          card("Labels collected", fmt.int(m.labels_collected)),
          card("Charged", `${fmt.int(m.sats_charged)} sats`)),
        h("p", {},
          h("button", { type: "button", class: "secondary", onclick: async () => saveJson(`usage-${m.month}.json`, await api(u.links.usage)) }, `Download GET ${u.links.usage}`), " ",
          h("button", { type: "button", class: "secondary", onclick: async () => saveJson("invoices.json", await api(u.links.invoices)) }, `Download GET ${u.links.invoices}`))));
  });
  const invoices = region(() => api("/v1/billing/invoices"), ({ invoices: items }) =>
    table(["Invoice", "Month", "Status", "Tasks", "Labels", "Total"], items.map((i) => h("tr", {},
      h("td", { class: "mono" }, i.invoice_id), h("td", {}, i.month), h("td", {}, i.status),
      h("td", { class: "num" }, fmt.int(i.total_tasks)), h("td", { class: "num" }, fmt.int(i.total_labels)),
      h("td", { class: "num" }, `${fmt.int(i.total_sats)} sats`))), "Invoices"));
  return [h("h1", { tabindex: "-1" }, "Settings & usage"), usage, section("Invoices", invoices)];
}

export function notFound() {
  return [h("h1", { tabindex: "-1" }, "Not found"), errorState(new Error("There is no such page in the Console."), null), h("p", {}, h("a", { href: "#/overview" }, "Go to the overview"))];
}
