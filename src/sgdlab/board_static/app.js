"use strict";
// The board's page: plain DOM code that asks the server for numbers and hands them to plotly.js.

const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];
const LAYOUT = {margin: {l: 55, r: 15, t: 35, b: 45}, legend: {font: {size: 10}}};
const CONFIG = {displaylogo: false, responsive: true};

function $(id) { return document.getElementById(id); }

async function api(path, body) {
  const options = body === undefined ? {} :
    {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)};
  const response = await fetch(path, options);
  const data = await response.json();
  if (!response.ok) { throw new Error(data.error || response.statusText); }
  return data;
}

function fmt(value, digits) {
  return value === null || value === undefined ? "-" : Number(value).toPrecision(digits || 4);
}

function show(id, value, digits) {
  const el = $(id);
  el.textContent = fmt(value, digits);
  el.dataset.value = value === null || value === undefined ? "" : String(value);
}

// -- tabs ---------------------------------------------------------------------------------------------

for (const tab of document.querySelectorAll(".tab")) {
  tab.addEventListener("click", () => {
    for (const t of document.querySelectorAll(".tab")) { t.classList.toggle("active", t === tab); }
    for (const p of document.querySelectorAll(".panel")) { p.classList.toggle("active", p.id === tab.dataset.tab); }
    window.dispatchEvent(new Event("resize"));
  });
}

// -- runs ---------------------------------------------------------------------------------------------

const runs = {list: [], selected: new Set(), touched: false, details: {}, sweeps: {}};

async function refreshRuns() {
  let listing;
  try {
    listing = await api("/api/runs");
  } catch (err) {
    $("status-line").textContent = "runs: " + err.message;
    return;
  }
  $("status-line").textContent = `${listing.runs.length} runs, ${listing.sweeps.length} sweeps`;
  $("runs-root").textContent = listing.root;
  runs.list = listing.runs;
  if (!runs.touched) { runs.selected = new Set(listing.runs.slice(0, 8).map(r => r.name)); }
  renderRunsTable();
  for (const run of listing.runs) {
    const cached = runs.details[run.name];
    if (runs.selected.has(run.name) && (!cached || cached.rows !== run.rows || cached.status !== run.status)) {
      try { runs.details[run.name] = await api("/api/run?name=" + encodeURIComponent(run.name)); } catch (err) { /* removed meanwhile */ }
    }
  }
  drawRunCharts();
  for (const sweep of listing.sweeps) {
    if (!runs.sweeps[sweep.name] || runs.sweeps[sweep.name].rows.length !== sweep.trials) {
      try { runs.sweeps[sweep.name] = await api("/api/sweep?name=" + encodeURIComponent(sweep.name)); } catch (err) { /* removed meanwhile */ }
      drawSweep(sweep.name);
    }
  }
}

function cellText(value, digits) {
  return typeof value === "number" ? fmt(value, digits) : (value === null || value === undefined ? "" : String(value));
}

function renderRunsTable() {
  const body = $("runs-table").querySelector("tbody");
  body.replaceChildren();
  for (const run of runs.list) {
    const c = run.config, s = run.summary || {};
    const tr = document.createElement("tr");
    tr.dataset.run = run.name;
    tr.classList.toggle("selected", runs.selected.has(run.name));
    const box = document.createElement("input");
    box.type = "checkbox";
    box.checked = runs.selected.has(run.name);
    box.addEventListener("change", () => {
      runs.touched = true;
      if (box.checked) { runs.selected.add(run.name); } else { runs.selected.delete(run.name); }
      refreshRuns();
    });
    const first = document.createElement("td");
    first.append(box);
    tr.append(first);
    const cells = [run.name, run.status, c.dataset, (c.layers || []).join(","), c.optimizer, cellText(c.lr, 3),
                   c.batch_size, s.epochs_run !== undefined ? s.epochs_run : (run.last ? run.last.epoch : ""),
                   cellText(s.train_accuracy), cellText(s.val_accuracy), cellText(s.test_accuracy)];
    cells.forEach((value, k) => {
      const td = document.createElement("td");
      td.textContent = value === undefined || value === null ? "" : String(value);
      if (k === 1) { td.className = "status-" + value; }
      tr.append(td);
    });
    tr.addEventListener("click", ev => {
      if (ev.target !== box) { $("run-config").textContent = run.name + "\n" + JSON.stringify({config: run.config, summary: run.summary}, null, 1); }
    });
    body.append(tr);
  }
}

