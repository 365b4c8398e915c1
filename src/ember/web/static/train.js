// "Train a model": the new-model form, then the draft editor (images, captions, sample prompt, Train).

import { api, ApiError, baseModels, modelPath, uploadImages } from "./api.js";
import { testModelBadge } from "./badges.js";
import { confirmAction, field, h, mount, setTitle, toast } from "./dom.js";

const NEW_PROJECT = "__new__";
const ACCEPTED = "image/png,image/jpeg,image/webp";
// The rule each image-level code stands for, as the training-set summary names it.
const RULES = {
  image_too_small: "Too small for the base model",
  aspect_ratio_out_of_range: "Aspect ratio outside 16:9 … 9:16",
  duplicate_image: "Duplicate of another image",
  caption_missing: "No caption",
  caption_too_short: "Caption too short (under 3 words)",
  caption_too_long: "Caption too long (over 40 words)",
  too_many_images: "Past the image limit",
};

export async function trainView(view) {
  setTitle("Train a model");
  const [specs, projects] = await Promise.all([baseModels(), api("GET", "/v3/projects")]);
  const name = h("input", { type: "text", name: "displayName", required: true, maxlength: 200, "data-autofocus": true });
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
      toast(`Created ${model.displayName}. Now add images.`, "ok");
      // The form is done with: Back from the model goes to where the user came from, not to a form that
      // would make a second draft.
      location.replace(`#/models/${encodeURIComponent(model.assetId)}`);
    } catch (problem) {
      error.textContent = problem instanceof ApiError ? problem.details() : String(problem);
    } finally {
      submit.disabled = false;
    }
  });
  mount(view, form);
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

// The training set at a glance: its score, whether it may train, each broken rule with the files that break it,
// and one button that deletes every image that breaks a rule.
function summaryCard(summary, images, deleteFlagged) {
  if (!summary) return null;
  const byRule = new Map();
  for (const image of images) {
    for (const error of image.errors) {
      const rule = byRule.get(error.code) || { label: RULES[error.code] || error.message, files: [] };
      rule.files.push(image.filename);
      byRule.set(error.code, rule);
    }
  }
  const setWide = summary.blocking.filter((error) => error.loc[0] !== "images" || error.loc.length === 1);
  const flagged = images.filter((image) => image.errors.length);
  const guidance = [
    ...setWide.map((error) => h("li", { dataset: { code: error.type } }, error.msg)),
    ...[...byRule.entries()].map(([code, rule]) => h("li", { dataset: { code } },
      h("strong", {}, `${rule.label}: `), `${rule.files.length} image${rule.files.length === 1 ? "" : "s"} — `,
      rule.files.join(", "))),
    summary.reviewCount ? h("li", { class: "muted", dataset: { code: "review" } },
      `${summary.reviewCount} caption${summary.reviewCount === 1 ? "" : "s"} to review (not blocking).`) : null,
  ];
  return h("div", { class: `summary ${summary.readyToTrain ? "ready" : "blocked"}`, id: "training-summary" },
    h("div", { class: "score" },
      h("meter", { min: 0, max: 100, low: 60, high: 99, optimum: 100, value: summary.score,
        "aria-label": "Training set score" }),
      h("strong", {}, `${summary.score} / 100`),
      h("span", { class: "muted" },
        `${summary.usableCount} of ${summary.imageCount} image${summary.imageCount === 1 ? "" : "s"} usable · ${summary.minImages}–${summary.maxImages} needed`)),
    h("p", { class: "summary-verdict" }, summary.readyToTrain ? "Ready to train." : "Training cannot start yet:"),
    h("ul", { class: "summary-rules" }, guidance),
    flagged.length ? h("div", { class: "actions" }, h("button", { type: "button", class: "danger", id: "delete-flagged",
      onclick: () => deleteFlagged(flagged) }, `Delete ${flagged.length} flagged image${flagged.length === 1 ? "" : "s"}`)) : null);
}

