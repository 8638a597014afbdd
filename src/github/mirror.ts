// A list reply on a linked pull request: each stretch of new text that answers a quoted diff
// line (the anchored comments of src/patch/anchor.ts) becomes a review comment at that line of
// the PR, attributed to its author with a link to the archived mail; text answering prose (the
// commit message, another reply) goes in the review body. Pure. One review per mail; hidden
// markers ("mail=<msgid>#<n>") make it idempotent.
import type { Comment, MessageRecord } from '../model.js';
import { archiveUrl } from './config.js';
import { mailKey, marker } from './markers.js';
import { locate, type GhSide, type PrDiff } from './pr.js';
import { mdText, type InlineComment } from './review-plan.js';

/** What a mirror job carries (stored as its payload when the mail is processed). */
export interface MirrorPayload {
  mail: {
    messageId: string;
    from: { name: string; address: string };
    date: string | null;
    subject: string;
  };
  /** The patch mail the reply answers (linked to the PR). */
  patchMessageId: string;
  commitSha: string;
  comments: Array<Pick<Comment, 'file' | 'line' | 'side' | 'text' | 'quoted'> & { index: number }>;
}

export interface MirrorItem {
  key: string;
  kind: 'mirror-inline' | 'mirror-body';
  path: string | null;
  line: number | null;
  side: GhSide | null;
}

export interface MirrorPlan {
  review: { commit_id: string; event: 'COMMENT'; body: string; comments: InlineComment[] } | null;
  items: MirrorItem[];
}

/** The payload of a mirror job for one reply and its anchored comments. */
export function mirrorPayload(rec: MessageRecord, comments: readonly Comment[], patchMessageId: string, commitSha: string): MirrorPayload {
  return {
    mail: { messageId: rec.messageId, from: rec.from, date: rec.date, subject: rec.subject },
    patchMessageId,
    commitSha,
    comments: comments
      .map((c, index) => ({ index, file: c.file, line: c.line, side: c.side, text: c.text, quoted: c.quoted }))
      .filter((c) => c.text.trim() !== ''),
  };
}

function who(p: MirrorPayload): string {
  return mdText(p.mail.from.name || p.mail.from.address || 'someone');
}

/** Mail text as Markdown (GitHub comments keep single line breaks): safe, no HTML, no @-mentions. */
function mailText(text: string): string {
  return mdText(text.replace(/\s+$/, ''));
}

function dateOf(p: MirrorPayload): string {
  if (!p.mail.date) return '';
  const d = new Date(p.mail.date);
  return Number.isNaN(d.getTime()) ? '' : ` on ${d.toISOString().slice(0, 10)}`;
}

/**
 * Plan the review for one mail. `already`: keys mirrored before (store or markers): those
 * comments are left out, and with nothing left there is no review.
 */
export function planMirror(p: MirrorPayload, pr: PrDiff, o: { headSha: string; archive: string; already: ReadonlySet<string> }): MirrorPlan {
  const url = archiveUrl(o.archive, p.mail.messageId);
  const link = `[archived mail](${url})`;
  const inline: InlineComment[] = [];
  const items: MirrorItem[] = [];
  const body: string[] = [];
  for (const c of p.comments) {
    const key = mailKey(p.mail.messageId, c.index);
    if (o.already.has(key)) continue;
    const last = c.quoted.length ? c.quoted[c.quoted.length - 1]!.slice(1) : null;
    const at = c.file ? locate(pr, { path: c.file, line: c.line, side: c.side, code: last }) : null;
    if (at) {
      inline.push({
        path: at.path,
        line: at.line,
        side: at.side,
        body: [`**${who(p)}** wrote on the list (${link}):`, '', mailText(c.text), marker('mail', key.slice('mail:'.length))].join('\n'),
      });
      items.push({ key, kind: 'mirror-inline', path: at.path, line: at.line, side: at.side });
    } else {
      const where = c.file ? ` On \`${c.file}${c.line !== null ? `:${c.line}` : ''}\`:` : '';
      const quote = c.quoted.length && c.file ? ['', '```diff', ...c.quoted.slice(-3), '```'] : [];
      body.push(...(where ? [where.trim()] : []), ...quote, '', mailText(c.text), marker('mail', key.slice('mail:'.length)), '');
      items.push({ key, kind: 'mirror-body', path: c.file, line: c.line, side: null });
    }
  }
  if (!items.length) return { review: null, items };
  // Inline items first, in the order of review.comments.
  items.sort((a, b) => Number(b.kind === 'mirror-inline') - Number(a.kind === 'mirror-inline'));
  const head = `**${who(p)}** replied on the list${dateOf(p)} to “${mdText(p.mail.subject)}” (${link})${
    body.length ? ':' : `: ${inline.length === 1 ? 'a comment' : `${inline.length} comments`} on the diff below.`
  }`;
  const text = [head, ...(body.length ? ['', ...body] : [])].join('\n').trimEnd();
  return { review: { commit_id: o.headSha, event: 'COMMENT', body: text, comments: inline }, items };
}
