// The answer as DOM nodes. Every string from the service (answers, titles, sections, owners,
// warnings) becomes a text node: nothing here parses HTML, so document text cannot run.

/** An element with attributes and children; strings become text nodes. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child !== undefined && child !== null && child !== false) node.append(child);
  }
  return node;
}

/** A same-origin link to a document's original file: the citation's own link when it is one. */
export function sourceHref(link, docId, page) {
  if (typeof link === "string" && link) {
    try {
      const url = new URL(link, window.location.origin);
      if (url.origin === window.location.origin && url.pathname.startsWith("/v1/documents/")) {
        return url.pathname + url.search + url.hash;
      }
    } catch {
      // not a URL: build it below
    }
  }
  const path = `/v1/documents/${encodeURIComponent(docId)}/source`;
  return page ? `${path}#page=${page}` : path;
}

const MARKER = /\[(\d+)\]/g;

/** One line of answer text, its [n] markers linked to the numbered sources. */
// A source opens beside the conversation, not in place of it.
const NEW_TAB = { target: "_blank", rel: "noopener" };

function lineWithMarkers(line, citations, sourceId) {
  const p = el("p");
  if (/^Warning:/.test(line)) p.className = "answer-warning";
  else if (/^Note: \[\d+\] and \[\d+\] disagree/.test(line)) p.className = "answer-note";
  let last = 0;
  for (const match of line.matchAll(MARKER)) {
    const n = Number(match[1]);
    const cited = citations.get(n);
    if (!cited) continue;
    p.append(line.slice(last, match.index));
    p.append(
      el(
        "a",
        {
          class: "marker",
          href: `#${sourceId(n)}`,
          "aria-label": `source ${n}: ${cited.title}`,
          "data-n": n,
        },
        `[${n}]`,
      ),
    );
    last = match.index + match[0].length;
  }
  p.append(line.slice(last));
  return p;
}

function answerText(text, citations, sourceId) {
  const lines = String(text || "")
    .split("\n")
    .filter((l) => l.trim());
  return lines.map((line) => lineWithMarkers(line, citations, sourceId));
}

function warningsBlock(warnings) {
  if (!warnings || !warnings.length) return null;
  return el(
    "div",
    { class: "warnings", role: "alert" },
    el("strong", {}, "⚠ Check before relying on this answer"),
    el("ul", {}, warnings.map((w) => el("li", {}, w))),
  );
}

function pagesOf(citation) {
  const pages = Array.isArray(citation.pages) && citation.pages.length ? citation.pages : [];
  if (pages.length > 1) return `pages ${pages.join(", ")}`;
  if (pages.length === 1) return `page ${pages[0]}`;
  return citation.page ? `page ${citation.page}` : "";
}

function sourceItem(citation, sourceId) {
  const href = sourceHref(citation.link, citation.doc_id, citation.page);
  const meta = [citation.section, pagesOf(citation), citation.path].filter(Boolean).join(" · ");
  const item = el(
    "li",
    { id: sourceId(citation.n), value: citation.n, tabindex: "-1", "data-doc-id": citation.doc_id },
    el("a", { class: "source-link", href, ...NEW_TAB, "data-doc-id": citation.doc_id }, citation.title),
  );
  if (citation.stale) {
    item.append(
      el("span", { class: "badge stale" }, "Review overdue"),
      el(
        "span",
        { class: "source-meta stale-note" },
        `Past its review date (${citation.review_date || "unknown"}); owner: ` +
          `${citation.owner || "unknown"}`,
      ),
    );
  }
  if (meta) item.append(el("span", { class: "source-meta" }, meta));
  return item;
}

/** The sources an answer is being written from, shown before its first word. */
export function readingBlock(sources, sourceId) {
  if (!sources.length) return null;
  return el(
    "section",
    { class: "sources reading", "aria-label": "Reading" },
    el("h3", {}, "Reading"),
    el("ol", {}, sources.map((c) => sourceItem(c, sourceId))),
  );
}

function sourcesBlock(citations, sourceId) {
  if (!citations.length) return null;
  return el(
    "section",
    { class: "sources", "aria-label": "Sources" },
    el("h3", {}, "Sources"),
    el("ol", {}, citations.map((c) => sourceItem(c, sourceId))),
  );
}

function removedBlock(unsupported) {
  if (!unsupported || !unsupported.length) return null;
  const count = unsupported.length;
  return el(
    "details",
    { class: "removed" },
    el(
      "summary",
      {},
      `${count} sentence${count === 1 ? "" : "s"} removed: no source supported ` +
        `${count === 1 ? "it" : "them"}`,
    ),
    el("ul", {}, unsupported.map((s) => el("li", {}, s))),
  );
}