function drawRunCharts() {
  const loss = [], acc = [];
  let k = 0;
  for (const name of runs.selected) {
    const run = runs.details[name];
    if (!run) { continue; }
    const color = COLORS[k++ % COLORS.length];
    const x = run.metrics.map(r => r.epoch);
    const trace = (metric, dash) => ({x, y: run.metrics.map(r => r[metric]), name: `${name} ${metric}`,
      mode: "lines+markers", line: {color, dash}, marker: {size: 4}});
    loss.push(trace("train_loss", "solid"), trace("val_loss", "dash"));
    acc.push(trace("train_acc", "solid"), trace("val_acc", "dash"));
  }
  Plotly.react("loss-chart", loss, {...LAYOUT, title: {text: "loss", font: {size: 14}, x: 0.02, xanchor: "left"},
    xaxis: {title: {text: "epoch"}}, yaxis: {title: {text: "loss"}}}, CONFIG);
  Plotly.react("acc-chart", acc, {...LAYOUT, title: {text: "accuracy", font: {size: 14}, x: 0.02, xanchor: "left"},
    xaxis: {title: {text: "epoch"}}, yaxis: {title: {text: "accuracy"}}}, CONFIG);
}

function drawSweep(name) {
  const sweep = runs.sweeps[name];
  if (!sweep) { return; }
  const id = "sweep-" + name;
  let div = document.getElementById(id);
  if (!div) {
    div = document.createElement("div");
    div.id = id;
    div.className = "chart";
    $("sweeps").append(div);
  }
  const rows = sweep.rows;
  const columns = rows.length ? Object.keys(rows[0]) : [];
  const metric = ["best_val_acc", "val_acc", "val_accuracy", "test_accuracy", "test_acc", "train_accuracy", "train_acc"]
    .find(m => columns.includes(m));
  const lr = rows.map(r => r.lr);
  Plotly.react(div, [{x: lr, y: rows.map(r => r[metric]), mode: "markers", name: metric,
    text: rows.map(r => r.name || r.trial || ""), marker: {size: 9}}],
    {...LAYOUT, title: {text: `sweep ${name}: lr vs ${metric || "accuracy"}`, font: {size: 14}, x: 0.02, xanchor: "left"},
     xaxis: {type: "log", title: {text: "learning rate"}}, yaxis: {title: {text: metric || ""}}}, CONFIG);
}

// -- playground ---------------------------------------------------------------------------------------

const play = {id: null, data: null, running: false, loop: null, busy: false, batch: null, lastStep: null};

function settings() {
  const number = id => Number($(id).value);
  return {dataset: $("p-dataset").value, layers: $("p-layers").value, activation: $("p-activation").value,
          optimizer: $("p-optimizer").value, lr: number("p-lr"), batch_size: number("p-batch"),
          weight_decay: number("p-decay"), gradient: $("p-gradient").value, seed: number("p-seed")};
}

function setError(message) { $("play-error").textContent = message || ""; }

async function reset() {
  stopPlaying();
  if (play.loop) { await play.loop; }
  setError("");
  try {
    const created = await api("/api/play/create", settings());
    play.id = created.id;
    play.data = created.data;
    play.maxIterations = created.state.max_iterations;
    play.batch = null;
    play.lastStep = null;
    clearStepPanel();
    await redraw(created.state);
  } catch (err) { setError(err.message); }
}

function readout(state) {
  $("p-iteration").textContent = String(state.iteration);
  show("p-train-loss", state.train_loss);
  show("p-test-loss", state.test_loss);
  show("p-train-acc", state.train_acc);
  show("p-test-acc", state.test_acc);
  if (state.diverged) { setError("diverged: " + state.diverged); }
}

async function redraw(state) {
  readout(state);
  const [boundary, curve] = await Promise.all([api(`/api/play/boundary?id=${play.id}&grid=60`),
                                               api(`/api/play/curve?id=${play.id}`)]);
  drawBoundary(boundary);
  drawCurve(curve.curve);
  if (state.n_params === 2) { drawContour(await api(`/api/play/contour?id=${play.id}&grid=40`)); }
  $("contour-chart").classList.toggle("hidden", state.n_params !== 2);
}

