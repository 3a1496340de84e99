// The review queue: GET /v1/documents/stale by owner, most urgent first, and "Mark reviewed"
// (POST /v1/documents/{id}/review) for the document's owner or an admin. A key without the
// spoke role is told so in words.
import { explain, request, ServiceError, sourcesWithKey } from "./api.js";
import { pageKeyForm } from "./keyform.js";
import { docTypeLabel, el, pageReady, sourceHref } from "./render.js";

const $ = (id) => document.getElementById(id);
const ui = {
  reload: $("reload"),
  status: $("queue-status"),
  body: $("queue-body"),
};

const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

function overdue(doc) {
  if (doc.needs_owner && !doc.days_overdue) return el("span", { class: "badge stale" }, "Needs an owner");
  return el("span", { class: "badge stale", "data-field": "days_overdue", "data-value": doc.days_overdue },
    `${plural(doc.days_overdue, "day")} overdue`);
}

function facts(doc) {
  const review = doc.review_date ? `review date ${doc.review_date}` : "never reviewed";
  return el(
    "p",
    { class: "card-meta" },
    `${doc.department} · ${docTypeLabel(doc.doc_type)} · ${review} · `,
    el("span", { "data-field": "cited", "data-value": doc.cited }, `cited ${plural(doc.cited, "time")}`),
    doc.cited_recently ? ` (${doc.cited_recently} recently)` : "",
    doc.thumbs_down ? ` · ${plural(doc.thumbs_down, "thumbs down")}` : "",
    doc.outdated ? ` (${doc.outdated} “outdated”)` : "",
  );
}

function reviewForm(doc, index, row) {
  const noteId = `note-${index}`;
  const status = el("p", { class: "hint row-status", role: "status" });
  const note = el("input", { id: noteId, type: "text", maxlength: 2000, class: "note",
    placeholder: "what you checked or changed" });
  const button = el("button", { type: "submit", class: "primary" }, "Mark reviewed");
  const form = el(
    "form",
    { class: "review-form row", autocomplete: "off", "aria-label": `Mark “${doc.title}” reviewed` },
    el("label", { for: noteId }, "Note (optional)"),
    note,
    button,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    button.disabled = true;
    status.className = "hint row-status";
    status.textContent = "Saving the review…";
    const body = note.value.trim() ? { note: note.value.trim() } : {};
    try {
      const done = await (await request(`/v1/documents/${encodeURIComponent(doc.doc_id)}/review`,
        { method: "POST", body })).json();
      row.classList.add("reviewed");
      row.querySelector(".badge").replaceWith(el("span", { class: "badge ok" }, "Reviewed"));
      form.remove();
      status.className = "row-status ok";
      status.dataset.reviewDate = done.review_date;
      status.textContent = `Reviewed: due again after ${done.review_date}.`;
    } catch (error) {
      button.disabled = false;
      status.className = "error row-status";
      status.textContent = error instanceof ServiceError && error.status === 403
        ? "Only the document’s owner (a key named like its owner) or an admin can mark it " +
          `reviewed. ${error.detail ? `(The service said: ${error.detail})` : ""}`
        : explain(error);
    }
  });
  return [form, status];
}

function docRow(doc, index) {
  const row = el("li", { class: "queued", "data-doc-id": doc.doc_id });
  row.append(
    el("div", { class: "queued-head" },
      el("a", { class: "source-link", href: sourceHref("", doc.doc_id), "data-doc-id": doc.doc_id,
        target: "_blank", rel: "noopener" }, doc.title || doc.doc_id),
      " ", overdue(doc)),
    facts(doc),
    ...reviewForm(doc, index, row),
  );
  return row;
}

function showQueue(queues) {
  let index = 0;
  const sections = queues.map((queue, q) => el(
    "section",
    { class: "owner-queue", "aria-labelledby": `owner-${q}`, "data-owner": queue.owner },
    el("h3", { id: `owner-${q}` }, queue.owner === "unknown" ? "No owner" : queue.owner,
      el("span", { class: "hint" }, ` · ${plural(queue.documents.length, "document")}`)),
    el("ol", { class: "queue" }, queue.documents.map((doc) => docRow(doc, index++))),
  ));
  ui.body.replaceChildren(...sections);
  ui.status.textContent = index
    ? `${plural(index, "document")} of ${plural(queues.length, "owner")} need a review.`
    : "Nothing to review: every document you may see is within its review date.";
}

function showRefusal(error) {
  if (error instanceof ServiceError && error.status === 401) key.refused("to see the review queue");
  const words = error instanceof ServiceError && error.status === 403
    ? "Your key may not see the review queue: it needs the spoke or admin role. Ask the CoE " +
      "for a spoke key; Search and Chat work with the key you have."
    : explain(error);
  ui.body.replaceChildren(el("p", { class: "error", role: "alert" }, words));
  ui.status.textContent = "The review queue could not be shown.";
}

async function load() {
  ui.status.textContent = "Loading the review queue…";
  ui.body.setAttribute("aria-busy", "true");
  try {
    showQueue(await (await request("/v1/documents/stale")).json());
  } catch (error) {
    showRefusal(error);
  } finally {
    ui.body.setAttribute("aria-busy", "false");
  }
}

ui.reload.addEventListener("click", load);
sourcesWithKey(ui.body, (error) => {
  ui.status.textContent = `The source could not be opened. ${explain(error)}`;
});

const key = pageKeyForm(load);
load().finally(pageReady);
