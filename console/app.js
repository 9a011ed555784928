// kubegate's web console: every page reads and every button acts through the REST API
// (/v1/...) with the signed-in person's token, so kubegate's roles, audit log, idempotency
// and dry runs apply to it as to any other client. No framework, no build step.
//
// The token lives in this module's memory only (not in localStorage or a cookie): a reload or
// a new tab asks for it again, and signing out forgets it.

let token = null;
let me = null;
// What the last action on a page answered, shown once when that page is read again after it.
let flash = null;
// Requests of the page on screen: aborted when the page changes (streams end with it).
let pageAbort = new AbortController();

const main = document.getElementById("main");

// ---- DOM -------------------------------------------------------------------------------

// h("tag#id.class", {attr: value, onclick: fn}, ...children): text is always text, never HTML.
function h(spec, attrs, ...children) {
  const tag = spec.match(/^[a-z0-9]*/)[0];
  const id = spec.match(/#([\w-]+)/);
  const classes = [...spec.matchAll(/\.([\w-]+)/g)].map((m) => m[1]);
  const el = document.createElement(tag || "div");
  if (id) el.id = id[1];
  if (classes.length) el.className = classes.join(" ");
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function show(...children) {
  main.replaceChildren(...children);
}

function table(caption, headers, rows, empty) {
  if (!rows.length) return h("p.empty", {}, empty || "Nothing here.");
  return h("div.scroll", {},
    h("table", {},
      h("caption", {}, caption),
      h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col" }, x)))),
      h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c) => h("td", {}, c)))))));
}

function link(href, text) {
  return h("a", { href }, text);
}

// "3m ago", the exact time on hover and for screen readers.
function ago(when) {
  if (!when) return "";
  const t = new Date(when);
  const s = Math.round((Date.now() - t.getTime()) / 1000);
  const text = s < 5 ? "just now" : s < 60 ? `${s}s ago` : s < 3600 ? `${Math.floor(s / 60)}m ago`
    : s < 86400 ? `${Math.floor(s / 3600)}h ago` : `${Math.floor(s / 86400)}d ago`;
  return h("time", { datetime: t.toISOString(), title: t.toLocaleString() }, text);
}

function problemView(e) {
  const p = e.problem || {};
  return h("div.problem", { role: "alert" },
    h("strong", {}, p.title || "Request failed"), " ",
    p.detail || e.message || "",
    p.requestId ? h("small", {}, ` (request ${p.requestId})`) : null);
}

function outcomeView(outcome) {
  const bad = ["failed", "denied", "invalid", "unauthenticated", "outcome_unknown"].includes(outcome);
  return h("span", { class: outcome === "succeeded" ? "ok" : bad ? "bad" : "" }, outcome || "");
}

function enc(s) {
  return encodeURIComponent(s);
}

// ---- API -------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

async function api(path, { method = "GET", body, signal, accept } = {}) {
  const headers = { Authorization: `Bearer ${token}`, Accept: accept || "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") headers["Idempotency-Key"] = crypto.randomUUID();
  const res = await fetch(path, {
    method, headers, signal: signal || pageAbort.signal,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store", credentials: "omit",
  });
  if (res.status === 401) {
    signOut("Your token was refused or has expired; sign in again.");
    throw new ApiError(401, { title: "Signed out" });
  }
  if (!res.ok) {
    let problem = null;
    try { problem = await res.json(); } catch { /* not JSON */ }
    throw new ApiError(res.status, problem);
  }
  return accept && accept !== "application/json" ? res : res.json();
}

// Lines of a streamed answer (logs, server-sent events), as they come.
async function* lines(res) {
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      yield buf.slice(0, i);
      buf = buf.slice(i + 1);
    }
  }
  if (buf) yield buf;
}

// Server-sent events: {event, data} objects.
async function* events(res) {
  let event = "message";
  let data = [];
  for await (const line of lines(res)) {
    if (line === "") {
      if (data.length) yield { event, data: JSON.parse(data.join("\n")) };
      event = "message";
      data = [];
    } else if (line.startsWith("event:")) event = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).trim());
  }
}

// What the signed-in person may do there (the server decides again on every request).
const allowedCache = new Map();
async function allowed(verb, cluster, namespace) {
  const key = `${verb} ${cluster} ${namespace}`;
  if (!allowedCache.has(key)) {
    allowedCache.set(key, api("/v1/access-reviews", {
      method: "POST", body: { verb, cluster, namespace },
    }).then((r) => r.allowed, () => false));
  }
  return allowedCache.get(key);
}

// ---- sign in and out -------------------------------------------------------------------

// How to sign in besides pasting a token (config.json): an OIDC issuer, or null.
let oidc = null;
const OIDC_PENDING = "kubegate.oidc";