function refusalBlock(answer) {
  const nearby = Array.isArray(answer.nearby) ? answer.nearby : [];
  return el(
    "div",
    { class: "refusal" },
    el("h3", {}, "No answer in the knowledge base"),
    el("p", {}, answer.answer),
    nearby.length
      ? el(
          "div",
          { class: "nearby" },
          el("h4", {}, "Documents that may be related"),
          el(
            "ul",
            {},
            nearby.map((d) =>
              el(
                "li",
                {},
                el(
                  "a",
                  { class: "source-link", href: sourceHref("", d.doc_id), ...NEW_TAB, "data-doc-id": d.doc_id },
                  d.title || d.doc_id,
                ),
              ),
            ),
          ),
        )
      : null,
  );
}

/**
 * The checked answer's nodes: warnings first (never missed), the answer with linked markers
 * (or the refusal with related documents), the numbered sources, what the check removed.
 */
export function answerNodes(answer, sourceId) {
  const citations = Array.isArray(answer.citations) ? answer.citations : [];
  const byNumber = new Map(citations.map((c) => [c.n, c]));
  const nodes = [];
  if (answer.refused) {
    nodes.push(refusalBlock(answer));
  } else {
    nodes.push(warningsBlock(answer.warnings));
    nodes.push(el("div", { class: "answer-text" }, answerText(answer.answer, byNumber, sourceId)));
    nodes.push(sourcesBlock(citations, sourceId));
  }
  nodes.push(removedBlock(answer.unsupported));
  if (answer.standalone_question && answer.standalone_question !== answer.question) {
    nodes.push(el("p", { class: "standalone" }, `Searched for: ${answer.standalone_question}`));
  }
  const total = answer.timings_ms && answer.timings_ms.total;
  if (answer.generator) {
    const time = typeof total === "number" ? ` in ${(total / 1000).toFixed(1)} s` : "";
    nodes.push(el("p", { class: "timing" }, `Answered by ${answer.generator}${time}`));
  }
  return nodes.filter(Boolean);
}

const THUMB = "/web/thumb.svg"; // thumbs up; turned over for thumbs down

const REASONS = [
  ["", "Reason (optional)"],
  ["wrong_source", "Wrong source"],
  ["outdated", "Outdated"],
  ["incomplete", "Incomplete"],
  ["other", "Other"],
];

/** Thumbs up / down with an optional reason; `send(rating, reason)` posts it. */
export function feedbackNodes(idPrefix, send) {
  const status = el("p", { class: "hint feedback-status", role: "status" });
  const reasonId = `${idPrefix}-reason`;
  const reason = el(
    "select",
    { id: reasonId, class: "feedback-reason" },
    REASONS.map(([value, label]) => el("option", { value }, label)),
  );
  const thumb = (direction) => el("img", { src: THUMB, alt: "", class: `icon ${direction}` });
  const up = el("button", { type: "button", class: "thumb", "aria-pressed": "false" },
    thumb("up"), "Helpful");
  const down = el("button", { type: "button", class: "thumb", "aria-pressed": "false" },
    thumb("down"), "Not helpful");
  const buttons = [up, down];

  async function rate(rating, button) {
    buttons.forEach((b) => { b.disabled = true; });
    status.className = "hint feedback-status";
    status.textContent = "Sending feedback…";
    try {
      await send(rating, reason.value || null);
      button.setAttribute("aria-pressed", "true");
      reason.disabled = true;
      status.className = "hint feedback-status ok";
      status.textContent = "Thanks: your feedback was recorded.";
    } catch (error) {
      buttons.forEach((b) => { b.disabled = false; });
      status.className = "error feedback-status";
      status.textContent = `Feedback not recorded. ${error.explanation || error.message}`;
    }
  }
  up.addEventListener("click", () => rate("up", up));
  down.addEventListener("click", () => rate("down", down));

  return el(
    "div",
    { class: "feedback row", role: "group", "aria-label": "Feedback on this answer" },
    el("span", {}, "Was this helpful?"),
    up,
    down,
    el("label", { class: "visually-hidden", for: reasonId }, "Reason"),
    reason,
    status,
  );
}

const DOC_TYPES = {
  playbook: "Playbook",
  vendor_evaluation: "Vendor evaluation",
  lessons_learned: "Lessons learned",
  faq: "FAQ",
  template: "Template",
  showcase: "Showcase",
  policy: "Policy",
  reference: "Reference",
};

/** A document type in words ("lessons_learned" -> "Lessons learned"). */
export function docTypeLabel(docType) {
  return DOC_TYPES[docType] || String(docType || "").replace(/_/g, " ");
}

/** Mark the page's script as run: tests wait for html[data-ready=true]. */
export function pageReady() {
  document.documentElement.dataset.ready = "true"; // the script ran (tests wait for it)
}
