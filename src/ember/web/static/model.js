// One custom model: its draft editor, live training progress, publishing, sharing, and preview-and-test.

import { deleteModel, problemText, renameModel, shareDialog } from "./actions.js";
import { api, ApiError, authHeaders, baseModels, modelPath } from "./api.js";
import { stateBadge, testModelBadge } from "./badges.js";
import { lossChart } from "./chart.js";
import { confirmAction, field, formatDate, formatDuration, h, mount, setTitle, toast } from "./dom.js";
import { presetLabel, STYLE_PRESETS } from "./presets.js";
import { followJob } from "./stream.js";
import { draftEditor } from "./train.js";

const SIZES = ["1024x1024", "2048x2048", "1152x896", "896x1152", "1344x768", "2304x1792", "1792x2304"];
// Jobs started from this page, by model: the status API needs the job id, and a fresh page finds it in the history.
const startedTraining = new Map();

async function latestTrainingJob(assetId) {
  const body = await api("GET", `/v3/jobs?start=0&limit=1&kind=train&customModelId=${encodeURIComponent(assetId)}`);
  return body.jobs[0] || null;
}

// The `training` object of a training job's status: step, totalSteps, loss, etaSeconds, losses, samples.
export function trainingDetails(status) {
  const source = status.training || {};
  return {
    step: source.step,
    steps: source.totalSteps,
    loss: source.loss ?? undefined,
    eta: source.etaSeconds ?? undefined,
    samples: (source.samples || []).filter((sample) => sample.url),
    history: (source.losses || []).map((point) => [point.step, point.loss]),
  };
}

function header(model, specs, onChange, project) {
  const spec = specs[model.baseModel.name];
  const actions = h("div", { class: "actions" });
  const training = model.trainingState === "queued" || model.trainingState === "training";
  if (model.trainingState === "ready") {
    const published = model.publishedState === "published";
    const publish = h("button", { type: "button", class: published ? "" : "primary", id: "publish-button" },
      published ? "Unpublish" : "Publish");
    publish.addEventListener("click", async () => {
      publish.disabled = true;
      const path = `${modelPath(model.assetId)}/${published ? "unpublish" : "publish"}`;
      try {
        onChange(await api("POST", path));
        toast(published ? "Unpublished." : "Published: your organization and shares can use it now.");
      } catch (problem) {
        // A model whose check after training failed is published only once its owner confirms (force=true).
        if (problem instanceof ApiError && problem.errorCode === "model_check_failed"
            && window.confirm(`${problem.message}\n\nPublish it anyway?`)) {
          try {
            onChange(await api("POST", `${path}?force=true`));
            toast("Published although its check failed: your organization and shares can use it now.");
            return;
          } catch (again) {
            problem = again;
          }
        }
        toast(problemText(problem), "error");
        publish.disabled = false;
      }
    });
    const share = h("button", { type: "button", id: "share-button" }, "Share");
    share.addEventListener("click", () => shareDialog(model));
    const weights = h("a", { class: "button", href: `${modelPath(model.assetId)}/weights?format=diffusers`,
      download: `${model.displayName}.safetensors`, id: "weights-link" }, "Download LoRA");
    weights.addEventListener("click", async (event) => {
      // The weights need the CSRF header, which a plain link cannot send: fetch, then save the blob.
      event.preventDefault();
      try {
        const response = await fetch(weights.href, { headers: authHeaders() });
        if (!response.ok) throw new Error(`The download failed (${response.status}).`);
        const link = h("a", { href: URL.createObjectURL(await response.blob()), download: `${model.displayName}.safetensors` });
        link.click();
      } catch (problem) {
        toast(problemText(problem), "error");
      }
    });
    actions.append(publish, share, weights);
  }
  const rename = h("button", { type: "button", id: "rename-button" }, "Rename");
  rename.addEventListener("click", async () => {
    const renamed = await renameModel(model);
    if (renamed) onChange(renamed);
  });
  // A model that trains cannot be deleted (its worker reads the files): the button says so instead of failing.
  const remove = h("button", { type: "button", class: "danger", id: "delete-button", disabled: training,
    title: training ? "Cancel the training first" : undefined }, "Delete");
  remove.addEventListener("click", async () => {
    if (await deleteModel(model)) location.replace("#/models");
  });
  actions.append(rename, remove);
  return h("div", { class: "page-head" },
    h("div", {},
      h("p", { class: "crumbs" }, h("a", { href: "#/models" }, "Custom models"), " / "),
      h("h1", {}, model.displayName),
      h("p", { class: "muted" },
        model.trainingMode === "subject" ? `Subject · concept “${model.conceptId}”` : "Style",
        ` · ${spec?.displayName || model.baseModel.name}`,
        model.version !== "0" ? ` · version ${model.version}` : "",
        project ? [" · project ", h("a", { href: `#/models?project=${encodeURIComponent(project.id)}` }, project.name)] : ""),
      h("p", { class: "badges" }, stateBadge(model), testModelBadge(spec)),
      checkSummary(model)),
    actions);
}

