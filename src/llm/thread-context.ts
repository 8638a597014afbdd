// What reviewers already said about a patch, gathered from its thread(s): given to the LLM as
// context, and used to drop LLM findings that only repeat a reviewer. Also shared with
// `patchvet eval`, which compares findings with the same comments. Pure.
import type { Address, Comment, Diff, MessageRecord, Thread } from '../model.js';
import { functionName } from '../rules/context.js';

export interface PriorComment {
  /** The reviewer's name (never the address: nothing the model could copy into a reply). */
  by: string;
  /** 'this': a comment on this very patch; 'earlier': on an earlier version, where the code it
   *  answers is still in this patch unchanged (so it may not have been addressed). */
  version: 'this' | 'earlier';
  /** Where on THIS patch (new side; a comment on a removed line is placed where it was removed). */
  file: string | null;
  line: number | null;
  function: string | null;
  /** The code line the comment answers, as quoted (no +/-/space prefix). */
  code: string | null;
  text: string;
  /** The reply carrying it. */
  messageId: string;
}

// ---------------------------------------------------------------- diff positions

/**
 * The new-side position of a place in a diff: new-side lines are themselves; a removed
 * line (old side) sits where the next surviving line is (or after the previous one).
 * null when the file or line is not in the diff.
 */
export function newSidePosition(diff: Diff | null, file: string, side: 'new' | 'old', line: number): number | null {
  if (!diff) return null;
  for (const f of diff.files) {
    if (f.path !== file && f.newPath !== file && f.oldPath !== file) continue;
    for (const h of f.hunks) {
      for (let i = 0; i < h.lines.length; i++) {
        const l = h.lines[i]!;
        if (side === 'new' ? l.newLine !== line : l.oldLine !== line || l.kind === 'add') continue;
        if (l.newLine !== null) return l.newLine;
        for (let j = i + 1; j < h.lines.length; j++) if (h.lines[j]!.newLine !== null) return h.lines[j]!.newLine;
        for (let j = i - 1; j >= 0; j--) if (h.lines[j]!.newLine !== null) return h.lines[j]!.newLine! + 1;
        return h.newStart;
      }
    }
  }
  return null;
}

/** The function a new-side line of the diff sits in (bare name), if the diff says. */
export function functionAt(diff: Diff | null, file: string, line: number): string | null {
  for (const f of diff?.files ?? []) {
    if (f.path !== file) continue;
    for (const h of f.hunks) for (const l of h.lines) if (l.newLine === line) return functionName(l.fn);
  }
  return null;
}

// ---------------------------------------------------------------- who is reviewing

const TRAILER = /^\s*[A-Z][A-Za-z]*(-[A-Za-z]+)*-by:\s|^\s*(Fixes|Cc|Link|Closes):\s/;

/**
 * Whether a comment's text says something about the code, rather than only giving trailers
 * ("Reviewed-by: ..."), thanks or a signature: at least three words once those are gone.
 */
export function isReviewText(text: string): boolean {
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !TRAILER.test(l));
  // A signature: a last line of one or two words ("Jan", "Thanks, Andrew", "~Andrew").
  while (lines.length && lines[lines.length - 1]!.split(/\s+/).length <= 2) lines.pop();
  const words = lines.join(' ').split(/\s+/).filter((w) => /[A-Za-z]/.test(w));
  return words.length >= 3 && !/^(thanks|thank you|ack(ed)?|looks good|lgtm)\b[.!,]?$/i.test(lines.join(' ').trim());
}

const BOT = /(^|[-_.+])(bot|robot|noreply|no-reply|patchwork|patchvet|ci|automation)([-_.+@]|$)/i;

/**
 * Automated senders: CI, patchwork, test robots ("kernel test robot <lkp@intel.com>").
 * Not `record.automated`, which reads headers (auto-replies, bounces): a robot's report is
 * ordinary mail by its headers.
 */
export function isBot(rec: MessageRecord): boolean {
  return BOT.test(rec.from.address.split('@')[0] ?? '') || /\b(bot|robot)\b/i.test(rec.from.name);
}

function same(a: Address | undefined, b: Address | undefined): boolean {
  return !!a?.address && !!b?.address && a.address.toLowerCase() === b.address.toLowerCase();
}

/** The patch author or sender (answering reviewers is not reviewing). */
export function isAuthorOf(reply: MessageRecord, patch: MessageRecord): boolean {
  return same(reply.from, patch.author) || same(reply.from, patch.from);
}

