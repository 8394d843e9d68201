// The drop-in web components. Each takes the attributes `verifier` and `ticket`, renders
// into an open shadow root (themed through CSS custom properties and ::part), keeps errors
// in an aria-live region, works with the keyboard alone, and dispatches `twofold:token`
// with { token, expiresIn } in `detail` when the person passed. The host element carries
// data-step (and data-error, the last error code) for styling and tests.
import { Twofold, passkeysSupported, type EnrollmentView } from "../client.js";
import { TwofoldError } from "../errors.js";
import { css } from "./styles.js";
import { fill, strings } from "./strings.js";

// Node (tests, SSR) has no HTMLElement: the classes still load, and defineElements() is a no-op.
const Base = (globalThis.HTMLElement ?? class {}) as typeof HTMLElement;

type Attrs = Record<string, string | boolean | ((e: Event) => void) | undefined>;

function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs?: Attrs, ...children: (Node | string | null | false)[]): HTMLElementTagNameMap[K];
function h(tag: string, attrs?: Attrs, ...children: (Node | string | null | false)[]): HTMLElement;
function h(tag: string, attrs: Attrs = {}, ...children: (Node | string | null | false)[]): HTMLElement {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    if (typeof v === "function") el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== false) el.append(c);
  return el;
}

/**
 * url when its scheme is one of schemes, else undefined (h() then sets no href). Links come
 * from the string table a page may fill from translators, and from the verifier: a
 * javascript: link in them would run in the page when clicked.
 */
function safeHref(url: string, ...schemes: string[]): string | undefined {
  try {
    return schemes.includes(new URL(url).protocol) ? url : undefined;
  } catch {
    return undefined;
  }
}

function plural(seconds: number): string {
  const s = Math.abs(seconds);
  return s >= 90 ? fill(strings.minutes, { n: Math.round(s / 60) }) : fill(strings.seconds, { n: s });
}

abstract class TwofoldElement extends Base {
  static observedAttributes = ["verifier", "ticket"];
  protected tf?: Twofold;
  protected readonly body: HTMLDivElement;
  readonly #error: HTMLParagraphElement;
  readonly #clock: HTMLParagraphElement;
  #loaded = "";