// What Ember measured after training (the `check` of the current version), and its samples of the sample prompt.
function checkSummary(model) {
  const check = model.check;
  if (!check) return null;
  const kind = check.status === "passed" ? "ok" : check.status === "failed" ? "error" : "muted";
  return h("div", { class: "model-check", id: "model-check" },
    h("p", { class: kind }, check.status === "failed" ? "Check failed — " : "Check: ", check.summary),
    check.samples.length ? h("p", { class: "samples" }, ...check.samples.map((url, index) =>
      h("img", { src: url, alt: `Sample ${index + 1} of “${check.prompt}”`, width: 64, height: 64 }))) : null);
}

function progressPanel(container, model, jobId, onDone, onRunning) {
  const bar = h("progress", { max: 100, value: 0, "aria-label": "Training progress", id: "training-progress" });
  const percent = h("span", { class: "percent" }, "0 %");
  const stepLine = h("p", { class: "muted", id: "training-step" }, "Waiting for a worker…");
  const chartBox = h("div", { class: "chart-box" });
  const samples = h("ul", { class: "samples", "aria-label": "Sample images" });
  const cancel = h("button", { type: "button", class: "danger" }, "Cancel training");
  const points = new Map();
  cancel.addEventListener("click", async () => {
    const sure = await confirmAction("Cancel training?",
      "The steps done so far are lost; the images and captions stay, and you can train again.", "Cancel training",
      "Keep training");
    if (!sure) return;
    cancel.disabled = true;
    stepLine.textContent = "Cancelling…";
    try {
      await api("PUT", `/v3/cancel/${encodeURIComponent(jobId)}`);
    } catch (problem) {
      toast(problemText(problem), "error");
      cancel.disabled = false;
    }
  });
  mount(container, h("section", { class: "card", "aria-labelledby": "progress-title" },
    h("h2", { id: "progress-title" }, "Training"),
    h("div", { class: "progress-row" }, bar, percent), stepLine,
    h("h3", {}, "Loss"), chartBox,
    h("h3", {}, "Samples"), samples,
    h("div", { class: "actions" }, cancel)));
  chartBox.append(lossChart([]));

  // The job's event stream drives the panel (polling only where the stream cannot be read). Every event adds
  // its loss to the chart; drawing waits for the next frame, so a replayed stream draws once, not per step.
  let latest = null;
  const draw = () => {
    const status = latest;
    latest = null;
    if (status === null) return;
    const details = trainingDetails(status);
    const progress = status.status === "succeeded" ? 100 : status.progress ?? 0;
    bar.value = progress;
    percent.textContent = `${progress} %`;
    stepLine.textContent = [
      status.status === "pending" ? "Queued — waiting for a worker" : status.status,
      details.step !== undefined ? `step ${details.step}${details.steps ? ` of ${details.steps}` : ""}` : "",
      details.loss !== undefined ? `loss ${Number(details.loss).toFixed(4)}` : "",
      details.eta >= 1 ? `about ${formatDuration(details.eta)} left` : "",
    ].filter(Boolean).join(" · ");
    chartBox.replaceChildren(lossChart([...points.entries()].sort((a, b) => a[0] - b[0])));
    mount(samples, details.samples.length ? details.samples.map((sample) => sampleItem(sample, model.samplePrompt))
      : h("li", { class: "muted" }, "None yet: sample images of the prompt appear as training goes."));
  };
  const render = (status, done) => {
    const details = trainingDetails(status);
    for (const [step, loss] of details.history) points.set(step, loss);
    if (details.step !== undefined && details.loss !== undefined) points.set(details.step, details.loss);
    if (latest === null && !done) requestAnimationFrame(draw);
    latest = status;
    if (status.status === "running") onRunning();
    if (done) {
      draw();
      onDone(status);
    }
  };
  return followJob(jobId, render, (problem) => { stepLine.textContent = problemText(problem); });
}

