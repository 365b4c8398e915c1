// The web UI's shell: sign-in, the hash router, the custom models gallery and the job history.

import { api, baseModels, currentSession, signIn, signOut } from "./api.js";
import { actionsMenu, deleteModel, renameModel, setPublished, shareDialog } from "./actions.js";
import { stateBadge, testModelBadge } from "./badges.js";
import { field, formatDate, h, mount, setTitle, toast } from "./dom.js";
import { modelView } from "./model.js";
import { trainView } from "./train.js";

const view = document.getElementById("view");
let session = null;
let leaveView = null; // stops the current view's polling when the route changes

function showChrome(signedIn) {
  document.getElementById("nav").hidden = !signedIn;
  document.getElementById("account").hidden = !signedIn;
  document.getElementById("account-email").textContent = signedIn ? `${session.email} · ${session.organization}` : "";
}

function signInView() {
  setTitle("Sign in");
  const email = h("input", { type: "email", name: "email", autocomplete: "username", required: true,
    "data-autofocus": true });
  const password = h("input", { type: "password", name: "password", autocomplete: "current-password", required: true });
  const error = h("p", { class: "error", role: "alert" });
  const button = h("button", { type: "submit", class: "primary" }, "Sign in");
  const form = h("form", { class: "card narrow", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title" }, "Sign in to Ember"),
    field("Email", email),
    field("Password", password),
    error,
    button,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    button.disabled = true;
    error.textContent = "";
    try {
      session = await signIn(email.value, password.value);
      showChrome(true);
      // Keep a deep link the user arrived with; a changed fragment routes through the hashchange event.
      if (location.hash === "#/signin") location.hash = "#/models";
      else route();
    } catch (problem) {
      error.textContent = problem.message;
    } finally {
      button.disabled = false;
    }
  });
  mount(view, form);
}

// The newest output image of each custom model, from its latest succeeded jobs (generation or training samples).
function sampleImages(jobs) {
  const found = {};
  for (const job of jobs) {
    if (!job.customModelId || found[job.customModelId] || job.status !== "succeeded") continue;
    const url = job.result?.outputs?.[0]?.image?.url || job.training?.samples?.at(-1)?.url;
    if (url) found[job.customModelId] = url;
  }
  return found;
}

// The progress of each model's running training job, in percent.
function trainingProgress(jobs) {
  const found = {};
  for (const job of jobs) {
    if (job.kind === "train" && job.customModelId && !(job.customModelId in found)
      && (job.status === "running" || job.status === "pending")) found[job.customModelId] = job.progress ?? 0;
  }
  return found;
}

const NO_PROJECT = "none";

function galleryFilter() {
  const query = new URLSearchParams(location.hash.split("?")[1] || "");
  return query.get("project") || "";
}