/** The message id of the patch a reply's comments are anchored to: its nearest patch ancestor. */
export function anchoredPatch(thread: Thread, messageId: string): string | null {
  const byId = new Map(thread.messages.map((m) => [m.messageId, m]));
  const seen = new Set<string>();
  let p = byId.get(messageId)?.parent ?? null;
  while (p && !seen.has(p)) {
    seen.add(p);
    const m = byId.get(p);
    if (!m) return null;
    if (m.record?.kind === 'patch' && m.record.diff) return m.messageId;
    p = m.parent;
  }
  return null;
}

// ---------------------------------------------------------------- prior comments

function normalised(s: string): string {
  return s.replace(/\s+/g, '');
}

function quotedCode(c: Comment): string | null {
  const q = c.quoted[c.quoted.length - 1];
  return q === undefined ? null : q.slice(1);
}

function cleanText(text: string, max: number): string {
  const t = text
    .replace(/<?[\w.+-]+@[\w-]+(\.[\w-]+)+>?/g, '[address]')
    .replace(/\b(?:https?|ftp):\/\/\S+/gi, '[link]')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
  return t.length > max ? t.slice(0, max - 1).trimEnd() + '…' : t;
}

export interface PriorOptions {
  /** Threads holding earlier versions of the patch (the patch's own thread may be one of them). */
  earlierThreads?: Thread[];
  /** Message ids of the earlier versions of this patch. */
  earlierPatchIds?: string[];
  /** Mail never taken as review (e.g. the bot's own replies, which quote the diff too). */
  exclude?: (rec: MessageRecord) => boolean;
  maxThis?: number;
  maxEarlier?: number;
  maxChars?: number;
}

/**
 * Reviewers' comments that matter for reviewing `patch`: every comment on it (anchored or
 * on its commit message), and comments on earlier versions whose quoted code is still in
 * this patch (added or context lines of the same file), placed on this patch's line.
 * The patch author's own replies, bots and `exclude`d mail are left out, as are comments that
 * are only trailers or thanks.
 */
export function priorComments(patch: MessageRecord, thread: Thread | undefined, opts: PriorOptions = {}): PriorComment[] {
  const maxChars = opts.maxChars ?? 800;
  const skip = (r: MessageRecord) => isAuthorOf(r, patch) || isBot(r) || !!opts.exclude?.(r);
  const mine: PriorComment[] = [];
  if (thread) {
    for (const m of thread.messages) {
      if (!m.record || !m.comments.length || skip(m.record)) continue;
      if (anchoredPatch(thread, m.messageId) !== patch.messageId) continue;
      for (const c of m.comments) {
        if (!isReviewText(c.text)) continue;
        const line = c.file && c.line !== null && c.side ? newSidePosition(patch.diff, c.file, c.side, c.line) : null;
        mine.push({
          by: m.record.from.name || 'a reviewer',
          version: 'this',
          file: c.file,
          line,
          function: c.file && line !== null ? functionAt(patch.diff, c.file, line) : null,
          code: quotedCode(c),
          text: cleanText(c.text, maxChars),
          messageId: m.messageId,
        });
      }
    }
  }
  const earlier: PriorComment[] = [];
  const ids = new Set(opts.earlierPatchIds ?? []);
  if (ids.size && patch.diff) {
    // Added and context lines of this patch, by file and whitespace-free text.
    const lines = new Map<string, number>();
    for (const f of patch.diff.files)
      for (const h of f.hunks)
        for (const l of h.lines) {
          if (l.newLine === null) continue;
          const k = `${f.path}\u0000${normalised(l.text)}`;
          if (normalised(l.text) && !lines.has(k)) lines.set(k, l.newLine);
        }
    const seen = new Set<string>();
    for (const t of opts.earlierThreads ?? []) {
      for (const m of t.messages) {
        if (!m.record || !m.comments.length || skip(m.record) || seen.has(m.messageId)) continue;
        const on = anchoredPatch(t, m.messageId);
        if (!on || !ids.has(on)) continue;
        seen.add(m.messageId);
        for (const c of m.comments) {
          const code = quotedCode(c);
          if (!c.file || code === null || !normalised(code) || !isReviewText(c.text)) continue;
          const line = lines.get(`${c.file}\u0000${normalised(code)}`);
          if (line === undefined) continue;
          earlier.push({
            by: m.record.from.name || 'a reviewer',
            version: 'earlier',
            file: c.file,
            line,
            function: functionAt(patch.diff, c.file, line),
            code,
            text: cleanText(c.text, maxChars),
            messageId: m.messageId,
          });
        }
      }
    }
  }
  return [...mine.slice(0, opts.maxThis ?? 20), ...earlier.slice(0, opts.maxEarlier ?? 10)];
}