  constructor() {
    super();
    const root = this.attachShadow({ mode: "open" });
    const style = document.createElement("style");
    style.textContent = css;
    this.#clock = h("p", { class: "warning", part: "clock-warning", role: "status" });
    this.body = h("div", { part: "body" });
    this.#error = h("p", { class: "error", part: "error", role: "alert", "aria-live": "assertive" });
    root.append(style, this.#clock, this.body, this.#error);
  }

  connectedCallback(): void {
    void this.#load();
  }

  attributeChangedCallback(): void {
    if (this.isConnected) void this.#load();
  }

  async #load(): Promise<void> {
    const verifier = this.getAttribute("verifier") ?? "";
    const ticket = this.getAttribute("ticket") ?? "";
    const key = verifier + "\n" + ticket;
    if (!verifier || !ticket) {
      // The app took the ticket away (a sign-out at a shared screen): what the last person
      // had on screen (a secret, recovery codes) goes with it, and their answers still on
      // the way are no longer theirs to show.
      if (this.#loaded) this.#clear();
      return;
    }
    if (key === this.#loaded) return;
    this.#loaded = key;
    this.tf = undefined;
    this.step("loading");
    this.body.replaceChildren(h("p", {}, strings.loading));
    this.showError(null);
    try {
      const tf = await Twofold.load({ verifier, ticket });
      if (key !== this.#loaded) return;
      this.tf = tf;
    } catch (e) {
      if (key !== this.#loaded) return;
      const err = TwofoldError.from(e);
      this.#loaded = ""; // the same verifier and ticket may be loaded again
      this.step("refused");
      // An expired ticket needs a new one from the app; anything else (the verifier down,
      // the network gone) may pass on its own.
      if (err.code === "invalid_ticket") this.body.replaceChildren();
      else {
        const again = h("button", { type: "button", part: "button" }, strings.retry);
        again.addEventListener("click", () => void this.#load());
        this.body.replaceChildren(again);
      }
      this.showError(err);
      this.dispatchEvent(new CustomEvent("twofold:error", { detail: { code: err.code, message: err.message }, bubbles: true, composed: true }));
      return;
    }
    const c = this.tf.clock();
    this.#clock.textContent = c.warn ? fill(c.direction === "ahead" ? strings.clockAhead : strings.clockBehind, { time: plural(c.skew) }) : "";
    this.dataset.clock = c.warn ? c.direction : "ok";
    await this.ready(this.tf);
  }

  /** Renders once the SDK is loaded for this verifier and ticket. */
  protected abstract ready(tf: Twofold): Promise<void> | void;

  #clear(): void {
    this.#loaded = "";
    this.tf = undefined;
    this.body.replaceChildren();
    this.showError(null);
    this.#clock.textContent = "";
    delete this.dataset.step;
    delete this.dataset.clock;
  }

  protected step(s: string): void {
    this.dataset.step = s;
  }

  protected showError(e: TwofoldError | null): void {
    this.#error.textContent = e ? e.message : "";
    if (e) this.dataset.error = e.code;
    else delete this.dataset.error;
  }

  /**
   * Whether tf is still this element's: an answer that arrives after the element was given
   * another ticket (the next person at a shared screen) belongs to no one on screen, and
   * showing it would hand that person the last one's recovery codes or token.
   */
  protected current(tf: Twofold | undefined): boolean {
    return this.tf === tf;
  }

  protected emitToken(token: string, expiresIn: number): void {
    this.dispatchEvent(new CustomEvent("twofold:token", { detail: { token, expiresIn }, bubbles: true, composed: true }));
  }

  /** A labelled one-time-code field. */
  protected codeInput(id: string, label: string, recovery = false): [HTMLLabelElement, HTMLInputElement] {
    const input = h("input", {
      id,
      name: recovery ? "recovery-code" : "code",
      type: "text",
      part: "input",
      autocomplete: recovery ? "off" : "one-time-code",
      inputmode: recovery ? "text" : "numeric",
      autocapitalize: "none",
      spellcheck: "false",
      required: true,
      "aria-describedby": "hint",
    });
    return [h("label", { for: id }, label), input];
  }

  /**
   * A form for one code: while action runs every button in the body is disabled (data-step
   * "verifying"); a failure is shown and the form offered again at step `back`.
   */
  protected codeForm(label: string, recovery: boolean, back: string, action: (code: string) => Promise<void>): HTMLFormElement {
    const [l, input] = this.codeInput("code", label, recovery);
    const submit = h("button", { type: "submit", part: "button" }, strings.verify);
    const form = h("form", { novalidate: true }, l, h("div", { class: "row" }, input, submit));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const tf = this.tf;
      // Every button waits for the answer, the links to other ways in too: switching
      // mid-request would show its answer under a form it was not sent from.
      const live = [...this.body.querySelectorAll("button")].filter((b) => !b.disabled);
      for (const b of live) b.disabled = true;
      submit.textContent = strings.verifying;
      this.step("verifying");
      try {
        await action(input.value);
      } catch (e) {
        if (!this.current(tf)) return;
        this.showError(TwofoldError.from(e));
        this.step(back);
        for (const b of live) b.disabled = false;
        submit.textContent = strings.verify;
        input.select();
        input.focus();
      }
    });
    return form;
  }

  /**
   * A button that runs a passkey ceremony: disabled while the browser's prompt is open
   * (data-step "waiting"); a failure is shown and the button offered again at step `back`.
   */
  protected passkeyButton(label: string, back: string, ceremony: () => Promise<void>): HTMLButtonElement {
    const b = h("button", { type: "button", part: "button" }, label);
    b.addEventListener("click", async () => {
      const tf = this.tf;
      b.disabled = true;
      b.textContent = strings.passkeyWaiting;
      this.showError(null);
      this.step("waiting");
      try {
        await ceremony();
      } catch (e) {
        if (!this.current(tf)) return;
        this.showError(TwofoldError.from(e));
        this.step(back);
        b.disabled = false;
        b.textContent = label;
        b.focus();
      }
    });
    return b;
  }

  protected copyButton(text: () => string, label: string): HTMLButtonElement {
    const b = h("button", { type: "button", class: "secondary", part: "button" }, label);
    b.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(text());
        b.textContent = strings.copied;
        setTimeout(() => (b.textContent = label), 2000);
      } catch {
        /* clipboard refused: the text is on screen to copy by hand */
      }
    });
    return b;
  }
}

