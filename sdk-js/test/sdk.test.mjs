// Unit tests of the JS package against the real engine (dist/twofold.wasm) in Node, with
// the verifier played by a stubbed fetch. Run `make wasm` first (make test-js does).
import { test, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";

import { Twofold, TwofoldError, normalizeCode, setStrings, strings } from "../dist/index.js";
import { fill } from "../dist/components/strings.js";
import { checkEngine, engineVersion, frameAncestors } from "../dist/engine.js";

const wasm = readFileSync(new URL("../dist/twofold.wasm", import.meta.url));
const V = "http://verifier.test";
const ORIGIN = "http://localhost:3000";

// ---- a stub verifier ----
let calls; // [{method, url, headers, body}]
let routes; // "METHOD /path" -> (call) => [status, body, headers?] | "network"
let serverOffsetMs; // verifier clock minus real time
let storage;

function json(status, body, headers = {}) {
  return new Response(body === undefined ? null : JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", date: new Date(Date.now() + serverOffsetMs).toUTCString(), ...headers },
  });
}

const enrollment = () => ({
  id: "totp_abc",
  otpauth_uri: "otpauth://totp/Shop:alice?secret=JBSWY3DPEHPK3PXP&issuer=Shop",
  secret: "JBSWY3DPEHPK3PXP",
  qr_svg: '<svg xmlns="http://www.w3.org/2000/svg"/>',
  expires_at: new Date(Date.now() + 600_000).toISOString(),
});

beforeEach(() => {
  calls = [];
  serverOffsetMs = 0;
  storage = new Map();
  globalThis.sessionStorage = {
    getItem: (k) => (storage.has(k) ? storage.get(k) : null),
    setItem: (k, v) => storage.set(k, String(v)),
    removeItem: (k) => storage.delete(k),
  };
  globalThis.location = { origin: ORIGIN, hostname: "localhost" };
  delete globalThis.top;
  delete globalThis.self;
  routes = {
    "GET /v1/session": () => [200, {
      user: "alice",
      factors: { totp: false, passkeys: 0, recovery_codes_remaining: 0 },
      server_time: new Date(Date.now() + serverOffsetMs).toISOString(),
      elevated: false,
      recovery_used: false,
      origins: [ORIGIN],
    }],
    "POST /v1/totp/enrollments": () => [201, enrollment()],
    "POST /v1/totp/enrollments/totp_abc/confirm": () => [200, { recovery_codes: ["abcd-efgh-jkmn", "0000-1111-2222"], token: "jwt.confirm", token_type: "Bearer", expires_in: 300 }],
    "POST /v1/totp/verify": () => [200, { token: "jwt.verify", token_type: "Bearer", expires_in: 300 }],
    "POST /v1/origin-refusals": () => [404, { error: "not_found", message: "no" }],
    "GET /healthz": () => [200, { status: "ok" }],
  };
  globalThis.fetch = async (url, init = {}) => {
    const u = new URL(String(url));
    const call = { method: init.method ?? "GET", path: u.pathname, url: String(url), headers: init.headers ?? {}, mode: init.mode, body: init.body ? JSON.parse(init.body) : undefined };
    calls.push(call);
    const r = routes[`${call.method} ${call.path}`];
    if (!r) return json(404, { error: "not_found", message: "There is no " + call.path });
    const out = r(call);
    if (out === "network") throw new TypeError("Failed to fetch");
    return json(...out);
  };
});

const load = (ticket = "t1") => Twofold.load({ verifier: V, ticket, wasm });

test("load reads the session with the ticket and measures no skew on a true clock", async () => {
  const tf = await load();
  assert.equal(tf.user, "alice");
  const c = calls.find((c) => c.path === "/v1/session");
  assert.equal(c.url, V + "/v1/session");
  assert.equal(c.headers.Authorization, "Ticket t1");
  assert.ok(Math.abs(tf.clockSkew()) <= 1, `skew ${tf.clockSkew()}`);
  assert.equal(tf.clock().warn, false);
  const s = await tf.session();
  assert.equal(s.user, "alice");
  assert.deepEqual(s.factors, { totp: false, passkeys: 0, recoveryCodesRemaining: 0 });
  assert.ok(s.serverTime instanceof Date);
  assert.deepEqual(s.origins, [ORIGIN]);
  assert.equal(s.recoveryUsed, false);
});