function base64url(bytes) {
  return btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function randomString() {
  return base64url(crypto.getRandomValues(new Uint8Array(32)));
}

// Authorization code with PKCE (RFC 7636): to the issuer, which sends the browser back here.
// What the return needs (verifier, state, nonce, the page) waits in sessionStorage meanwhile;
// the token never goes there.
async function oidcBegin() {
  const verifier = randomString();
  const state = randomString();
  const nonce = randomString();
  const challenge = base64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  sessionStorage.setItem(OIDC_PENDING, JSON.stringify({ verifier, state, nonce, back: location.hash }));
  const q = new URLSearchParams({
    response_type: "code", client_id: oidc.clientId, redirect_uri: location.origin + location.pathname,
    scope: oidc.scopes, state, nonce, code_challenge: challenge, code_challenge_method: "S256",
  });
  location.assign(`${oidc.authorizationEndpoint}?${q}`);
}

// Back from the issuer with ?code&state (or ?error): the code for an ID token, which becomes
// the bearer token for kubegate.
async function oidcReturn(params) {
  const pending = JSON.parse(sessionStorage.getItem(OIDC_PENDING) || "null");
  sessionStorage.removeItem(OIDC_PENDING);
  history.replaceState(null, "", location.pathname + ((pending && pending.back) || ""));
  if (params.get("error")) {
    throw new Error(`The issuer refused the sign-in: ${params.get("error_description") || params.get("error")}`);
  }
  if (!pending || params.get("state") !== pending.state) {
    throw new Error("This sign-in was not started here (its state does not match); sign in again.");
  }
  const res = await fetch(oidc.tokenEndpoint, {
    method: "POST", credentials: "omit", cache: "no-store",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "authorization_code", code: params.get("code"), client_id: oidc.clientId,
      redirect_uri: location.origin + location.pathname, code_verifier: pending.verifier,
    }),
  });
  const answer = await res.json().catch(() => ({}));
  if (!res.ok || !answer.id_token) {
    throw new Error(`The issuer did not give an ID token: ${answer.error_description || answer.error || `HTTP ${res.status}`}`);
  }
  const claims = JSON.parse(atob(answer.id_token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
  if (claims.nonce !== pending.nonce) throw new Error("The ID token is not for this sign-in (nonce); sign in again.");
  return answer.id_token;
}

function signInPage(message) {
  const input = h("input", {
    id: "token", type: "password", autocomplete: "off", spellcheck: "false", required: true,
    "aria-describedby": "token-help",
  });
  const error = h("div", { role: "alert" }, message ? h("p.problem", {}, message) : null);
  const form = h("form.card", {
    onsubmit: async (ev) => {
      ev.preventDefault();
      token = input.value.trim();
      try {
        me = await api("/v1/whoami");
      } catch (e) {
        token = null;
        error.replaceChildren(problemView(e));
        return;
      }
      input.value = "";
      signedIn();
    },
  },
  h("h1", {}, "Sign in"),
  h("label", { for: "token" }, "Token"),
  input,
  h("p", { id: "token-help" },
    "Paste a kubegate bearer token (a JWT). It stays in this tab's memory and is gone when you sign out or close the tab."),
  h("button.primary", { type: "submit" }, "Sign in"),
  error);
  const sso = oidc ? h("div.card", {},
    h("button.primary#sso", { type: "button", onclick: () => oidcBegin().catch((e) => error.replaceChildren(problemView(e))) },
      `Sign in with ${new URL(oidc.issuer).host}`),
    h("p", {}, "or paste a token below.")) : null;
  show(sso, form);
  (sso ? sso.querySelector("button") : input).focus();
}

function signedIn() {
  document.getElementById("nav").hidden = false;
  const who = document.getElementById("who");
  who.textContent = me.subject;
  who.title = (me.grants || []).map((g) => `${g.role} on ${g.clusters.join(",")}/${g.namespaces.join(",")}`).join("\n");
  who.hidden = false;
  document.getElementById("signout").hidden = false;
  checkChain();
  route();
}

function signOut(message) {
  token = null;
  me = null;
  allowedCache.clear();
  pageAbort.abort();
  pageAbort = new AbortController();
  for (const id of ["nav", "who", "signout", "chain"]) document.getElementById(id).hidden = true;
  signInPage(message);
}

document.getElementById("signout").addEventListener("click", () => signOut());

// The chain badge: /v1/audit/verify, for those who may read the audit log.
async function checkChain() {
  const badge = document.getElementById("chain");
  try {
    const v = await api("/v1/audit/verify", { signal: AbortSignal.timeout(30000) });
    badge.hidden = false;
    badge.className = v.intact ? "badge ok" : "badge bad";
    badge.textContent = v.intact ? `Audit chain intact to #${v.toSeq ?? 0}`
      : `Audit chain broken at #${v.firstBreak ? v.firstBreak.seq : "?"}`;
    badge.title = v.intact ? `${v.checked} entries checked` : (v.firstBreak || {}).reason || "";
  } catch {
    badge.hidden = true;
  }
}

// ---- pages -----------------------------------------------------------------------------

function crumbs(...parts) {
  return h("nav.crumbs", { "aria-label": "Breadcrumb" },
    h("ol", {}, parts.map(([text, href]) => h("li", {}, href ? link(href, text) : h("span", { "aria-current": "page" }, text)))));
}

async function clustersPage() {
  show(crumbs(["Clusters"]), h("p", { "aria-busy": "true" }, "Loading…"));
  const list = await api("/v1/clusters");
  show(crumbs(["Clusters"]), h("h1", {}, "Clusters"),
    table("Clusters", ["Name", "Version", "Reachable", "Server"], list.items.map((c) => [
      link(`#/c/${enc(c.name)}`, c.name),
      c.version ? c.version.gitVersion : "",
      c.reachable ? h("span.ok", {}, "yes") : h("span.bad", { title: c.error || "" }, `no${c.error ? `: ${c.error}` : ""}`),
      c.server || "",
    ]), "No clusters are configured."));
}

async function namespacesPage(cluster) {
  const top = crumbs(["Clusters", "#/"], [cluster]);
  show(top, h("p", { "aria-busy": "true" }, "Loading…"));
  const list = await api(`/v1/clusters/${enc(cluster)}/namespaces`);
  show(top, h("h1", {}, `Namespaces of ${cluster}`),
    table("Namespaces", ["Name", "Status", "Age"], list.items.map((n) => [
      link(`#/c/${enc(cluster)}/n/${enc(n.name)}`, n.name), n.phase || "", ago(n.createdAt),
    ])));
}

function namespaceTabs(cluster, ns, current) {
  const base = `#/c/${enc(cluster)}/n/${enc(ns)}`;
  const tabs = [["Deployments", ""], ["Pods", "/pods"], ["Services", "/services"], ["Events", "/events"]];
  return h("nav.tabs", { "aria-label": "Kinds" }, tabs.map(([text, tail]) =>
    h("a", { href: base + tail, "aria-current": tail === current ? "page" : null }, text)));
}

function rolloutText(d) {
  const r = d.replicas;
  if ((d.observedGeneration ?? 0) < (d.generation ?? 0)) return "waiting for the controller";
  if (r.updated < r.desired) return `rolling out: ${r.updated} of ${r.desired} updated`;
  if (r.available < r.desired) return `rolling out: ${r.available} of ${r.desired} available`;
  return "rolled out";
}

async function deploymentsPage(cluster, ns) {
  const top = [crumbs(["Clusters", "#/"], [cluster, `#/c/${enc(cluster)}`], [ns]), namespaceTabs(cluster, ns, "")];
  show(...top, h("p", { "aria-busy": "true" }, "Loading…"));
  const signal = pageAbort.signal;
  const render = (list) => show(...top, h("h1", {}, `Deployments in ${ns}`),
    table("Deployments", ["Name", "Ready", "Up to date", "Available", "Images", "Revision", "Rollout", "Age"],
      list.items.map((d) => [
        link(`#/c/${enc(cluster)}/n/${enc(ns)}/d/${enc(d.name)}`, d.name),
        `${d.replicas.ready}/${d.replicas.desired}`,
        d.replicas.updated, d.replicas.available,
        d.images.map((i) => i.image).join(", "),
        d.revision ?? "",
        h("span", { class: rolloutText(d) === "rolled out" ? "ok" : "busy" }, rolloutText(d)),
        ago(d.createdAt),
      ]), "No deployments in this namespace."));
  // Live: read again while something is rolling out, less often when all is still.
  while (!signal.aborted) {
    const list = await api(`/v1/clusters/${enc(cluster)}/namespaces/${enc(ns)}/deployments`);
    if (signal.aborted) return;
    render(list);
    const busy = list.items.some((d) => rolloutText(d) !== "rolled out");
    await new Promise((r) => setTimeout(r, busy ? 1000 : 5000));
  }
}

async function podsPage(cluster, ns) {
  const top = [crumbs(["Clusters", "#/"], [cluster, `#/c/${enc(cluster)}`], [ns]), namespaceTabs(cluster, ns, "/pods")];
  show(...top, h("p", { "aria-busy": "true" }, "Loading…"));
  const list = await api(`/v1/clusters/${enc(cluster)}/namespaces/${enc(ns)}/pods`);
  show(...top, h("h1", {}, `Pods in ${ns}`),
    table("Pods", ["Name", "Ready", "Status", "Restarts", "Last termination", "Node", "Age"], list.items.map((p) => [
      link(`#/c/${enc(cluster)}/n/${enc(ns)}/p/${enc(p.name)}`, p.name),
      `${p.readyContainers}/${p.totalContainers}`,
      p.status, p.restarts,
      p.containers.map((c) => c.lastTermination ? `${c.name}: ${c.lastTermination.reason || ""} (exit ${c.lastTermination.exitCode ?? "?"})` : "").filter(Boolean).join("; "),
      p.node || "", ago(p.createdAt),
    ]), "No pods in this namespace."));
}

async function servicesPage(cluster, ns) {
  const top = [crumbs(["Clusters", "#/"], [cluster, `#/c/${enc(cluster)}`], [ns]), namespaceTabs(cluster, ns, "/services")];
  show(...top, h("p", { "aria-busy": "true" }, "Loading…"));
  const list = await api(`/v1/clusters/${enc(cluster)}/namespaces/${enc(ns)}/services`);
  show(...top, h("h1", {}, `Services in ${ns}`),
    table("Services", ["Name", "Type", "Cluster IP", "Ports", "Ready endpoints", "Age"], list.items.map((s) => [
      s.name, s.type, s.clusterIp || s.externalName || "",
      s.ports.map((p) => `${p.port}${p.nodePort ? `:${p.nodePort}` : ""}/${p.protocol}`).join(", "),
      s.readyEndpoints ?? "", ago(s.createdAt),
    ]), "No services in this namespace."));
}

function eventsTable(items) {
  return table("Events", ["Type", "Reason", "Object", "Message", "Count", "Last seen"], items.map((e) => [
    h("span", { class: e.type === "Warning" ? "bad" : "" }, e.type), e.reason,
    e.object ? `${e.object.kind}/${e.object.name}` : "", e.message, e.count ?? "", ago(e.lastSeen),
  ]), "No events.");
}

async function eventsPage(cluster, ns) {
  const top = [crumbs(["Clusters", "#/"], [cluster, `#/c/${enc(cluster)}`], [ns]), namespaceTabs(cluster, ns, "/events")];
  show(...top, h("p", { "aria-busy": "true" }, "Loading…"));
  const list = await api(`/v1/clusters/${enc(cluster)}/namespaces/${enc(ns)}/events`);
  show(...top, h("h1", {}, `Events in ${ns}`), eventsTable(list.items));
}

// A line diff of two texts (longest common subsequence; templates are small).
function diffLines(a, b) {
  const x = a.split("\n"), y = b.split("\n");
  const n = x.length, m = y.length;
  const L = Array.from({ length: n + 1 }, () => new Int32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--)
    L[i][j] = x[i] === y[j] ? L[i + 1][j + 1] + 1 : Math.max(L[i + 1][j], L[i][j + 1]);
  const out = [];
  let i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && x[i] === y[j]) { out.push(["same", `  ${x[i]}`]); i++; j++; }
    else if (j < m && (i === n || L[i][j + 1] >= L[i + 1][j])) { out.push(["add", `+ ${y[j]}`]); j++; }
    else { out.push(["del", `- ${x[i]}`]); i++; }
  }
  return h("pre.diff", {}, out.map(([k, t]) => h(`span.${k}`, {}, `${t}\n`)));
}

