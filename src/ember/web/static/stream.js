// Following a job through its event stream (GET /v3/status/{jobId}/events), read with fetch so the page can
// send its CSRF header (EventSource cannot). Each event is folded into the status body the page already shows;
// a dropped connection resumes with Last-Event-ID, and where the stream cannot be read the page polls instead.

import { api, authHeaders } from "./api.js";

const FINAL = new Set(["succeeded", "failed", "cancelled", "timeout"]);
const STREAM_TRIES = 3;
const POLL_MS = 1000;

// The status after one event: the same shape GET /v3/status/{jobId} answers (the final event is that body).
export function fold(status, type, data) {
  if (type === "status") return data;
  const next = { ...status };
  if (type === "state") {
    next.status = data.status;
    next.progress = data.progress ?? next.progress;
  } else if (type === "progress") {
    next.status = "running";
    next.progress = Math.min(99, Math.floor((100 * data.step) / Math.max(1, data.totalSteps || 1)));
    if (data.loss !== undefined) {
      next.training = { ...(next.training || { samples: [] }), step: data.step, totalSteps: data.totalSteps,
        loss: data.loss, etaSeconds: data.etaSeconds };
    }
  } else if (type === "sample") {
    const training = next.training || { samples: [] };
    next.training = { ...training, samples: [...(training.samples || []), { step: data.step, url: data.url }] };
  }
  return next;
}

// One connection: calls onEvent(type, data, id) per event; resolves when the stream ends, rejects if unreadable.
async function readStream(jobId, lastEventId, onEvent, signal) {
  const headers = { ...authHeaders(), accept: "text/event-stream" };
  if (lastEventId) headers["last-event-id"] = lastEventId;
  const response = await fetch(`/v3/status/${encodeURIComponent(jobId)}/events`,
    { headers, credentials: "same-origin", signal });
  if (!response.ok || !(response.headers.get("content-type") || "").startsWith("text/event-stream")) {
    throw new Error(`The progress stream answered ${response.status}.`);
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const fields = {};
      const data = [];
      for (const line of block.split("\n")) {
        if (!line || line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const name = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (name === "data") data.push(text); else fields[name] = text;
      }
      if (data.length) onEvent(fields.event || "message", JSON.parse(data.join("\n")), fields.id);
    }
  }
}

// Follow a job: onStatus(status, done) at each change; `done` is true once, with the final status body (as
// GET /v3/status/{jobId} answers it). onProblem(error) when a poll fails. Returns a function that stops.
export function followJob(jobId, onStatus, onProblem = () => {}) {
  const controller = new AbortController();
  let status = { jobId, status: "pending", progress: 0 };
  let lastEventId = null;
  let ended = false;
  const show = (next, done) => {
    status = next;
    ended = done;
    if (!controller.signal.aborted) onStatus(status, done);
  };
  const poll = async () => {
    while (!controller.signal.aborted && !ended) {
      try {
        const polled = await api("GET", `/v3/status/${encodeURIComponent(jobId)}`);
        show(polled, FINAL.has(polled.status));
      } catch (problem) {
        onProblem(problem);
      }
      if (!ended) await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  };
  (async () => {
    for (let tries = 0; tries < STREAM_TRIES && !ended && !controller.signal.aborted; tries += 1) {
      try {
        await readStream(jobId, lastEventId, (type, data, id) => {
          if (id) lastEventId = id;
          show(fold(status, type, data), type === "status");
        }, controller.signal);
      } catch {
        if (controller.signal.aborted) return;
      }
    }
    if (!ended) await poll();
  })();
  return () => controller.abort();
}
