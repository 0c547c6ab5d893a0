// Checks docs/openapi.yaml against the code and the integration tests'
// real responses:
//   node validate.mjs [--records FILE.jsonl [--partial]] [--selftest]
// - drift: every route of src/api.c's table is an operation of the document
//   and every operation a route; every error code the sources can answer is
//   in ErrorCode and every ErrorCode is answered somewhere;
// - records (written by tests/integration/harness.py's request() when
//   SFC_OPENAPI_RECORD names a file): each response is matched to its path,
//   operation and status and validated strictly (ajv, JSON Schema 2020-12):
//   the body, its content type, the declared headers, the query parameters
//   of a successful request; an unknown route, status or content type fails;
// - with --records and without --partial (a run of the whole suite): every
//   operation answered a 2xx or 3xx at least once (a preflight on any path);
// - --selftest: wrong records (an extra member, an unknown error code, an
//   undocumented status...) must be rejected, a right one accepted.
// One result per check ("ok - ..." / "not ok - ..."), then
// "openapi: N passed, N failed"; exit 1 on any failure.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import YAML from "yaml";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
const SCHEMA_ID = "urn:sfconnect:openapi";

export function loadDoc(path = join(ROOT, "docs", "openapi.yaml")) {
  return YAML.parse(readFileSync(path, "utf8"), { maxAliasCount: -1 });
}

// A copy of v with #/components/schemas/ refs pointing into SCHEMA_ID.
function rewriteRefs(v) {
  if (Array.isArray(v)) return v.map(rewriteRefs);
  if (v === null || typeof v !== "object") return v;
  const out = {};
  for (const [k, x] of Object.entries(v)) {
    if (k === "$ref" && typeof x === "string" && x.startsWith("#/components/schemas/"))
      out[k] = `${SCHEMA_ID}#/$defs/${x.slice("#/components/schemas/".length)}`;
    else out[k] = rewriteRefs(x);
  }
  return out;
}

// Problems of doc as an OpenAPI 3.1 document (the OAS 3.1 JSON Schema, with
// its Schema Objects left to the strict compile in Spec: ajv cannot follow
// the meta-schema's $dynamicRef there).
export function oasProblems(doc) {
  const dir = join(ROOT, "tests", "openapi", "node_modules", "@apidevtools", "openapi-schemas",
    "schemas", "v3.1");
  const meta = JSON.parse(readFileSync(join(dir, "schema.json"), "utf8")
    .replaceAll('"$dynamicRef": "#meta"', '"$ref": "#/$defs/schema"'));
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats(ajv, ["uri-reference"]);
  ajv.addFormat("uri", ajv.formats["uri-reference"]);  // its $ref fields are references
  ajv.addFormat("media-range", true);
  const v = ajv.compile(meta);
  return v(doc) ? [] : v.errors.map((e) => `${e.instancePath} ${e.message}`);
}

export class Spec {
  constructor(doc) {
    if (!String(doc.openapi).startsWith("3.1"))
      throw new Error(`openapi ${doc.openapi}: 3.1 expected`);
    this.doc = doc;
    this.ajv = new Ajv2020({ strict: true, allErrors: true, strictTypes: false });
    addFormats(this.ajv);
    this.ajv.addKeyword("example");
    this.ajv.addSchema({ $id: SCHEMA_ID, $defs: rewriteRefs(doc.components.schemas) });
    this.compiled = new Map();
    this.paths = Object.keys(doc.paths).map((template) => ({
      template,
      regex: new RegExp("^" + template.replace(/[.*+?^$()|[\]\\]/g, "\\$&")
        .replace(/\{[^}]+\}/g, "[^/]+") + "$"),
    }));
    // Every schema compiles now: a bad schema is a failure of the document.
    for (const name of Object.keys(doc.components.schemas))
      this.validator({ $ref: `#/components/schemas/${name}` });
  }

  // Follows a local $ref (#/a/b) in the document.
  deref(o) {
    while (o && typeof o.$ref === "string" && o.$ref.startsWith("#/components/") &&
        !o.$ref.startsWith("#/components/schemas/")) {
      o = o.$ref.slice(2).split("/").reduce((a, k) => a?.[k], this.doc);
      if (o === undefined) throw new Error("dangling $ref");
    }
    return o;
  }

  validator(schema) {
    const key = JSON.stringify(schema);
    if (!this.compiled.has(key)) this.compiled.set(key, this.ajv.compile(rewriteRefs(schema)));
    return this.compiled.get(key);
  }

  // Problems of value against schema (a list of strings, empty when valid).
  check(schema, value, what) {
    const v = this.validator(schema);
    if (v(value)) return [];
    return v.errors.map((e) => `${what}${e.instancePath} ${e.message}` +
      (e.params && Object.keys(e.params).length ? ` ${JSON.stringify(e.params)}` : ""));
  }

  findPath(path) {
    return this.paths.find((p) => p.regex.test(path));
  }

  // The parameters of operation op of a path item, path-level ones included.
  parameters(item, op) {
    return [...(item.parameters || []), ...(op.parameters || [])].map((p) => this.deref(p));
  }
}

