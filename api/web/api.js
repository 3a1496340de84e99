// Talking to the service: the API key, problem+json errors, and Server-Sent Events over fetch
// (EventSource cannot POST, nor send an Authorization header).

const KEY_STORAGE = "kb.apiKey";

/** The API key the user pasted, kept in this tab only (never in the URL). */
export const apiKey = {
  get() {
    try {
      return sessionStorage.getItem(KEY_STORAGE) || "";
    } catch {
      return memoryKey; // storage disabled: the key lasts until the page is reloaded
    }
  },
  set(value) {
    memoryKey = value;
    try {
      if (value) sessionStorage.setItem(KEY_STORAGE, value);
      else sessionStorage.removeItem(KEY_STORAGE);
    } catch {
      // storage disabled: kept in memory above
    }
  },
};
let memoryKey = "";

/** An error the service reported (problem+json), or one we name the same way. */
export class ServiceError extends Error {
  constructor(status, title, detail, retryAfter = null) {
    super(detail || title || `HTTP ${status}`);
    this.name = "ServiceError";
    this.status = status;
    this.title = title;
    this.detail = detail;
    this.retryAfter = retryAfter;
  }
}

function headers(json) {
  const out = { Accept: json ? "application/json, text/event-stream" : "*/*" };
  if (json) out["Content-Type"] = "application/json";
  const k = apiKey.get();
  if (k) out.Authorization = `Bearer ${k}`;
  return out;
}

/** fetch with the key; a non-2xx answer becomes a ServiceError. */
export async function request(path, { method = "GET", body, signal, json = true } = {}) {
  const response = await fetch(path, {
    method,
    headers: headers(json && body !== undefined),
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
    credentials: "same-origin",
    cache: "no-store",
  });
  if (!response.ok) throw await problemOf(response);
  return response;
}

/** The ServiceError a failed response describes (problem+json, FastAPI's 422, or text). */
export async function problemOf(response) {
  let title = response.statusText || "";
  let detail = "";
  try {
    const text = await response.text();
    try {
      const body = JSON.parse(text);
      title = typeof body.title === "string" ? body.title : title;
      detail = describeDetail(body.detail);
    } catch {
      detail = text.slice(0, 300);
    }
  } catch {
    // body unreadable: the status says enough
  }
  const retry = Number.parseInt(response.headers.get("Retry-After") || "", 10);
  return new ServiceError(response.status, title, detail, Number.isFinite(retry) ? retry : null);
}

function describeDetail(detail) {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    // FastAPI's validation errors: [{loc: ["body", "question"], msg}]
    return detail
      .map((e) => {
        const where = Array.isArray(e.loc) ? e.loc.filter((p) => p !== "body").join(".") : "";
        return where ? `${where}: ${e.msg}` : String(e.msg);
      })
      .join("; ");
  }
  return detail === undefined || detail === null ? "" : JSON.stringify(detail);
}

/** Words a person can act on, for any error the page meets. */
export function explain(error) {
  if (error instanceof ServiceError) {
    const said = error.detail ? ` (The service said: ${error.detail})` : "";
    switch (error.status) {
      case 401:
        return "The service needs a valid API key. Open “API key and filters” above, paste " +
          `your key and choose “Use key”.${said}`;
      case 403:
        return `Your API key is not allowed to do this.${said}`;
      case 404:
        return `Not found.${said}`;
      case 413:
        return `That is too long for the service.${said}`;
      case 429: {
        const wait = error.retryAfter ? `${error.retryAfter} seconds` : "a moment";
        return `Too many requests with this key: wait ${wait} and try again.${said}`;
      }
      default:
        if (error.status >= 500) {
          return `The service failed (${error.status} ${error.title || ""}). Try again in a ` +
            `moment.${said}`;
        }
        return `The service refused the request (${error.status}).${said}`;
    }
  }
  if (error instanceof SyntaxError) {
    return "The service sent something the page could not read. Try again.";
  }
  if (error instanceof TypeError) {
    return "Could not reach the service: check that it is running and that you are online, " +
      "then try again.";
  }
  return error && error.message ? error.message : "Something went wrong.";
}

/**
 * The events of a text/event-stream body, as {type, data} (data lines joined with "\n").
 * Ends when the body ends; an event cut off before its blank line is dropped, as the
 * specification says. Cancelling the loop (break, throw, abort) cancels the body.
 */
export async function* serverSentEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer = (buffer + value).replace(/\r\n/g, "\n");
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const event = parseEvent(buffer.slice(0, cut));
        buffer = buffer.slice(cut + 2);
        if (event) yield event;
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

function parseEvent(block) {
  let type = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue; // a comment (keep-alive)
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") type = value;
    else if (field === "data") data.push(value);
  }
  return data.length ? { type, data: data.join("\n") } : null;
}

function fileName(response, fallback) {
  const header = response.headers.get("Content-Disposition") || "";
  const encoded = /filename\*=UTF-8''([^;]+)/i.exec(header);
  if (encoded) {
    try {
      return decodeURIComponent(encoded[1]);
    } catch {
      // fall through to the plain name
    }
  }
  const plain = /filename="?([^";]+)"?/i.exec(header);
  return plain ? plain[1] : fallback;
}

/**
 * Fetch a document's source with the key and hand it to the browser as a download: with a
 * key, a plain link cannot send it. Throws a ServiceError the caller explains.
 */
export async function downloadWithKey(href, fallbackName) {
  const response = await request(href.split("#")[0]);
  const blob = await response.blob();
  const url = URL.createObjectURL(blob);
  const save = document.createElement("a");
  save.href = url;
  save.download = fileName(response, fallbackName || "");
  document.body.append(save);
  save.click();
  save.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/**
 * Source links (a.source-link) inside `container` open with the key when there is one: the
 * file is fetched with it and downloaded; without a key the plain link opens. `failed(error)`
 * reports a failure.
 */
export function sourcesWithKey(container, failed) {
  container.addEventListener("click", (event) => {
    const link = event.target.closest("a.source-link");
    if (link && apiKey.get() && event.button === 0) {
      event.preventDefault();
      downloadWithKey(link.getAttribute("href"), link.dataset.docId).catch(failed);
    }
  });
}
