// The chat page: ask, stream the answer, show the checked answer with its sources, keep the
// conversation for follow-ups, take feedback. Talks to /v1/ask/stream, /v1/feedback and
// /v1/documents on this origin only.
import {
  apiKey,
  downloadWithKey,
  explain,
  request,
  serverSentEvents,
  ServiceError,
} from "./api.js";
import { keyForm } from "./keyform.js";
import { answerNodes, el, feedbackNodes, readingBlock } from "./render.js";

const HISTORY_TURNS = 20; // the most AskRequest.history takes
const TURN_CHARS = 8000; // the longest turn it takes

const $ = (id) => document.getElementById(id);
const ui = {
  form: $("ask-form"),
  question: $("question"),
  send: $("send"),
  stop: $("stop"),
  newConversation: $("new-conversation"),
  log: $("log"),
  empty: $("empty"),
  status: $("status"),
  settings: $("settings"),
  keyForm: $("key-form"),
  keyInput: $("api-key"),
  forgetKey: $("forget-key"),
  keyStatus: $("key-status"),
  department: $("department"),
  docType: $("doc-type"),
};

const state = {
  history: [], // [{role, content}], oldest first, sent with every question
  controller: null, // the AbortController of the answer being streamed
  exchanges: 0,
};

// --- asking -------------------------------------------------------------------------------

function filters() {
  const out = {};
  if (ui.department.value) out.department = ui.department.value;
  if (ui.docType.value) out.doc_type = ui.docType.value;
  return out;
}

function newExchange(question) {
  const index = ++state.exchanges;
  const streaming = el("p", { class: "streaming" });
  const answerBox = el("div", { class: "answer", "aria-busy": "true" }, streaming);
  const article = el(
    "article",
    { class: "exchange", "aria-label": `Question ${index}` },
    el("p", { class: "question" }, el("span", { class: "who" }, "You asked"), question),
    answerBox,
  );
  ui.empty.hidden = true;
  ui.log.append(article);
  article.scrollIntoView({ block: "nearest" });
  return { index, article, answerBox, streaming };
}

function setBusy(busy, text = "") {
  ui.send.disabled = busy;
  ui.stop.disabled = !busy;
  ui.form.setAttribute("aria-busy", String(busy));
  ui.status.textContent = text;
}

async function ask(question) {
  const exchange = newExchange(question);
  const controller = new AbortController();
  state.controller = controller;
  setBusy(true, "Searching the knowledge base…");
  const body = { question, history: state.history.slice(-HISTORY_TURNS), filters: filters() };
  let answered = false;
  try {
    const response = await request("/v1/ask/stream", {
      method: "POST",
      body,
      signal: controller.signal,
    });
    if (!response.body) throw new Error("The browser could not read the answer stream.");
    for await (const event of serverSentEvents(response.body)) {
      if (event.type === "sources") {
        const readingId = (n) => `a${exchange.index}-reading-${n}`;
        const reading = readingBlock(JSON.parse(event.data).sources, readingId);
        if (reading) exchange.answerBox.append(reading);
        setBusy(true, "Reading the sources…");
      } else if (event.type === "token") {
        if (!exchange.streaming.textContent) setBusy(true, "Answering…");
        exchange.streaming.append(JSON.parse(event.data).text);
      } else if (event.type === "final") {
        const answer = JSON.parse(event.data);
        showAnswer(exchange, answer);
        remember(question, answer);
        answered = true;
      } else if (event.type === "error") {
        const problem = JSON.parse(event.data);
        throw new ServiceError(problem.status, problem.title, problem.detail);
      }
    }
    if (!answered) {
      throw new Error(
        "The answer stopped before it was complete (the connection closed). Try again.",
      );
    }
  } catch (error) {
    if (error && error.name === "AbortError") {
      showStopped(exchange);
    } else {
      showError(exchange, error);
      if (!ui.question.value) ui.question.value = question; // to send again
    }
  } finally {
    if (state.controller === controller) {
      state.controller = null;
      setBusy(false);
    }
  }
}

