// "Train a model": the new-model form, then the draft editor (images, captions, sample prompt, Train).

import { api, ApiError, baseModels, modelPath, uploadImages } from "./api.js";
import { testModelBadge } from "./badges.js";
import { field, h, mount, toast } from "./dom.js";

const NEW_PROJECT = "__new__";
const ACCEPTED = "image/png,image/jpeg,image/webp";
// Thumbnails of files chosen in this page, by file name: the API keeps the images but serves no previews.
const thumbnails = new Map();

export async function trainView(view) {
  const [specs, projects] = await Promise.all([baseModels(), api("GET", "/v3/projects")]);
  const name = h("input", { type: "text", name: "displayName", required: true, maxlength: 200 });
  const subject = h("input", { type: "radio", name: "mode", value: "subject", id: "mode-subject", checked: true });
  const style = h("input", { type: "radio", name: "mode", value: "style", id: "mode-style" });
  const concept = h("input", { type: "text", name: "conceptId", maxlength: 200, pattern: "\\S+" });
  const conceptField = field("Concept word", concept, "One word the prompts will use for your subject, e.g. a product name.");
  // Real base models first: a test model's images mean nothing, so it is never the default choice.
  // Only models whose weights are on this machine are offered; the others are listed with the reason.
  const trainable = Object.values(specs).filter((spec) => spec.trainable)
    .sort((a, b) => Number(a.isTestModel) - Number(b.isTestModel));
  const present = trainable.filter((spec) => !spec.unavailableReason);
  const missing = trainable.filter((spec) => spec.unavailableReason);
  const base = h("select", { name: "baseModel" }, present.map((spec) =>
    h("option", { value: spec.name }, spec.displayName)));
  const baseNote = h("p", { class: "badges base-note" });
  const missingNote = h("ul", { class: "muted missing-models" }, missing.map((spec) =>
    h("li", {}, `${spec.displayName} is not offered: ${spec.unavailableReason}.`)));
  const project = h("select", { name: "project" },
    h("option", { value: "" }, "No project"),
    projects.projects.map((p) => h("option", { value: p.id }, p.name)),
    h("option", { value: NEW_PROJECT }, "New project…"));
  const projectName = h("input", { type: "text", name: "projectName", maxlength: 200 });
  const projectNameField = field("New project name", projectName);
  const error = h("p", { class: "error", role: "alert" });
  const submit = h("button", { type: "submit", class: "primary" }, "Continue: add images");

  const sync = () => {
    conceptField.hidden = !subject.checked;
    concept.required = subject.checked;
    projectNameField.hidden = project.value !== NEW_PROJECT;
    projectName.required = project.value === NEW_PROJECT;
    mount(baseNote, testModelBadge(specs[base.value]));
  };
  for (const control of [subject, style, project, base]) control.addEventListener("change", sync);

  const form = h("form", { class: "card", "aria-labelledby": "train-title" },
    h("h1", { id: "train-title" }, "Train a model"),
    h("p", { class: "muted" }, "Step 1 of 3 — describe the model. Next you add 10–30 images and a sample prompt."),
    field("Model name", name),
    h("fieldset", {}, h("legend", {}, "Training mode"),
      h("label", { class: "choice", for: "mode-subject" }, subject, " Subject — a product, a character, an object"),
      h("label", { class: "choice", for: "mode-style" }, style, " Style — a look to apply to anything")),
    conceptField,
    field("Base model", base), baseNote, missingNote,
    field("Save to project", project),
    projectNameField,
    error,
    h("div", { class: "actions" }, submit),
  );
  sync();
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    error.textContent = "";
    try {
      let projectId = project.value || undefined;
      if (project.value === NEW_PROJECT) projectId = (await api("POST", "/v3/projects", { name: projectName.value })).id;
      const model = await api("POST", "/v3/custom-models", {
        displayName: name.value,
        trainingMode: subject.checked ? "subject" : "style",
        conceptId: subject.checked ? concept.value.trim() : "",
        projectId,
        baseModel: { name: base.value },
      });
      toast(`Created ${model.displayName}. Now add images.`);
      location.hash = `#/models/${encodeURIComponent(model.assetId)}`;
    } catch (problem) {
      error.textContent = problem instanceof ApiError ? problem.details() : String(problem);
    } finally {
      submit.disabled = false;
    }
  });
  mount(view, form);
  name.focus();
  return null;
}

function imageProblems(errors) {
  if (!errors?.length) return null;
  return h("ul", { class: "problems", role: "alert" }, errors.map((e) => h("li", { dataset: { code: e.code } }, e.message)));
}

// Findings that do not block training (a caption to review, a possible copy): said, not alarmed.
function imageWarnings(warnings) {
  if (!warnings?.length) return null;
  return h("ul", { class: "warnings" }, warnings.map((w) => h("li", { dataset: { code: w.code } }, w.message)));
}

