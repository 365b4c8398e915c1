// One custom model: its draft editor, live training progress, publishing, sharing, and preview-and-test.

import { api, ApiError, authHeaders, baseModels, modelPath } from "./api.js";
import { stateBadge, testModelBadge } from "./badges.js";
import { lossChart } from "./chart.js";
import { field, formatDuration, h, mount, toast } from "./dom.js";
import { presetLabel, STYLE_PRESETS } from "./presets.js";
import { followJob } from "./stream.js";
import { draftEditor } from "./train.js";

const SIZES = ["1024x1024", "2048x2048", "1152x896", "896x1152", "1344x768", "2304x1792", "1792x2304"];
// Jobs started from this page, by model: the status API needs the job id, and a fresh page finds it in the history.
const startedTraining = new Map();

function problemText(problem) {
  return problem instanceof ApiError ? problem.details() : String(problem);
}

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

function header(model, specs, onChange) {
  const spec = specs[model.baseModel.name];
  const actions = h("div", { class: "actions" });
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
  return h("div", { class: "page-head" },
    h("div", {},
      h("p", { class: "crumbs" }, h("a", { href: "#/models" }, "Custom models"), " / "),
      h("h1", {}, model.displayName),
      h("p", { class: "muted" },
        model.trainingMode === "subject" ? `Subject · concept “${model.conceptId}”` : "Style",
        ` · ${spec?.displayName || model.baseModel.name}`,
        model.version !== "0" ? ` · version ${model.version}` : ""),
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

function shareDialog(model) {
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
      toast("Shared.");
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
  refresh();
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
    cancel.disabled = true;
    try { await api("PUT", `/v3/cancel/${encodeURIComponent(jobId)}`); } catch (problem) { toast(problemText(problem), "error"); }
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
    mount(samples, details.samples.map((sample) => h("li", {},
      h("img", { src: sample.url, alt: `Sample at step ${sample.step ?? "?"}`, class: "thumb" }),
      h("small", { class: "muted" }, sample.step !== undefined ? `step ${sample.step}` : ""))));
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

function outputCard(output, index, prompt) {
  const name = `ember-${output.seed}.${(output.image.url.match(/\.(jpg|jpeg|png|webp)(\?|$)/) || [, "jpg"])[1]}`;
  return h("li", { class: "output" },
    h("img", { src: output.image.url, alt: `Output ${index + 1} for “${prompt}”, seed ${output.seed}` }),
    h("div", { class: "output-meta" },
      h("span", { class: "muted" }, `seed ${output.seed}`),
      h("a", { href: output.image.url, download: name, class: "button small", "aria-label": `Download output ${index + 1} (seed ${output.seed})` }, "Download")));
}

function previewPanel(container, model, spec) {
  const prompt = h("textarea", { rows: 2, maxlength: 1024, id: "preview-prompt", required: true });
  prompt.value = model.samplePrompt || "";
  const variations = h("select", { id: "preview-variations" }, [1, 2, 3, 4].map((n) => h("option", { value: n }, String(n))));
  const seeds = h("input", { type: "text", id: "preview-seeds", inputmode: "numeric", placeholder: "e.g. 7, 8" });
  const presets = h("select", { id: "preview-presets", multiple: true, size: 6 },
    STYLE_PRESETS.map((id) => h("option", { value: id }, presetLabel(id))));
  const strength = h("input", { type: "range", id: "preview-strength", min: 1, max: 100, value: 50 });
  const size = h("select", { id: "preview-size" }, SIZES.map((s) => h("option", { value: s }, s.replace("x", " × "))));
  const generate = h("button", { type: "submit", class: "primary", id: "generate-button" }, "Generate");
  const state = h("p", { class: "muted", role: "status", id: "preview-state" });
  const outputs = h("ul", { class: "outputs", "aria-label": "Generated images" });
  const form = h("form", { class: "preview-form" },
    field("Prompt", prompt, model.trainingMode === "subject" ? `Use “${model.conceptId}” to bring in your subject.` : ""),
    h("div", { class: "row" },
      field("Variations", variations),
      field("Seeds (optional)", seeds, "Comma-separated; the same seed and prompt give the same image."),
      field("Size", size)),
    h("details", {}, h("summary", {}, "Style"),
      field("Style presets", presets, "Hold Ctrl or ⌘ to pick several."),
      field("Style strength", strength)),
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
      const warnings = (status.result.warnings || []).map((w) => w.message);
      state.textContent = [`Done: ${status.result.outputs.length} image(s).`, ...warnings].join(" ");
      outputs.prepend(...status.result.outputs.map((output, index) => outputCard(output, index, body.prompt)));
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
    const chosen = [...presets.selectedOptions].map((option) => option.value);
    if (chosen.length) body.style = { presets: chosen, strength: Number(strength.value) };
    run(body);
  });
  mount(container, h("section", { class: "card", "aria-labelledby": "preview-title" },
    h("h2", { id: "preview-title" }, "Preview and test"),
    spec?.isTestModel ? h("p", { class: "notice" }, "This model is trained on the test base model: its images are noise and are not meaningful.") : null,
    form, state, outputs));
  if (model.samplePrompt) run({ prompt: model.samplePrompt, numVariations: 1, size: { width: 1024, height: 1024 } });
  return () => { stopped = true; };
}

export async function modelView(view, assetId) {
  const specs = await baseModels();
  let model = await api("GET", modelPath(assetId));
  const head = h("div");
  const body = h("div", { class: "stack" });
  let leave = null;
  mount(view, head, body);

  // Publishing changes only the header; the body (and a preview under way) stays as it is.
  const renderHead = (updated) => {
    if (updated) model = updated;
    mount(head, header(model, specs, renderHead));
  };
  const render = async (fresh) => {
    if (leave) { leave(); leave = null; }
    renderHead(fresh);
    const spec = specs[model.baseModel.name];
    const state = model.trainingState;
    if (state === "queued" || state === "training") {
      const jobId = startedTraining.get(assetId) || (await latestTrainingJob(assetId))?.jobId;
      if (!jobId) { mount(body, h("p", { class: "muted" }, "Training is queued.")); return; }
      leave = progressPanel(body, model, jobId, async (status) => {
        startedTraining.delete(assetId);
        if (status.status === "succeeded") toast("Training finished.");
        else toast(`Training ${status.status}: ${status.message || ""}`, "error");
        render(await api("GET", modelPath(assetId)));
      }, () => {
        if (model.trainingState !== "queued") return;
        model.trainingState = "training";
        renderHead();
      });
      return;
    }
    if (state === "ready") {
      const preview = h("div");
      const summary = h("div");
      mount(body, preview, summary);
      leave = previewPanel(preview, model, spec);
      const job = await latestTrainingJob(assetId);
      if (job?.status === "succeeded") {
        const details = trainingDetails(job);
        if (details.history.length || details.samples.length) {
          mount(summary, h("section", { class: "card" }, h("h2", {}, "Last training"),
            details.history.length ? lossChart(details.history) : null,
            h("ul", { class: "samples", "aria-label": "Sample images" }, details.samples.map((sample) => h("li", {},
              h("img", { src: sample.url, alt: `Sample at step ${sample.step ?? "?"}`, class: "thumb" }),
              h("small", { class: "muted" }, `step ${sample.step}`)))),
            h("p", { class: "muted" }, `${details.steps} steps`,
              details.loss !== undefined ? ` · final loss ${Number(details.loss).toFixed(4)}` : "")));
        }
      }
      return;
    }
    const failure = h("div");
    if (state === "failed" || state === "cancelled") {
      const job = await latestTrainingJob(assetId);
      mount(failure, h("p", { class: "notice error", role: "alert" },
        `The last training ${state === "failed" ? "failed" : "was cancelled"}${job?.message ? `: ${job.message}` : "."} Fix what is needed and train again.`));
    }
    const editor = h("div", { class: "stack" });
    mount(body, failure, editor);
    await draftEditor(editor, model, (jobId) => {
      startedTraining.set(assetId, jobId);
      model.trainingState = "queued";
      render();
    });
  };
  await render();
  return () => { if (leave) leave(); };
}