function drawBoundary(b) {
  const d = play.data, train = d.train;
  const traces = [];
  const picked = play.batch ? new Set(play.batch) : null;
  if (d.task === "regression") {
    traces.push({x: train.x.map(p => p[0]), y: train.t, mode: "markers", name: "train", marker: {size: 5, color: "#90a4ae"}});
    traces.push({x: b.x, y: b.y, mode: "lines", name: "model", line: {color: "#d62728", width: 3}});
    if (picked) {
      const idx = [...picked];
      traces.push({x: idx.map(i => train.x[i][0]), y: idx.map(i => train.t[i]), mode: "markers", name: "batch",
                   marker: {size: 10, color: "rgba(0,0,0,0)", line: {color: "#000", width: 2}}});
    }
  } else {
    const k = d.n_classes;
    const scale = [];
    for (let c = 0; c < k; c++) {
      scale.push([c / k, COLORS[c]], [(c + 1) / k, COLORS[c]]);
    }
    traces.push({type: "heatmap", x: b.x, y: b.y, z: b.classes, zmin: -0.5, zmax: k - 0.5, colorscale: scale,
                 opacity: 0.3, showscale: false, hoverinfo: "skip", name: "boundary"});
    for (let c = 0; c < k; c++) {
      const idx = train.t.map((t, i) => t === c ? i : -1).filter(i => i >= 0);
      traces.push({x: idx.map(i => train.x[i][0]), y: idx.map(i => train.x[i][1]), mode: "markers", name: `class ${c}`,
                   marker: {size: 5, color: COLORS[c], line: {color: "#fff", width: 0.5}}});
    }
    if (picked) {
      const idx = [...picked];
      traces.push({x: idx.map(i => train.x[i][0]), y: idx.map(i => train.x[i][1]), mode: "markers",
                   name: "mini-batch", marker: {size: 11, color: "rgba(0,0,0,0)", line: {color: "#000", width: 2}}});
    }
  }
  Plotly.react("boundary-chart", traces, {...LAYOUT, title: {text: d.task === "regression" ? "the model's line" : "decision boundary", font: {size: 14}, x: 0.02, xanchor: "left"},
    showlegend: false, xaxis: {range: [b.x[0], b.x[b.x.length - 1]], zeroline: false},
    yaxis: d.task === "regression" ? {} : {range: [b.y[0], b.y[b.y.length - 1]], zeroline: false}}, CONFIG);
}

function drawCurve(curve) {
  const x = curve.map(p => p.iteration);
  const traces = [{x, y: curve.map(p => p.train_loss), name: "train loss", mode: "lines", line: {color: COLORS[0]}},
                  {x, y: curve.map(p => p.test_loss), name: "test loss", mode: "lines", line: {color: COLORS[1]}}];
  if (curve.length && curve[0].train_acc !== null) {
    traces.push({x, y: curve.map(p => p.train_acc), name: "train acc", yaxis: "y2", mode: "lines", line: {color: COLORS[0], dash: "dot"}},
                {x, y: curve.map(p => p.test_acc), name: "test acc", yaxis: "y2", mode: "lines", line: {color: COLORS[1], dash: "dot"}});
  }
  Plotly.react("curve-chart", traces, {...LAYOUT, title: {text: "train and test", font: {size: 14}, x: 0.02, xanchor: "left"},
    xaxis: {title: {text: "iteration"}}, yaxis: {title: {text: "loss"}},
    yaxis2: {title: {text: "accuracy"}, overlaying: "y", side: "right", range: [0, 1.02], tickmode: "linear",
             tick0: 0, dtick: 0.2, showgrid: false}, legend: {x: 1.08, font: {size: 10}}}, CONFIG);
}

