// Unified diffs, coloured by line: additions, deletions, hunk and file
// headers. Lines are text; nothing in a diff becomes markup.

import { h } from './dom.js';

export function diffClass(line) {
  if (line.startsWith('+++') || line.startsWith('---')) return 'd-file';
  if (line.startsWith('+')) return 'd-add';
  if (line.startsWith('-')) return 'd-del';
  if (line.startsWith('@@')) return 'd-hunk';
  return '';
}

// One block per line, so a line's colour spans the width of the diff.
export function renderDiff(text) {
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return h('pre', { class: 'diff' }, lines.map((line) => h('span', { class: `dl ${diffClass(line)}` }, line)));
}

// Lines added and removed.
export function diffCounts(text) {
  let added = 0;
  let removed = 0;
  for (const line of text.split('\n')) {
    const cls = diffClass(line);
    if (cls === 'd-add') added += 1;
    else if (cls === 'd-del') removed += 1;
  }
  return { added, removed };
}