// Ask for confirmation with the dry run's answer on screen; resolves true when confirmed.
function confirmWith(title, body) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-body").replaceChildren(body);
  return new Promise((resolve) => {
    const go = document.getElementById("confirm-go");
    const cancel = document.getElementById("confirm-cancel");
    const done = (answer) => {
      go.onclick = cancel.onclick = dialog.onclose = null;
      if (dialog.open) dialog.close();
      resolve(answer);
    };
    go.onclick = () => done(true);
    cancel.onclick = () => done(false);
    dialog.onclose = () => done(false);
    dialog.showModal();
    go.focus();
  });
}

async function deploymentPage(cluster, ns, name) {
  const base = `/v1/clusters/${enc(cluster)}/namespaces/${enc(ns)}/deployments/${enc(name)}`;
  const top = crumbs(["Clusters", "#/"], [cluster, `#/c/${enc(cluster)}`], [ns, `#/c/${enc(cluster)}/n/${enc(ns)}`], [name]);
  show(top, h("p", { "aria-busy": "true" }, "Loading…"));
  const [d, revisions, may] = await Promise.all([
    api(base), api(`${base}/revisions`),
    Promise.all(["scale", "set_image", "restart", "rollback"].map((v) => allowed(v, cluster, ns))),
  ]);
  const [mayScale, maySetImage, mayRestart, mayRollback] = may;
  const status = h("p#rollout", { role: "status", "aria-live": "polite" }, rolloutText(d));
  const notice = h("div", { "aria-live": "polite" }, flash);
  flash = null;

  // Run an action: the dry run first, its answer in the confirmation, then the real request.
  const act = async (title, path, body, describe) => {
    notice.replaceChildren();
    const method = path === "/restart" || path === "/rollback" ? "POST" : "PUT";
    try {
      const dry = await api(`${base}${path}?dryRun=true`, { method, body });
      if (!(await confirmWith(title, describe(dry)))) return;
      const done = await api(`${base}${path}`, { method, body });
      // The page is read again; the answer stays on it until the next change of page.
      flash = h("p.ok", { role: "status" }, `Done: ${title}. Audit entry `, link(`#/audit/${done.auditId}`, done.auditId));
      checkChain();
      route();
    } catch (e) {
      notice.replaceChildren(problemView(e));
    }
  };
  const reason = h("input", { id: "reason", type: "text", maxlength: "200", placeholder: "why (recorded in the audit log)" });
  const actions = [];
  if (mayScale) {
    const replicas = h("input", { id: "replicas", type: "number", min: "0", value: d.replicas.desired, inputmode: "numeric" });
    actions.push(h("form.inline", {
      onsubmit: (ev) => {
        ev.preventDefault();
        const n = Number(replicas.value);
        act(`Scale ${name} to ${n}`, "/replicas", { replicas: n, reason: reason.value || undefined },
          (r) => h("p", {}, `Dry run: ${name} goes from ${d.replicas.desired} to ${r.deployment.replicas.desired} replicas.`));
      },
    }, h("label", { for: "replicas" }, "Replicas"), replicas, h("button", { type: "submit", id: "scale" }, "Scale")));
  }
  if (maySetImage && d.images.length) {
    const container = h("select", { id: "container" }, d.images.map((i) => h("option", { value: i.container }, i.container)));
    const image = h("input", { id: "image", type: "text", value: d.images[0].image, spellcheck: "false" });
    container.addEventListener("change", () => { image.value = d.images.find((i) => i.container === container.value).image; });
    actions.push(h("form.inline", {
      onsubmit: (ev) => {
        ev.preventDefault();
        act(`Set the image of ${container.value}`, "/image", { container: container.value, image: image.value, reason: reason.value || undefined },
          (r) => h("p", {}, `Dry run: ${container.value} runs ${image.value}; ${r.templateChanged ? "a new revision rolls out" : "nothing changes"}.`));
      },
    }, h("label", { for: "container" }, "Container"), container, h("label", { for: "image" }, "Image"), image,
    h("button", { type: "submit", id: "set-image" }, "Set image")));
  }
  if (mayRestart) {
    actions.push(h("button#restart", {
      type: "button",
      onclick: () => act(`Restart ${name}`, "/restart", { reason: reason.value || undefined },
        () => h("p", {}, `Dry run: every pod of ${name} is replaced, a rolling update as for a new image.`)),
    }, "Restart"));
  }

  const diffArea = h("div#diff");
  const compare = async (a, b) => {
    try {
      const [x, y] = await Promise.all([api(`${base}/revisions/${a}`), api(`${base}/revisions/${b}`)]);
      diffArea.replaceChildren(h("h3", {}, `Template of revision ${a} → ${b}`),
        diffLines(JSON.stringify(x.template, null, 2), JSON.stringify(y.template, null, 2)));
    } catch (e) {
      diffArea.replaceChildren(problemView(e));
    }
  };
  // Who made each revision, when and why: the audit entry its ReplicaSet names.
  const changedBy = (r) => {
    if (!r.auditId) return "";
    const cell = h("span", {}, link(`#/audit/${r.auditId}`, "audit entry"));
    api(`/v1/audit/${enc(r.auditId)}`).then((page) => {
      const e = page.items.find((x) => x.stage !== "intent") || page.items[0];
      if (!e) return;
      const why = e.request && e.request.reason;
      cell.replaceChildren(e.subject, " ", ago(e.completedAt || e.receivedAt), " ", e.action,
        why ? ` (${why})` : "", " ", link(`#/audit/${r.auditId}`, `#${e.seq}`));
    }, () => {});
    return cell;
  };
  // The Deployment's revision as the page last heard it (the rollout stream moves it on): what a
  // rollback expects to replace, and what a diff compares with.
  let shownRevision = d.revision;
  const revisionRows = [...revisions.items].reverse().map((r) => [
    r.revision, r.current ? h("strong", {}, "current") : "",
    r.images.map((i) => i.image).join(", "), r.changeCause || "", changedBy(r),
    h("span.row", {},
      !r.current
        ? h("button", { type: "button", onclick: () => compare(r.revision, shownRevision) }, "Diff with current") : null,
      !r.current && mayRollback ? h("button", {
        type: "button", dataset: { rollback: r.revision },
        onclick: () => act(`Roll ${name} back to revision ${r.revision}`, "/rollback",
          { toRevision: r.revision, expectRevision: shownRevision, reason: reason.value || undefined },
          (x) => h("p", {}, `Dry run: revision ${r.revision}'s template (${r.images.map((i) => i.image).join(", ")}) becomes the current one. ${x.message || ""}`)),
      }, `Roll back to ${r.revision}`) : null),
  ]);

  const history = h("div", {}, h("p", { "aria-busy": "true" }, "Loading the audit log…"));
  api(`/v1/audit?cluster=${enc(cluster)}&namespace=${enc(ns)}&resource=${enc(name)}&limit=50`).then((page) => {
    const done = page.items.filter((e) => e.stage !== "intent");
    history.replaceChildren(table("Changes recorded for this deployment", ["When", "Who", "Action", "Why", "Outcome", "Entry"], done.map((e) => [
      ago(e.completedAt || e.receivedAt), e.subject, e.action + (e.dryRun ? " (dry run)" : ""),
      (e.request && e.request.reason) || "", outcomeView(e.outcome),
      link(`#/audit/${e.auditId}`, `#${e.seq}`),
    ]), "No change of this deployment is in the audit log."));
  }, (e) => history.replaceChildren(e.status === 403 ? h("p.empty", {}, "Your role may not read the audit log.") : problemView(e)));

  show(top, h("h1", {}, `Deployment ${name}`), status,
    h("dl.facts", {},
      h("dt", {}, "Replicas"), h("dd", { id: "replicas-now" }, `${d.replicas.ready} ready, ${d.replicas.updated} up to date, ${d.replicas.available} available of ${d.replicas.desired}`),
      h("dt", {}, "Images"), h("dd", {}, d.images.map((i) => `${i.container}: ${i.image}`).join(", ")),
      h("dt", {}, "Revision"), h("dd", { id: "revision" }, d.revision ?? ""),
      h("dt", {}, "Strategy"), h("dd", {}, d.strategy ? d.strategy.type : ""),
      h("dt", {}, "Created"), h("dd", {}, ago(d.createdAt))),
    d.conditions.length ? table("Conditions", ["Type", "Status", "Reason", "Message"], d.conditions.map((c) => [c.type, c.status, c.reason || "", c.message || ""])) : null,
    actions.length || mayRollback ? h("section", { "aria-labelledby": "actions-h" },
      h("h2", { id: "actions-h" }, "Actions"), h("label", { for: "reason" }, "Reason"), reason, h("div.actions", {}, actions)) : null,
    notice,
    h("h2", {}, "Revisions"),
    h("div#revisions", {}, table("Revisions", ["Revision", "", "Images", "Change cause", "Changed by", ""], revisionRows)),
    diffArea,
    h("h2", {}, "History"), history,
    h("h2", {}, "Events"), h("div#events", {}, h("p", { "aria-busy": "true" }, "Loading…")));

  api(`${base}/events`).then((l) => document.getElementById("events")?.replaceChildren(eventsTable(l.items)),
    (e) => document.getElementById("events")?.replaceChildren(problemView(e)));

  // Live rollout state from the progress stream until its verdict.
  try {
    const res = await api(`${base}/rollout?watch=true&timeoutSeconds=600`, { accept: "text/event-stream" });
    for await (const ev of events(res)) {
      const s = ev.event === "result" ? ev.data.rollout : ev.data;
      if (!s || !s.replicas) continue;
      const verdict = ev.event === "result" ? ev.data.verdict : null;
      status.textContent = verdict === "failed" ? `rollout failed: ${ev.data.reason || s.message}`
        : s.done ? "rolled out" : s.message || "rolling out";
      status.className = s.done ? "ok" : verdict === "failed" ? "bad" : "busy";
      document.getElementById("replicas-now").textContent =
        `${s.replicas.ready} ready, ${s.replicas.updated} up to date, ${s.replicas.available} available of ${s.replicas.desired}`;
      // The controller numbers a change's revision a moment after the change itself.
      if (s.revision != null) {
        shownRevision = s.revision;
        document.getElementById("revision").textContent = s.revision;
      }
    }
  } catch (e) {
    if (e.name !== "AbortError") status.textContent = `rollout state unavailable: ${e.message}`;
  }
}