// A training sample: large enough to judge, labelled with its step and prompt, and opened full size on click.
function sampleItem(sample, prompt) {
  const step = sample.step !== undefined ? `step ${sample.step}` : "";
  return h("li", { class: "sample" },
    h("a", { href: sample.url, target: "_blank", rel: "noopener", "aria-label": `Open the sample at ${step || "this step"} full size` },
      h("img", { src: sample.url, alt: `Sample at ${step || "an unknown step"} for “${prompt}”` })),
    h("small", { class: "muted" }, step), h("small", { class: "sample-prompt" }, prompt));
}

function outputCard(output, index, prompt) {
  const name = `ember-${output.seed}.${(output.image.url.match(/\.(jpg|jpeg|png|webp)(\?|$)/) || [, "jpg"])[1]}`;
  return h("li", { class: "output" },
    h("a", { href: output.image.url, target: "_blank", rel: "noopener", "aria-label": `Open output ${index + 1} full size` },
      h("img", { src: output.image.url, alt: `Output ${index + 1} for “${prompt}”, seed ${output.seed}` })),
    h("p", { class: "output-prompt" }, prompt),
    h("div", { class: "output-meta" },
      h("span", { class: "muted" }, `seed ${output.seed}`),
      h("a", { href: output.image.url, download: name, class: "button small", "aria-label": `Download output ${index + 1} (seed ${output.seed})` }, "Download")));
}

// The style presets as checkboxes with a filter box: no Ctrl-click list of 152 entries.
function presetPicker() {
  const search = h("input", { type: "search", id: "preset-search", placeholder: "Filter styles, e.g. watercolor",
    "aria-controls": "preset-list" });
  const boxes = STYLE_PRESETS.map((id) => {
    const box = h("input", { type: "checkbox", value: id, id: `preset-${id}` });
    return h("li", { dataset: { preset: id } }, h("label", { for: box.id }, box, ` ${presetLabel(id)}`));
  });
  const chosen = h("p", { class: "muted", "aria-live": "polite" });
  const list = h("ul", { class: "preset-list", id: "preset-list", "aria-label": "Style presets" }, boxes);
  const selected = () => boxes.map((item) => item.querySelector("input")).filter((box) => box.checked).map((box) => box.value);
  list.addEventListener("change", () => {
    const picked = selected();
    chosen.textContent = picked.length ? `Chosen: ${picked.map(presetLabel).join(", ")}` : "";
  });
  search.addEventListener("input", () => {
    const words = search.value.trim().toLowerCase();
    for (const item of boxes) item.hidden = Boolean(words) && !presetLabel(item.dataset.preset).toLowerCase().includes(words);
  });
  return { element: h("div", {}, field("Find a style", search), list, chosen), selected };
}

