// The demo's only script (the pages carry no inline script: CSP script-src 'self'). Each
// page says what it is in <main data-page>, with the verifier URL, the ticket the backend
// got for this person and the CSRF token in data attributes.
import { Twofold, TwofoldError } from "/twofold/index.js";

const main = document.getElementById("app");
const d = main.dataset;
const $ = (id) => document.getElementById(id);

function showError(msg) {
  const p = $("page-error");
  if (!p) return;
  p.textContent = msg;
  p.hidden = !msg;
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  e.append(...children);
  return e;
}

function component(name, extra = {}) {
  return el(name, { verifier: d.verifier, ticket: d.ticket, ...extra });
}

// post sends JSON to this site with the CSRF token.
async function post(path, body) {
  const res = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": d.csrf },
    body: JSON.stringify(body),
  });
  const out = res.status === 204 ? {} : await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(out.error || `The site answered ${res.status}.`);
  return out;
}

// sendToken hands a component's token to the backend, which checks it and says where next.
async function sendToken(token, purpose) {
  try {
    const { next } = await post("/2fa/token", { token, purpose });
    location.assign(next);
  } catch (e) {
    showError(e.message);
  }
}

// expired reloads the page when the ticket expired (the backend gets a new one), and
// passes every other error on.
function expired(e) {
  if (e.code === "invalid_ticket") location.reload();
  throw e;
}

// The second step of signing in: enroll the first time, verify afterwards.
async function secondFactor() {
  let tf;
  try {
    tf = await Twofold.load({ verifier: d.verifier, ticket: d.ticket });
  } catch (e) {
    $("slot").replaceChildren();
    showError(TwofoldError.from(e).message);
    return;
  }
  const f = tf.factors;
  const enrolled = f.totp || f.passkeys > 0;
  const recovery = d.mode === "recovery";
  if (!enrolled && !recovery) {
    $("title").textContent = "Set up two-step verification";
    $("intro").textContent = "Your account gets a second lock: a code from an app on your phone, asked for after your password.";
    const e = component("twofold-enroll", { issuer: "Acme Notes" });
    e.addEventListener("twofold:token", (ev) => sendToken(ev.detail.token, "enrolled"));
    $("slot").replaceChildren(e);
    return;
  }
  const v = component("twofold-verify");
  v.addEventListener("twofold:token", (ev) => sendToken(ev.detail.token, "signin"));
  if (recovery) {
    // Open the component on its recovery-code form.
    new MutationObserver((_, obs) => {
      const b = v.shadowRoot && v.shadowRoot.querySelector("button[data-mode=recovery]");
      if (b && (v.dataset.step === "code" || v.dataset.step === "passkey")) {
        obs.disconnect();
        b.click();
        v.dataset.view = "recovery";
      }
    }).observe(v, { attributes: true, attributeFilter: ["data-step"] });
  } else if ($("lost-link")) {
    $("lost-link").hidden = false;
  }
  $("slot").replaceChildren(v);
}

// After a recovery-code sign-in: the new phone.
function newAuthenticator() {
  const e = component("twofold-enroll", { issuer: "Acme Notes" });
  e.addEventListener("twofold:token", (ev) => sendToken(ev.detail.token, "enrolled"));
  $("slot").replaceChildren(e);
}

const kinds = { totp: "Authenticator app", passkey: "Passkey" };
const when = (t) => (t ? new Date(t).toLocaleString() : "never");

async function loadFactors(tf) {
  const rows = $("factor-rows");
  let list;
  try {
    list = await tf.listFactors().catch(expired);
  } catch (e) {
    showError(e.message);
    return;
  }
  rows.replaceChildren(
    ...list.map((f) => {
      const remove = el("button", { type: "button", class: "secondary", "data-remove": f.id }, "Remove");
      remove.addEventListener("click", async () => {
        remove.disabled = true;
        try {
          await tf.removeFactor(f.id).catch(expired);
          showError("");
          location.reload();
        } catch (e) {
          showError(e.message);
          remove.disabled = false;
        }
      });
      return el(
        "tr",
        { "data-factor": f.id, "data-type": f.type },
        el("td", {}, el("strong", {}, kinds[f.type] || f.type), f.label && f.label !== kinds[f.type] ? " · " + f.label : ""),
        el("td", {}, when(f.createdAt)),
        el("td", { class: "last-used" }, when(f.lastUsedAt)),
        el("td", {}, remove),
      );
    }),
  );
  main.dataset.factors = String(list.length);
}

function account() {
  if (d.elevated !== "true") {
    const v = component("twofold-verify");
    v.addEventListener("twofold:token", (ev) => sendToken(ev.detail.token, "unlock"));
    $("slot").replaceChildren(v);
    return;
  }
  const loaded = Twofold.load({ verifier: d.verifier, ticket: d.ticket });
  loaded.then(
    (tf) => {
      loadFactors(tf);
      // How many recovery codes are left, from the SDK's session.
      const n = tf.factors.recoveryCodesRemaining;
      $("codes-left").textContent = n === 1 ? "1 unused recovery code left." : `${n} unused recovery codes left.`;
    },
    (e) => showError(e.message),
  );
  const pk = component("twofold-passkey", { mode: "register", label: "Passkey" });
  pk.addEventListener("twofold:passkey", async () => {
    location.reload();
  });
  $("passkey-slot").replaceChildren(pk);
  $("add-app").addEventListener("click", () => {
    $("add-app").hidden = true;
    const e = component("twofold-enroll", { issuer: "Acme Notes" });
    e.addEventListener("twofold:token", (ev) => sendToken(ev.detail.token, "enrolled"));
    $("enroll-slot").replaceChildren(e);
  });
  $("regen").addEventListener("click", async () => {
    $("regen").disabled = true;
    try {
      const codes = await (await loaded).recovery.regenerate().catch(expired);
      $("code-list").replaceChildren(...codes.map((c) => el("li", {}, c)));
      $("codes").hidden = false;
      $("regen").hidden = true;
    } catch (e) {
      showError(e.message);
      $("regen").disabled = false;
    }
  });
  $("codes-saved").addEventListener("click", () => location.reload());
}

({ "2fa": secondFactor, new: newAuthenticator, account })[d.page]?.();