async function podPage(cluster, ns, name) {
  const base = `/v1/clusters/${enc(cluster)}/namespaces/${enc(ns)}/pods/${enc(name)}`;
  const top = crumbs(["Clusters", "#/"], [cluster, `#/c/${enc(cluster)}`], [ns, `#/c/${enc(cluster)}/n/${enc(ns)}/pods`], [name]);
  show(top, h("p", { "aria-busy": "true" }, "Loading…"));
  const p = await api(base);
  const out = h("pre.logs", { id: "logs", tabindex: "0", "aria-label": "Logs" });
  const container = h("select", { id: "log-container" }, p.containers.map((c) => h("option", { value: c.name }, c.name)));
  const follow = h("input", { id: "follow", type: "checkbox", checked: true });
  let logAbort = null;
  const load = async () => {
    if (logAbort) logAbort.abort();
    logAbort = new AbortController();
    pageAbort.signal.addEventListener("abort", () => logAbort.abort(), { once: true });
    out.textContent = "";
    try {
      const res = await api(`${base}/logs?container=${enc(container.value)}&tailLines=500&follow=${follow.checked}`,
        { accept: "text/plain", signal: logAbort.signal });
      for await (const line of lines(res)) {
        const atEnd = out.scrollTop + out.clientHeight >= out.scrollHeight - 4;
        out.append(`${line}\n`);
        if (atEnd) out.scrollTop = out.scrollHeight;
      }
    } catch (e) {
      if (e.name !== "AbortError") out.append(h("span.bad", {}, `\n${e.message}\n`));
    }
  };
  container.addEventListener("change", load);
  follow.addEventListener("change", load);
  show(top, h("h1", {}, `Pod ${name}`),
    h("dl.facts", {}, h("dt", {}, "Status"), h("dd", {}, p.status), h("dt", {}, "Node"), h("dd", {}, p.node || ""),
      h("dt", {}, "IP"), h("dd", {}, p.ip || ""), h("dt", {}, "Created"), h("dd", {}, ago(p.createdAt))),
    table("Containers", ["Name", "Image", "Ready", "State", "Restarts", "Last termination"], p.containers.map((c) => [
      c.name, c.image, c.ready ? "yes" : "no", [c.state, c.reason].filter(Boolean).join(": "), c.restartCount,
      c.lastTermination ? `${c.lastTermination.reason || ""} (exit ${c.lastTermination.exitCode ?? "?"})` : "",
    ])),
    h("h2", {}, "Logs"),
    h("div.row", {}, h("label", { for: "log-container" }, "Container"), container,
      h("label", { for: "follow" }, follow, " Follow")),
    out);
  load();
}