function showAnswer(exchange, answer) {
  const sourceId = (n) => `a${exchange.index}-source-${n}`;
  exchange.answerBox.replaceChildren(...answerNodes(answer, sourceId));
  exchange.article.classList.toggle("refused", Boolean(answer.refused));
  if (answer.answer_id) {
    exchange.article.dataset.answerId = answer.answer_id;
    const send = (rating, reason) => sendFeedback(answer.answer_id, rating, reason);
    exchange.answerBox.append(feedbackNodes(`a${exchange.index}`, send));
  }
  exchange.answerBox.setAttribute("aria-busy", "false");
}

function showStopped(exchange) {
  const partial = exchange.streaming.textContent;
  exchange.answerBox.replaceChildren(
    el("p", { class: "stopped" }, "Stopped. ", partial
      ? "The partial answer below was not checked against the sources."
      : "No answer was received."),
  );
  if (partial) exchange.answerBox.append(el("p", { class: "streaming" }, partial));
  exchange.answerBox.setAttribute("aria-busy", "false");
}

function showError(exchange, error) {
  if (error instanceof ServiceError && error.status === 401) ui.settings.open = true;
  // a partial answer cut off by an error was never checked: do not leave it standing
  exchange.answerBox.replaceChildren(el("p", { class: "error", role: "alert" }, explain(error)));
  exchange.answerBox.setAttribute("aria-busy", "false");
  exchange.article.classList.add("failed");
}

function remember(question, answer) {
  state.history.push(
    { role: "user", content: question.slice(0, TURN_CHARS) },
    { role: "assistant", content: String(answer.answer || "").slice(0, TURN_CHARS) },
  );
  state.history = state.history.slice(-HISTORY_TURNS);
}

async function sendFeedback(answerId, rating, reason) {
  const body = { answer_id: answerId, rating };
  if (reason) body.reason = reason;
  try {
    await request("/v1/feedback", { method: "POST", body });
  } catch (error) {
    error.explanation = explain(error);
    throw error;
  }
}

function newConversation() {
  if (state.controller) state.controller.abort();
  state.history = [];
  ui.log.replaceChildren();
  ui.empty.hidden = false;
  ui.status.textContent = "New conversation: earlier questions are forgotten.";
  ui.question.focus();
}

// --- sources: with a key, the link is fetched with it (a plain link cannot send one) -------

async function openSource(link) {
  ui.status.textContent = "Fetching the source…";
  try {
    await downloadWithKey(link.getAttribute("href"), link.dataset.docId);
    ui.status.textContent = "";
  } catch (error) {
    ui.status.textContent = `The source could not be opened. ${explain(error)}`;
  }
}

// --- the key and the filters ----------------------------------------------------------------

async function loadDepartments() {
  try {
    const documents = await (await request("/v1/documents")).json();
    const departments = [...new Set(documents.map((d) => d.department).filter(Boolean))].sort();
    const current = ui.department.value;
    ui.department.replaceChildren(
      el("option", { value: "" }, "Any department"),
      ...departments.map((d) => el("option", { value: d }, d)),
    );
    if (departments.includes(current)) ui.department.value = current;
  } catch (error) {
    if (error instanceof ServiceError && error.status === 401) key.refused("to ask questions");
    // otherwise the filter keeps "Any department": asking still works
  }
}

// --- wiring -----------------------------------------------------------------------------------

ui.form.addEventListener("submit", (event) => {
  event.preventDefault();
  const question = ui.question.value.trim();
  if (!question) {
    ui.status.textContent = "Type a question first.";
    return;
  }
  if (state.controller) {
    ui.status.textContent = "Wait for this answer, or press Stop.";
    return;
  }
  ui.question.value = "";
  ask(question);
});

ui.question.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    ui.form.requestSubmit();
  }
});

ui.stop.addEventListener("click", () => {
  if (state.controller) state.controller.abort();
});
ui.newConversation.addEventListener("click", newConversation);

ui.log.addEventListener("click", (event) => {
  const link = event.target.closest("a.source-link");
  if (link && apiKey.get() && event.button === 0) {
    event.preventDefault();
    openSource(link);
  }
});

const key = keyForm(
  {
    settings: ui.settings,
    form: ui.keyForm,
    input: ui.keyInput,
    forget: ui.forgetKey,
    status: ui.keyStatus,
  },
  loadDepartments,
);
loadDepartments();
document.documentElement.dataset.ready = "true"; // the script ran (tests wait for it)
