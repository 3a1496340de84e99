// The API key form every page shares: the key is kept in this tab only (api.js's apiKey, so
// it follows the user from page to page) and sent as `Authorization: Bearer` by request().

import { apiKey } from "./api.js";

const NO_KEY =
  "No key: fine when the service runs in local-development mode. A key is kept in this tab only.";

/**
 * Wire the key form: `ui` holds {settings (the <details>), form, input, forget, status};
 * `changed()` runs after the key is set or forgotten. Returns {show, refused}: `refused(what)`
 * opens the form and says the key was refused (or is missing) for `what`.
 */
export function keyForm(ui, changed) {
  function show(notice = "") {
    const key = apiKey.get();
    const shown = /^kb_[0-9a-f]+_/i.test(key) ? `${key.split("_").slice(0, 2).join("_")}_…` : "";
    ui.status.textContent = notice || (key ? `Using key ${shown || "you pasted"} in this tab only.` : NO_KEY);
  }

  function refused(what) {
    ui.settings.open = true;
    show(apiKey.get()
      ? "This key was refused (unknown or revoked): paste another one."
      : `This service needs an API key: paste yours here ${what}.`);
  }

  ui.form.addEventListener("submit", (event) => {
    event.preventDefault();
    apiKey.set(ui.input.value.trim());
    ui.input.value = "";
    show();
    changed();
  });
  ui.forget.addEventListener("click", () => {
    apiKey.set("");
    ui.input.value = "";
    show();
    changed();
  });
  show();
  return { show, refused };
}

/** The key form every page's header holds (the same element ids on each page). */
export function pageKeyForm(changed) {
  const $ = (id) => document.getElementById(id);
  const ui = {
    settings: $("settings"),
    form: $("key-form"),
    input: $("api-key"),
    forget: $("forget-key"),
    status: $("key-status"),
  };
  return keyForm(ui, changed);
}
