// The page's calls to Ember's HTTP API, authorized by the session cookie plus the session's CSRF header.

const CSRF_HEADER = "x-ember-csrf";
let csrfToken = "";

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.message || `The server answered ${status}.`);
    this.status = status;
    this.errorCode = body?.error_code || "";
    this.validationErrors = body?.validation_errors || [];
  }

  // Every problem as one line a person can read.
  details() {
    if (!this.validationErrors.length) return this.message;
    return this.validationErrors.map((e) => e.msg).join(" ");
  }
}

async function answer(response) {
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = { message: text }; }
  if (!response.ok) {
    if (response.status === 401) window.dispatchEvent(new CustomEvent("ember:signed-out"));
    throw new ApiError(response.status, body);
  }
  return body;
}

export async function api(method, path, body, extraHeaders = {}) {
  const headers = { ...extraHeaders, [CSRF_HEADER]: csrfToken };
  const init = { method, headers, credentials: "same-origin" };
  if (body !== undefined) {
    headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  return answer(await fetch(path, init));
}

// For requests made without `api` (binary downloads).
export const authHeaders = () => ({ [CSRF_HEADER]: csrfToken });

export async function currentSession() {
  const response = await fetch("/ui/session", { credentials: "same-origin" });
  if (response.status === 401) return null;
  const session = await answer(response);
  csrfToken = session.csrfToken;
  return session;
}

export async function signIn(email, password) {
  const form = new URLSearchParams({ email, password });
  const response = await fetch("/ui/session", { method: "POST", body: form, credentials: "same-origin" });
  if (response.status === 401) throw new ApiError(401, await response.json());
  const session = await answer(response);
  csrfToken = session.csrfToken;
  return session;
}

export async function signOut() {
  await fetch("/ui/session", { method: "DELETE", credentials: "same-origin" });
  csrfToken = "";
}

// Multipart upload of training images, field `files` repeated; XHR because fetch reports no upload progress.
export function uploadImages(assetId, files, onProgress) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    for (const file of files) form.append("files", file, file.name);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/v3/custom-models/${encodeURIComponent(assetId)}/images`);
    xhr.setRequestHeader(CSRF_HEADER, csrfToken);
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    xhr.addEventListener("load", () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch { body = { message: xhr.responseText }; }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body);
      else reject(new ApiError(xhr.status, body));
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, { message: "The upload failed: network error." })));
    xhr.send(form);
  });
}

export const modelPath = (assetId) => `/v3/custom-models/${encodeURIComponent(assetId)}`;

let baseModelsCache = null;

export async function baseModels() {
  if (!baseModelsCache) {
    const body = await api("GET", "/ui/base-models");
    baseModelsCache = Object.fromEntries(body.baseModels.map((model) => [model.name, model]));
  }
  return baseModelsCache;
}
