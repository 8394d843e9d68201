// Theming: every color, font, size and radius comes from a CSS custom property that pages
// set on the element or any ancestor; each part is also exposed with ::part().
export const css = `
:host {
  display: block;
  font: var(--twofold-font, 1rem/1.5 system-ui, sans-serif);
  color: var(--twofold-color, #1b1b1f);
  background: var(--twofold-background, transparent);
  max-width: var(--twofold-max-width, 28rem);
}
:host([hidden]) { display: none; }
h2 { font-size: var(--twofold-title-size, 1.25rem); margin: 0 0 var(--twofold-gap, .75rem); }
p, ol, ul, form { margin: 0 0 var(--twofold-gap, .75rem); }
ol.steps { padding-left: 1.25rem; }
ol.steps > li { margin-bottom: var(--twofold-gap, .75rem); }
.apps { display: flex; flex-wrap: wrap; gap: .25rem .75rem; list-style: none; padding: 0; }
a { color: var(--twofold-link, var(--twofold-accent, #2048c8)); }
img.qr {
  display: block; width: var(--twofold-qr-size, 14rem); height: var(--twofold-qr-size, 14rem);
  background: #fff; border-radius: var(--twofold-radius, .5rem); image-rendering: pixelated;
}
code.secret, .codes { font-family: var(--twofold-mono, ui-monospace, monospace); letter-spacing: .05em; word-break: break-all; }
.codes { columns: 2; padding: var(--twofold-gap, .75rem) 2rem; background: var(--twofold-surface, #f3f4f7); border-radius: var(--twofold-radius, .5rem); }
label { display: block; font-weight: 600; margin-bottom: .25rem; }
input[type=text] {
  font: inherit; font-size: 1.25rem; letter-spacing: .15em; width: 100%; max-width: 12rem; box-sizing: border-box;
  padding: .5rem .75rem; border: 1px solid var(--twofold-border, #8a8d99); border-radius: var(--twofold-radius, .5rem);
  color: inherit; background: var(--twofold-input-background, #fff);
}
.row { display: flex; gap: .5rem; align-items: center; flex-wrap: wrap; }
button {
  font: inherit; cursor: pointer; padding: .5rem 1rem; border-radius: var(--twofold-radius, .5rem);
  border: 1px solid var(--twofold-accent, #2048c8); background: var(--twofold-accent, #2048c8); color: var(--twofold-on-accent, #fff);
}
button.secondary { background: transparent; color: var(--twofold-accent, #2048c8); }
button.link { border: 0; background: none; color: var(--twofold-link, var(--twofold-accent, #2048c8)); padding: 0; text-decoration: underline; }
button:disabled { opacity: .55; cursor: default; }
:focus-visible { outline: 3px solid var(--twofold-focus, #f0a000); outline-offset: 2px; }
.error { color: var(--twofold-error, #b3261e); font-weight: 600; }
.error:empty, .warning:empty { display: none; }
.warning {
  color: var(--twofold-warning-color, #5c3c00); background: var(--twofold-warning, #fff4d6);
  padding: .5rem .75rem; border-radius: var(--twofold-radius, .5rem);
}
h3 { font-size: var(--twofold-subtitle-size, 1.05rem); margin: 0 0 .5rem; }
.upgrade {
  margin-top: var(--twofold-gap, .75rem); padding: var(--twofold-gap, .75rem);
  background: var(--twofold-surface, #f3f4f7); border-radius: var(--twofold-radius, .5rem);
}
.upgrade p:last-child { margin-bottom: 0; }
.done { color: var(--twofold-success, #146c2e); font-weight: 600; }
.visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
`;
