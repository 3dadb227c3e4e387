// The live view: follows /api/events (one snapshot per message) and
// redraws; rates are the difference of two snapshots over their time.
"use strict";
let prev = null;

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const k of kids) e.append(k);
  return e;
}

function rate(now, before, dt) {
  if (before === undefined || dt <= 0) return "–";
  return ((now - before) / dt).toFixed(1);
}

function render(s) {
  document.getElementById("self").textContent = "node " + s.node;
  const nodes = document.getElementById("nodes");
  nodes.replaceChildren(...s.nodes.map(n => {
    const li = el("li", { "data-node": n.id, class: n.self ? "self" : "" },
      el("span", { class: "id" }, n.id), el("span", { class: "addr" }, n.address || ""), el("br"));
    for (const svc of n.services || []) li.append(el("span", { class: "svc", "data-service": svc }, svc));
    return li;
  }));
  document.getElementById("node-count").textContent = "(" + s.nodes.length + ")";

  document.querySelector("#links tbody").replaceChildren(...s.links.map(l =>
    el("tr", { "data-link": l.from + ">" + l.to }, el("td", {}, l.from), el("td", {}, l.to), el("td", {}, l.direction), el("td", {}, l.kind))));
  drawGraph(s);

  const dt = prev ? (s.time - prev.time) / 1000 : 0;
  const before = {};
  for (const x of (prev ? prev.services : [])) before[x.side + " " + x.name] = x;
  let total = 0;
  document.querySelector("#services tbody").replaceChildren(...s.services.map(x => {
    const b = before[x.side + " " + x.name] || (prev ? { calls: 0, errors: 0 } : {});
    total += x.calls;
    return el("tr", { "data-service": x.name, "data-side": x.side },
      el("td", {}, x.name), el("td", {}, x.side),
      el("td", { class: "n calls" }, String(x.calls)), el("td", { class: "n" }, rate(x.calls, b.calls, dt)),
      el("td", { class: "n errors" + (x.errors ? " err" : "") }, String(x.errors)), el("td", { class: "n" }, rate(x.errors, b.errors, dt)),
      el("td", { class: "n" }, String(x.running)));
  }));
  document.getElementById("total-calls").textContent = String(total);

  const evBefore = {};
  for (const x of (prev ? prev.events : [])) evBefore[x.name] = x;
  document.querySelector("#events tbody").replaceChildren(...s.events.map(x =>
    el("tr", { "data-event": x.name }, el("td", {}, x.name), el("td", { class: "n" }, String(x.emitted)),
      el("td", { class: "n" }, rate(x.emitted, (evBefore[x.name] || (prev ? { emitted: 0 } : {})).emitted, dt)))));
  prev = s;
}

// drawGraph puts the nodes on a circle and a line for each connection.
function drawGraph(s) {
  const svg = document.getElementById("graph");
  const ns = "http://www.w3.org/2000/svg";
  const w = +svg.getAttribute("width"), h = +svg.getAttribute("height");
  const pos = {};
  s.nodes.forEach((n, i) => {
    const a = 2 * Math.PI * i / Math.max(1, s.nodes.length) - Math.PI / 2;
    pos[n.id] = [w / 2 + (w / 2 - 60) * Math.cos(a), h / 2 + (h / 2 - 30) * Math.sin(a)];
  });
  const kids = [];
  for (const l of s.links) {
    if (!pos[l.from] || !pos[l.to]) continue;
    const line = document.createElementNS(ns, "line");
    const [x1, y1] = pos[l.from], [x2, y2] = pos[l.to];
    Object.entries({ x1, y1, x2, y2, stroke: l.kind === "go" ? "#457b9d" : "#e76f51", "stroke-width": 2 }).forEach(([k, v]) => line.setAttribute(k, v));
    kids.push(line);
  }
  for (const n of s.nodes) {
    const [x, y] = pos[n.id];
    const c = document.createElementNS(ns, "circle");
    Object.entries({ cx: x, cy: y, r: 9, fill: n.self ? "#1d3557" : "#a8dadc" }).forEach(([k, v]) => c.setAttribute(k, v));
    const t = document.createElementNS(ns, "text");
    Object.entries({ x: x + 12, y: y + 4 }).forEach(([k, v]) => t.setAttribute(k, v));
    t.textContent = n.id;
    kids.push(c, t);
  }
  svg.replaceChildren(...kids);
}

const source = new EventSource("api/events");
source.onopen = () => { document.getElementById("status").textContent = "live"; };
source.onerror = () => { document.getElementById("status").textContent = "reconnecting…"; };
source.onmessage = m => render(JSON.parse(m.data));