/** <twofold-enroll verifier ticket [issuer]>: sets up an authenticator app, step by step. */
export class TwofoldEnroll extends TwofoldElement {
  #emitted = false;

  protected async ready(tf: Twofold): Promise<void> {
    this.#emitted = false; // a new ticket: its enrollment has a token of its own
    const v = tf.enrollment.state();
    if (v.step === "idle") {
      this.render({ ...v, step: "starting" });
      const started = await tf.enrollment.start();
      if (this.current(tf)) this.render(started);
    } else this.render(v);
  }

  private render(v: EnrollmentView): void {
    this.step(v.step);
    this.showError(v.error);
    const tf = this.tf!;
    const b = this.body;
    switch (v.step) {
      case "starting":
      case "idle":
        b.replaceChildren(h("p", {}, strings.loading));
        return;
      case "scan":
      case "confirming": {
        const e = v.enrollment!;
        const [label, input] = this.codeInput("code", strings.codeLabel);
        const submit = h("button", { type: "submit", part: "button" }, strings.confirm);
        const form = h("form", { novalidate: true }, label, h("div", { class: "row" }, input, submit));
        form.addEventListener("submit", async (ev) => {
          ev.preventDefault();
          submit.disabled = true;
          submit.textContent = strings.confirming;
          this.step("confirming");
          const next = await tf.enrollment.submit(input.value);
          if (this.current(tf)) this.render(next);
        });
        const grouped = e.secret.replace(/(.{4})(?=.)/g, "$1 ");
        b.replaceChildren(
          h("h2", {}, strings.enrollTitle),
          h(
            "ol",
            { class: "steps" },
            h("li", {}, strings.step1, h("ul", { class: "apps" }, ...strings.apps.map((a) => h("li", {}, h("a", { href: safeHref(a.href, "https:", "http:"), target: "_blank", rel: "noopener noreferrer" }, a.name))))),
            h(
              "li",
              {},
              h("p", {}, strings.step2),
              // An image, never inline markup: an SVG shown through <img> cannot run script.
              h("img", { class: "qr", part: "qr", alt: strings.qrAlt, src: "data:image/svg+xml;charset=utf-8," + encodeURIComponent(e.qrSVG) }),
              h("p", {}, strings.manualIntro),
              h("div", { class: "row" }, h("code", { class: "secret", part: "secret" }, grouped), this.copyButton(() => e.secret, strings.copy)),
              h("p", {}, h("a", { href: safeHref(e.otpauthURI, "otpauth:") }, strings.openInApp)),
            ),
            h("li", {}, h("p", {}, strings.step3), form),
          ),
          h("p", { id: "hint" }, v.hint ? strings.hint : "", " ", fill(strings.expires, { time: e.expiresAt.toLocaleTimeString() })),
        );
        if (v.error) input.focus();
        return;
      }
      case "recovery": {
        const list = v.recoveryCodes;
        const file = () => tf.enrollment.recoveryFile(this.getAttribute("issuer") ?? location.hostname, list);
        const check = h("input", { type: "checkbox", id: "saved", part: "checkbox" });
        const cont = h("button", { type: "button", part: "button", disabled: true }, strings.continue);
        check.addEventListener("change", () => (cont.disabled = !check.checked));
        cont.addEventListener("click", async () => {
          cont.disabled = true;
          const next = await tf.enrollment.saved();
          if (this.current(tf)) this.render(next);
        });
        const download = h("button", { type: "button", class: "secondary", part: "button" }, strings.download);
        download.addEventListener("click", () => {
          const url = URL.createObjectURL(new Blob([file()], { type: "text/plain" }));
          const a = h("a", { href: url, download: strings.downloadName });
          a.click();
          setTimeout(() => URL.revokeObjectURL(url), 1000);
        });
        b.replaceChildren(
          h("h2", { id: "rc-title" }, strings.recoveryTitle),
          h("p", {}, strings.recoveryIntro),
          h("ol", { class: "codes", part: "recovery-codes", "aria-labelledby": "rc-title" }, ...list.map((c) => h("li", {}, c))),
          h("div", { class: "row" }, this.copyButton(file, strings.copyCodes), download),
          h("p", { class: "row" }, check, h("label", { for: "saved" }, strings.saved)),
          cont,
        );
        return;
      }
      case "done":
        if (!v.token) {
          // Resumed after a reload: the old ticket's token was not kept, so this ticket
          // passes a code from the new authenticator to finish.
          this.step("finish");
          const form = this.codeForm(strings.codeLabel, false, "finish", async (code) => {
            const r = await tf.totp.verify(code);
            if (this.current(tf)) this.render({ ...v, token: r.token, expiresIn: r.expiresIn });
          });
          b.replaceChildren(h("p", { class: "done", role: "status" }, strings.done), h("p", { id: "hint" }, strings.finishIntro), form);
          return;
        }
        b.replaceChildren(h("p", { class: "done", role: "status" }, strings.done), h("p", {}, strings.passkeyNudge));
        if (!this.#emitted) {
          this.#emitted = true;
          this.emitToken(v.token, v.expiresIn);
        }
        return;
      case "expired":
      case "failed": {
        const again = h("button", { type: "button", part: "button" }, v.step === "expired" ? strings.startAgain : strings.retry);
        again.addEventListener("click", async () => {
          again.disabled = true;
          const next = await tf.enrollment.start();
          if (this.current(tf)) this.render(next);
        });
        b.replaceChildren(...(v.step === "expired" ? [h("p", {}, strings.expired)] : []), again);
        return;
      }
    }
  }
}