// The draft's images, sample prompt and Train button; `onTrain(jobId)` runs once training is accepted.
// `trainLabel` names the button ("Retrain" for a trained model, whose next training makes a new version).
export async function draftEditor(container, model, onTrain, trainLabel = "Train") {
  const path = modelPath(model.assetId);
  const grid = h("ul", { class: "image-grid", "aria-label": "Training images" });
  const refused = h("ul", { class: "refused", "aria-label": "Files that were not added" });
  const count = h("p", { class: "muted", id: "image-count" });
  const progress = h("progress", { max: 1, value: 0, hidden: true, "aria-label": "Upload progress" });
  const files = h("input", { type: "file", multiple: true, accept: ACCEPTED, id: "image-files" });
  const drop = h("label", { class: "dropzone", for: "image-files" },
    h("strong", {}, "Select images from your computer"), h("span", { class: "muted" }, " or drop them here"),
    h("small", { class: "muted block" }, "JPEG, PNG or WebP · 10–30 images · each up to 50 MB"),
    files); // inside its label, so the drop zone shows keyboard focus (:focus-within)

  const summaryBox = h("div");
  const deleteFlagged = async (flagged) => {
    const sure = await confirmAction(`Delete ${flagged.length} flagged image${flagged.length === 1 ? "" : "s"}?`,
      `These break a training rule: ${flagged.map((image) => image.filename).join(", ")}.`, "Delete them");
    if (!sure) return;
    try {
      for (const image of flagged) await api("DELETE", `${path}/images/${image.id}`);
      toast(`Deleted ${flagged.length} image${flagged.length === 1 ? "" : "s"}.`, "ok");
    } catch (problem) {
      toast(problem.details ? problem.details() : String(problem), "error");
    }
    await reload();
  };
  const renderImages = (images, summary) => {
    const flagged = images.filter((image) => image.errors.length).length;
    const review = images.filter((image) => !image.errors.length && image.warnings?.length).length;
    count.textContent = `${images.length} image${images.length === 1 ? "" : "s"}`
      + (flagged ? ` · ${flagged} need${flagged === 1 ? "s" : ""} attention` : "")
      + (review ? ` · ${review} to review` : "");
    mount(summaryBox, summaryCard(summary, images, deleteFlagged));
    mount(grid, images.map(imageCard));
  };
  const reload = async () => {
    const listing = await api("GET", `${path}/images`);
    renderImages(listing.images, listing.summary);
  };

  function imageCard(image) {
    const caption = h("textarea", { rows: 3, maxlength: 2000, id: `caption-${image.id}` }, image.caption || "");
    caption.value = image.caption || "";
    const save = h("button", { type: "button" }, "Save caption");
    const remove = h("button", { type: "button", class: "danger" }, "Delete");
    const thumb = image.previewUrl;
    const card = h("li", { class: `image-card${image.errors.length ? " flagged" : ""}`, dataset: { imageId: image.id } },
      h("div", { class: "image-card-head" },
        thumb ? h("img", { src: thumb, alt: `Preview of ${image.filename}`, class: "thumb", width: 96, height: 96 })
          : h("div", { class: "thumb placeholder", "aria-hidden": "true" }, "?"),
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
  // A draft's concept word can still change (the server refuses it once the model has trained).
  let conceptField = null;
  if (model.trainingMode === "subject" && model.trainingState === "draft") {
    const concept = h("input", { type: "text", name: "conceptId", maxlength: 200, value: model.conceptId });
    concept.value = model.conceptId;
    concept.addEventListener("change", async () => {
      mount(trainErrors);
      try {
        Object.assign(model, await api("PATCH", path, { conceptId: concept.value.trim() }));
        toast(`The concept word is now “${model.conceptId}”.`, "ok");
        await reload();
      } catch (problem) {
        concept.value = model.conceptId;
        mount(trainErrors, h("p", {}, problem instanceof ApiError ? problem.details() : String(problem)));
      }
    });
    conceptField = field("Concept word", concept, "The word your prompts use for the subject; it can change until the first training.");
  }
  const train = h("button", { type: "button", class: "primary", id: "train-button" }, trainLabel);
  // The prompt is saved as soon as it is changed, so the summary above says at once whether it is right.
  prompt.addEventListener("change", async () => {
    if (prompt.value.trim() === (model.samplePrompt || "")) return;
    mount(trainErrors);
    try {
      Object.assign(model, await api("PATCH", path, { samplePrompt: prompt.value.trim() }));
      await reload();
    } catch (problem) {
      mount(trainErrors, h("p", {}, problem instanceof ApiError ? problem.details() : String(problem)));
    }
  });
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

  // A base model whose weights are not on this server cannot train: said before any image is prepared.
  const spec = (await baseModels())[model.baseModel.name];
  const unavailable = spec?.unavailableReason || (spec && !spec.trainable ? "it can generate but not be trained" : "");
  if (unavailable) train.disabled = true;
  mount(container,
    unavailable ? h("p", { class: "notice error", role: "alert", id: "base-model-unavailable" },
      `${spec.displayName} cannot be trained on this server: ${unavailable}. Ask the server's administrator, or create the model on another base model.`) : null,
    h("section", { class: "card", "aria-labelledby": "images-title" },
      h("h2", { id: "images-title" }, "Step 2 of 3 — training images"),
      h("p", { class: "muted" }, "Each image gets a caption automatically. Fix anything flagged in red: edit the caption, or delete the image."),
      drop, progress, refused, summaryBox, count, grid),
    h("section", { class: "card", "aria-labelledby": "prompt-title" },
      h("h2", { id: "prompt-title" }, "Step 3 of 3 — sample prompt and training"),
      conceptField,
      field("Sample prompt", prompt, promptHint),
      h("details", {}, h("summary", {}, "Advanced"),
        field("Training steps", steps, "Leave empty for the base model's preset.")),
      trainErrors,
      h("div", { class: "actions" }, train)),
  );
  await reload();
}