async function galleryView() {
  setTitle("Custom models");
  mount(view, h("h1", {}, "Custom models"), h("p", { class: "muted" }, "Loading…"));
  const wanted = galleryFilter();
  const inProject = wanted ? `&projectId=${encodeURIComponent(wanted)}` : "";
  const [listing, jobs, specs, projects] = await Promise.all([
    api("GET", `/v3/custom-models?start=0&limit=50&sortBy=-modifiedDate&publishedState=all${inProject}`),
    api("GET", "/v3/jobs?start=0&limit=50").catch(() => ({ jobs: [] })),
    baseModels(),
    api("GET", "/v3/projects").catch(() => ({ projects: [] })),
  ]);
  const samples = sampleImages(jobs.jobs);
  const progress = trainingProgress(jobs.jobs);
  const projectNames = Object.fromEntries(projects.projects.map((project) => [project.id, project.name]));
  const shown = listing.custom_models;
  // After a change from a card's menu, the gallery is drawn again (and follows its trainings again).
  const refresh = async () => {
    if (leaveView) leaveView();
    leaveView = await galleryView();
  };
  const cards = shown.map((model) => {
    const sample = samples[model.assetId];
    const href = `#/models/${encodeURIComponent(model.assetId)}`;
    const ready = model.trainingState === "ready";
    const published = model.publishedState === "published";
    const percent = progress[model.assetId];
    const menu = actionsMenu(`Actions for ${model.displayName}`, [
      { label: "Open", href },
      { label: "Rename…", run: async () => { if (await renameModel(model)) refresh(); } },
      ready ? { label: "Share…", run: () => shareDialog(model) } : null,
      ready ? { label: published ? "Unpublish" : "Publish",
        run: async () => { if (await setPublished(model, !published)) refresh(); } } : null,
      { label: "Delete…", danger: true, run: async () => { if (await deleteModel(model)) refresh(); } },
    ]);
    return h("li", { class: "model-card", dataset: { assetId: model.assetId } },
      h("a", { href, "aria-label": `Open ${model.displayName}` },
        sample
          ? h("img", { src: sample, alt: `Sample image of ${model.displayName}`, loading: "lazy" })
          : h("div", { class: "placeholder", "aria-hidden": "true" }, model.displayName.slice(0, 1).toUpperCase())),
      h("div", { class: "model-card-body" },
        h("div", { class: "model-card-title" }, h("h2", {}, h("a", { href }, model.displayName)), menu),
        h("p", { class: "muted" }, model.trainingMode === "subject" ? `Subject · ${model.conceptId}` : "Style",
          ` · ${specs[model.baseModel.name]?.displayName || model.baseModel.name}`),
        model.projectId ? h("p", { class: "muted project-name" }, `Project: ${projectNames[model.projectId] || "—"}`) : null,
        h("p", { class: "badges" }, stateBadge(model, percent), testModelBadge(specs[model.baseModel.name])),
      ),
    );
  });
  const filter = h("select", { id: "project-filter" },
    h("option", { value: "" }, "All projects"),
    projects.projects.map((project) => h("option", { value: project.id }, project.name)),
    h("option", { value: NO_PROJECT }, "No project"));
  filter.value = wanted;
  filter.addEventListener("change", () => {
    location.hash = filter.value ? `#/models?project=${encodeURIComponent(filter.value)}` : "#/models";
  });
  mount(view,
    h("div", { class: "page-head" },
      h("h1", {}, "Custom models"),
      h("div", { class: "actions" },
        h("div", { class: "field inline" }, h("label", { for: "project-filter" }, "Project"), filter),
        h("a", { class: "button primary", href: "#/train" }, "Train a model"))),
    cards.length
      ? h("ul", { class: "gallery", "aria-label": "Custom models" }, cards)
      : h("div", { class: "card empty" }, h("p", {}, wanted ? "No custom models in this project." : "No custom models yet."),
        h("a", { class: "button primary", href: "#/train" }, wanted ? "Train a model" : "Train your first model")),
    h("p", { class: "muted" }, `${listing.total_count} model${listing.total_count === 1 ? "" : "s"}`,
      wanted ? " in this view" : "", listing.total_count > shown.length ? `, the ${shown.length} newest shown` : ""),
  );
  return followTraining(shown, specs);
}

const BUSY = new Set(["queued", "training"]);
const GALLERY_REFRESH_MS = 2000;

// While a model in the gallery is queued or training, its badges follow the job (state and percentage); only
// the badges change, so an open menu or a focused button stays as it is. Returns a function that stops.
function followTraining(models, specs) {
  let timer = null;
  let busy = models.filter((model) => BUSY.has(model.trainingState));
  const tick = async () => {
    try {
      const [jobs, ...fresh] = await Promise.all([
        api("GET", "/v3/jobs?start=0&limit=50&kind=train"),
        ...busy.map((model) => api("GET", `/v3/custom-models/${encodeURIComponent(model.assetId)}`)),
      ]);
      const progress = trainingProgress(jobs.jobs);
      for (const model of fresh) {
        const badges = view.querySelector(`.model-card[data-asset-id="${CSS.escape(model.assetId)}"] .badges`);
        if (badges) mount(badges, stateBadge(model, progress[model.assetId]), testModelBadge(specs[model.baseModel.name]));
      }
      busy = fresh.filter((model) => BUSY.has(model.trainingState));
    } catch {
      // a failed refresh keeps the badges as they were; the next one tries again
    }
    if (busy.length && timer !== null) timer = setTimeout(tick, GALLERY_REFRESH_MS);
  };
  if (busy.length) timer = setTimeout(tick, 0);
  return () => { clearTimeout(timer); timer = null; };
}

