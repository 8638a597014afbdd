// thread stage, last step: give a thread skeleton its records, anchor every reply's new
// text to the diff of the patch it answers, and carry trailers given in replies
// (Reviewed-by, Acked-by, ...) to that patch. Pure, given a record loader.
import type { Comment, MessageRecord, Thread, ThreadMessage, Trailer } from '../model.js';
import { anchorComments } from '../patch/anchor.js';

export interface ThreadSkeleton {
  root: string;
  rootMissing: boolean;
  subject: string;
  messages: Array<{ messageId: string; parent: string | null; ghost: boolean; children: string[] }>;
}

/**
 * Comments anchored ahead of time (the pipeline does it on worker threads), by Message-ID:
 * the comments, null when the message has no reply blocks, undefined to anchor here. Given
 * for a message, they must be what anchoring against the nearest patch ancestor gives.
 */
export type PrecomputedComments = (messageId: string) => Comment[] | null | undefined;

/** A thread's subject: its first message's (the first that is not a ghost), or ''. */
export function threadSubject(messages: ThreadSkeleton['messages'], load: (id: string) => MessageRecord | undefined): string {
  const first = messages.find((m) => !m.ghost);
  return first ? (load(first.messageId)?.subject ?? '') : '';
}

export function assembleThread(
  t: ThreadSkeleton,
  load: (id: string) => MessageRecord | undefined,
  precomputed?: PrecomputedComments,
): Thread {
  const messages: ThreadMessage[] = t.messages.map((m) => {
    const record = m.ghost ? undefined : load(m.messageId);
    return { messageId: m.messageId, parent: m.parent, ghost: m.ghost || !record, children: m.children, record, comments: [] };
  });
  const byId = new Map(messages.map((m) => [m.messageId, m]));

  /** Nearest ancestor (not the message itself) that matches. */
  const ancestor = (m: ThreadMessage, pred: (r: MessageRecord) => boolean): ThreadMessage | undefined => {
    const seen = new Set<string>();
    let p = m.parent ? byId.get(m.parent) : undefined;
    while (p && !seen.has(p.messageId)) {
      seen.add(p.messageId);
      if (p.record && pred(p.record)) return p;
      p = p.parent ? byId.get(p.parent) : undefined;
    }
    return undefined;
  };

  const extra = new Map<string, Trailer[]>();
  for (const m of messages) {
    const r = m.record;
    if (!r) continue;
    const pre = precomputed?.(m.messageId);
    if (pre === null) continue;
    if (pre) m.comments = pre;
    else {
      if (r.blocks.length === 0) continue;
      const patch = ancestor(m, (a) => a.kind === 'patch' && a.diff !== null);
      m.comments = anchorComments(r.blocks, patch?.record?.diff ?? null);
    }
    if (r.trailers.length && r.kind === 'reply') {
      const target = ancestor(m, (a) => a.kind === 'patch' || a.kind === 'cover');
      if (target) extra.set(target.messageId, [...(extra.get(target.messageId) ?? []), ...r.trailers]);
    }
  }
  for (const [id, add] of extra) {
    const m = byId.get(id)!;
    const r = m.record!;
    const have = new Set(r.trailers.map((x) => `${x.name}\n${x.value}`.toLowerCase()));
    const merged = [...r.trailers];
    for (const x of add) {
      const k = `${x.name}\n${x.value}`.toLowerCase();
      if (!have.has(k)) {
        have.add(k);
        merged.push(x);
      }
    }
    m.record = withTrailers(r, merged);
  }
  return { root: t.root, rootMissing: t.rootMissing, subject: t.subject, messages };
}

/**
 * The record with other trailers, its own fields shared. A spread would read every field,
 * and a record read back from the spool, or with To/Cc not decoded yet, reads some fields
 * only when first used (the diff, reply blocks, recipients): copying the property
 * descriptors keeps them unread until someone reads them.
 */
function withTrailers(r: MessageRecord, trailers: Trailer[]): MessageRecord {
  const copy = Object.defineProperties({}, Object.getOwnPropertyDescriptors(r)) as MessageRecord;
  Object.defineProperty(copy, 'trailers', { value: trailers, writable: true, enumerable: true, configurable: true });
  return copy;
}
