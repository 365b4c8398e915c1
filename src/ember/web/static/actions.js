// What a user can do to a whole custom model, from the gallery's card menu or the model's page: rename, share,
// publish and delete (each answer is the model as the API returns it, or null when the user thought better of it).

import { api, ApiError, modelPath } from "./api.js";
import { askText, confirmAction, field, h, mount, toast } from "./dom.js";

export function problemText(problem) {
  return problem instanceof ApiError ? problem.details() : String(problem);
}

export async function renameModel(model) {
  const name = await askText(`Rename ${model.displayName}`, "New name", model.displayName, "Rename");
  if (name === null || name === model.displayName) return null;
  try {
    const renamed = await api("PATCH", modelPath(model.assetId), { displayName: name });
    toast(`Renamed to ${renamed.displayName}.`, "ok");
    return renamed;
  } catch (problem) {
    toast(problemText(problem), "error");
    return null;
  }
}

// Resolves true once the model is deleted.
export async function deleteModel(model) {
  const sure = await confirmAction(`Delete ${model.displayName}?`,
    "Its training images, every trained version and its shares are deleted too. This cannot be undone.",
    "Delete model");
  if (!sure) return false;
  try {
    await api("DELETE", modelPath(model.assetId));
    toast(`Deleted ${model.displayName}.`, "ok");
    return true;
  } catch (problem) {
    toast(problemText(problem), "error");
    return false;
  }
}

// Publishing from the gallery: the model's page has the same button, with whatever the checks there ask.
export async function setPublished(model, published) {
  try {
    const changed = await api("POST", `${modelPath(model.assetId)}/${published ? "publish" : "unpublish"}`);
    toast(published ? "Published: your organization and shares can use it now." : "Unpublished.", "ok");
    return changed;
  } catch (problem) {
    const hint = problem instanceof ApiError && problem.status === 409 ? " Open the model to see why." : "";
    toast(problemText(problem) + hint, "error");
    return null;
  }
}

export function shareDialog(model) {
  const path = `${modelPath(model.assetId)}/shares`;
  const principal = h("input", { type: "text", name: "principal", required: true, autocomplete: "off" });
  const role = h("select", { name: "role" }, h("option", { value: "user" }, "User — may list and generate"),
    h("option", { value: "editor" }, "Editor — may also edit, retrain and publish"));
  const list = h("ul", { class: "shares", "aria-label": "Shared with" });
  const error = h("p", { class: "error", role: "alert" });
  const submit = h("button", { type: "submit", class: "primary" }, "Share");
  const close = h("button", { type: "button", value: "close" }, "Done");
  const form = h("form", { method: "dialog" },
    h("h2", { id: "share-title" }, `Share ${model.displayName}`),
    h("p", { class: "muted" }, "With another organization's technical account (its id or email), or a user's email."),
    field("Technical account id or email", principal),
    field("Role", role),
    error,
    h("div", { class: "actions" }, submit, close),
    h("h3", {}, "Shared with"), list);
  const dialog = h("dialog", { class: "dialog", "aria-labelledby": "share-title" }, form);
  const refresh = async () => {
    const body = await api("GET", path);
    mount(list, body.shares.length ? body.shares.map((share) => h("li", {},
      h("span", {}, share.principal, h("small", { class: "muted" }, ` · ${share.role}`)),
      h("button", { type: "button", class: "link", "aria-label": `Stop sharing with ${share.principal}`,
        onclick: async () => { await api("DELETE", `${path}/${encodeURIComponent(share.principal)}`); refresh(); } },
      "Remove"))) : h("li", { class: "muted" }, "Nobody outside your organization yet."));
  };
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    submit.disabled = true;
    try {
      await api("POST", path, { principal: principal.value.trim(), role: role.value });
      principal.value = "";
      toast("Shared.", "ok");
      await refresh();
    } catch (problem) {
      error.textContent = problemText(problem);
    } finally {
      submit.disabled = false;
    }
  });
  close.addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  principal.focus();
  refresh();
}

// A card's "Actions" menu: a button that opens a list of commands; Escape or a click elsewhere closes it.
export function actionsMenu(label, items) {
  const id = `menu-${Math.random().toString(36).slice(2)}`;
  const toggle = h("button", { type: "button", class: "small menu-button", "aria-haspopup": "true",
    "aria-expanded": "false", "aria-controls": id, "aria-label": label }, "Actions ▾");
  const menu = h("ul", { class: "menu", id, role: "menu", hidden: true });
  const close = () => { menu.hidden = true; toggle.setAttribute("aria-expanded", "false"); };
  for (const item of items.filter(Boolean)) {
    const entry = item.href
      ? h("a", { role: "menuitem", href: item.href, class: item.danger ? "danger" : "" }, item.label)
      : h("button", { type: "button", role: "menuitem", class: item.danger ? "danger" : "",
        onclick: () => { close(); item.run(); } }, item.label);
    menu.append(h("li", { role: "none" }, entry));
  }
  toggle.addEventListener("click", (event) => {
    event.stopPropagation();
    const opening = menu.hidden;
    for (const other of document.querySelectorAll(".menu:not([hidden])")) other.hidden = true;
    menu.hidden = !opening;
    toggle.setAttribute("aria-expanded", String(opening));
    if (opening) menu.querySelector("[role=menuitem]")?.focus();
  });
  menu.addEventListener("keydown", (event) => {
    if (event.key === "Escape") { close(); toggle.focus(); }
  });
  document.addEventListener("click", (event) => { if (!menu.contains(event.target)) close(); });
  return h("div", { class: "menu-wrap" }, toggle, menu);
}
