// Passkeys in the JS package, against the real engine (dist/twofold.wasm) in Node: the
// verifier is a stubbed fetch and the browser's WebAuthn a stubbed navigator.credentials,
// so each of the browser's own errors can be thrown. Run `make wasm` first (make test-js does).
import { test, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";

import { Twofold, TwofoldError, sdkErrors, browserErrorCodes } from "../dist/index.js";

const wasm = readFileSync(new URL("../dist/twofold.wasm", import.meta.url));
const V = "http://verifier.test";
const ORIGIN = "http://localhost:3000";
const b64url = (bytes) => Buffer.from(bytes).toString("base64url");

let calls; // [{method, path, search, body}]
let routes; // "METHOD /path" -> (call) => [status, body]
let browser; // {create, get}: what navigator.credentials does

beforeEach(() => {
  calls = [];
  globalThis.location = { origin: ORIGIN, hostname: "localhost" };
  globalThis.sessionStorage = { getItem: () => null, setItem() {}, removeItem() {} };
  globalThis.PublicKeyCredential = class PublicKeyCredential {};
  browser = {};
  globalThis.navigator = {
    credentials: {
      create: (o) => browser.create(o),
      get: (o) => browser.get(o),
    },
  };
  routes = {
    "GET /v1/session": () => [200, { user: "alice", factors: { totp: true, passkeys: 0, recovery_codes_remaining: 10 }, server_time: new Date().toISOString(), elevated: true, origins: [ORIGIN] }],
    "POST /v1/webauthn/registrations": () => [200, { publicKey: { challenge: b64url([1, 2, 3]), rp: { id: "localhost", name: "Shop" }, user: { id: b64url([9, 9]), name: "alice", displayName: "alice" }, pubKeyCredParams: [{ type: "public-key", alg: -7 }], excludeCredentials: [{ type: "public-key", id: b64url([7]) }] } }],
    "POST /v1/webauthn/registrations/finish": () => [201, { id: "cred1" }],
    "POST /v1/webauthn/assertions": () => [200, { publicKey: { challenge: b64url([4, 5, 6]), rpId: "localhost", allowCredentials: [{ type: "public-key", id: b64url([7]) }], userVerification: "required" } }],
    "POST /v1/webauthn/assertions/finish": () => [200, { token: "jwt.passkey", token_type: "Bearer", expires_in: 300 }],
  };
  globalThis.fetch = async (url, init = {}) => {
    const u = new URL(String(url));
    const call = { method: init.method ?? "GET", path: u.pathname, search: u.search, body: init.body ? JSON.parse(init.body) : undefined };
    calls.push(call);
    const r = routes[`${call.method} ${call.path}`];
    const [status, body] = r ? r(call) : [404, { error: "not_found", message: "There is no " + call.path }];
    return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", date: new Date().toUTCString() } });
  };
});

const load = () => Twofold.load({ verifier: V, ticket: "t1", wasm });
const fakeCredential = (json) => ({ id: "cred1", type: "public-key", toJSON: () => json });
const finished = () => calls.some((c) => c.path.endsWith("/finish"));

test("the browser's WebAuthn errors map to the SDK's codes, each with a message a person can act on", () => {
  const want = {
    NotAllowedError: "passkey_cancelled",
    AbortError: "passkey_aborted",
    InvalidStateError: "passkey_already_registered",
    SecurityError: "passkey_wrong_domain",
    NotSupportedError: "passkey_unsupported",
  };
  assert.deepEqual({ ...browserErrorCodes }, want);
  for (const [name, code] of Object.entries(want)) {
    const e = TwofoldError.fromBrowser(name, "The operation either timed out or was not allowed.");
    assert.ok(e instanceof TwofoldError);
    assert.deepEqual([e.code, e.message, e.browserError], [code, sdkErrors[code], name]);
    assert.match(e.message, /^[A-Z].*\.$/, "a sentence");
  }
  const other = TwofoldError.fromBrowser("UnknownError", "The authenticator broke.");
  assert.equal(other.code, "passkey_failed");
  assert.match(other.message, /UnknownError: The authenticator broke\./);
  // What the engine rejects with when the browser refused, as TwofoldError.from reads it.
  assert.equal(TwofoldError.from({ code: "browser:SecurityError", message: "This is an invalid domain." }).code, "passkey_wrong_domain");
  assert.equal(TwofoldError.from({ code: "invalid_passkey", message: "That passkey could not be verified." }).code, "invalid_passkey");
});

test("register sends the options as binary to the browser and its credential's toJSON() to the verifier", async () => {
  const tf = await load();
  let seen;
  browser.create = async (o) => {
    seen = o;
    return fakeCredential({ id: "cred1", rawId: "cred1", type: "public-key", response: { clientDataJSON: "e30", attestationObject: "AA" } });
  };
  assert.deepEqual(await tf.passkeys.register({ label: "Work laptop" }), { id: "cred1" });
  assert.ok(seen.publicKey.challenge instanceof ArrayBuffer);
  assert.deepEqual([...new Uint8Array(seen.publicKey.challenge)], [1, 2, 3]);
  assert.deepEqual([...new Uint8Array(seen.publicKey.user.id)], [9, 9]);
  assert.deepEqual([...new Uint8Array(seen.publicKey.excludeCredentials[0].id)], [7]);
  const fin = calls.find((c) => c.path === "/v1/webauthn/registrations/finish");
  assert.equal(fin.search, "?label=Work%20laptop");
  assert.deepEqual(fin.body, { id: "cred1", rawId: "cred1", type: "public-key", response: { clientDataJSON: "e30", attestationObject: "AA" } });
  assert.equal(tf.factors.passkeys, 1, "the new passkey counts at once");
});

test("authenticate returns the verifier's token; discoverable asks for a usernameless login", async () => {
  const tf = await load();
  let seen;
  browser.get = async (o) => {
    seen = o;
    return fakeCredential({ id: "cred1", type: "public-key", response: { signature: "c2ln" } });
  };
  assert.deepEqual(await tf.passkeys.authenticate(), { token: "jwt.passkey", expiresIn: 300 });
  assert.deepEqual([...new Uint8Array(seen.publicKey.allowCredentials[0].id)], [7]);
  assert.equal(calls.find((c) => c.path === "/v1/webauthn/assertions").body, undefined);
  await tf.passkeys.authenticate({ discoverable: true });
  assert.deepEqual(calls.filter((c) => c.path === "/v1/webauthn/assertions")[1].body, { discoverable: true });
});

test("a prompt the person closed or that timed out rejects with passkey_cancelled and sends nothing more", async () => {
  const tf = await load();
  browser.get = async () => {
    throw new DOMException("The operation either timed out or was not allowed.", "NotAllowedError");
  };
  await assert.rejects(tf.passkeys.authenticate(), (e) => e instanceof TwofoldError && e.code === "passkey_cancelled" && e.message === sdkErrors.passkey_cancelled);
  assert.ok(!finished());
});

test("a device that already holds a passkey for the account rejects with passkey_already_registered", async () => {
  const tf = await load();
  browser.create = async () => {
    throw new DOMException("The user attempted to register an authenticator that contains one of the credentials already registered with the relying party.", "InvalidStateError");
  };
  await assert.rejects(tf.passkeys.register(), (e) => e.code === "passkey_already_registered" && e.browserError === "InvalidStateError");
  assert.ok(!finished());
  assert.equal(tf.factors.passkeys, 0);
});

test("a page outside the passkey domain rejects with passkey_wrong_domain", async () => {
  const tf = await load();
  browser.create = async () => {
    throw new DOMException("This is an invalid domain.", "SecurityError");
  };
  await assert.rejects(tf.passkeys.register(), (e) => e.code === "passkey_wrong_domain" && /address/.test(e.message));
});

test("the page's AbortSignal reaches the browser, and aborting rejects with passkey_aborted", async () => {
  const tf = await load();
  const ctl = new AbortController();
  browser.get = (o) =>
    new Promise((_, reject) => {
      assert.equal(o.signal, ctl.signal);
      o.signal.addEventListener("abort", () => reject(new DOMException("signal is aborted without reason", "AbortError")));
    });
  const p = tf.passkeys.authenticate({ signal: ctl.signal });
  setTimeout(() => ctl.abort(), 10);
  await assert.rejects(p, (e) => e.code === "passkey_aborted");
});

test("a browser without WebAuthn rejects with passkey_unsupported before asking the verifier", async () => {
  delete globalThis.PublicKeyCredential;
  const tf = await load();
  calls = [];
  await assert.rejects(tf.passkeys.register(), (e) => e.code === "passkey_unsupported");
  assert.equal(calls.length, 0);
  assert.equal(tf.passkeys.supported(), false);
});

test("the verifier's refusals keep the API's code and message", async () => {
  const tf = await load();
  browser.get = async () => fakeCredential({ id: "cred1" });
  routes["POST /v1/webauthn/assertions/finish"] = () => [401, { error: "invalid_passkey", message: "That passkey could not be verified. Try again, or use another sign-in method." }];
  await assert.rejects(tf.passkeys.authenticate(), (e) => e.code === "invalid_passkey" && e.message.startsWith("That passkey"));
  routes["POST /v1/webauthn/assertions"] = () => [404, { error: "not_found", message: "No passkey is set up for this account yet." }];
  await assert.rejects(tf.passkeys.authenticate(), (e) => e.code === "not_found" && /No passkey/.test(e.message));
  routes["POST /v1/webauthn/registrations"] = () => [403, { error: "step_up_required", message: "Verify first." }];
  await assert.rejects(tf.passkeys.register(), (e) => e.code === "step_up_required");
});