test("session says when the ticket passed with a recovery code, so the app can ask for a new authenticator", async () => {
  const tf = await load();
  const plain = routes["GET /v1/session"];
  routes["GET /v1/session"] = (call) => {
    const [status, body] = plain(call);
    return [status, { ...body, elevated: true, recovery_used: true }];
  };
  const s = await tf.session();
  assert.equal(s.elevated, true);
  assert.equal(s.recoveryUsed, true);
});

test("a clock two minutes off warns, and clockSkew says by how much", async () => {
  serverOffsetMs = -120_000; // the verifier is behind, so the device is ahead
  const tf = await load();
  assert.ok(Math.abs(tf.clockSkew() - 120) <= 1, `skew ${tf.clockSkew()}`);
  assert.deepEqual({ warn: tf.clock().warn, direction: tf.clock().direction }, { warn: true, direction: "ahead" });
});

test("a page on an origin the app did not register is refused and reported", async () => {
  globalThis.location = { origin: "http://evil.localhost:3000" };
  await assert.rejects(load(), (e) => e instanceof TwofoldError && e.code === "origin_not_allowed" && /not on an address/.test(e.message));
  const report = calls.find((c) => c.path === "/v1/origin-refusals");
  assert.deepEqual(report.body, { page_origin: "http://evil.localhost:3000", reason: "not_listed", ancestors: [] });
  assert.ok(!calls.some((c) => c.path.startsWith("/v1/totp")));
});

test("a page framed by another origin is refused", async () => {
  globalThis.self = globalThis;
  globalThis.top = {};
  globalThis.location = { origin: ORIGIN, ancestorOrigins: { length: 1, item: () => "https://evil.test" } };
  await assert.rejects(load(), (e) => e.code === "origin_not_allowed" && /inside another site \(https:\/\/evil\.test\)/.test(e.message));
  assert.equal(calls.find((c) => c.path === "/v1/origin-refusals").body.reason, "framed");
});

test("plain http off localhost is refused before anything is sent", async () => {
  globalThis.location = { origin: "http://shop.example.com" };
  await assert.rejects(load(), (e) => e.code === "origin_not_allowed");
  assert.equal(calls.length, 0);
});

test("a CORS refusal reads as origin_not_allowed, a dead network as unavailable", async () => {
  routes["GET /v1/session"] = () => "network";
  await assert.rejects(load(), (e) => e.code === "origin_not_allowed");
  assert.equal(calls.find((c) => c.path === "/healthz").mode, "no-cors");
  routes["GET /healthz"] = () => "network";
  await assert.rejects(load(), (e) => e.code === "unavailable");
});

test("factors are listed and removed, and recovery codes replaced, with the API's refusals kept", async () => {
  const tf = await load();
  routes["GET /v1/factors"] = () => [200, { factors: [
    { id: "totp_abc", type: "totp", label: "Phone", created_at: "2030-01-01T00:00:00Z", last_used_at: "2030-01-02T00:00:00Z" },
    { id: "pk/1+2", type: "passkey", label: "Laptop", created_at: "2030-01-03T00:00:00Z", last_used_at: null },
  ] }];
  assert.deepEqual(await tf.listFactors(), [
    { id: "totp_abc", type: "totp", label: "Phone", createdAt: new Date("2030-01-01T00:00:00Z"), lastUsedAt: new Date("2030-01-02T00:00:00Z") },
    { id: "pk/1+2", type: "passkey", label: "Laptop", createdAt: new Date("2030-01-03T00:00:00Z"), lastUsedAt: null },
  ]);
  routes["DELETE /v1/factors/pk%2F1%2B2"] = () => [204];
  assert.equal(await tf.removeFactor("pk/1+2"), undefined);
  assert.equal(calls.at(-1).headers.Authorization, "Ticket t1");
  routes["DELETE /v1/factors/totp_abc"] = () => [409, { error: "last_factor", message: "This is your last second factor." }];
  await assert.rejects(tf.removeFactor("totp_abc"), (e) => e instanceof TwofoldError && e.code === "last_factor" && e.message === "This is your last second factor.");
  routes["POST /v1/recovery/codes"] = () => [200, { recovery_codes: ["aaaa-bbbb-cccc", "dddd-eeee-ffff"] }];
  assert.deepEqual(await tf.recovery.regenerate(), ["aaaa-bbbb-cccc", "dddd-eeee-ffff"]);
  routes["POST /v1/recovery/codes"] = () => [403, { error: "step_up_required", message: "Confirm it's you first." }];
  await assert.rejects(tf.recovery.regenerate(), (e) => e.code === "step_up_required");
});

