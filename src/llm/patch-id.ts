// Patch identity for the LLM cache, in the spirit of `git patch-id --stable`: a hash of what
// the diff changes, without line numbers (a rebase moves hunks) and without whitespace (a
// re-indented or mail-mangled copy is the same change), independent of file order. A patch
// re-sent, rebased, or posted unchanged in the next version of a series has the same id.
import { createHash } from 'node:crypto';
import type { Diff } from '../model.js';

const MARK = { add: '+', del: '-', ctx: ' ' } as const;

export function patchId(diff: Diff): string {
  const perFile = diff.files.map((f) => {
    const h = createHash('sha256');
    h.update(`${f.oldPath ?? '/dev/null'}\u0000${f.newPath ?? '/dev/null'}\u0000${f.binary ? 'binary' : ''}\n`);
    for (const hunk of f.hunks) {
      h.update('@@\n');
      for (const l of hunk.lines) h.update(MARK[l.kind] + l.text.replace(/\s+/g, '') + '\n');
    }
    return h.digest('hex');
  });
  perFile.sort();
  return createHash('sha256').update(perFile.join('\n')).digest('hex').slice(0, 40);
}