function parseQuery(raw) {
  const q = raw.includes("?") ? raw.slice(raw.indexOf("?") + 1) : "";
  const out = [];
  for (const part of q.split("&")) {
    if (part === "") continue;
    const eq = part.indexOf("=");
    const dec = (s) => { try { return decodeURIComponent(s.replace(/\+/g, " ")); } catch { return s; } };
    out.push(eq < 0 ? [dec(part), ""] : [dec(part.slice(0, eq)), dec(part.slice(eq + 1))]);
  }
  return out;
}

// A query value (a string) as its schema's type would read it.
function coerce(schema, value) {
  const t = schema?.type;
  if ((t === "integer" || t === "number") && /^-?[0-9]+(\.[0-9]+)?$/.test(value)) return Number(value);
  return value;
}

// The response objects a record may be checked against, with a label:
// { label, response } or { label, problems } when none may.
export function resolve(spec, rec) {
  const path = rec.path.split("?")[0];
  const method = rec.method.toLowerCase();
  const status = String(rec.status);
  const responses = spec.doc.components.responses;
  const found = spec.findPath(path);
  if (status === "400" && (!found || !spec.doc.paths[found.template][method]))
    return { label: `${rec.method} (any path) 400`, response: responses.BadRequest };
  if (!found) {
    if (status === "404") return { label: "unmatched path 404", response: responses.NoSuchEndpoint };
    return { label: `unmatched path ${status}`, problems: [`${rec.method} ${path}: no path of the document, and not 404`] };
  }
  const item = spec.doc.paths[found.template];
  const op = item[method];
  if (!op) {
    if (status === "405") return { label: `${found.template} 405`, response: responses.MethodNotAllowed };
    return { label: `${rec.method} ${found.template} ${status}`,
      problems: [`${rec.method} ${found.template}: no such operation, and not 405`] };
  }
  const label = `${rec.method} ${found.template} ${status}`;
  if (!op.responses[status])
    return { label, problems: [`${label}: status not documented (has ${Object.keys(op.responses).join(", ")})`] };
  return { label, response: spec.deref(op.responses[status]), op, item, template: found.template };
}

// Problems of one record (a list of strings).
export function checkRecord(spec, rec) {
  const r = resolve(spec, rec);
  if (r.problems) return { label: r.label, problems: r.problems };
  const problems = [];
  const headers = rec.headers || {};
  const res = r.response;
  for (const [name, h0] of Object.entries(res.headers || {})) {
    const h = spec.deref(h0);
    const value = headers[name.toLowerCase()];
    if (value === undefined) {
      if (h.required) problems.push(`header ${name} missing`);
      continue;
    }
    problems.push(...spec.check(h.schema, value, `header ${name}`));
  }
  const ct = (headers["content-type"] || "").split(";")[0].trim().toLowerCase();
  const body = rec.body ?? "";
  if (!res.content) {
    if (body.trim() !== "") problems.push(`a body where none is documented (${ct}): ${body.slice(0, 120)}`);
  } else {
    const media = Object.keys(res.content).find((m) => m.split(";")[0].trim().toLowerCase() === ct);
    if (media === undefined) {
      problems.push(`content type "${headers["content-type"] || ""}" not documented (has ${Object.keys(res.content).join(", ")})`);
    } else {
      let value = body;
      if (ct === "application/json") {
        try { value = JSON.parse(body); } catch { problems.push(`body is not JSON: ${body.slice(0, 120)}`); value = undefined; }
      }
      if (value !== undefined) {
        problems.push(...spec.check(res.content[media].schema, value, "body"));
        if (value && typeof value === "object" && value.error && "request_id" in value &&
            headers["x-request-id"] !== undefined && value.request_id !== headers["x-request-id"])
          problems.push(`body request_id ${value.request_id} is not the X-Request-Id ${headers["x-request-id"]}`);
      }
    }
  }
  const reqSchema = r.op?.requestBody?.content?.["application/json"]?.schema;
  if (reqSchema && rec.status < 400 && (rec.request_body ?? "") !== "") {
    let sent;
    try { sent = JSON.parse(rec.request_body); } catch { sent = rec.request_body; }
    problems.push(...spec.check(reqSchema, sent, "request body"));
  } else if (r.op && !r.op.requestBody && rec.status < 400 && (rec.request_body ?? "") !== "")
    problems.push("a request body was accepted where none is documented");
  if (r.op && rec.status < 400) {
    const params = spec.parameters(r.item, r.op).filter((p) => p.in === "query");
    for (const [name, value] of parseQuery(rec.path)) {
      const p = params.find((x) => x.name === name);
      if (!p && !r.op["x-other-query-ignored"]) problems.push(`query parameter ${name} not documented`);
      else if (!p) continue;
      else problems.push(...spec.check(p.schema, coerce(p.schema, value), `query ${name}`));
    }
  }
  return { label: r.label, problems: problems.map((p) => `${r.label}: ${p}`) };
}