test("API calls map the wire format and reject with the API's code and message", async () => {
  const tf = await load();
  const e = await tf.totp.enroll();
  assert.equal(e.id, "totp_abc");
  assert.equal(e.otpauthURI, enrollment().otpauth_uri);
  assert.equal(e.qrSVG, enrollment().qr_svg);
  assert.ok(e.expiresAt instanceof Date && e.expiresAt > new Date());
  const c = await tf.totp.confirm(e.id, "123456");
  assert.deepEqual(c, { recoveryCodes: ["abcd-efgh-jkmn", "0000-1111-2222"], token: "jwt.confirm", expiresIn: 300 });
  assert.deepEqual(await tf.totp.verify("654321"), { token: "jwt.verify", expiresIn: 300 });
  assert.deepEqual(calls.at(-1).body, { code: "654321" });
  routes["POST /v1/totp/verify"] = () => [401, { error: "invalid_code", message: "That code is from about 120 seconds ahead.", clock: "ahead" }];
  await assert.rejects(tf.totp.verify("111111"), (err) => err instanceof TwofoldError && err.code === "invalid_code" && err.clock === "ahead" && err.message.startsWith("That code"));
  routes["POST /v1/recovery/verify"] = () => [429, { error: "rate_limited", message: "Wait.", retry_after: 30 }];
  await assert.rejects(tf.recovery.verify("abcd-efgh-jkmn"), (err) => err.code === "rate_limited" && err.retryAfter === 30);
  await assert.rejects(tf.passkeys.register(), (err) => err.code === "passkey_unsupported", "Node has no WebAuthn");
});

test("the guided enrollment runs in the engine and resumes after a reload", async () => {
  let tf = await load();
  assert.equal(tf.enrollment.state().step, "idle");
  let v = await tf.enrollment.start();
  assert.equal(v.step, "scan");
  assert.equal(v.enrollment.secret, "JBSWY3DPEHPK3PXP");
  assert.equal(storage.size, 1, "the pending enrollment is kept in sessionStorage");

  // A reload: a new page load with a new ticket resumes the same enrollment, no new QR.
  const before = calls.filter((c) => c.path === "/v1/totp/enrollments").length;
  tf = await load("t2");
  v = tf.enrollment.state();
  assert.equal(v.step, "scan");
  assert.equal(v.enrollment.id, "totp_abc");
  assert.equal(calls.filter((c) => c.path === "/v1/totp/enrollments").length, before);

  v = await tf.enrollment.submit("12 34");
  assert.equal(v.step, "scan");
  assert.equal(v.error.code, "invalid_code");
  assert.ok(!calls.some((c) => c.path.endsWith("/confirm")), "a malformed code is not sent");

  routes["POST /v1/totp/enrollments/totp_abc/confirm"] = () => [401, { error: "invalid_code", message: "Wrong code." }];
  v = await tf.enrollment.submit("000000");
  assert.deepEqual([v.step, v.error.message, v.attempts], ["scan", "Wrong code.", 1]);

  routes["POST /v1/totp/enrollments/totp_abc/confirm"] = (c) => {
    assert.deepEqual(c.body, { code: "123456" });
    assert.equal(c.headers.Authorization, "Ticket t2");
    return [200, { recovery_codes: ["abcd-efgh-jkmn"], token: "jwt.c", token_type: "Bearer", expires_in: 300 }];
  };
  v = await tf.enrollment.submit("１２３-４５６");
  assert.deepEqual([v.step, v.recoveryCodes, v.token, v.error], ["recovery", ["abcd-efgh-jkmn"], "jwt.c", null]);
  assert.match(tf.enrollment.recoveryFile("Shop", v.recoveryCodes), /^Recovery codes for Shop \(alice\)\n[\s\S]*\nabcd-efgh-jkmn\n$/);

  // A reload while the codes are on screen shows them again, until "I saved them"; the
  // token of t2 is never kept, since the page now holds t3 (the app may check its nonce).
  assert.ok(![...storage.values()].some((x) => x.includes(Buffer.from("jwt.c").toString("base64url"))), "the token is kept in sessionStorage");
  tf = await load("t3");
  assert.deepEqual(tf.enrollment.state().recoveryCodes, ["abcd-efgh-jkmn"]);
  v = await tf.enrollment.saved();
  assert.deepEqual([v.step, v.token, v.recoveryCodes], ["done", "", []]);
  assert.equal(storage.size, 0, "nothing is kept once done");
});

