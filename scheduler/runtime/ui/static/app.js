// gpuyard's status page: reads the JSON API with the user's bearer token and draws it.
// Read-only (GET only). Every value from the API is put in the page as text (textContent),
// never as HTML.
"use strict";

(function () {
  const KEY = "gpuyard.token";
  // every 5 s; "/ui?refresh=30" for another period (seconds, at least 1)
  const REFRESH_MS = Math.max(1, Number(new URLSearchParams(location.search).get("refresh")) || 5) * 1000;
  const MAX_PAGES = 20; // of /v1/jobs, 1000 jobs each
  const HOT_C = 85; // shown hot from here (the core's own limit marks the GPU unhealthy)
  const WARM_C = 75;
  // the API lives beside the page: /ui -> "", /prefix/ui -> "/prefix"
  const BASE = location.pathname.replace(/\/ui\/?$/, "");

  let timer = null;
  let who = null;

  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "data") for (const [dk, dv] of Object.entries(v)) node.dataset[dk] = dv;
      // through the CSSOM: the page's CSP forbids style attributes
      else if (k === "style") for (const [sk, sv] of Object.entries(v)) node.style.setProperty(sk, sv);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  class AuthError extends Error {}

  async function api(path) {
    const token = sessionStorage.getItem(KEY);
    let resp;
    try {
      resp = await fetch(BASE + path, {
        headers: { Authorization: "Bearer " + token, Accept: "application/json" },
        cache: "no-store",
        credentials: "omit",
      });
    } catch (e) {
      throw new Error("the service did not answer (" + e.message + ")");
    }
    let body = null;
    try {
      body = await resp.json();
    } catch (e) {
      body = null;
    }
    const detail = body && typeof body.detail === "string" ? body.detail : resp.statusText;
    if (resp.status === 401) throw new AuthError(detail);
    if (!resp.ok) throw new Error(path + ": HTTP " + resp.status + ": " + detail);
    return body;
  }

  async function allJobs(state) {
    let out = [];
    let after = null;
    for (let i = 0; i < MAX_PAGES; i++) {
      const q = "/v1/jobs?limit=1000&state=" + state + (after ? "&after=" + encodeURIComponent(after) : "");
      const page = await api(q);
      out = out.concat(page.items);
      after = page.next_after;
      if (!after) break;
    }
    return out;
  }

  // ------------------------------------------------------------------ formatting
  const nowS = () => Date.now() / 1000;

  function duration(s) {
    s = Math.max(0, Math.round(s));
    if (s < 60) return s + " s";
    const m = Math.floor(s / 60);
    if (m < 60) return m + " min";
    const h = Math.floor(m / 60);
    if (h < 48) return h + " h " + String(m % 60).padStart(2, "0") + " min";
    return Math.floor(h / 24) + " d " + (h % 24) + " h";
  }

  function clock(s) {
    const d = new Date(s * 1000);
    const sameDay = new Date().toDateString() === d.toDateString();
    const t = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    return sameDay ? t : d.toLocaleDateString([], { month: "short", day: "numeric" }) + " " + t;
  }

  function isoTitle(s) {
    return new Date(s * 1000).toISOString().replace(".000Z", "Z");
  }

  function estimate(s) {
    if (s === null || s === undefined) {
      return el("span", { class: "muted", title: "no estimate: a job ahead or running has no estimated_duration_s" }, "unknown");
    }
    const left = s - nowS();
    if (left <= 30) return el("span", { title: isoTitle(s) }, "next cycles");
    return el("span", { title: isoTitle(s) }, "in " + duration(left), el("span", { class: "muted" }, " · " + clock(s)));
  }

  function gpusOf(job) {
    const spec = job.spec || {};
    const workers = Number(spec.workers) || 0;
    const milli = spec.gpu_milli === undefined ? 1000 : Number(spec.gpu_milli);
    if (milli < 1000) return (workers * milli) / 1000; // workers sharing GPUs
    return workers * (spec.gpus_per_worker === undefined ? 1 : Number(spec.gpus_per_worker));
  }

  function gpuCount(n) {
    return Number.isInteger(n) ? String(n) : n.toFixed(2);
  }

  function hue(team) {
    let h = 0;
    for (const ch of team) h = (h * 31 + ch.charCodeAt(0)) % 360;
    return h;
  }

  function teamTag(team) {
    return el("span", { class: "team", style: { "--h": hue(team) } }, team);
  }

  function jobCell(id, name) {
    return el("td", { class: "job" }, el("span", { class: "job-name" }, name), " ", el("span", { class: "job-id" }, id));
  }

  function ranges(indices) {
    const xs = [...indices].sort((a, b) => a - b);
    const parts = [];
    for (let i = 0; i < xs.length; i++) {
      let j = i;
      while (j + 1 < xs.length && xs[j + 1] === xs[j] + 1) j++;
      parts.push(j > i ? xs[i] + "-" + xs[j] : String(xs[i]));
      i = j;
    }
    return parts.join(",");
  }

  function placementText(job) {
    const byNode = new Map();
    for (const w of job.placement) {
      const cur = byNode.get(w.node) || { gpus: [], milli: w.gpu_milli };
      cur.gpus.push(...w.gpu_indices);
      byNode.set(w.node, cur);
    }
    return [...byNode.entries()].flatMap(([node, v], i) => [
      i ? " · " : null,
      el("span", { class: "place" }, el("b", {}, node), ": GPU " + ranges(v.gpus) + (v.milli && v.milli < 1000 ? " (" + v.milli / 1000 + " each)" : "")),
    ]);
  }

  function metricsText(m) {
    const keys = Object.keys(m || {}).sort().slice(0, 3);
    if (!keys.length) return el("span", { class: "muted" }, "—");
    return keys.flatMap((k, i) => [
      i ? " " : null,
      el("span", { class: "metric" }, k + " " + (Math.abs(m[k]) >= 100 ? Math.round(m[k]) : Number(m[k].toPrecision(3)))),
    ]);
  }

  // ------------------------------------------------------------------ drawing
  function fill(tbody, rows) {
    tbody.replaceChildren(...rows);
  }

  function drawTiles(queue, running, nodes) {
    const tiles = [];
    const tile = (label, value, note, cls) =>
      el("div", { class: "tile " + (cls || "") }, el("div", { class: "tile-value" }, value), el("div", { class: "tile-label" }, label), note ? el("div", { class: "tile-note" }, note) : null);
    tiles.push(tile(who.admin ? "jobs waiting" : "of your jobs waiting", queue.length));
    tiles.push(tile(who.admin ? "jobs running" : "of your jobs running", running.length));
    const used = running.reduce((a, j) => a + gpusOf(j), 0);
    if (nodes) {
      let total = 0, alloc = 0, sick = 0, hot = 0;
      for (const n of nodes) for (const g of n.gpus) {
        total += 1;
        alloc += g.allocated_milli / 1000;
        if (!g.healthy) sick += 1;
        if (g.temperature_c !== null && g.temperature_c >= HOT_C) hot += 1;
      }
      const off = nodes.filter((n) => !n.schedulable || !n.alive).length;
      tiles.push(tile("GPUs allocated", gpuCount(alloc) + " / " + total, total ? Math.round((100 * alloc) / total) + " %" : null));
      tiles.push(tile("GPUs unhealthy", sick, hot ? hot + " hot" : null, sick ? "warn" : ""));
      tiles.push(tile("nodes off", off + " / " + nodes.length, off ? "cordoned, draining or lost" : null, off ? "warn" : ""));
    } else {
      tiles.push(tile("GPUs your team runs on", gpuCount(used)));
    }
    $("tiles").replaceChildren(...tiles);
  }

  function drawQueue(queue, pendingById) {
    $("queue-count").textContent = "(" + queue.length + ")";
    $("queue-note").textContent = who.admin
      ? "Every team's pending jobs in the order the scheduler considers them."
      : "Your team's pending jobs; positions count every team's jobs ahead.";
    fill($("queue").tBodies[0], queue.map((q) => {
      const job = pendingById.get(q.job_id);
      return el("tr", { data: { job: q.job_id } },
        el("td", { class: "num" }, q.position),
        jobCell(q.job_id, q.name),
        el("td", {}, teamTag(q.team)),
        el("td", { class: "num" }, job ? job.priority : ""),
        el("td", { class: "num" }, job ? gpuCount(gpusOf(job)) : ""),
        el("td", {}, job ? duration(nowS() - job.submitted_at_s) : ""),
        el("td", {}, estimate(q.estimated_start_s)),
        el("td", { class: "reason" }, el("span", { class: "code" }, q.code), " ", q.reason));
    }));
    $("queue-empty").hidden = queue.length > 0;
  }

  function drawRunning(running) {
    $("running-count").textContent = "(" + running.length + ")";
    fill($("running").tBodies[0], running.map((j) =>
      el("tr", { data: { job: j.job_id } },
        jobCell(j.job_id, j.name),
        el("td", {}, teamTag(j.team)),
        el("td", { class: "num" }, j.priority),
        el("td", { class: "num" }, gpuCount(gpusOf(j))),
        el("td", {}, j.started_at_s ? duration(nowS() - j.started_at_s) : ""),
        el("td", { class: "placement" }, placementText(j)),
        el("td", { class: "num", title: j.preemptions + " preemption(s)" }, j.attempts + (j.preemptions ? " (" + j.preemptions + " preempted)" : "")),
        el("td", { class: "metrics" }, metricsText(j.metrics)))));
    $("running-empty").hidden = running.length > 0;
  }

  function offBadges(n) {
    const out = [];
    if (!n.alive) out.push(el("span", { class: "badge bad" }, "lost"));
    for (const o of n.off) {
      if (o.reason === "lost" && !n.alive) continue;
      const since = o.since_s ? " since " + clock(o.since_s) : "";
      out.push(el("span", { class: "badge " + (o.reason === "drain" ? "drain" : "warn"), title: o.cause || null }, o.reason + since));
    }
    if (!out.length && n.schedulable) out.push(el("span", { class: "badge ok" }, "schedulable"));
    return out;
  }

  function gpuCell(n, g, jobsAt) {
    const at = jobsAt.get(n.name + "/" + g.index) || [];
    const hot = g.temperature_c !== null && g.temperature_c >= HOT_C;
    const cls = ["gpu"];
    if (g.allocated_milli > 0) cls.push("busy");
    if (hot) cls.push("hot");
    if (!g.healthy) cls.push("sick");
    if (!n.schedulable || !n.alive) cls.push("off");
    const temp = g.temperature_c === null ? "—" : Math.round(g.temperature_c) + " °C";
    const tempCls = "temp" + (hot ? " t-hot" : g.temperature_c !== null && g.temperature_c >= WARM_C ? " t-warm" : "");
    const util = g.utilization_pct === null ? "" : Math.round(g.utilization_pct) + " %";
    const mem = g.memory_used_mib === null ? null : g.memory_used_mib / g.memory_total_mib;
    const who_ = at.length
      ? at.map((a) => el("span", { class: "gpu-job", style: { "--h": hue(a.team) }, title: a.name + " (" + a.team + ")" }, a.job_id))
      : g.allocated_milli > 0
        ? [el("span", { class: "gpu-job muted" }, "held")]
        : [el("span", { class: "muted" }, "free")];
    const title = [
      n.name + " GPU " + g.index + " · " + g.model,
      "allocated " + g.allocated_milli / 1000 + " GPU",
      g.memory_used_mib === null ? null : "memory " + g.memory_used_mib + " / " + g.memory_total_mib + " MiB",
      g.power_w === null ? null : "power " + Math.round(g.power_w) + " W",
      g.ecc_uncorrected ? "uncorrected ECC " + g.ecc_uncorrected : null,
      g.healthy ? "healthy" : "unhealthy: " + g.why_unhealthy.join(", "),
    ].filter(Boolean).join("\n");
    return el("div", { class: cls.join(" "), title, data: { gpu: g.index } },
      el("div", { class: "gpu-head" }, el("span", { class: "gpu-idx" }, "GPU " + g.index), el("span", { class: tempCls }, temp)),
      el("div", { class: "gpu-who" }, who_),
      el("div", { class: "gpu-foot" },
        el("span", {}, util),
        mem === null ? null : el("span", { class: "mem" }, el("span", { class: "mem-bar", style: { width: Math.round(100 * mem) + "%" } }))),
      g.healthy ? null : el("div", { class: "gpu-why" }, g.why_unhealthy.join(", ") || "unhealthy"));
  }

  function drawNodes(nodes, running) {
    const box = $("nodes");
    if (!nodes) {
      $("nodes-count").textContent = "";
      $("nodes-note").hidden = false;
      $("nodes-note").textContent = "The nodes and their GPUs are shown to admin tokens only (GET /v1/nodes is an operator route). Your running jobs' nodes and GPUs are listed above.";
      $("legend").hidden = true;
      box.replaceChildren();
      return;
    }
    $("nodes-note").hidden = true;
    $("legend").hidden = false;
    const jobsAt = new Map();
    for (const j of running) for (const w of j.placement) for (const g of w.gpu_indices) {
      const k = w.node + "/" + g;
      if (!jobsAt.has(k)) jobsAt.set(k, []);
      jobsAt.get(k).push(j);
    }
    $("nodes-count").textContent = "(" + nodes.length + ")";
    box.replaceChildren(...nodes.map((n) => {
      const models = [...new Set(n.gpus.map((g) => g.model))].join(", ");
      const labels = Object.entries(n.labels || {}).map(([k, v]) => el("span", { class: "label" }, k.replace("gpuyard.io/", "") + "=" + v));
      const causes = n.off.filter((o) => o.cause).map((o) => o.cause).join("; ");
      return el("div", { class: "node" + (!n.schedulable || !n.alive ? " node-off" : ""), data: { node: n.name } },
        el("div", { class: "node-head" },
          el("span", { class: "node-name" }, n.name),
          offBadges(n),
          el("span", { class: "muted node-model" }, n.gpus.length + " × " + (models || "no GPU") + (n.simulated ? " (simulated)" : ""))),
        labels.length ? el("div", { class: "labels" }, labels) : null,
        causes ? el("div", { class: "node-cause" }, causes) : null,
        el("div", { class: "gpus" }, n.gpus.map((g) => gpuCell(n, g, jobsAt))));
    }));
  }

  // ------------------------------------------------------------------ the loop
  function showLogin(message) {
    clearTimeout(timer);
    who = null;
    $("content").hidden = true;
    $("who").hidden = true;
    // what the last token saw goes with it
    for (const id of ["queue", "running"]) $(id).tBodies[0].replaceChildren();
    for (const id of ["tiles", "nodes", "who-name", "who-scope", "updated"]) $(id).replaceChildren();
    delete document.body.dataset.view;
    $("error").hidden = true;
    $("login").hidden = false;
    $("login-error").hidden = !message;
    $("login-error").textContent = message || "";
    $("token").value = "";
    $("token").focus();
  }

  async function load() {
    clearTimeout(timer);
    try {
      who = await api("/v1/whoami");
      const [queue, pending, running, nodes] = await Promise.all([
        api("/v1/queue"),
        allJobs("PENDING"),
        allJobs("RUNNING"),
        who.admin ? api("/v1/nodes") : Promise.resolve(null),
      ]);
      const pendingById = new Map(pending.map((j) => [j.job_id, j]));
      $("login").hidden = true;
      $("error").hidden = true;
      $("content").hidden = false;
      $("who").hidden = false;
      $("who-name").textContent = who.name;
      $("who-scope").textContent = who.admin ? "admin: every team" : "team " + who.team;
      $("who-scope").className = "badge " + (who.admin ? "admin" : "teamview");
      document.body.dataset.view = who.admin ? "admin" : "team";
      drawTiles(queue, running, nodes);
      drawQueue(queue, pendingById);
      drawRunning(running);
      drawNodes(nodes, running);
      $("updated").textContent = "updated " + new Date().toLocaleTimeString();
      document.body.dataset.loaded = String(Date.now());
    } catch (e) {
      if (e instanceof AuthError) {
        sessionStorage.removeItem(KEY);
        showLogin("The service refused this token (401: " + e.message + "). Check the token and enter it again.");
        return;
      }
      $("error").hidden = false;
      $("error").textContent = "Could not load the status: " + e.message + ". Retrying every " + REFRESH_MS / 1000 + " s.";
    }
    timer = setTimeout(load, REFRESH_MS);
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("login-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const token = $("token").value.trim();
      if (!token) return;
      sessionStorage.setItem(KEY, token);
      $("login-error").hidden = true;
      load();
    });
    $("signout").addEventListener("click", () => {
      sessionStorage.removeItem(KEY);
      showLogin("");
    });
    $("refresh").addEventListener("click", () => load());
    if (sessionStorage.getItem(KEY)) load();
    else showLogin("");
  });
})();
