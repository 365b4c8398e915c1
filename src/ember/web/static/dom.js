// Small DOM helpers: build elements from plain values, never from HTML strings.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key in el && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function mount(container, ...children) {
  container.replaceChildren();
  append(container, children);
}

let labelCounter = 0;

// A labelled form field: the label is tied to the control by id, so every control has an accessible name.
export function field(label, control, hint) {
  const id = control.id || `field-${++labelCounter}`;
  control.id = id;
  const hintEl = hint ? h("small", { class: "hint", id: `${id}-hint` }, hint) : null;
  if (hintEl) control.setAttribute("aria-describedby", hintEl.id);
  return h("div", { class: "field" }, h("label", { for: id }, label), control, hintEl);
}

// A short message in a corner: clicks pass through it to the page (only its ✕ takes them), errors stay longer.
export function toast(message, kind = "info") {
  const el = document.getElementById("toast");
  const close = h("button", { type: "button", "aria-label": "Dismiss message", onclick: () => { el.hidden = true; } }, "×");
  mount(el, h("span", {}, message), close);
  el.className = `toast ${kind}`;
  el.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.hidden = true; }, kind === "error" ? 8000 : 3500);
}

// The browser tab says where the user is.
export function setTitle(...parts) {
  document.title = [...parts.filter(Boolean), "Ember"].join(" — ");
}

function modal(title, body, buttons) {
  return new Promise((resolve) => {
    const titleId = `dialog-title-${++labelCounter}`;
    const form = h("form", { method: "dialog" }, h("h2", { id: titleId }, title), body,
      h("div", { class: "actions dialog-actions" }, buttons));
    const dialog = h("dialog", { class: "dialog", "aria-labelledby": titleId }, form);
    dialog.addEventListener("close", () => { dialog.remove(); resolve(dialog.returnValue); });
    document.body.append(dialog);
    dialog.showModal();
    const first = dialog.querySelector("input, textarea") || dialog.querySelector("button[value='cancel']");
    if (first) first.focus();
  });
}

// Asks before doing something that cannot be undone; resolves true when the user confirms.
export async function confirmAction(title, message, confirmLabel, keepLabel = "Keep it") {
  const answer = await modal(title, h("p", {}, message), [
    h("button", { type: "submit", value: "cancel" }, keepLabel),
    h("button", { type: "submit", value: "confirm", class: "primary danger-fill" }, confirmLabel),
  ]);
  return answer === "confirm";
}

// Asks for one line of text; resolves the trimmed text, or null when the user cancels.
export async function askText(title, label, value, confirmLabel) {
  const input = h("input", { type: "text", required: true, maxlength: 200, value });
  input.value = value;
  const answer = await modal(title, field(label, input), [
    h("button", { type: "submit", value: "cancel", formnovalidate: true }, "Cancel"),
    h("button", { type: "submit", value: "confirm", class: "primary" }, confirmLabel),
  ]);
  return answer === "confirm" && input.value.trim() ? input.value.trim() : null;
}

export function formatDate(iso) {
  if (!iso) return "";
  return new Date(iso).toLocaleString();
}

export function formatDuration(seconds) {
  if (seconds === undefined || seconds === null || !isFinite(seconds)) return "";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m} min ${s % 60} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}