// The draft's images, sample prompt and Train button; `onTrain(jobId)` runs once training is accepted.
export async function draftEditor(container, model, onTrain) {
  const path = modelPath(model.assetId);
  const grid = h("ul", { class: "image-grid", "aria-label": "Training images" });
  const refused = h("ul", { class: "refused", "aria-label": "Files that were not added" });
  const count = h("p", { class: "muted", id: "image-count" });
  const progress = h("progress", { max: 1, value: 0, hidden: true, "aria-label": "Upload progress" });
  const files = h("input", { type: "file", multiple: true, accept: ACCEPTED, id: "image-files" });
  const drop = h("label", { class: "dropzone", for: "image-files" },
    h("strong", {}, "Select images from your computer"), h("span", { class: "muted" }, " or drop them here"),
    h("small", { class: "muted block" }, "JPEG, PNG or WebP · 10–30 images · each up to 50 MB"));

  const renderImages = (images) => {
    const flagged = images.filter((image) => image.errors.length).length;
    const review = images.filter((image) => !image.errors.length && image.warnings?.length).length;
    count.textContent = `${images.length} image${images.length === 1 ? "" : "s"}`
      + (flagged ? ` · ${flagged} need${flagged === 1 ? "s" : ""} attention` : "")
      + (review ? ` · ${review} to review` : "");
    mount(grid, images.map(imageCard));
  };
  const reload = async () => renderImages((await api("GET", `${path}/images`)).images);

  function imageCard(image) {
    const caption = h("textarea", { rows: 3, maxlength: 2000, id: `caption-${image.id}` }, image.caption || "");
    caption.value = image.caption || "";
    const save = h("button", { type: "button" }, "Save caption");
    const remove = h("button", { type: "button", class: "danger" }, "Delete");
    const thumb = thumbnails.get(image.filename);
    const card = h("li", { class: `image-card${image.errors.length ? " flagged" : ""}`, dataset: { imageId: image.id } },
      h("div", { class: "image-card-head" },
        thumb ? h("img", { src: thumb, alt: image.filename, class: "thumb" }) : h("div", { class: "thumb placeholder", "aria-hidden": "true" }, "?"),
        h("p", { class: "filename" }, image.filename,
          image.width ? h("small", { class: "muted block" }, `${image.width} × ${image.height}`) : null)),
      h("label", { for: caption.id }, `Caption for ${image.filename}`),
      caption,
      imageProblems(image.errors),
      imageWarnings(image.warnings),
      h("div", { class: "actions" }, save, remove),
    );
    save.addEventListener("click", async () => {
      save.disabled = true;
      try {
        const updated = await api("PATCH", `${path}/images/${image.id}`, { caption: caption.value });
        await reload();
        toast(updated.errors.length ? "Caption saved; it still needs attention." : "Caption saved.");
      } catch (problem) {
        toast(problem.details ? problem.details() : String(problem), "error");
        save.disabled = false;
      }
    });
    remove.addEventListener("click", async () => {
      remove.disabled = true;
      try {
        await api("DELETE", `${path}/images/${image.id}`);
        await reload();
      } catch (problem) {
        toast(problem.details ? problem.details() : String(problem), "error");
        remove.disabled = false;
      }
    });
    return card;
  }

  const upload = async (chosen) => {
    if (!chosen.length) return;
    for (const file of chosen) thumbnails.set(file.name, URL.createObjectURL(file));
    progress.hidden = false;
    progress.value = 0;
    try {
      const body = await uploadImages(model.assetId, chosen, (fraction) => { progress.value = fraction; });
      const rejected = body.images.filter((image) => !image.stored);
      mount(refused, rejected.map((image) => h("li", { class: "flagged" },
        h("strong", {}, image.filename), imageProblems(image.errors),
        h("button", { type: "button", class: "link", onclick: (event) => event.target.closest("li").remove() }, "Dismiss"))));
      await reload();
    } catch (problem) {
      toast(problem.details ? problem.details() : String(problem), "error");
    } finally {
      progress.hidden = true;
      files.value = "";
    }
  };
  files.addEventListener("change", () => upload([...files.files]));
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    upload([...event.dataTransfer.files]);
  });

  const prompt = h("input", { type: "text", name: "samplePrompt", maxlength: 1024, value: model.samplePrompt || "" });
  prompt.value = model.samplePrompt || "";
  const promptHint = model.trainingMode === "subject"
    ? `Must contain the concept word “${model.conceptId}”, e.g. “a photo of ${model.conceptId} on a desk”.`
    : "A prompt that shows off the style.";
  const steps = h("input", { type: "number", name: "steps", min: 1, max: 20000, inputmode: "numeric" });
  const trainErrors = h("div", { class: "error", role: "alert" });
  const train = h("button", { type: "button", class: "primary", id: "train-button" }, "Train");
  train.addEventListener("click", async () => {
    train.disabled = true;
    mount(trainErrors);
    try {
      if (prompt.value.trim() !== (model.samplePrompt || "")) {
        Object.assign(model, await api("PATCH", path, { samplePrompt: prompt.value.trim() }));
      }
      const overrides = steps.value ? { steps: Number(steps.value) } : {};
      const accepted = await api("POST", `${path}/train-async`, overrides);
      onTrain(accepted.jobId);
    } catch (problem) {
      const problems = problem instanceof ApiError && problem.validationErrors.length
        ? problem.validationErrors.map((e) => h("li", {}, e.msg)) : [h("li", {}, problem.message || String(problem))];
      mount(trainErrors, h("p", {}, "Training cannot start yet:"), h("ul", {}, problems));
      await reload();
    } finally {
      train.disabled = false;
    }
  });

  mount(container,
    h("section", { class: "card", "aria-labelledby": "images-title" },
      h("h2", { id: "images-title" }, "Step 2 of 3 — training images"),
      h("p", { class: "muted" }, "Each image gets a caption automatically. Fix anything flagged in red: edit the caption, or delete the image."),
      drop, files, progress, refused, count, grid),
    h("section", { class: "card", "aria-labelledby": "prompt-title" },
      h("h2", { id: "prompt-title" }, "Step 3 of 3 — sample prompt and training"),
      field("Sample prompt", prompt, promptHint),
      h("details", {}, h("summary", {}, "Advanced"),
        field("Training steps", steps, "Leave empty for the base model's preset.")),
      trainErrors,
      h("div", { class: "actions" }, train)),
  );
  await reload();
}
