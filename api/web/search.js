// The search page for spokes: a query, filters whose choices show the facet counts of
// POST /v1/search, one card per document found, and "Similar projects" on project documents
// (GET /v1/projects/similar). Every string from the service becomes a text node.
import { explain, request, ServiceError, sourcesWithKey } from "./api.js";
import { pageKeyForm } from "./keyform.js";
import { docTypeLabel, el, pageReady, sourceHref } from "./render.js";

const PASSAGES = 30; // passages asked for: the cards are the distinct documents among them
const SNIPPET_CHARS = 280;
const PROJECT_TYPES = new Set(["lessons_learned", "showcase", "vendor_evaluation"]);
const NEW_TAB = { target: "_blank", rel: "noopener" };

const $ = (id) => document.getElementById(id);
const ui = {
  form: $("search-form"),
  query: $("query"),
  button: $("search-button"),
  stale: $("f-stale"),
  clear: $("clear-filters"),
  status: $("search-status"),
  results: $("results"),
  facets: [...document.querySelectorAll("select[data-facet]")],
};
let searches = 0; // the latest search wins when several overlap

// --- the request ------------------------------------------------------------------------------

function filters() {
  const out = {};
  for (const select of ui.facets) {
    if (!select.value) continue;
    const name = select.dataset.facet;
    out[name] = name === "year" ? Number(select.value) : select.value;
  }
  if (ui.stale.checked) out.stale = true;
  return out;
}

function valueLabel(facet, value) {
  return facet === "doc_type" ? docTypeLabel(value) : String(value);
}

/** Each filter's choices: "Any", then the facet's values with their document counts. */
function showFacets(facets) {
  for (const select of ui.facets) {
    const name = select.dataset.facet;
    const chosen = select.value;
    const counts = Array.isArray(facets[name]) ? facets[name] : [];
    const options = counts.map(({ value, count }) =>
      el("option", { value: String(value), "data-count": count },
        `${valueLabel(name, value)} (${count})`));
    if (chosen && !counts.some((c) => String(c.value) === chosen)) {
      options.unshift(el("option", { value: chosen, "data-count": 0 },
        `${valueLabel(name, chosen)} (0)`));
    }
    select.replaceChildren(el("option", { value: "" }, select.dataset.any), ...options);
    select.value = chosen;
  }
}

// --- the cards --------------------------------------------------------------------------------

function snippet(text) {
  const flat = String(text || "").replace(/\s+/g, " ").trim();
  if (flat.length <= SNIPPET_CHARS) return flat;
  const cut = flat.lastIndexOf(" ", SNIPPET_CHARS);
  return `${flat.slice(0, cut > 0 ? cut : SNIPPET_CHARS)}…`;
}

function reviewNote(hit) {
  if (hit.is_stale) {
    return [
      el("span", { class: "badge stale" }, "Review overdue"),
      el("span", { class: "stale-note" }, ` past its review date (${hit.review_date || "unknown"})`),
    ];
  }
  return hit.review_date ? el("span", { class: "hint" }, `Review by ${hit.review_date}`) : null;
}

function projectLine(hit) {
  const parts = [hit.project, hit.vendor && `vendor ${hit.vendor}`, hit.outcome, hit.year]
    .filter((p) => p !== null && p !== undefined && p !== "");
  return parts.length ? el("p", { class: "card-meta" }, parts.join(" · ")) : null;
}

function card(hit, index) {
  const similarId = `similar-${index}`;
  const isProject = PROJECT_TYPES.has(hit.doc_type);
  const button = isProject
    ? el("button", { type: "button", class: "similar-button", "aria-expanded": "false",
      "aria-controls": similarId }, "Similar projects")
    : null;
  const box = isProject ? el("div", { id: similarId, class: "similar", hidden: true }) : null;
  const article = el(
    "article",
    { class: "card", "data-doc-id": hit.doc_id, "data-doc-type": hit.doc_type },
    el("h3", {}, el("a", { class: "source-link", href: sourceHref("", hit.doc_id, hit.page),
      "data-doc-id": hit.doc_id, ...NEW_TAB }, hit.title || hit.doc_id)),
    el("p", { class: "card-meta" },
      el("span", { "data-field": "department" }, hit.department), " · ",
      el("span", { "data-field": "doc_type" }, docTypeLabel(hit.doc_type)),
      hit.section ? [" · ", el("span", { "data-field": "section" }, hit.section)] : null),
    el("p", { class: "snippet" }, snippet(hit.text)),
    projectLine(hit),
    el("p", { class: "card-meta" }, el("span", { "data-field": "owner" }, `Owner: ${hit.owner}`),
      " · ", reviewNote(hit)),
    button,
    box,
  );
  if (button) button.addEventListener("click", () => toggleSimilar(hit, button, box));
  return article;
}

