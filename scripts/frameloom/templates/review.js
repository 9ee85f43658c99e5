"use strict";
const DATA = JSON.parse(document.getElementById("data").textContent);
const SERVED = location.protocol.startsWith("http");
const PAGE_SIZE = 60;
let shown = PAGE_SIZE;
const overrides = {};
for (const f of DATA.frames) if (f.override) overrides[f.id] = f.override;

document.getElementById("notice").textContent = SERVED
  ? "Changes are saved to the overrides file; run snakemake to apply them (only the changed frames are redone)."
  : "Read-only: opened as a file. Start `python -m frameloom.review` to save overrides.";

const filter = document.getElementById("filter");
for (const [value, label] of [["all", "all frames"], ...DATA.strategies.map(s => [s, s]),
     ["failed", "failed"], ["excluded", "excluded"], ["overridden", "overridden"]]) {
  filter.add(new Option(label, value));
}

function matches(f) {
  const wanted = filter.value, text = document.getElementById("search").value.trim();
  if (text && !f.id.includes(text)) return false;
  if (wanted === "all") return true;
  if (wanted === "failed" || wanted === "excluded") return f.status === wanted;
  if (wanted === "overridden") return Boolean(overrides[f.id]);
  return f.strategy === wanted;
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, attrs || {});
  for (const c of children) node.append(c);
  return node;
}

function image(file, served, title) {
  return el("img", {src: SERVED ? served : file, title: title || "", loading: "lazy"});
}

function card(f) {
  const box = el("div", {className: "frame " + f.status + (overrides[f.id] ? " overridden" : "")});
  box.dataset.frame = f.id;
  const metrics = el("table", {className: "metrics"});
  for (const [k, v] of Object.entries(f.analysis)) {
    metrics.append(el("tr", {}, el("td", {}, k), el("td", {}, typeof v === "number" ? String(+v.toFixed(3)) : String(v))));
  }
  const left = el("div", {}, el("h3", {}, f.id), image(f.input, encodeURI(f.input_served), "input"), metrics);
  const outputs = el("div", {});
  for (const o of f.outputs) outputs.append(image(o.file, "/out/" + encodeURI(o.served), o.backend));
  const choice = el("select", {className: "choice"});
  const automatic = f.override ? f.override.automatic : f.strategy;
  choice.add(new Option("automatic (" + (automatic || "none") + ")", ""));
  for (const s of DATA.strategies) choice.add(new Option(s, s));
  choice.add(new Option("exclude this frame", "exclude"));
  const current = overrides[f.id];
  choice.value = current ? (current.exclude ? "exclude" : current.strategy) : "";
  const note = el("input", {className: "note", placeholder: "note", value: (current && current.note) || ""});
  const status = el("span", {className: "status"});
  const save = el("button", {className: "save", textContent: "Save", disabled: !SERVED});
  save.addEventListener("click", async () => {
    const body = {frame: f.id, strategy: null, exclude: choice.value === "exclude", note: note.value};
    if (choice.value && choice.value !== "exclude") body.strategy = choice.value;
    status.textContent = "saving...";
    const response = await fetch("/api/overrides", {method: "POST",
      headers: {"Content-Type": "application/json", "X-Frameloom-Review": "1"}, body: JSON.stringify(body)});
    const answer = await response.json();
    if (!response.ok) { status.className = "status failed"; status.textContent = answer.error; return; }
    if (answer.frames[f.id]) overrides[f.id] = answer.frames[f.id]; else delete overrides[f.id];
    box.classList.toggle("overridden", Boolean(overrides[f.id]));
    status.className = "status saved";
    status.textContent = "saved";
  });
  const decision = el("div", {},
    el("div", {}, el("b", {}, f.status === "ok" ? f.strategy : f.status + (f.strategy ? " in " + f.strategy : "")), " confidence " + f.confidence.toFixed(2)),
    el("div", {className: "reason"}, f.reasoning),
    f.error ? el("div", {className: "failed"}, f.error) : "",
    outputs, el("div", {}, choice, " ", note, " ", save, " ", status));
  box.append(left, decision);
  return box;
}

function render() {
  const list = document.getElementById("frames");
  const hits = DATA.frames.filter(matches);
  list.replaceChildren(...hits.slice(0, shown).map(card));
  document.getElementById("count").textContent = hits.length + " frames";
  document.getElementById("more").hidden = hits.length <= shown;
}

async function loadOverrides() {
  if (!SERVED) return;
  const response = await fetch("/api/overrides");
  const answer = await response.json();
  for (const key of Object.keys(overrides)) delete overrides[key];
  Object.assign(overrides, answer.frames);
}

filter.addEventListener("change", () => { shown = PAGE_SIZE; render(); });
document.getElementById("search").addEventListener("input", () => { shown = PAGE_SIZE; render(); });
document.getElementById("more").addEventListener("click", () => { shown += PAGE_SIZE; render(); });
loadOverrides().then(render);