async function jobsView(start = 0) {
  setTitle("History");
  const limit = 20;
  const body = await api("GET", `/v3/jobs?start=${start}&limit=${limit}`);
  const rows = body.jobs.map((job) => h("tr", {},
    h("td", { "data-label": "When" }, formatDate(job.createdDate)),
    h("td", { "data-label": "Kind" }, job.kind === "train" ? "Training" : "Generation"),
    h("td", { "data-label": "Model" }, job.customModelId
      ? h("a", { href: `#/models/${encodeURIComponent(job.customModelId)}` }, job.customModelName || "custom model")
      : "base model"),
    h("td", { class: "prompt-cell", "data-label": "Prompt" }, job.prompt),
    h("td", { "data-label": "Status" }, h("span", { class: `badge job-${job.status}` }, job.status),
      job.status === "running" || job.status === "pending" ? ` ${job.progress ?? 0} %` : "",
      job.message ? h("small", { class: "muted block" }, job.message) : null),
    h("td", { "data-label": "Outputs" }, (job.result?.outputs || []).map((output, index) =>
      h("a", { href: output.image.url, download: `ember-${output.seed}`, class: "thumb-link",
        "aria-label": `Download output ${index + 1} (seed ${output.seed})` },
      h("img", { src: output.image.url, alt: `Output seed ${output.seed}`, class: "thumb" })))),
  ));
  const pager = h("div", { class: "pager" },
    h("button", { type: "button", disabled: start === 0, onclick: () => jobsView(Math.max(0, start - limit)) }, "Newer"),
    h("span", { class: "muted" }, `${body.total_count ? start + 1 : 0}–${start + body.jobs.length} of ${body.total_count}`),
    h("button", { type: "button", disabled: start + limit >= body.total_count, onclick: () => jobsView(start + limit) },
      "Older"),
  );
  mount(view,
    h("h1", {}, "History"),
    rows.length
      ? h("div", { class: "table-wrap" }, h("table", { class: "jobs" },
        h("caption", { class: "visually-hidden" }, "Jobs of your organization, newest first"),
        h("thead", {}, h("tr", {}, ["When", "Kind", "Model", "Prompt", "Status", "Outputs"].map((t) =>
          h("th", { scope: "col" }, t)))),
        h("tbody", {}, rows)))
      : h("p", { class: "muted" }, "No jobs yet."),
    pager,
  );
}

async function route() {
  if (leaveView) { leaveView(); leaveView = null; }
  if (!session) { showChrome(false); signInView(); focusView(); return; }
  const path = location.hash.replace(/^#/, "").split("?")[0] || "/models";
  for (const link of document.querySelectorAll("#nav a")) {
    link.toggleAttribute("aria-current", path.startsWith(link.getAttribute("href").slice(1)));
  }
  try {
    const modelMatch = path.match(/^\/models\/([^/]+)$/);
    if (modelMatch) leaveView = await modelView(view, decodeURIComponent(modelMatch[1]));
    else if (path === "/train") leaveView = await trainView(view);
    else if (path === "/jobs") await jobsView();
    else leaveView = await galleryView();
  } catch (problem) {
    setTitle("Something went wrong");
    mount(view, h("div", { class: "card" }, h("h1", {}, "Something went wrong"), h("p", { class: "error" },
      problem.details ? problem.details() : String(problem))));
  }
  focusView();
}

// Keyboard focus goes where the view starts: its first field on a form, else its heading (read out first).
function focusView() {
  const first = view.querySelector("[data-autofocus]");
  if (first) { first.focus({ preventScroll: true }); return; }
  const heading = view.querySelector("h1");
  if (!heading) { view.focus({ preventScroll: true }); return; }
  heading.setAttribute("tabindex", "-1");
  heading.focus({ preventScroll: true });
}

window.addEventListener("hashchange", route);
window.addEventListener("ember:signed-out", () => {
  if (!session) return;
  session = null;
  toast("Your session has ended; sign in again.", "error");
  route();
});
document.getElementById("sign-out").addEventListener("click", async () => {
  await signOut();
  session = null;
  if (location.hash !== "#/signin") location.hash = "#/signin";
  else route();
});

session = await currentSession().catch(() => null);
showChrome(Boolean(session));
route();
