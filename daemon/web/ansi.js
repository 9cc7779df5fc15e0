// ANSI SGR colour codes to styled segments. Everything else a terminal would
// interpret (cursor moves, titles, charset switches) is dropped; invisible
// and bidirectional control characters become segments of their own that
// show them escaped (`control` holds the tooltip).

import { controlLabel, controlName, splitControls } from './dom.js';

// eslint-disable-next-line no-control-regex
const ESCAPES = /\x1b\[([0-9;:?]*)([@-~])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[()*+][0-9A-Za-z]|\x1b[=>78DEHMc]|[\x00-\x08\x0b-\x1f\x7f]/g;

export function initialState() {
  return { fg: null, bg: null, bold: false, dim: false, italic: false, underline: false, inverse: false };
}

function color256(n) {
  if (n < 16) return { index: n };
  if (n < 232) {
    const v = n - 16;
    const steps = [0, 95, 135, 175, 215, 255];
    return { rgb: `rgb(${steps[Math.floor(v / 36)]},${steps[Math.floor(v / 6) % 6]},${steps[v % 6]})` };
  }
  const grey = 8 + (n - 232) * 10;
  return { rgb: `rgb(${grey},${grey},${grey})` };
}

function applySgr(params, state) {
  const codes = params === '' ? [0] : params.split(/[;:]/).map((p) => (p === '' ? 0 : Number(p)));
  for (let i = 0; i < codes.length; i += 1) {
    const c = codes[i];
    if (c === 0) Object.assign(state, initialState());
    else if (c === 1) state.bold = true;
    else if (c === 2) state.dim = true;
    else if (c === 3) state.italic = true;
    else if (c === 4) state.underline = true;
    else if (c === 7) state.inverse = true;
    else if (c === 22) { state.bold = false; state.dim = false; }
    else if (c === 23) state.italic = false;
    else if (c === 24) state.underline = false;
    else if (c === 27) state.inverse = false;
    else if (c >= 30 && c <= 37) state.fg = { index: c - 30 };
    else if (c === 39) state.fg = null;
    else if (c >= 40 && c <= 47) state.bg = { index: c - 40 };
    else if (c === 49) state.bg = null;
    else if (c >= 90 && c <= 97) state.fg = { index: c - 90 + 8 };
    else if (c >= 100 && c <= 107) state.bg = { index: c - 100 + 8 };
    else if (c === 38 || c === 48) {
      let value = null;
      if (codes[i + 1] === 5 && i + 2 < codes.length) {
        value = color256(codes[i + 2] & 255);
        i += 2;
      } else if (codes[i + 1] === 2 && i + 4 < codes.length) {
        value = { rgb: `rgb(${codes[i + 2] & 255},${codes[i + 3] & 255},${codes[i + 4] & 255})` };
        i += 4;
      }
      if (c === 38) state.fg = value; else state.bg = value;
    }
  }
}

function styled(state) {
  return state.fg || state.bg || state.bold || state.dim || state.italic || state.underline || state.inverse;
}

// Splits one line into [{ text, style }] where style is a snapshot of the
// state (null for plain text). `state` carries over to the next line.
export function parseLine(line, state) {
  // A carriage return inside a line overwrites it (progress bars): keep what
  // the terminal would finally show.
  const cr = line.lastIndexOf('\r', line.length - 2);
  if (cr >= 0) line = line.slice(cr + 1);
  const segments = [];
  let last = 0;
  ESCAPES.lastIndex = 0;
  let match;
  const push = (text) => {
    splitControls(text).forEach((part, i) => {
      if (i % 2) segments.push({ text: controlLabel(part), style: null, control: controlName(part) });
      else if (part) segments.push({ text: part, style: styled(state) ? { ...state } : null });
    });
  };
  while ((match = ESCAPES.exec(line)) !== null) {
    push(line.slice(last, match.index));
    last = ESCAPES.lastIndex;
    if (match[2] === 'm') applySgr(match[1], state);
  }
  push(line.slice(last));
  return segments;
}

// Applies a segment's style to a span: classes for the 16 theme colours,
// CSSOM properties (allowed by the CSP, unlike style attributes) for others.
export function styleSpan(span, style) {
  if (!style) return;
  let { fg, bg } = style;
  if (style.inverse) [fg, bg] = [bg || { index: 'default-bg' }, fg || { index: 'default-fg' }];
  const classes = [];
  if (fg) {
    if (fg.rgb) span.style.color = fg.rgb; else classes.push(`fg-${fg.index}`);
  }
  if (bg) {
    if (bg.rgb) span.style.backgroundColor = bg.rgb; else classes.push(`bg-${bg.index}`);
  }
  if (style.bold) classes.push('b');
  if (style.dim) classes.push('dim');
  if (style.italic) classes.push('i');
  if (style.underline) classes.push('u');
  if (classes.length) span.className = classes.join(' ');
}