const AUDIT_FILTERS = ["subject", "cluster", "namespace", "action", "outcome", "from", "to"];

async function auditPage(query) {
  const params = new URLSearchParams(query);
  const form = h("form.filters", {
    onsubmit: (ev) => {
      ev.preventDefault();
      const q = new URLSearchParams();
      for (const f of AUDIT_FILTERS) {
        let v = form.elements[f].value.trim();
        if (v && (f === "from" || f === "to")) v = new Date(v).toISOString();
        if (v) q.set(f, v);
      }
      location.hash = `#/audit?${q}`;
    },
  }, AUDIT_FILTERS.map((f) => {
    let value = params.get(f) || "";
    if (value && (f === "from" || f === "to")) {
      const t = new Date(value);
      value = new Date(t.getTime() - t.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
    }
    const input = f === "outcome"
      ? h("select", { id: `f-${f}`, name: f }, ["", "succeeded", "failed", "denied", "invalid", "unauthenticated", "outcome_unknown"]
        .map((o) => h("option", { value: o, selected: o === value }, o || "any")))
      : h("input", { id: `f-${f}`, name: f, type: f === "from" || f === "to" ? "datetime-local" : "text", value });
    return h("span.field", {}, h("label", { for: `f-${f}` }, f[0].toUpperCase() + f.slice(1)), input);
  }), h("button", { type: "submit" }, "Filter"));
  show(crumbs(["Audit log"]), h("h1", {}, "Audit log"), form, h("p", { "aria-busy": "true" }, "Loading…"));
  checkChain();
  const q = new URLSearchParams();
  for (const f of [...AUDIT_FILTERS, "cursor"]) if (params.get(f)) q.set(f, params.get(f));
  q.set("limit", "100");
  const page = await api(`/v1/audit?${q}`);
  const next = new URLSearchParams(params);
  if (page.nextCursor) next.set("cursor", page.nextCursor);
  show(crumbs(["Audit log"]), h("h1", {}, "Audit log"), form,
    table("Audit entries, newest first", ["#", "When", "Who", "Stage", "Action", "Where", "Object", "Outcome", "Via"], page.items.map((e) => [
      link(`#/audit/${e.auditId}`, `${e.seq}`), ago(e.receivedAt), e.subject, e.stage,
      e.action + (e.dryRun ? " (dry run)" : ""), [e.cluster, e.namespace].filter(Boolean).join("/"),
      [e.resourceKind, e.resourceName].filter(Boolean).join("/"),
      outcomeView(e.outcome), e.interface || "",
    ]), "No entries match."),
    page.nextCursor ? link(`#/audit?${next}`, "Older entries") : null);
}

async function auditEntryPage(id) {
  show(crumbs(["Audit log", "#/audit"], [id]), h("p", { "aria-busy": "true" }, "Loading…"));
  const e = await api(`/v1/audit/${enc(id)}`);
  const all = Array.isArray(e.items) ? e.items : [e];
  const parts = [crumbs(["Audit log", "#/audit"], [id]), h("h1", {}, `Audit entry ${id}`)];
  for (const x of all) {
    parts.push(h("h2", {}, `#${x.seq} ${x.stage}`), h("pre.json", { tabindex: "0" }, JSON.stringify(x, null, 2)));
  }
  const rec = h("div");
  parts.push(rec);
  show(...parts);
  if (all.some((x) => x.action === "exec")) {
    try {
      const res = await api(`/v1/audit/${enc(id)}/recording`, { accept: "application/x-asciicast" });
      rec.replaceChildren(player(await res.text()));
    } catch (err) {
      if (err.status !== 404) rec.replaceChildren(problemView(err));
    }
  }
}

// Terminal control sequences left out of the text (colours, cursor moves, titles).
function plain(text) {
  return text.replace(/\x1b\][^\x07\x1b]*(\x07|\x1b\\)/g, "").replace(/\x1b\[[0-9;?]*[ -/]*[@-~]/g, "")
    .replace(/\x1b[()][0-9A-B]/g, "").replace(/\r\n/g, "\n").replace(/\r/g, "");
}

// An exec session's recording (asciicast v2) replayed as it happened: output and, when recorded,
// input, with pauses longer than a second shortened to one.
function player(cast) {
  const [first, ...rest] = cast.split("\n").filter(Boolean);
  const header = JSON.parse(first);
  const events = rest.map((l) => JSON.parse(l)).filter((e) => e[1] === "o" || e[1] === "e" || e[1] === "i");
  const screen = h("pre.logs", { id: "recording", tabindex: "0", "aria-label": "Recording", "aria-live": "off" });
  let run = 0;
  const replay = async () => {
    const mine = ++run;
    screen.textContent = "";
    let at = 0;
    for (const [t, code, data] of events) {
      await new Promise((r) => setTimeout(r, Math.min(1, Math.max(0, t - at)) * 1000));
      if (mine !== run) return;
      at = t;
      screen.append(code === "i" ? h("span.input", {}, plain(data)) : plain(data));
      screen.scrollTop = screen.scrollHeight;
    }
  };
  const all = () => {
    run++;
    screen.replaceChildren(...events.map(([, code, data]) => (code === "i" ? h("span.input", {}, plain(data)) : plain(data))));
  };
  all();
  return h("section", { "aria-labelledby": "rec-h" },
    h("h2", { id: "rec-h" }, "Recording"),
    h("p", {}, `${header.title || "exec session"}, ${header.width || "?"}×${header.height || "?"}, ${
      events.length ? `${events[events.length - 1][0].toFixed(1)} s` : "no output"}`),
    h("div.row", {}, h("button#replay", { type: "button", onclick: replay }, "Replay"),
      h("button", { type: "button", onclick: all }, "Show all")),
    screen);
}

// ---- routing ---------------------------------------------------------------------------

async function route() {
  if (!token) return signInPage();
  pageAbort.abort();
  pageAbort = new AbortController();
  const [path, query] = location.hash.replace(/^#/, "").split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  try {
    if (parts.length === 0) await clustersPage();
    else if (parts[0] === "audit" && parts.length === 1) await auditPage(query || "");
    else if (parts[0] === "audit" && parts.length === 2) await auditEntryPage(parts[1]);
    else if (parts[0] === "c" && parts.length === 2) await namespacesPage(parts[1]);
    else if (parts[0] === "c" && parts[2] === "n" && parts.length === 4) await deploymentsPage(parts[1], parts[3]);
    else if (parts[0] === "c" && parts[2] === "n" && parts.length === 5 && parts[4] === "pods") await podsPage(parts[1], parts[3]);
    else if (parts[0] === "c" && parts[2] === "n" && parts.length === 5 && parts[4] === "services") await servicesPage(parts[1], parts[3]);
    else if (parts[0] === "c" && parts[2] === "n" && parts.length === 5 && parts[4] === "events") await eventsPage(parts[1], parts[3]);
    else if (parts[0] === "c" && parts[2] === "n" && parts[4] === "d" && parts.length === 6) await deploymentPage(parts[1], parts[3], parts[5]);
    else if (parts[0] === "c" && parts[2] === "n" && parts[4] === "p" && parts.length === 6) await podPage(parts[1], parts[3], parts[5]);
    else show(h("h1", {}, "Not found"), h("p", {}, "No page here. "), link("#/", "Clusters"));
  } catch (e) {
    if (e.name === "AbortError" || !token) return;
    show(h("h1", {}, "Something went wrong"), problemView(e));
  }
}

window.addEventListener("hashchange", () => {
  flash = null;
  route().then(() => main.focus({ preventScroll: true }));
});

async function start() {
  try {
    const res = await fetch("config.json", { cache: "no-store", credentials: "omit" });
    oidc = res.ok ? (await res.json()).oidc : null;
  } catch {
    oidc = null;
  }
  const params = new URLSearchParams(location.search);
  if (oidc && (params.has("code") || params.has("error"))) {
    try {
      token = await oidcReturn(params);
      me = await api("/v1/whoami");
      return signedIn();
    } catch (e) {
      token = null;
      return signInPage(e.message);
    }
  }
  signInPage();
}
start();