// `onGenerated` runs after each finished generation (the page's history shows the new job).
function previewPanel(container, model, spec, onGenerated = () => {}) {
  const prompt = h("textarea", { rows: 2, maxlength: 1024, id: "preview-prompt", required: true });
  prompt.value = model.samplePrompt || "";
  const variations = h("select", { id: "preview-variations" }, [1, 2, 3, 4].map((n) => h("option", { value: n }, String(n))));
  const seeds = h("input", { type: "text", id: "preview-seeds", inputmode: "numeric", placeholder: "e.g. 7, 8" });
  const presets = presetPicker();
  const strength = h("input", { type: "range", id: "preview-strength", min: 1, max: 100, value: 50 });
  const strengthValue = h("output", { for: "preview-strength", id: "strength-value" }, "50");
  strength.addEventListener("input", () => { strengthValue.textContent = strength.value; });
  const size = h("select", { id: "preview-size" }, SIZES.map((s) => h("option", { value: s }, s.replace("x", " × "))));
  const generate = h("button", { type: "submit", class: "primary", id: "generate-button" }, "Generate");
  const state = h("p", { class: "muted", role: "status", id: "preview-state" });
  const notes = h("ul", { class: "preview-notes", "aria-label": "Warnings" });
  const outputs = h("ul", { class: "outputs", "aria-label": "Generated images" });
  // Seeds decide how many images come back: the variations choice is off while seeds are given, and says so.
  const variationsField = field("Variations", variations, "One image per seed when seeds are given.");
  const syncSeeds = () => { variations.disabled = Boolean(seeds.value.trim()); };
  seeds.addEventListener("input", syncSeeds);
  const form = h("form", { class: "preview-form" },
    field("Prompt", prompt, model.trainingMode === "subject" ? `Use “${model.conceptId}” to bring in your subject.` : ""),
    h("div", { class: "row" },
      variationsField,
      field("Seeds (optional)", seeds, "Comma-separated; the same seed and prompt give the same image."),
      field("Size", size)),
    h("details", {}, h("summary", {}, "Style"),
      presets.element,
      h("div", { class: "field" }, h("label", { for: "preview-strength" }, "Style strength"),
        h("div", { class: "range-row" }, strength, strengthValue))),
    h("div", { class: "actions" }, generate));
  let stopped = false;

  const run = async (body) => {
    generate.disabled = true;
    state.textContent = "Generating…";
    try {
      const accepted = await api("POST", "/v3/images/generate-async", { ...body, customModelId: model.assetId },
        { "x-model-version": "image3_custom", "x-accept-mimetype": "image/png" });
      const status = await new Promise((resolve) => {
        const stop = followJob(accepted.jobId, (update, done) => {
          if (stopped) { stop(); return; }
          state.textContent = `Generating… ${update.progress ?? 0} %`;
          if (done) resolve(update);
        });
      });
      if (stopped) return;
      if (status.status !== "succeeded") throw new Error(status.message || `The job ended as ${status.status}.`);
      state.textContent = `Done: ${status.result.outputs.length} image(s) for “${body.prompt}”.`;
      // Warnings add up, newest first, each with the prompt it came from: none replaces another.
      for (const warning of status.result.warnings || []) {
        notes.prepend(h("li", {}, `${warning.message} (“${body.prompt}”)`));
      }
      outputs.prepend(...status.result.outputs.map((output, index) => outputCard(output, index, body.prompt)));
      onGenerated();
    } catch (problem) {
      state.textContent = problemText(problem);
    } finally {
      generate.disabled = false;
    }
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const [width, height] = size.value.split("x").map(Number);
    const body = { prompt: prompt.value, size: { width, height } };
    const seedList = seeds.value.split(/[\s,]+/).filter(Boolean).map(Number);
    if (seedList.some((seed) => !Number.isInteger(seed) || seed < 0)) {
      state.textContent = "Seeds must be whole numbers of 0 or more.";
      return;
    }
    if (seedList.length) body.seeds = seedList;
    else body.numVariations = Number(variations.value);
    const chosen = presets.selected();
    if (chosen.length) body.style = { presets: chosen, strength: Number(strength.value) };
    run(body);
  });
  // Nothing is generated until the user asks: every job costs compute, and History shows only what was asked for.
  mount(container, h("section", { class: "card", "aria-labelledby": "preview-title" },
    h("h2", { id: "preview-title" }, "Preview and test"),
    spec?.isTestModel ? h("p", { class: "notice" }, "This model is trained on the test base model: its images are noise and are not meaningful.") : null,
    form, state, notes, outputs));
  return () => { stopped = true; };
}

// This model's jobs, newest first: what was trained and generated with it, by whom it was asked being the org.
async function modelHistory(container, assetId) {
  const body = await api("GET", `/v3/jobs?start=0&limit=20&customModelId=${encodeURIComponent(assetId)}`);
  mount(container, h("section", { class: "card", "aria-labelledby": "model-history-title" },
    h("h2", { id: "model-history-title" }, "History of this model"),
    body.jobs.length ? h("ul", { class: "model-history" }, body.jobs.map((job) => h("li", {},
      h("span", { class: `badge job-${job.status}` }, job.status),
      h("span", {}, job.kind === "train" ? "Training" : "Generation", job.prompt ? ` · “${job.prompt}”` : ""),
      h("small", { class: "muted" }, formatDate(job.createdDate)),
      h("span", { class: "history-outputs" }, (job.result?.outputs || []).map((output) =>
        h("a", { href: output.image.url, target: "_blank", rel: "noopener", "aria-label": `Open output seed ${output.seed}` },
          h("img", { src: output.image.url, alt: `Output seed ${output.seed}`, class: "thumb small-thumb" }))))))) 
      : h("p", { class: "muted" }, "No jobs yet."),
    body.total_count > body.jobs.length ? h("p", {}, h("a", { href: "#/jobs" }, `All ${body.total_count} jobs in History`)) : null));
}