// The passkey upgrade is offered once per user and browser: that it was shown, then "Not now"
// or an added passkey, is remembered here, in localStorage (which may be missing or throw:
// then it is offered again next time).
const offerPrefix = "twofold:passkey-offer:";

function remembered(key: string): string | null {
  try {
    return globalThis.localStorage?.getItem(key) ?? null;
  } catch {
    return null;
  }
}

function remember(key: string, value: "shown" | "dismissed" | "added"): void {
  try {
    globalThis.localStorage?.setItem(key, value);
  } catch {
    /* not kept: offered again next time */
  }
}

type VerifyMode = "passkey" | "code" | "recovery";

/**
 * <twofold-verify verifier ticket>: the second step of a sign-in. A user with a passkey is
 * asked for it first (a passkey with user verification is the whole second factor: no code
 * follows); otherwise for a code from the app, or a recovery code. After a code from the
 * app, a user without a passkey is offered one, once (host data-offer: shown, added,
 * dismissed); twofold:token then follows the answer. passkey-offer="off" leaves it out.
 */
export class TwofoldVerify extends TwofoldElement {
  #mode: VerifyMode = "code";

  protected ready(tf: Twofold): void {
    this.#mode = this.#passkeyUsable(tf) ? "passkey" : "code";
    delete this.dataset.offer;
    this.render(tf);
  }