test("without a reload, the enrollment ends with the confirmation's token", async () => {
  routes["POST /v1/totp/enrollments/totp_abc/confirm"] = () => [200, { recovery_codes: ["abcd-efgh-jkmn"], token: "jwt.c", token_type: "Bearer", expires_in: 300 }];
  const tf = await load();
  await tf.enrollment.start();
  await tf.enrollment.submit("123456");
  const v = await tf.enrollment.saved();
  assert.deepEqual([v.step, v.token, v.expiresIn], ["done", "jwt.c", 300]);
});

test("step_up_required fails the enrollment with the API's message", async () => {
  routes["POST /v1/totp/enrollments"] = () => [403, { error: "step_up_required", message: "Verify with your current authenticator first." }];
  const tf = await load();
  const v = await tf.enrollment.start();
  assert.equal(v.step, "failed");
  assert.equal(v.error.code, "step_up_required");
});

test("codes are normalised like the verifier does", async () => {
  assert.equal(await normalizeCode(" １２３ ４５６ "), "123456");
  assert.equal(await normalizeCode("123-456"), "123456");
});

test("TwofoldError carries the API code and message; strings are one replaceable table", () => {
  const e = TwofoldError.from({ code: "invalid_ticket", message: "Ask your app for a new ticket." });
  assert.ok(e instanceof Error && e instanceof TwofoldError);
  assert.equal(e.name, "TwofoldError");
  assert.deepEqual([e.code, e.message], ["invalid_ticket", "Ask your app for a new ticket."]);
  assert.equal(TwofoldError.from(new Error("boom")).code, "internal");
  const old = strings.confirm;
  setStrings({ confirm: "Bestätigen" });
  assert.equal(strings.confirm, "Bestätigen");
  setStrings({ confirm: old });
  assert.equal(fill("about {time} ahead", { time: "2 minutes" }), "about 2 minutes ahead");
});

test("the engine is the version this package was built with; another is refused with a message saying so", async () => {
  await load();
  assert.equal(globalThis.__twofold.version, engineVersion);
  assert.throws(
    () => checkEngine({ ...globalThis.__twofold, version: "0.0.9" }),
    (e) => e instanceof TwofoldError && e.code === "unavailable" && e.message.includes("0.0.9") && e.message.includes(engineVersion),
  );
});

test("without ancestorOrigins the loader walks up to the top; a frame it cannot read makes the ancestors unknown", () => {
  const shop = "https://shop.example";
  const top = { location: { origin: shop } };
  top.parent = top;
  const own = { parent: top, location: { origin: shop } };
  const foreign = { parent: top };
  Object.defineProperty(foreign, "location", { get() { throw new Error("SecurityError: cross-origin frame"); } });
  globalThis.top = top;
  globalThis.self = { parent: own };
  assert.deepEqual(frameAncestors(), [shop, shop]);
  globalThis.self = { parent: foreign };
  assert.equal(frameAncestors(), null);
  globalThis.self = top;
  assert.deepEqual(frameAncestors(), [], "not framed");
});