function drawContour(c) {
  const traces = [{type: "contour", x: c.w, y: c.b, z: c.loss, colorscale: "Viridis", ncontours: 25,
                   contours: {coloring: "lines"}, showscale: false, name: "loss"},
                  {x: c.path.map(p => p[0]), y: c.path.map(p => p[1]), mode: "lines+markers", name: "path",
                   marker: {size: 4, color: "#d62728"}, line: {color: "#d62728"}}];
  const annotations = [];
  const step = play.lastStep;
  if (step && step.gradient.vector) {
    const [w, b] = step.update.before, [gw, gb] = step.gradient.vector;
    const norm = Math.hypot(gw, gb) || 1, span = (c.w[c.w.length - 1] - c.w[0]) / 6;
    annotations.push({x: w - span * gw / norm, y: b - span * gb / norm, ax: w, ay: b, xref: "x", yref: "y",
                      axref: "x", ayref: "y", showarrow: true, arrowhead: 3, arrowwidth: 2, arrowcolor: "#000",
                      text: ""});
  }
  Plotly.react("contour-chart", traces, {...LAYOUT, title: {text: "loss over (w, b); arrow: -gradient", font: {size: 14}, x: 0.02, xanchor: "left"},
    showlegend: false, annotations, xaxis: {title: {text: "w"}}, yaxis: {title: {text: "b"}}}, CONFIG);
}

function clearStepPanel() {
  $("s-batch").textContent = "press Step";
  $("s-grad-method").textContent = "";
  $("s-update").replaceChildren();
  show("s-loss-before", null);
  show("s-loss-after", null);
  Plotly.purge("grad-chart");
}

function drawStep(step) {
  const idx = step.batch.indices;
  $("s-batch").textContent = `${step.batch.size} samples (ringed on the plot): ` + idx.slice(0, 40).join(", ") +
    (idx.length > 40 ? ", ..." : "");
  let text = `${step.gradient.method}: ||g|| = ${fmt(step.gradient.norm)}`;
  if (step.gradient.vector) { text += `, g = (${step.gradient.vector.map(v => fmt(v)).join(", ")})`; }
  $("s-grad-method").textContent = text;
  const layers = step.gradient.layers;
  Plotly.react("grad-chart", [{type: "bar", x: layers.map(l => `${l.name} ${l.layer}`), y: layers.map(l => l.grad_norm),
    marker: {color: COLORS[0]}}], {...LAYOUT, margin: {l: 45, r: 5, t: 25, b: 40},
    title: {text: "gradient norm per layer", font: {size: 12}, x: 0.02, xanchor: "left"}},
    {...CONFIG, displayModeBar: false});
  const table = $("s-update");
  table.replaceChildren();
  const head = document.createElement("tr");
  for (const h of ["layer", "||p|| before", "||p|| after", "||Δp||"]) {
    const th = document.createElement("th"); th.textContent = h; head.append(th);
  }
  table.append(head);
  for (const l of layers) {
    const tr = document.createElement("tr");
    for (const v of [`${l.name} ${l.layer}`, fmt(l.param_norm_before, 5), fmt(l.param_norm_after, 5), fmt(l.update_norm, 3)]) {
      const td = document.createElement("td"); td.textContent = v; tr.append(td);
    }
    table.append(tr);
  }
  show("s-loss-before", step.loss.before, 6);
  show("s-loss-after", step.loss.after, 6);
}

function stopPlaying() {
  play.running = false;
  $("p-play").textContent = "Play";
}

async function playLoop() {
  while (play.running) {
    try {
      const state = await api("/api/play/train", {id: play.id, iterations: Math.min(20, play.maxIterations)});
      play.batch = null;
      await redraw(state);
      if (state.diverged) { stopPlaying(); }
    } catch (err) {
      setError(err.message);
      stopPlaying();
    }
  }
}

$("p-reset").addEventListener("click", reset);
$("p-play").addEventListener("click", () => {
  if (play.running) { stopPlaying(); return; }
  if (!play.id) { return; }
  setError("");
  play.running = true;
  $("p-play").textContent = "Pause";
  play.loop = playLoop().finally(() => { play.loop = null; });
});
$("p-step").addEventListener("click", async () => {
  if (!play.id || play.busy) { return; }
  stopPlaying();
  play.busy = true;
  try {
    if (play.loop) { await play.loop; }          // let the last training request land first
    const step = await api("/api/play/step", {id: play.id});
    play.batch = step.batch.indices;
    play.lastStep = step;
    drawStep(step);
    await redraw(step.state);
  } catch (err) {
    setError(err.message);
  } finally {
    play.busy = false;
  }
});
$("p-dataset").addEventListener("change", reset);

async function followRuns() {                    // one refresh at a time, every 2 s
  await refreshRuns();
  setTimeout(followRuns, 2000);
}

followRuns();
reset();