  #passkeyUsable(tf: Twofold): boolean {
    return tf.factors.passkeys > 0 && passkeysSupported();
  }

  private render(tf: Twofold): void {
    const mode = this.#mode;
    const f = tf.factors;
    const link = (to: VerifyMode, text: string) => {
      const b = h("button", { type: "button", class: "link", part: "link", "data-mode": to }, text);
      b.addEventListener("click", () => {
        this.#mode = to;
        this.showError(null);
        this.render(tf);
        (this.body.querySelector("input") ?? this.body.querySelector("button"))?.focus();
      });
      return h("p", {}, b);
    };
    const links = [
      mode !== "passkey" && this.#passkeyUsable(tf) ? link("passkey", strings.usePasskey) : null,
      mode !== "code" && f.totp ? link("code", strings.useApp) : null,
      mode !== "recovery" && (f.totp || f.recoveryCodesRemaining > 0) ? link("recovery", strings.useRecovery) : null,
    ].filter((l) => l !== null);

    if (mode === "passkey") {
      this.step("passkey");
      const b = this.passkeyButton(strings.passkeyAuthenticate, "passkey", async () => {
        const r = await tf.passkeys.authenticate();
        if (this.current(tf)) this.done(tf, r.token, r.expiresIn, false);
      });
      this.body.replaceChildren(h("h2", {}, strings.verifyTitle), h("p", { id: "hint" }, strings.passkeyIntro), b, ...links);
      return;
    }

    this.step("code");
    const recovery = mode === "recovery";
    const form = this.codeForm(recovery ? strings.recoveryLabel : strings.codeLabel, recovery, "code", async (code) => {
      const r = recovery ? await tf.recovery.verify(code) : await tf.totp.verify(code);
      if (this.current(tf)) this.done(tf, r.token, r.expiresIn, !recovery);
    });
    this.body.replaceChildren(h("h2", {}, strings.verifyTitle), h("p", { id: "hint" }, recovery ? "" : strings.verifyIntro), form, ...links);
  }

  private done(tf: Twofold, token: string, expiresIn: number, offer: boolean): void {
    this.showError(null);
    this.step("done");
    // With the offer on screen the token waits for the person's answer: a page that moves
    // on at twofold:token would otherwise take the offer away before it was seen.
    const box = offer ? this.upgrade(tf, () => this.emitToken(token, expiresIn)) : "";
    this.body.replaceChildren(h("p", { class: "done", role: "status" }, strings.verified), box);
    if (!box) this.emitToken(token, expiresIn);
  }

  /**
   * The passkey offer after a code from the app, or "" when it does not apply (or the host
   * says passkey-offer="off"); settled runs once the person added a passkey or said not now.
   */
  private upgrade(tf: Twofold, settled: () => void): HTMLElement | "" {
    const key = offerPrefix + (this.getAttribute("verifier") ?? "") + "|" + tf.user;
    if (this.getAttribute("passkey-offer") === "off" || tf.factors.passkeys > 0 || !passkeysSupported() || remembered(key)) return "";
    remember(key, "shown");
    this.dataset.offer = "shown";
    const add = this.passkeyButton(strings.upgradeAdd, "done", async () => {
      const r = await tf.passkeys.register();
      remember(key, "added");
      if (!this.current(tf)) return;
      this.step("done");
      this.dataset.offer = "added";
      box.replaceChildren(h("p", { class: "done", role: "status" }, strings.upgradeDone));
      this.dispatchEvent(new CustomEvent("twofold:passkey", { detail: { id: r.id }, bubbles: true, composed: true }));
      settled();
    });
    const dismiss = h("button", { type: "button", class: "secondary", part: "button" }, strings.upgradeDismiss);
    dismiss.addEventListener("click", () => {
      remember(key, "dismissed");
      this.dataset.offer = "dismissed";
      this.showError(null);
      box.remove();
      settled();
    });
    const box = h(
      "section",
      { class: "upgrade", part: "upgrade", "aria-labelledby": "upgrade-title" },
      h("h3", { id: "upgrade-title" }, strings.upgradeTitle),
      h("p", {}, strings.upgradeIntro),
      h("div", { class: "row" }, add, dismiss),
    );
    return box;
  }
}

/**
 * <twofold-passkey verifier ticket [mode="authenticate"|"register"] [label] [discoverable]>:
 * one button. Signing in dispatches twofold:token; registering dispatches twofold:passkey
 * with { id } in detail.
 */
export class TwofoldPasskey extends TwofoldElement {
  protected ready(tf: Twofold): void {
    if (!passkeysSupported()) {
      this.step("unsupported");
      this.body.replaceChildren(h("p", {}, strings.passkeyUnsupported));
      return;
    }
    const register = this.getAttribute("mode") === "register";
    this.step("ready");
    const b = this.passkeyButton(register ? strings.passkeyRegister : strings.passkeyAuthenticate, "ready", async () => {
      if (register) {
        const r = await tf.passkeys.register({ label: this.getAttribute("label") ?? undefined });
        if (!this.current(tf)) return;
        this.step("done");
        this.body.replaceChildren(h("p", { class: "done", role: "status" }, strings.passkeyRegistered));
        this.dispatchEvent(new CustomEvent("twofold:passkey", { detail: { id: r.id }, bubbles: true, composed: true }));
      } else {
        const r = await tf.passkeys.authenticate({ discoverable: this.hasAttribute("discoverable") });
        if (!this.current(tf)) return;
        this.step("done");
        this.body.replaceChildren(h("p", { class: "done", role: "status" }, strings.verified));
        this.emitToken(r.token, r.expiresIn);
      }
    });
    this.body.replaceChildren(b);
  }
}

/** Defines the three elements (done on import where customElements exists). */
export function defineElements(): void {
  const reg = globalThis.customElements;
  if (!reg) return;
  for (const [name, cls] of [
    ["twofold-enroll", TwofoldEnroll],
    ["twofold-verify", TwofoldVerify],
    ["twofold-passkey", TwofoldPasskey],
  ] as const) {
    if (!reg.get(name)) reg.define(name, cls);
  }
}
