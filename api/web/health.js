// The knowledge base's health: GET /v1/health/kb as numbers and bar charts drawn with plain
// elements (a bar is a styled div whose size is set through the CSSOM, which the page's
// Content-Security-Policy allows; no chart library, nothing from outside).
import { explain, request, ServiceError } from "./api.js";
import { pageKeyForm } from "./keyform.js";
import { docTypeLabel, el, pageReady } from "./render.js";

const $ = (id) => document.getElementById(id);
const ui = {
  days: $("days"),
  reload: $("reload"),
  status: $("health-status"),
  board: $("dashboard"),
};

const percent = (rate) => (rate === null || rate === undefined ? "–" : `${(rate * 100).toFixed(1)}%`);

/** A number the page shows, with the JSON path and raw value it came from (data-key/-value). */
function figure(label, path, value, shown = String(value), note = null) {
  return el(
    "div",
    { class: "figure" },
    el("dt", {}, label),
    el("dd", { "data-key": path, "data-value": value === null ? "" : value }, shown),
    note ? el("dd", { class: "hint" }, note) : null,
  );
}

function summary(report) {
  const { stale, usage } = report;
  return el(
    "section",
    { class: "panel", "aria-labelledby": "numbers-title" },
    el("h2", { id: "numbers-title" }, "In numbers"),
    el(
      "dl",
      { class: "figures" },
      figure("Documents", "documents", report.documents),
      figure("Past their review date", "stale.stale", stale.stale, String(stale.stale),
        `of ${stale.active} active`),
      figure("Without an owner", "without_owner", report.without_owner.length),
      figure(`Questions (${usage.days} days)`, "usage.questions", usage.questions),
      figure("Refusal rate", "usage.refusal_rate", usage.refusal_rate, percent(usage.refusal_rate),
        `${usage.refused} refused`),
      figure("Thumbs-down rate", "usage.thumbs_down_rate", usage.thumbs_down_rate,
        percent(usage.thumbs_down_rate), `${usage.thumbs_down} of ${usage.rated} rated`),
    ),
  );
}

function bar(fraction, className = "bar") {
  const fill = el("div", { class: "bar-fill" });
  fill.style.width = `${Math.max(0, Math.min(1, fraction)) * 100}%`; // CSSOM: allowed by the CSP
  return el("div", { class: className, "aria-hidden": "true" }, fill);
}

function staleShare(stale) {
  const share = stale.share === null ? 0 : stale.share;
  const track = bar(share, `bar share${stale.over_target ? " over" : ""}`);
  const target = el("div", { class: "target-mark" });
  target.style.left = `${Math.min(1, stale.target) * 100}%`;
  track.append(target);
  return el(
    "section",
    { class: `panel stale-share${stale.over_target ? " over" : ""}`, "aria-labelledby": "share-title" },
    el("h2", { id: "share-title" }, "Stale share against the target"),
    el("p", {},
      el("strong", { "data-key": "stale.share", "data-value": stale.share === null ? "" : stale.share },
        percent(stale.share)),
      " of active documents are past their review date; the target is at most ",
      el("span", { "data-key": "stale.target", "data-value": stale.target }, percent(stale.target)),
      ".",
      stale.never_reviewed ? ` ${stale.never_reviewed} were never reviewed.` : ""),
    track,
    stale.over_target
      ? el("p", { class: "flag", role: "alert", "data-key": "stale.over_target", "data-value": "true" },
        "⚠ Over the target: review the queue.")
      : el("p", { class: "ok", "data-key": "stale.over_target", "data-value": "false" },
        "Within the target."),
  );
}

function counts(title, id, path, rows, label = String) {
  const most = Math.max(1, ...rows.map((r) => r.count));
  return el(
    "section",
    { class: "panel", "aria-labelledby": id },
    el("h2", { id }, title),
    rows.length
      ? el("ul", { class: "hbars" }, rows.map((row) => el(
        "li",
        {},
        el("span", { class: "hbar-label" }, label(row.value)),
        bar(row.count / most),
        el("span", { class: "hbar-count", "data-key": `${path}.${row.value}`, "data-value": row.count },
          String(row.count)),
      )))
      : el("p", { class: "hint" }, "No documents."),
  );
}

