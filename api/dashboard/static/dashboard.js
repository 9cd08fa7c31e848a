// The dashboard's live parts: the job page polls its JSON and redraws, the jobs list refreshes its
// rows, the workers and queues pages reload. No framework, no build step.
"use strict";

const fmtDuration = (s) => {
  if (s === null || s === undefined) return "–";
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = Math.floor(s % 60);
  const mm = String(m).padStart(h ? 2 : 1, "0"), ss = String(sec).padStart(2, "0");
  return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
};
const fmtTime = (t) => new Date(t * 1000).toISOString().replace("T", " ").slice(0, 19);
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const child of children) node.append(child);
  return node;
};
const progressText = (j) => (j.total_steps ? `${j.step} / ${j.total_steps}` : "–");

function drawLoss(svg, training, validation) {
  // Drawn at the element's own pixel size: a stretched viewBox would stretch the labels too.
  const W = Math.max(svg.clientWidth, 320), H = svg.clientHeight || 260, pad = 40;
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const all = training.concat(validation);
  svg.replaceChildren();
  if (!all.length) {
    svg.append(svgEl("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty" }, "no steps yet"));
    return;
  }
  const maxStep = Math.max(...all.map((p) => p[0]), 1);
  const losses = all.map((p) => p[1]);
  let lo = Math.min(...losses), hi = Math.max(...losses);
  if (hi - lo < 1e-9) { hi += 0.5; lo -= 0.5; }
  const x = (s) => pad + ((W - 2 * pad) * s) / maxStep;
  const y = (l) => H - pad - ((H - 2 * pad) * (l - lo)) / (hi - lo);
  svg.append(svgEl("line", { x1: pad, y1: H - pad, x2: W - pad, y2: H - pad, class: "axis" }));
  svg.append(svgEl("line", { x1: pad, y1: pad, x2: pad, y2: H - pad, class: "axis" }));
  svg.append(svgEl("text", { x: pad - 4, y: pad + 4, "text-anchor": "end", class: "tick" }, hi.toFixed(2)));
  svg.append(svgEl("text", { x: pad - 4, y: H - pad, "text-anchor": "end", class: "tick" }, lo.toFixed(2)));
  svg.append(svgEl("text", { x: pad, y: H - pad + 16, "text-anchor": "middle", class: "tick" }, "0"));
  svg.append(svgEl("text", { x: W - pad, y: H - pad + 16, "text-anchor": "end", class: "tick" }, `step ${maxStep}`));
  if (training.length) {
    const d = training.map((p, i) => `${i ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ");
    svg.append(svgEl("path", { d, class: "train" }));
  }
  for (const p of validation) svg.append(svgEl("circle", { cx: x(p[0]), cy: y(p[1]), r: 4, class: "valid" }));
  svg.dataset.points = String(training.length);
  svg.dataset.validPoints = String(validation.length);
}

function svgEl(tag, attrs, text) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

async function refreshJob(root) {
  const id = root.dataset.job;
  const answer = await fetch(`/dashboard/api/jobs/${id}`, { credentials: "same-origin" });
  if (!answer.ok) return;
  const j = await answer.json();
  const status = document.getElementById("job-status");
  status.textContent = j.status;
  status.className = `status ${j.status}`;
  root.dataset.status = j.status;
  document.getElementById("job-progress").textContent = progressText(j);
  document.getElementById("job-elapsed").textContent = fmtDuration(j.elapsed);
  document.getElementById("job-remaining").textContent = fmtDuration(j.remaining);
  document.getElementById("job-tokens").textContent = j.trained_tokens ?? "–";
  document.getElementById("job-model").textContent = j.fine_tuned_model ?? "–";
  document.getElementById("job-started").textContent = j.started_at ? fmtTime(j.started_at) : "–";
  document.getElementById("job-finished").textContent = j.finished_at ? fmtTime(j.finished_at) : "–";
  const error = document.getElementById("job-error");
  error.hidden = !j.error;
  if (j.error) error.textContent = `${j.error.code}: ${j.error.message}`;
  drawLoss(document.getElementById("loss-curve"), j.training_loss, j.validation_loss);
  document.getElementById("loss-points").textContent =
    `${j.training_loss.length} steps, ${j.validation_loss.length} validations`;
  const terminal = ["succeeded", "failed", "cancelled"].includes(j.status);
  document.getElementById("pause").disabled = !["running", "queued"].includes(j.status);
  document.getElementById("resume").disabled = j.status !== "paused";
  document.getElementById("cancel").disabled = terminal;
  document.getElementById("events").replaceChildren(
    ...j.events.map((e) => el("li", { class: e.level }, el("time", {}, fmtTime(e.created_at)), " ", e.message)),
  );
  document.querySelector("#checkpoints tbody").replaceChildren(
    ...j.checkpoints.map((c) => el("tr", {},
      el("td", {}, String(c.step)),
      el("td", {}, Object.entries(c.metrics).filter(([, v]) => v !== null)
        .map(([k, v]) => `${k}=${typeof v === "number" ? v.toFixed(4) : v}`).join(" ")),
      el("td", {}, el("a", { href: `/dashboard/jobs/${id}/download?step=${c.step}` }, "download")))),
  );
  document.querySelector("#deliveries tbody").replaceChildren(
    ...j.deliveries.map((d) => el("tr", {},
      el("td", {}, d.type), el("td", {}, d.url), el("td", {}, d.state),
      el("td", {}, d.attempts.map((a) => `${fmtTime(a.at)} ${a.status_code ?? a.error} (${a.ms} ms)`).join("; ")))),
  );
  document.getElementById("trainer-log").textContent = j.trainer_log ?? "(not on this machine, or not started)";
  return terminal;
}

function setUpJob(root) {
  const message = document.getElementById("control-message");
  for (const button of root.querySelectorAll("button[data-action]")) {
    button.addEventListener("click", async () => {
      const answer = await fetch(`/dashboard/api/jobs/${root.dataset.job}/${button.dataset.action}`, {
        method: "POST", credentials: "same-origin", headers: { "X-Tunery-Dashboard": "1" },
      });
      const body = await answer.json();
      message.textContent = answer.ok ? `${button.dataset.action}: now ${body.status}` : body.error.message;
      refreshJob(root);
    });
  }
  const tick = async () => {
    const terminal = await refreshJob(root).catch(() => false);
    setTimeout(tick, terminal ? 5000 : 1000);
  };
  tick();
}

function setUpJobs(table) {
  const refresh = async () => {
    const answer = await fetch(table.dataset.live + location.search, { credentials: "same-origin" });
    if (answer.ok) {
      for (const j of await answer.json()) {
        const row = table.querySelector(`tr[data-job="${j.id}"]`);
        if (!row) continue;
        const status = row.querySelector(".status");
        status.textContent = j.status;
        status.className = `status ${j.status}`;
        row.querySelector(".progress").textContent = progressText(j);
        row.querySelector(".elapsed").textContent = fmtDuration(j.elapsed);
        row.querySelector(".remaining").textContent = fmtDuration(j.remaining);
      }
    }
    setTimeout(refresh, 2000);
  };
  setTimeout(refresh, 2000);
}

document.addEventListener("DOMContentLoaded", () => {
  const job = document.getElementById("job");
  if (job) setUpJob(job);
  const jobs = document.getElementById("jobs");
  if (jobs) setUpJobs(jobs);
  const reloading = document.querySelector("[data-reload]");
  if (reloading) setTimeout(() => location.reload(), 1000 * Number(reloading.dataset.reload));
});