/** One card per document: its best passage (hits come best first). */
function byDocument(hits) {
  const seen = new Map();
  for (const hit of hits) if (!seen.has(hit.doc_id)) seen.set(hit.doc_id, hit);
  return [...seen.values()];
}

// --- similar projects -------------------------------------------------------------------------

function projectItem(project) {
  const facts = [
    project.department,
    project.vendor && `vendor ${project.vendor}`,
    project.outcome && `outcome ${project.outcome}`,
    project.year,
  ].filter((p) => p !== null && p !== undefined && p !== "");
  return el(
    "li",
    { "data-doc-id": project.doc_id, "data-department": project.department },
    el("a", { class: "source-link", href: sourceHref("", project.doc_id), "data-doc-id": project.doc_id,
      ...NEW_TAB }, project.title || project.doc_id),
    el("span", { class: "card-meta project-facts" }, facts.join(" · ")),
    project.lesson ? el("span", { class: "lesson" }, `Lesson: ${project.lesson}`) : null,
  );
}

async function toggleSimilar(hit, button, box) {
  const open = button.getAttribute("aria-expanded") === "true";
  button.setAttribute("aria-expanded", String(!open));
  box.hidden = open;
  if (open || box.dataset.loaded === "true") return;
  box.replaceChildren(el("p", { class: "hint", role: "status" }, "Looking for similar projects…"));
  try {
    const found = await (await request(
      `/v1/projects/similar?doc_id=${encodeURIComponent(hit.doc_id)}`)).json();
    const projects = Array.isArray(found.projects) ? found.projects : [];
    box.replaceChildren(
      el("h4", {}, "Similar projects"),
      found.note ? el("p", { class: "hint" }, found.note) : null,
      projects.length
        ? el("ul", { class: "projects" }, projects.map(projectItem))
        : el("p", { class: "hint" }, "No similar project found in the documents you may read."),
    );
    box.dataset.loaded = "true";
  } catch (error) {
    box.replaceChildren(el("p", { class: "error", role: "alert" }, explain(error)));
  }
}

// --- searching --------------------------------------------------------------------------------

async function search() {
  const query = ui.query.value.trim();
  if (!query) {
    ui.status.textContent = "Type what you are looking for first.";
    return;
  }
  const mine = ++searches;
  ui.results.setAttribute("aria-busy", "true");
  ui.status.textContent = "Searching…";
  try {
    const body = { query, k: PASSAGES, filters: filters() };
    const found = await (await request("/v1/search", { method: "POST", body })).json();
    if (mine !== searches) return;
    const documents = byDocument(found.hits || []);
    showFacets(found.facets || {});
    ui.results.replaceChildren(...documents.map(card));
    ui.status.textContent = documents.length
      ? `${documents.length} document${documents.length === 1 ? "" : "s"} found for “${query}”.`
      : `Nothing found for “${query}” with these filters.`;
  } catch (error) {
    if (mine !== searches) return;
    if (error instanceof ServiceError && error.status === 401) key.refused("to search");
    ui.results.replaceChildren(el("p", { class: "error", role: "alert" }, explain(error)));
    ui.status.textContent = "The search failed.";
  } finally {
    if (mine === searches) ui.results.setAttribute("aria-busy", "false");
  }
}

ui.form.addEventListener("submit", (event) => {
  event.preventDefault();
  search();
});
for (const select of ui.facets) select.addEventListener("change", () => ui.query.value.trim() && search());
ui.stale.addEventListener("change", () => ui.query.value.trim() && search());
ui.clear.addEventListener("click", () => {
  for (const select of ui.facets) select.value = "";
  ui.stale.checked = false;
  if (ui.query.value.trim()) search();
});

sourcesWithKey(ui.results, (error) => {
  ui.status.textContent = `The source could not be opened. ${explain(error)}`;
});

const key = pageKeyForm(() => ui.query.value.trim() && search());
pageReady();
