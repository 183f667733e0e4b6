// The migration console: reads and changes the ladder through the gateway's admin API.
// Plain DOM, no build step; the admin key stays in this tab's sessionStorage.
"use strict";

const REFRESH_MS = 3000;
const $ = (selector) => document.querySelector(selector);
let pending = null; // the change the dialog is about: {route, entity, step}
let notice = { text: "", until: 0 }; // what a change confirms, shown across refreshes for a while

function credentials() {
  return { key: sessionStorage.getItem("banyan.key") || "", actor: sessionStorage.getItem("banyan.actor") || "" };
}

async function api(method, path, body) {
  const { key, actor } = credentials();
  const response = await fetch(path, {
    method,
    headers: { "X-Admin-Key": key, "X-Actor": actor, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  const kind = response.headers.get("content-type") || "";
  const data = text && (kind.startsWith("application/json") || kind.startsWith("application/problem+json")) ? JSON.parse(text) : text;
  if (!response.ok) {
    throw new Error((data && data.detail) || `${response.status} ${response.statusText}`);
  }
  return data;
}

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function percent(value) {
  return value === null || value === undefined ? "" : `${(value * 100).toFixed(1)} %`;
}

function since(iso) {
  if (!iso) return "";
  const minutes = Math.max(0, (Date.now() - Date.parse(iso)) / 60000);
  return minutes < 90 ? `${Math.round(minutes)} min` : `${(minutes / 60).toFixed(1)} h`;
}

function button(label, title, onClick, quiet) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.title = title;
  if (quiet) b.className = "quiet";
  b.addEventListener("click", (event) => { event.stopPropagation(); onClick(); });
  return b;
}

function renderGrid(rows) {
  const body = $("#grid tbody");
  body.replaceChildren();
  for (const row of rows) {
    const tr = body.insertRow();
    tr.className = "route";
    tr.dataset.route = row.route;
    tr.dataset.entity = row.entity;
    cell(tr, row.route);
    cell(tr, row.entity);
    const mode = cell(tr, "");
    const badge = document.createElement("span");
    badge.className = "mode";
    badge.style.background = `var(--${row.mode})`;
    badge.textContent = row.mode.replace("_", " ");
    mode.append(badge);
    if (row.step_down) {
      // The guardrail's step down stays in sight until a person acknowledges it.
      tr.classList.add("stepped-down");
      const warning = document.createElement("p");
      warning.className = "step-down";
      warning.textContent = `⚠ stepped down ${since(row.step_down.at)} ago: ${row.step_down.reason}`;
      mode.append(warning);
    }
    cell(tr, row.mode === "canary" ? String(row.percent) : "", "num");
    cell(tr, `${row.evidence.calls_legacy} / ${row.evidence.calls_cloud}`, "num");
    cell(tr, percent(row.evidence.cloud_error_rate), "num");
    cell(tr, `${percent(row.evidence.mismatch_rate)} of ${row.evidence.judged ?? row.evidence.comparisons}`, "num");
    const gate = cell(tr, "");
    gate.title = `judged with the gate and guardrail of ${row.settings_from}`;
    if (row.verdict) {
      const verdict = document.createElement("strong");
      verdict.className = `verdict-${row.verdict}`;
      verdict.textContent = row.verdict;
      const reasons = document.createElement("span");
      reasons.className = "reasons";
      reasons.textContent = row.verdict_reasons.join("; ");
      gate.append(verdict, reasons);
    } else {
      gate.textContent = "on the cloud";
    }
    cell(tr, since(row.since), "num");
    const actions = cell(tr, "");
    const box = document.createElement("div");
    box.className = "actions";
    if (row.mode !== "cloud") box.append(button("Promote", "one rung up, if the gate allows", () => ask(row, "promote")));
    if (row.mode !== "legacy") box.append(button("Roll back", "one rung down", () => ask(row, "rollback"), true));
    if (row.mode === "canary") box.append(button("Set %", "change the canary percent", () => ask(row, "percent"), true));
    if (row.step_down) box.append(button("Acknowledge", "say you have seen why the guardrail stepped it down", () => ask(row, "acknowledge"), true));
    actions.append(box);
    tr.addEventListener("click", () => showFields(row.route, row.entity));
  }
}

function renderHistory(text) {
  const body = $("#history tbody");
  body.replaceChildren();
  const events = text.split("\n").filter(Boolean).map((line) => JSON.parse(line)).reverse().slice(0, 50);
  for (const event of events) {
    const tr = body.insertRow();
    cell(tr, event.at.slice(0, 19).replace("T", " "));
    cell(tr, event.actor);
    cell(tr, event.kind);
    cell(tr, `${event.route}/${event.entity}`);
    const rung = (mode, pct) => (mode === "canary" ? `canary ${pct} %` : mode);
    cell(tr, event.to_mode ? `${rung(event.from_mode, event.from_percent)} → ${rung(event.to_mode, event.to_percent)}` : "");
    cell(tr, event.reason);
  }
}

function renderOutbox(data) {
  const list = $("#outbox");
  list.replaceChildren();
  for (const [state, count] of Object.entries(data.counts)) {
    const dt = document.createElement("dt");
    dt.textContent = state.replace("_", " ");
    const dd = document.createElement("dd");
    dd.textContent = count;
    list.append(dt, dd);
  }
}

async function showFields(route, entity) {
  const section = $("#fields");
  const query = new URLSearchParams({ route });
  if (entity !== "*") query.set("entity", entity);
  try {
    const fields = await api("GET", `/admin/cutover/mismatches?${query}`);
    $("#fields-route").textContent = `${route} / ${entity}`;
    const body = section.querySelector("tbody");
    body.replaceChildren();
    for (const field of fields) {
      const tr = body.insertRow();
      const sample = field.samples[0] || { legacy: "", cloud: "" };
      cell(tr, field.path);
      cell(tr, field.kind);
      cell(tr, String(field.count), "num");
      cell(tr, percent(field.rate), "num");
      cell(tr, field.legacy_own_rate === null ? "not sampled" : percent(field.legacy_own_rate), "num");
      cell(tr, field.verdict);
      cell(tr, JSON.stringify(sample.legacy));
      cell(tr, JSON.stringify(sample.cloud));
    }
    if (!fields.length) cell(body.insertRow(), "no differences recorded");
    section.hidden = false;
  } catch (error) {
    say(error.message);
  }
}

function ask(row, step) {
  pending = { route: row.route, entity: row.entity, step };
  const titles = { promote: "Promote", rollback: "Roll back", percent: "Set the canary percent of",
                   acknowledge: "Acknowledge the step down of" };
  const now = row.mode === "canary" ? `canary ${row.percent} %` : row.mode;
  const to = step === "promote" && row.next ? `: ${now} → ${row.next}` : "";
  $("#change-title").textContent = `${titles[step]} ${row.route} / ${row.entity}${to}`;
  $("#percent-label").hidden = step !== "percent";
  $("#percent").required = step === "percent";
  $("#percent").value = row.percent || "";
  $("#force").parentElement.hidden = step === "rollback" || step === "acknowledge";
  $("#force").checked = false;
  // Stepping up after a guardrail step down: the lead confirms having read why, and says why it is safe.
  const down = row.step_down && step !== "rollback" ? row.step_down : null;
  $("#step-down").hidden = !down;
  $("#step-down-text").textContent = down
    ? `The guardrail stepped it down from ${down.from_mode === "canary" ? `canary ${down.from_percent} %` : down.from_mode} at ${down.at.slice(0, 19).replace("T", " ")}: ${down.reason}.`
    : "";
  $("#acknowledge").parentElement.hidden = !down || step === "acknowledge";
  $("#acknowledge").required = Boolean(down) && step !== "acknowledge";
  $("#acknowledge").checked = false;
  $("#reason").value = "";
  $("#change-error").textContent = "";
  $("#change").showModal();
  $("#reason").focus();
}

async function confirmChange(event) {
  event.preventDefault();
  if (!$("#change-form").reportValidity()) return;
  const { route, entity, step } = pending;
  const reason = $("#reason").value;
  const force = $("#force").checked;
  const acknowledge = $("#acknowledge").checked;
  const path = `/admin/cutover/${encodeURIComponent(route)}/${encodeURIComponent(entity)}`;
  try {
    const done = step === "percent"
      ? await api("PUT", path, { mode: "canary", percent: Number($("#percent").value), reason, force, acknowledge })
      : await api("POST", `${path}/${step}`, { reason, force, acknowledge });
    $("#change").close();
    const rung = (rule) => (rule.mode === "canary" ? `canary ${rule.percent} %` : rule.mode);
    const text = step === "acknowledge"
      ? `✓ acknowledged the step down of ${route} / ${entity}`
      : `✓ ${route} / ${entity} is now on ${rung(done)} (version ${done.version})`;
    notice = { text, until: Date.now() + 15000 };
    await refresh();
  } catch (error) {
    $("#change-error").textContent = error.message;
  }
}

function say(text) {
  $("#message").textContent = text;
}

async function refresh() {
  try {
    const [rows, history, outbox] = await Promise.all([
      api("GET", "/admin/cutover"), api("GET", "/admin/cutover/history"), api("GET", "/admin/outbox"),
    ]);
    renderGrid(rows);
    renderHistory(history);
    renderOutbox(outbox);
    $("#main").hidden = false;
    $("#updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
    say(Date.now() < notice.until ? notice.text : "");
    return true;
  } catch (error) {
    say(error.message);
    return false;
  }
}

let timer = null;

async function connect(event) {
  event?.preventDefault();
  sessionStorage.setItem("banyan.key", $("#key").value);
  sessionStorage.setItem("banyan.actor", $("#actor").value);
  clearInterval(timer);
  if (await refresh()) timer = setInterval(refresh, REFRESH_MS);
  else $("#main").hidden = true;
}

document.addEventListener("DOMContentLoaded", () => {
  $("#login").addEventListener("submit", connect);
  $("#confirm").addEventListener("click", confirmChange);
  const { key, actor } = credentials();
  $("#actor").value = actor;
  if (key) {
    $("#key").value = key;
    connect();
  }
});
