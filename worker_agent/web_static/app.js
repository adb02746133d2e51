// The labeling page: long-polls the agent's state, shows one question, sends the answer.
// No framework and nothing from outside; text from tasks is only ever set as textContent.
"use strict";

const $ = (id) => document.getElementById(id);
const LABELS = {
  connecting: "Connecting…",
  connected: "Connected",
  reconnecting: "Reconnecting…",
  unreachable: "Agent not reachable",
};
let etag = "";
let shown = null; // the question on screen: its id, options and whether an answer is on its way
let countdownTimer = null;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const child of children) node.append(child);
  return node;
}

function setConnection(state) {
  const pill = $("connection");
  pill.dataset.state = state;
  pill.textContent = LABELS[state] || state;
}

function render(state) {
  setConnection(state.connection);
  $("labels-done").textContent = String(state.labels_done);
  $("sats-earned").textContent = String(state.sats_earned);
  $("skipped").textContent = String(state.skipped + state.handed_back);
  $("last-event").textContent = state.last_event;
  $("last-paid").textContent = state.last_paid;
  const q = state.question;
  if (!q) {
    showWaiting(state.connection);
    return;
  }
  if (shown && shown.id === q.id) {
    if (shown.textLoading && !q.text_loading) showData(q);
    shown.textLoading = q.text_loading;
    return;
  }
  showQuestion(q);
}

function showWaiting(connection) {
  const wasQuestion = shown !== null;
  shown = null;
  stopCountdown();
  $("question").hidden = true;
  $("waiting").hidden = false;
  const title = $("waiting-title");
  const text = $("waiting-text");
  if (connection === "connected") {
    title.textContent = "Waiting for the next task…";
    text.textContent = "Tasks appear here as soon as the core offers one.";
  } else if (connection === "reconnecting") {
    title.textContent = "Reconnecting to the core…";
    text.textContent = "The stream to the core dropped; the agent is reconnecting by itself. " +
      "Labels already sent are counted; a task that was on screen goes back to the core and may come back.";
  } else if (connection === "unreachable") {
    title.textContent = "The agent is not reachable";
    text.textContent = "Is asg-worker still running? This page retries by itself.";
  } else {
    title.textContent = "Connecting to the core…";
    text.textContent = "Tasks appear here as soon as the core offers one.";
  }
  if (wasQuestion && document.activeElement && document.activeElement.closest("#question")) title.focus();
}

function showQuestion(q) {
  shown = { id: q.id, options: q.options, sending: false, textLoading: q.text_loading };
  $("waiting").hidden = true;
  $("question").hidden = false;
  $("task-type").textContent = q.task_type.replace(/_/g, " ");
  $("task-id").textContent = q.task_id;
  $("question-text").textContent = q.question || "(no question given)";
  showData(q);
  const options = $("options");
  options.replaceChildren();
  q.options.forEach((option, i) => {
    const button = el("button", { type: "button", "data-option": option }, el("kbd", {}, String(i + 1)), option);
    if (i >= 9) button.firstChild.remove(); // only 1–9 have a key
    button.addEventListener("click", () => send("/api/answer", { question_id: q.id, option }));
    options.append(button);
  });
  const skip = el("button", { type: "button", class: "skip-button", "data-testid": "skip" }, el("kbd", {}, "s"), "Skip");
  skip.addEventListener("click", () => send("/api/skip", { question_id: q.id }));
  options.append(skip);
  startCountdown(q.answer_by);
  $("question-text").focus();
}

function showData(q) {
  const data = $("data");
  data.replaceChildren();
  if (q.kind === "image") {
    if (!q.image_url) {
      data.append(el("p", { class: "note" }, "This image cannot be shown here: ", el("span", { class: "mono break" }, q.data_url)));
      return;
    }
    const img = el("img", { src: q.image_url, alt: "The image to label", referrerpolicy: "no-referrer", "data-testid": "image" });
    img.addEventListener("error", () => {
      img.replaceWith(el("p", { class: "note" }, "The image did not load from ",
        el("span", { class: "mono break" }, q.data_url), ". You can still answer or skip."));
    });
    data.append(img);
  } else if (q.kind === "text") {
    if (q.text_loading) {
      data.append(el("p", { class: "muted" }, "Loading the text…"));
    } else if (q.text_error) {
      data.append(el("p", { class: "note" }, q.text_error + "; you can still answer from the URL, or skip. ",
        el("span", { class: "mono break" }, q.data_url)));
    } else {
      data.append(el("pre", { "data-testid": "text", tabindex: "0" }, q.text || "[empty]"));
      if (q.truncated_at_kib) data.append(el("p", { class: "muted" }, `… truncated at ${q.truncated_at_kib} KiB`));
    }
  } else {
    data.append(el("p", {}, "Data: ", el("span", { class: "mono break" }, q.data_url)));
  }
}

function startCountdown(answerBy) {
  stopCountdown();
  const out = $("countdown");
  if (!answerBy) {
    out.textContent = "";
    return;
  }
  const tick = () => {
    const left = Math.max(0, Math.round(answerBy - Date.now() / 1000));
    out.textContent = `· answer within ${left} s`;
  };
  tick();
  countdownTimer = setInterval(tick, 1000);
}

function stopCountdown() {
  if (countdownTimer !== null) clearInterval(countdownTimer);
  countdownTimer = null;
}

async function send(path, body) {
  if (!shown || shown.sending) return;
  shown.sending = true;
  for (const button of $("options").querySelectorAll("button")) button.disabled = true;
  let note = "";
  try {
    const reply = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    if (reply.status === 409) note = "That task was withdrawn before your answer arrived.";
    else if (!reply.ok) note = ((await reply.json()).error) || `The agent answered ${reply.status}.`;
  } catch (err) {
    note = "The agent is not reachable; your answer was not sent.";
  }
  if (note) {
    $("last-event").textContent = note;
    if (shown && shown.id === body.question_id) {
      shown.sending = false;
      for (const button of $("options").querySelectorAll("button")) button.disabled = false;
    }
  }
}

document.addEventListener("keydown", (event) => {
  if (!shown || event.altKey || event.ctrlKey || event.metaKey || event.repeat) return;
  if (event.target instanceof HTMLInputElement || event.target instanceof HTMLTextAreaElement) return;
  if (event.key === "s" || event.key === "S") {
    event.preventDefault();
    send("/api/skip", { question_id: shown.id });
    return;
  }
  if (/^[1-9]$/.test(event.key)) {
    const option = shown.options[Number(event.key) - 1];
    if (option === undefined) return;
    event.preventDefault();
    send("/api/answer", { question_id: shown.id, option });
  }
});

async function poll() {
  let failures = 0;
  for (;;) {
    try {
      const reply = await fetch(`/api/state?since=${encodeURIComponent(etag)}`, { cache: "no-store" });
      const got = await reply.json();
      etag = got.etag;
      failures = 0;
      render(got.state);
    } catch (err) {
      failures += 1;
      setConnection("unreachable");
      showWaiting("unreachable");
      await new Promise((done) => setTimeout(done, Math.min(5000, 250 * 2 ** failures)));
    }
  }
}

poll();