// A job's message without the "Training failed:" its reason may already start with.
function reasonOf(job) {
  return (job?.message || "").replace(/^(Training failed:\s*)+/i, "").trim();
}

export async function modelView(view, assetId) {
  const [specs, projects] = await Promise.all([baseModels(), api("GET", "/v3/projects").catch(() => ({ projects: [] }))]);
  let model = await api("GET", modelPath(assetId));
  const head = h("div");
  const body = h("div", { class: "stack" });
  let leave = null;
  mount(view, head, body);

  // Publishing and renaming change only the header; the body (and a preview under way) stays as it is.
  const renderHead = (updated) => {
    if (updated) model = updated;
    setTitle(model.displayName);
    const project = projects.projects.find((candidate) => candidate.id === model.projectId);
    mount(head, header(model, specs, renderHead, project));
  };
  const render = async (fresh) => {
    if (leave) { leave(); leave = null; }
    renderHead(fresh);
    const spec = specs[model.baseModel.name];
    const state = model.trainingState;
    const history = h("div");
    if (state === "queued" || state === "training") {
      const jobId = startedTraining.get(assetId) || (await latestTrainingJob(assetId))?.jobId;
      if (!jobId) { mount(body, h("p", { class: "muted" }, "Training is queued.")); return; }
      leave = progressPanel(body, model, jobId, async (status) => {
        startedTraining.delete(assetId);
        if (status.status === "succeeded") toast("Training finished.", "ok");
        else if (status.status === "cancelled") toast("Training cancelled. Your images and captions are kept.");
        else toast(`Training ${status.status}: see the reason on the page.`, "error");
        render(await api("GET", modelPath(assetId)));
      }, () => {
        if (model.trainingState !== "queued") return;
        model.trainingState = "training";
        renderHead();
      });
      return;
    }
    const onTrain = (jobId) => {
      startedTraining.set(assetId, jobId);
      model.trainingState = "queued";
      render();
    };
    if (state === "ready") {
      const preview = h("div");
      const summary = h("div");
      const editor = h("div", { class: "stack" });
      const trainingSet = h("details", { class: "card training-set", id: "training-set" },
        h("summary", {}, h("h2", { class: "inline-heading" }, "Training set and retraining")),
        h("p", { class: "muted" }, `Change images or captions, then Retrain: the model gets version ${Number(model.version) + 1}, and version ${model.version} stays in use until it is ready.`),
        editor);
      mount(body, preview, summary, trainingSet, history);
      leave = previewPanel(preview, model, spec, () => modelHistory(history, assetId).catch(() => {}));
      const job = await latestTrainingJob(assetId);
      if (job?.status === "succeeded") {
        const details = trainingDetails(job);
        if (details.history.length || details.samples.length) {
          mount(summary, h("section", { class: "card" }, h("h2", {}, "Last training"),
            details.history.length ? lossChart(details.history) : null,
            h("ul", { class: "samples", "aria-label": "Sample images" },
              details.samples.map((sample) => sampleItem(sample, model.samplePrompt))),
            h("p", { class: "muted" }, `${details.steps} steps`,
              details.loss !== undefined ? ` · final loss ${Number(details.loss).toFixed(4)}` : "")));
        }
      }
      // A model shared with the user's organization as "user" cannot be edited: its training set stays closed.
      const editable = draftEditor(editor, model, onTrain, "Retrain").catch(() => trainingSet.remove());
      await Promise.all([editable, modelHistory(history, assetId)]);
      return;
    }
    const failure = h("div");
    if (state === "failed" || state === "cancelled") {
      const job = await latestTrainingJob(assetId);
      const reason = reasonOf(job);
      mount(failure, state === "failed"
        ? h("p", { class: "notice error", role: "alert" },
          `The last training failed${reason ? `: ${reason}` : "."} Fix what is needed and train again.`)
        : h("p", { class: "notice", role: "status" }, "The last training was cancelled. Your images and captions are kept: train again when you are ready."));
    }
    const editor = h("div", { class: "stack" });
    mount(body, failure, editor, history);
    await Promise.all([draftEditor(editor, model, onTrain, state === "draft" ? "Train" : "Train again"),
      modelHistory(history, assetId)]);
  };
  await render();
  return () => { if (leave) leave(); };
}
