"use strict";
let doc = {};
const METHODS = ["get", "post", "put", "patch", "delete"];
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
const refName = (ref) => ref.split("/").pop();
const oneLine = (text) => (text || "").replace(/\s+/g, " ").trim();
const firstSentence = (text) => oneLine(text).split(/(?<=\.) /)[0];
// A variant that names a type (not just `required: [...]` alternatives of one object).
const isTyped = (p) => !!(p.$ref || p.type || p.const !== undefined || p.properties || p.allOf);

function lookup(ref) {
  let node = doc;
  for (const part of ref.replace(/^#\//, "").split("/")) node = node[part.replace(/~1/g, "/").replace(/~0/g, "~")];
  return node;
}
const deref = (obj) => { while (obj && obj.$ref) obj = lookup(obj.$ref); return obj || {}; };

function typeOf(s) {
  if (!s || typeof s !== "object") return "any";
  if (s.$ref) return `<a href="#schema-${esc(refName(s.$ref))}">${esc(refName(s.$ref))}</a>`;
  if (s.const !== undefined) return `<span class="type">${esc(JSON.stringify(s.const))}</span>`;
  for (const key of ["oneOf", "anyOf"]) {
    const typed = (s[key] || []).filter(isTyped);
    if (typed.length) return typed.map(typeOf).join(key === "oneOf" ? " <span class=muted>xor</span> " : " | ");
  }
  if (s.allOf) return s.allOf.filter((p) => p.$ref || p.type).map(typeOf).join(" &amp; ") || "object";
  let t = Array.isArray(s.type) ? s.type.join(" | ") : (s.type || (s.properties ? "object" : "any"));
  if (t === "array" && s.items) return `array of ${typeOf(s.items)}`;
  return `<span class="type">${esc(t)}</span>`;
}

function constraints(s) {
  const out = [];
  if (s.enum) out.push("one of " + s.enum.map((v) => `<code>${esc(JSON.stringify(v))}</code>`).join(", "));
  const bounds = [["minimum", "&ge;"], ["exclusiveMinimum", "&gt;"], ["maximum", "&le;"], ["exclusiveMaximum", "&lt;"],
                  ["minLength", "length &ge;"], ["maxLength", "length &le;"], ["minItems", "items &ge;"],
                  ["maxItems", "items &le;"], ["minProperties", "fields &ge;"]];
  for (const [key, sign] of bounds) if (s[key] !== undefined) out.push(`${sign} ${esc(s[key])}`);
  if (s.pattern) out.push(`pattern <code>${esc(s.pattern)}</code>`);
  if (s.default !== undefined) out.push(`default <code>${esc(JSON.stringify(s.default))}</code>`);
  if (s.additionalProperties === false) out.push("no other fields");
  return out.join("; ");
}

// Properties of a schema, merged over allOf parts; each part's required list counts.
function collect(s, acc = {props: {}, required: new Set(), notes: []}, depth = 0) {
  if (!s || typeof s !== "object" || depth > 5) return acc;
  if (s.$ref) {  // a schema this one includes (allOf): its fields are this one's too
    acc.notes.push("includes " + typeOf(s));
    return collect(deref(s), acc, depth + 1);
  }
  for (const [name, p] of Object.entries(s.properties || {})) acc.props[name] = {...(acc.props[name] || {}), ...p};
  (s.required || []).forEach((r) => acc.required.add(r));
  (s.allOf || []).forEach((part) => collect(part, acc, depth + 1));
  for (const key of ["oneOf", "anyOf"]) {
    if (s[key] && s[key].some(isTyped)) acc.notes.push((key === "oneOf" ? "and exactly one of: " : "and any of: ") + typeOf({[key]: s[key]}));
    if (s[key] && s[key].some((p) => p.required && !isTyped(p))) {
      acc.notes.push((key === "oneOf" ? "exactly one of: " : "at least one of: ") +
        s[key].map((p) => (p.required || []).map((r) => `<code>${esc(r)}</code>`).join(" + ")).join(", "));
    }
  }
  return acc;
}

function schemaHtml(s, depth = 0) {
  if (!s || typeof s !== "object") return "";
  if (s.$ref) return `<p>${typeOf(s)}</p>`;
  let html = s.description && depth > 0 ? `<p class="desc">${esc(s.description)}</p>` : "";
  const variants = (s.oneOf || s.anyOf || []).filter(isTyped);
  if (variants.length && !s.properties && !s.allOf) {
    html += `<p>${typeOf(s)}</p>`;
    if (depth < 3) html += variants.filter((p) => !p.$ref && (p.properties || p.allOf)).map((p) => `<div class="nest">${schemaHtml(p, depth + 1)}</div>`).join("");
    return html;
  }
  const {props, required, notes} = collect(s);
  const c = constraints(s);
  if (notes.length) html += `<p class="muted">${notes.join("<br>")}</p>`;
  if (!Object.keys(props).length) return html + `<p>${typeOf(s)}${c ? " &mdash; " + c : ""}</p>`;
  if (c) html += `<p class="muted">${c}</p>`;
  html += "<table><tr><th>Field</th><th>Type</th><th>Rules</th><th>Description</th></tr>";
  for (const [name, p] of Object.entries(props)) {
    const inner = p.items && !p.items.$ref ? p.items : p;
    const nested = depth < 3 && !inner.$ref && (inner.properties || (inner.allOf && inner.allOf.some((x) => x.properties)));
    html += `<tr><td class="name">${esc(name)}${required.has(name) ? '<span class="req">required</span>' : ""}</td>` +
      `<td>${typeOf(p)}</td><td>${constraints(p)}</td><td>${esc(p.description || "")}` +
      (nested ? `<div class="nest">${schemaHtml(inner, depth + 1)}</div>` : "") + "</td></tr>";
  }
  return html + "</table>";
}

// A body's schema: its name, then the referenced schema itself (nested references stay links).
function bodySchemaHtml(s) {
  if (!s || !s.$ref) return schemaHtml(s || {}, 0);
  const target = deref(s);
  return ` &rarr; ${typeOf(s)}${target.description ? `<p class="desc">${esc(target.description)}</p>` : ""}${schemaHtml(target, 0)}`;
}

function contentHtml(content) {
  return Object.entries(content || {}).map(([type, media]) =>
    `<div><code>${esc(type)}</code>${bodySchemaHtml(media.schema)}` +
    (media.example !== undefined ? `<details><summary>Example</summary><div class="body"><pre>${esc(JSON.stringify(media.example, null, 2))}</pre></div></details>` : "") +
    "</div>").join("");
}

function operationHtml(path, method, op, shared) {
  const params = [...(shared || []), ...(op.parameters || [])].map(deref);
  let body = op.description ? `<p class="desc">${esc(op.description)}</p>` : "";
  if (params.length) {
    body += "<h4>Parameters</h4><table><tr><th>Name</th><th>In</th><th>Type</th><th>Rules</th><th>Description</th></tr>" +
      params.map((p) => `<tr><td class="name">${esc(p.name)}${p.required ? '<span class="req">required</span>' : ""}</td>` +
        `<td>${esc(p.in)}</td><td>${typeOf(p.schema)}</td><td>${constraints(p.schema || {})}</td><td>${esc(p.description || "")}</td></tr>`).join("") +
      "</table>";
  }
  if (op.requestBody) {
    const rb = deref(op.requestBody);
    body += `<h4>Request body${rb.required ? ' <span class="req">required</span>' : ""}</h4>` + contentHtml(rb.content);
  }
  body += "<h4>Responses</h4>";
  for (const [code, raw] of Object.entries(op.responses || {})) {
    const r = deref(raw);
    const headers = Object.keys(r.headers || {});
    const hasContent = Object.keys(r.content || {}).length > 0;
    body += `<details${code.startsWith("2") ? " open" : ""}><summary><span class="status s${esc(code[0])}">${esc(code)}</span>` +
      `<span>${esc((r.description || "").replace(/\s+/g, " "))}</span>` +
      (raw.$ref ? `<span class="muted">${esc(refName(raw.$ref))}</span>` : "") + "</summary><div class=\"body\">" +
      (headers.length ? `<p>Headers: ${headers.map((h) => `<code>${esc(h)}</code>`).join(", ")}</p>` : "") +
      (hasContent ? contentHtml(r.content) : '<p class="muted">No body.</p>') + "</div></details>";
  }
  return `<details class="op" data-path="${esc(path)}"><summary><span class="method ${esc(method)}">${esc(method.toUpperCase())}</span>` +
    `<span class="path">${esc(path)}</span><span class="summary">${esc(op.summary || "")}</span></summary>` +
    `<div class="body">${body}</div></details>`;
}

function render() {
  const info = doc.info || {};
  document.title = `${info.title || "API"} ${info.version || ""}`;
  document.getElementById("title").textContent = `${info.title || "API"} ${info.version || ""}`;
  document.getElementById("info").innerHTML = `<span class="muted">OpenAPI ${esc(doc.openapi || "")}</span>` +
    (info.description ? `<p class="desc">${esc(info.description)}</p>` : "");
  const groups = {};
  for (const [path, item] of Object.entries(doc.paths || {})) {
    for (const method of METHODS) {
      if (!item[method]) continue;
      const tag = (item[method].tags || ["other"])[0];
      (groups[tag] = groups[tag] || []).push(operationHtml(path, method, item[method], item.parameters));
    }
  }
  const tagInfo = Object.fromEntries((doc.tags || []).map((t) => [t.name, t.description || ""]));
  document.getElementById("paths").innerHTML = Object.entries(groups).map(([tag, ops]) =>
    `<h2>${esc(tag)}</h2><p class="muted">${esc(tagInfo[tag] || "")}</p>${ops.join("")}`).join("");
  const schemas = (doc.components || {}).schemas || {};
  document.getElementById("schemas").innerHTML = Object.entries(schemas).map(([name, s]) =>
    `<details id="schema-${esc(name)}"><summary><span class="path">${esc(name)}</span>` +
    `<span class="summary">${esc(firstSentence(s.description))}</span></summary>` +
    `<div class="body">${firstSentence(s.description) !== oneLine(s.description) ? `<p class="desc">${esc(s.description)}</p>` : ""}` +
    `${schemaHtml(s, 0)}</div></details>`).join("");
}

// Following a link to a schema opens it.
window.addEventListener("hashchange", () => {
  const target = document.getElementById(decodeURIComponent(location.hash.slice(1)));
  if (target && target.tagName === "DETAILS") { target.open = true; target.scrollIntoView(); }
});
document.getElementById("filter").addEventListener("input", (e) => {
  const q = e.target.value.trim().toLowerCase();
  document.querySelectorAll("details.op").forEach((d) => {
    d.style.display = !q || d.dataset.path.toLowerCase().includes(q) || d.textContent.toLowerCase().includes(q) ? "" : "none";
  });
});
for (const [id, open] of [["expand", true], ["collapse", false]]) {
  document.getElementById(id).addEventListener("click", () => document.querySelectorAll("details.op").forEach((d) => { d.open = open; }));
}

fetch("/openapi.json")
  .then((r) => { if (!r.ok) throw new Error(`GET /openapi.json answered ${r.status}`); return r.json(); })
  .then((d) => { doc = d; render(); })
  .catch((e) => { document.getElementById("error").textContent = `Could not load the API description: ${e.message}`; });
