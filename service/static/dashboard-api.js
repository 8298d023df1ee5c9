// Talking to the API: JSON in and out, failures as ApiError carrying the problem+json body, the
// served OpenAPI document (the one description of what a request may hold), and signing in when
// the server wants tokens.

import { $ } from "./dom.js";

export class ApiError extends Error {
  constructor(status, problem) {
    super(problemText(problem, status));
    this.status = status;
    this.problem = problem;
  }
}

/** The text of a problem+json body: title, detail and each field error on its own line. */
function problemText(problem, status) {
  const head = problem.detail ? `${problem.title}: ${problem.detail}` : problem.title || `HTTP ${status}`;
  return [head, ...(problem.errors || []).map((e) => (e.path ? `${e.path}: ${e.message}` : e.message))].join("\n");
}

/** Call the API; the answer's JSON, or an ApiError (status 0 when the server did not answer at all). */
export async function api(path, { method = "GET", json, body, headers = {} } = {}) {
  const init = { method, headers: { Accept: "application/json", ...headers } };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers["Content-Type"] = "application/json";
  } else if (body !== undefined) {
    init.body = body;
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, { title: "The API did not answer", detail: e.message });
  }
  const type = response.headers.get("Content-Type") || "";
  const data = type.includes("json") ? await response.json().catch(() => null) : null;
  if (response.status === 401) $("#signin").classList.remove("hidden");
  if (!response.ok) throw new ApiError(response.status, data || { title: `${response.status} ${response.statusText}` });
  return data;
}

// --- the OpenAPI document ------------------------------------------------------------------------

let openapi = null; // the pending or finished GET /openapi.json: fetched once, it does not change under the page

/**
 * The JSON schema of an operation's JSON request body in the served OpenAPI document, and of each
 * of its properties, with their $refs followed: as deep as a form built from it needs to look.
 * `path` is written as in the document ("/v1/jobs/{job_id}/trainer"), `method` in lower case.
 */
export async function requestSchema(path, method) {
  openapi ??= api("/openapi.json").catch((e) => {
    openapi = null; // let a later call try again
    throw e;
  });
  const doc = await openapi;
  const body = doc.paths?.[path]?.[method]?.requestBody;
  const schema = resolve(doc, body?.content?.["application/json"]?.schema);
  if (!schema) {
    const detail = `${method.toUpperCase()} ${path}`;
    throw new ApiError(0, { title: "The API description has no such request body", detail });
  }
  const properties = Object.fromEntries(
    Object.entries(schema.properties || {}).map(([name, property]) => [name, resolve(doc, property)]));
  return { ...schema, properties };
}

/** Follow local references ("#/components/schemas/TrainerPatch") to the schema itself. */
function resolve(doc, schema) {
  for (let hops = 0; schema?.$ref && hops < 32; hops++) {
    if (!schema.$ref.startsWith("#/")) return null; // the document only refers within itself
    // A JSON pointer: "/" separates the parts, and "~1" and "~0" stand for "/" and "~" inside one.
    schema = schema.$ref.slice(2).split("/")
      .reduce((node, part) => node?.[part.replaceAll("~1", "/").replaceAll("~0", "~")], doc);
  }
  return schema?.$ref ? null : schema;
}

// --- signing in, when the server wants tokens ----------------------------------------------------

async function showSession() {
  try {
    const who = await api("/v1/whoami");
    $("#who").textContent = who.tokens_required ? `signed in as ${who.principal}` : "";
    $("#signout").classList.toggle("hidden", !who.tokens_required);
  } catch (e) {
    // 401 shows the sign-in form (see api); any other answer means there is nothing to sign in to.
  }
}

/** Trade the token for the API's HttpOnly session cookie, which images and event streams carry too. */
async function signIn(event) {
  event.preventDefault();
  try {
    await api("/v1/session", { method: "POST", json: { token: $("#token").value } });
    location.reload();
  } catch (e) {
    $("#signin-error").textContent = e.problem.detail || e.message;
  }
}

async function signOut() {
  await api("/v1/session", { method: "DELETE" }).catch(() => {});
  location.reload();
}

export function initSession() {
  $("#signin").addEventListener("submit", signIn);
  $("#signout").addEventListener("click", signOut);
  showSession();
}
