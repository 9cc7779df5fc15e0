// The inbox: every approval that waits for a person, across runs, oldest
// first, each decidable here as on its run's page.

import { h, replace } from '../dom.js';
import { approvals, ApprovalList } from '../approvals.js';

export async function approvalsPage(main) {
  const count = h('span', { class: 'muted', id: 'inbox-count' });
  const empty = h('p', { class: 'muted inbox-empty', hidden: true }, 'Nothing needs you: no agent waits for a decision.');
  const list = new ApprovalList({ showRun: true, empty });
  list.onCount = (n) => { count.textContent = n ? `${n} waiting, oldest first` : ''; };
  list.onCount(list.cards.size);
  replace(main, h('section', { class: 'inbox' },
    h('div', { class: 'page-head' }, h('h1', {}, 'Needs you'), count),
    list.element));
  // A page opened before the first list arrived fills in when it does.
  if (approvals.loaded) list.sync();
  return () => list.destroy();
}