// ------------------------------------------------------------------ drift

function read(rel) {
  return readFileSync(join(ROOT, rel), "utf8");
}

// The (method, pattern) pairs of src/api.c's route table.
export function sourceRoutes(text = read("src/api.c")) {
  const defs = {};
  const strExpr = (expr) => {
    let out = "";
    for (const tok of expr.match(/"(?:[^"\\]|\\.)*"|[A-Za-z_][A-Za-z0-9_]*/g) || []) {
      if (tok.startsWith('"')) out += tok.slice(1, -1);
      else if (tok in defs) out += defs[tok];
      else throw new Error(`src/api.c: unknown macro ${tok} in a route pattern`);
    }
    return out;
  };
  for (const m of text.matchAll(/^#define\s+([A-Z_]+)\s+((?:[A-Z_]+\s*)?"[^"\n]*")\s*$/gm))
    defs[m[1]] = strExpr(m[2]);
  const table = text.match(/static const struct route routes\[\] = \{([\s\S]*?)\n\};/);
  if (!table) throw new Error("src/api.c: no route table found");
  const routes = [];
  for (const m of table[1].matchAll(/\{\s*"([A-Z]+)",\s*([^,]+),\s*ROLE_([A-Z]+)/g))
    routes.push({ method: m[1], pattern: strExpr(m[2]), role: m[3].toLowerCase() });
  if (routes.length === 0) throw new Error("src/api.c: empty route table");
  return routes;
}

// The top-level arguments of each call name(...) in text.
function calls(text, name) {
  const out = [];
  const re = new RegExp(`\\b${name}\\(`, "g");
  let m;
  while ((m = re.exec(text)) !== null) {
    let depth = 1, i = re.lastIndex, arg = "", args = [], inStr = false;
    for (; i < text.length && depth > 0; i++) {
      const ch = text[i];
      if (inStr) { arg += ch; if (ch === "\\") { arg += text[++i]; } else if (ch === '"') inStr = false; continue; }
      if (ch === '"') { inStr = true; arg += ch; continue; }
      if (ch === "(") depth++;
      if (ch === ")" && --depth === 0) break;
      if (ch === "," && depth === 1) { args.push(arg.trim()); arg = ""; continue; }
      arg += ch;
    }
    args.push(arg.trim());
    out.push(args);
  }
  return out;
}

const literals = (s) => [...(s || "").matchAll(/"([a-z_]+)"/g)].map((m) => m[1]);

// Every error code the sources answer: api_error's code, the outcomes of a
// callback (fail, fail_sf, connect_failures), api_found's, the fallback
// body of api_json and nginx's own error bodies.
export function sourceErrorCodes() {
  const codes = new Set();
  const files = ["src/api.c", "src/api_admin.c", "src/api_connect.c", "src/api_jobs.c",
    "src/api_status.c", "src/api_token.c", "src/api_webhooks.c"];
  for (const f of files) {
    const text = read(f);
    for (const args of calls(text, "api_error")) literals(args[2]).forEach((c) => codes.add(c));
    for (const args of calls(text, "fail")) literals(args[2]).forEach((c) => codes.add(c));
    for (const args of calls(text, "api_found")) literals(args[3]).forEach((c) => codes.add(c));
    for (const m of text.matchAll(/\{\s*LCC_[A-Z_]+,\s*\d+,\s*"([a-z_]+)"/g)) codes.add(m[1]);
    for (const m of text.matchAll(/\\"code\\":\\"([a-z_]+)\\"/g)) codes.add(m[1]);
  }
  for (const f of ["nginx/sfconnect.conf", "nginx/sfconnect-dev.conf.in"])
    for (const m of read(f).matchAll(/"code":"([a-z_]+)"/g)) codes.add(m[1]);
  return codes;
}

function driftChecks(spec) {
  const results = [];
  const docOps = new Set();
  for (const [path, item] of Object.entries(spec.doc.paths))
    for (const m of METHODS) if (item[m] && m !== "options") docOps.add(`${m.toUpperCase()} ${path}`);
  const srcOps = new Set(sourceRoutes().map((r) => `${r.method} ${r.pattern}`));
  const missing = [...srcOps].filter((o) => !docOps.has(o));
  const extra = [...docOps].filter((o) => !srcOps.has(o));
  results.push({ label: `every route of src/api.c (${srcOps.size}) is an operation of docs/openapi.yaml`,
    problems: missing.map((o) => `route ${o} not in docs/openapi.yaml`) });
  results.push({ label: "every operation of docs/openapi.yaml is a route of src/api.c",
    problems: extra.map((o) => `operation ${o} is no route of src/api.c`) });
  const roleProblems = [];
  for (const r of sourceRoutes()) {
    const op = spec.doc.paths[r.pattern]?.[r.method.toLowerCase()];
    if (!op) continue;
    const open = Array.isArray(op.security) && op.security.length === 0;
    if (op["x-role"] !== r.role) roleProblems.push(`${r.method} ${r.pattern}: x-role ${op["x-role"]}, src/api.c ROLE_${r.role.toUpperCase()}`);
    if (open !== (r.role === "none")) roleProblems.push(`${r.method} ${r.pattern}: security ${open ? "[]" : "apiKey"} but ROLE_${r.role.toUpperCase()}`);
  }
  results.push({ label: "every operation's x-role and security are its route's role", problems: roleProblems });
  const enumCodes = new Set(spec.doc.components.schemas.ErrorCode.enum);
  const src = sourceErrorCodes();
  results.push({ label: `every error code of the sources (${src.size}) is in ErrorCode`,
    problems: [...src].filter((c) => !enumCodes.has(c)).map((c) => `error code ${c} not in ErrorCode`) });
  results.push({ label: "every ErrorCode is answered by the sources",
    problems: [...enumCodes].filter((c) => !src.has(c)).map((c) => `ErrorCode ${c} is answered nowhere`) });
  return results;
}

// ------------------------------------------------------------------ records

function recordChecks(spec, file, requireCoverage) {
  const lines = readFileSync(file, "utf8").split("\n").filter((l) => l.trim() !== "");
  const groups = new Map();     // label -> { n, problems }
  const covered = new Set();
  let skipped = 0;
  for (const [i, line] of lines.entries()) {
    let rec;
    try { rec = JSON.parse(line); } catch {
      groups.set(`record ${i + 1}`, { n: 1, problems: [`line ${i + 1} is not JSON`] });
      continue;
    }
    if (/^\/admin(\/|$)/.test(rec.path.split("?")[0])) { skipped++; continue; }  // the web page
    const { label, problems } = checkRecord(spec, rec);
    const g = groups.get(label) || { n: 0, problems: [] };
    g.n++;
    if (g.problems.length < 5) g.problems.push(...problems.slice(0, 5 - g.problems.length));
    else if (problems.length) g.more = (g.more || 0) + 1;
    groups.set(label, g);
    if (rec.status >= 200 && rec.status < 400)
      covered.add(rec.method === "OPTIONS" ? "OPTIONS" : label.replace(/ \d+$/, ""));
  }
  const results = [...groups.entries()].sort().map(([label, g]) => ({
    label: `${label} (${g.n} response${g.n === 1 ? "" : "s"})`,
    problems: g.more ? [...g.problems, `... and ${g.more} more`] : g.problems,
  }));
  results.push({ label: `${lines.length} recorded responses read (${skipped} of the web page /admin/ not checked)`,
    problems: lines.length === 0 ? ["no responses were recorded"] : [] });
  if (requireCoverage) {
    const uncovered = [];
    for (const [path, item] of Object.entries(spec.doc.paths))
      for (const m of METHODS)
        if (item[m] && m !== "options" && !covered.has(`${m.toUpperCase()} ${path}`))
          uncovered.push(`${m.toUpperCase()} ${path}`);
    if (!covered.has("OPTIONS")) uncovered.push("OPTIONS (the preflight, on any path)");
    results.push({ label: "every operation answered a 2xx or 3xx at least once in the tests",
      problems: uncovered.map((o) => `${o}: never answered 2xx or 3xx`) });
  }
  return results;
}

// ------------------------------------------------------------------ self-test

const RID = "0123456789abcdef0123456789abcdef";
const jsonHeaders = (extra = {}) => ({ "content-type": "application/json", "x-request-id": RID, ...extra });
const statusObject = () => ({
  org: "acme", provider: "salesforce", status: "connected",
  salesforce_org_id: "00D000000000001AAA",
  salesforce_user: { id: "005000000000001AAA", username: "a@acme.test", display_name: "A" },
  instance_url: "https://acme.my.salesforce.com", environment: "production",
  login_host: "https://login.salesforce.com", connected_at: "2026-01-01T00:00:00Z",
  connected_by: "admin", last_refreshed_at: "2026-01-01T00:00:00Z",
  last_checked_at: null, last_error: null, previous_salesforce_org_id: null,
  scope: "api refresh_token id", banner: null,
});
const rec = (method, path, status, headers, body) =>
  ({ method, path, status, headers, body: typeof body === "string" ? body : JSON.stringify(body) });
const STATUS_PATH = "/api/v1/orgs/acme/integrations/salesforce";
const err = (code) => ({ error: { code, message: "m" }, request_id: RID });

export const SELFTESTS = [
  ["a right status object is accepted", true, rec("GET", STATUS_PATH, 200, jsonHeaders(), statusObject())],
  ["a status object with an extra member is rejected", false,
    rec("GET", STATUS_PATH, 200, jsonHeaders(), { ...statusObject(), extra: 1 })],
  ["a status object without a member is rejected", false,
    rec("GET", STATUS_PATH, 200, jsonHeaders(), (({ scope, ...o }) => o)(statusObject()))],
  ["a status object with a bad OrgID is rejected", false,
    rec("GET", STATUS_PATH, 200, jsonHeaders(), { ...statusObject(), salesforce_org_id: "001x" })],
  ["a disconnect answer with revoked is accepted", true,
    rec("DELETE", STATUS_PATH, 200, jsonHeaders(), { ...statusObject(), revoked: false })],
  ["a status object with revoked is rejected on GET", false,
    rec("GET", STATUS_PATH, 200, jsonHeaders(), { ...statusObject(), revoked: false })],
  ["a right error body is accepted", true, rec("GET", STATUS_PATH, 403, jsonHeaders(), err("forbidden"))],
  ["an unknown error code is rejected", false, rec("GET", STATUS_PATH, 403, jsonHeaders(), err("nope"))],
  ["an error body with another request_id is rejected", false,
    rec("GET", STATUS_PATH, 403, jsonHeaders(), { ...err("forbidden"), request_id: "other" })],
  ["an undocumented status is rejected", false, rec("GET", STATUS_PATH, 418, jsonHeaders(), err("internal"))],
  ["a 200 on an unknown path is rejected", false, rec("GET", "/api/v1/nope", 200, jsonHeaders(), {})],
  ["a 404 on an unknown path is accepted", true, rec("GET", "/api/v1/nope", 404, jsonHeaders(), err("not_found"))],
  ["a 405 needs Allow", false, rec("PUT", STATUS_PATH, 405, jsonHeaders(), err("method_not_allowed"))],
  ["a missing X-Request-Id is rejected", false,
    rec("GET", STATUS_PATH, 200, { "content-type": "application/json" }, statusObject())],
  ["a wrong content type is rejected", false,
    rec("GET", STATUS_PATH, 200, jsonHeaders({ "content-type": "text/html" }), statusObject())],
  ["a 401 without WWW-Authenticate is rejected", false, rec("GET", STATUS_PATH, 401, jsonHeaders(), err("unauthorized"))],
  ["an undocumented query parameter of a 200 is rejected", false,
    rec("GET", STATUS_PATH + "?verbose=1", 200, jsonHeaders(), statusObject())],
  ["a limit out of range on a 200 is rejected", false,
    rec("GET", "/api/v1/orgs/acme/audit?limit=501", 200, jsonHeaders(), { events: [] })],
  ["a token answer without no-store is rejected", false,
    rec("GET", STATUS_PATH + "/token", 200, jsonHeaders(), { access_token: "x", instance_url: "https://a.my.salesforce.com",
      issued_at: "2026-01-01T00:00:00Z", salesforce_org_id: "00D000000000001AAA", token_generation: 1 })],
  ["a 503 without Retry-After is rejected", false, rec("GET", STATUS_PATH, 503, jsonHeaders(), err("service_unavailable"))],
  ["an accepted request body with an undocumented member is rejected", false,
    { ...rec("POST", "/api/v1/admin/orgs", 201, jsonHeaders(), { slug: "acme", name: "Acme", created_at: "2026-01-01T00:00:00Z" }),
      request_body: JSON.stringify({ slug: "acme", colour: "red" }) }],
  ["a 303 with a body is rejected", false,
    rec("GET", "/api/v1/oauth/salesforce/callback?state=x", 303, jsonHeaders({ location: "/x", "cache-control": "no-store" }), "{}")],
];

function selfTests(spec) {
  const results = SELFTESTS.map(([label, ok, r]) => {
    const { problems } = checkRecord(spec, r);
    return { label: `self-test: ${label}`,
      problems: ok === (problems.length === 0) ? [] :
        [ok ? `rejected: ${problems.join("; ")}` : "accepted, but it is wrong"] };
  });
  const bad = structuredClone(spec.doc);
  bad.paths["/healthz"].get.responses["200"].schema = { type: "object" };  // 3.0 style: not 3.1
  results.push({ label: "self-test: the OAS 3.1 schema rejects a response with a member of its own",
    problems: oasProblems(bad).length ? [] : ["accepted"] });
  // The drift check must notice a route or an error code the document lacks.
  const doc = structuredClone(spec.doc);
  delete doc.paths["/api/v1/orgs/{org}/banners"].get;
  doc.components.schemas.ErrorCode.enum = doc.components.schemas.ErrorCode.enum.filter((c) => c !== "conflict");
  doc.paths["/api/v1/admin/keys"].get["x-role"] = "viewer";
  const drift = driftChecks(new Spec(doc)).flatMap((r) => r.problems);
  results.push({ label: "self-test: the drift check notices a missing route, error code and a wrong role",
    problems: drift.some((p) => p.includes("/banners")) && drift.some((p) => p.includes("conflict")) &&
      drift.some((p) => p.includes("/api/v1/admin/keys: x-role viewer")) ? [] :
      [`drift check said: ${JSON.stringify(drift)}`] });
  return results;
}

// ------------------------------------------------------------------ main

function main(argv) {
  const args = { records: null, requireCoverage: true, selftest: false };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--records") args.records = argv[++i];
    else if (argv[i] === "--partial") args.requireCoverage = false;
    else if (argv[i] === "--selftest") args.selftest = true;
    else { console.error(`usage: validate.mjs [--records FILE [--partial]] [--selftest]`); return 2; }
  }
  let results;
  try {
    const spec = new Spec(loadDoc());
    results = [{ label: "docs/openapi.yaml loads and its schemas compile", problems: [] },
      { label: "docs/openapi.yaml is an OpenAPI 3.1 document (the OAS 3.1 schema)", problems: oasProblems(spec.doc) },
      ...driftChecks(spec)];
    if (args.selftest) results.push(...selfTests(spec));
    if (args.records) results.push(...recordChecks(spec, args.records, args.requireCoverage));
  } catch (e) {
    results = [{ label: "docs/openapi.yaml loads and its schemas compile", problems: [String(e.stack || e)] }];
  }
  let passed = 0, failed = 0;
  for (const r of results) {
    if (r.problems.length === 0) { passed++; console.log(`ok - ${r.label}`); continue; }
    failed++;
    console.log(`not ok - ${r.label}`);
    for (const p of r.problems) console.log(`    ${p}`);
  }
  console.log(`openapi: ${passed} passed, ${failed} failed`);
  return failed ? 1 : 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1])
  process.exit(main(process.argv.slice(2)));