function perDay(usage) {
  const most = Math.max(1, ...usage.per_day.map((d) => d.questions));
  const days = usage.per_day;
  return el(
    "section",
    { class: "panel", "aria-labelledby": "days-title" },
    el("h2", { id: "days-title" }, "Questions per day"),
    el(
      "ol",
      { class: "day-bars", "aria-label": `Questions per day since ${usage.since}` },
      days.map((d) => {
        const column = el("div", { class: "day-fill", "aria-hidden": "true" });
        column.style.height = `${(d.questions / most) * 100}%`;
        return el(
          "li",
          { class: "day", "data-day": d.day, "data-value": d.questions, title: `${d.day}: ${d.questions}` },
          column,
          el("span", { class: "visually-hidden" }, `${d.day}: ${d.questions} questions`),
        );
      }),
    ),
    days.length
      ? el("p", { class: "axis hint", "aria-hidden": "true" },
        el("span", {}, days[0].day), el("span", {}, `most: ${most}`), el("span", {}, days.at(-1).day))
      : null,
  );
}

function gaps(report) {
  return el(
    "section",
    { class: "panel", "aria-labelledby": "gaps-title" },
    el("h2", { id: "gaps-title" }, "Top gaps: questions the base could not answer"),
    report.top_gaps.length
      ? el("ol", { class: "gaps" }, report.top_gaps.map((g) => el("li", { "data-question": g.question },
        g.question, el("span", { class: "hint" }, ` · asked ${g.times_asked}×, last ${g.last_asked}`))))
      : el("p", { class: "hint" }, "No unanswered questions in this time."),
    report.without_owner.length
      ? [el("h3", {}, "Documents without an owner"),
        el("ul", { class: "plain" }, report.without_owner.map((id) => el("li", {}, id)))]
      : null,
  );
}

function evaluations(report) {
  return el(
    "section",
    { class: "panel", "aria-labelledby": "evals-title" },
    el("h2", { id: "evals-title" }, "Latest evaluation scores"),
    report.evaluations.length
      ? report.evaluations.map((run) => el(
        "div",
        { class: "eval", "data-dataset": run.dataset },
        el("h3", {}, run.dataset),
        el("p", { class: "hint" },
          `${run.status} · ${run.generator} · ${run.recorded} of ${run.questions} questions · ` +
          `${run.written_at}`),
        el("dl", { class: "scores" }, Object.entries(run.scores).map(([name, value]) => el(
          "div", {}, el("dt", {}, name.replace(/_/g, " ")),
          el("dd", { "data-key": `evaluations.${run.dataset}.${name}`, "data-value": value },
            typeof value === "number" && !Number.isInteger(value) ? value.toFixed(3) : String(value)),
        ))),
      ))
      : el("p", { class: "hint" }, "No evaluation has run yet (`kb eval`)."),
  );
}

function show(report) {
  ui.board.replaceChildren(
    summary(report),
    staleShare(report.stale),
    counts("Documents by department", "dept-title", "by_department", report.by_department),
    counts("Documents by type", "type-title", "by_type", report.by_type, docTypeLabel),
    counts("Documents by status", "status-title", "by_status", report.by_status),
    perDay(report.usage),
    gaps(report),
    evaluations(report),
  );
  ui.status.textContent = `As of ${report.today}: ${report.documents} documents you may see.`;
}

async function load() {
  ui.status.textContent = "Loading…";
  ui.board.setAttribute("aria-busy", "true");
  try {
    show(await (await request(`/v1/health/kb?days=${encodeURIComponent(ui.days.value)}`)).json());
  } catch (error) {
    if (error instanceof ServiceError && error.status === 401) key.refused("to see the health");
    const words = error instanceof ServiceError && error.status === 403
      ? "Your key may not see the knowledge base’s health: it needs the spoke or admin role."
      : explain(error);
    ui.board.replaceChildren(el("p", { class: "error", role: "alert" }, words));
    ui.status.textContent = "The health report could not be shown.";
  } finally {
    ui.board.setAttribute("aria-busy", "false");
  }
}

ui.days.addEventListener("change", load);
ui.reload.addEventListener("click", load);
const key = pageKeyForm(load);
load().finally(pageReady);
