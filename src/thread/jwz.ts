// Threading: Jamie Zawinski's algorithm (https://www.jwz.org/doc/threading.html), minus
// the subject-grouping step.
//
// What is kept from JWZ:
//  - one container per Message-ID, created on first mention (as a message or as a
//    reference); containers for ids that are referenced but absent stay "ghosts";
//  - the References chain (in order, In-Reply-To appended when it is not already last,
//    and used alone when References is absent) links each id to the next, but never
//    re-parents a container that already has a parent and never creates a loop;
//  - a message's own headers are authoritative for its own parent: they replace a parent
//    that was only implied by other messages' References;
//  - ghosts without children are pruned.
// Deliberate differences:
//  - no subject grouping (JWZ step 5): on a patch list many unrelated mails share a
//    subject ("[PATCH] fix typo", "Re: [PATCH] MAINTAINERS: update"); merging them by
//    subject would glue strangers' threads together and hang reviews under the wrong
//    patch. A mail with no usable threading headers starts its own thread.
//  - ghosts are never spliced out: a missing cover letter or patch is worth showing, and
//    `parent` must name the real parent by threading (contract). A ghost root with one
//    child stays the root (rootMissing).
//  - a message whose own headers give no parent keeps a parent implied by others'
//    References (a client that dropped In-Reply-To is not evidence of a new thread).
//  - duplicate Message-IDs (cross-posts, double deliveries): the first record wins, later
//    ones are ignored.
// Everything is Map-based and linear in the number of messages and references, except
// the loop check, which walks up the ancestors of a candidate parent (thread depth).
import type { MessageRecord } from '../model.js';

/** What threading reads of a message (parsedSubject is accepted for callers' convenience, never used: no subject merging). */
export type ThreadInput = Pick<MessageRecord, 'messageId' | 'inReplyTo' | 'references' | 'date' | 'subject'> & Partial<Pick<MessageRecord, 'parsedSubject'>>;

export interface ThreadedMessage {
  messageId: string;
  /** Parent by threading; may name a ghost. */
  parent: string | null;
  ghost: boolean;
  children: string[];
}

export interface ThreadSkeletonOut {
  root: string;
  rootMissing: boolean;
  subject: string;
  /** Depth-first, parents before children, siblings by date (null dates last, then by id). */
  messages: ThreadedMessage[];
}

/** Never added to: containers swap it for their own Set on their first child. */
const NO_CHILDREN: Set<Container> = new Set();

/** What a container keeps of its message after `add`: only what ordering and output need. */
interface Kept {
  date: string | null;
  subject: string;
}

interface Container {
  id: string;
  rec: Kept | null;
  parent: Container | null;
  /** Insertion-ordered; a Set so that re-parenting is O(1). Shared empty set until the first child (most containers are leaves). */
  children: Set<Container>;
}

/** A usable Message-ID from a header: "<x@y>" (or bare "x@y"); truncated or garbled ones are dropped. */
function cleanId(raw: string | null | undefined): string | null {
  if (!raw) return null;
  const id = raw.trim();
  if (!id || /\s/.test(id)) return null;
  const open = id.startsWith('<');
  const close = id.endsWith('>');
  if (open !== close) return null; // "<20260324181937.2465574-1-ross.lag" cut off by a client
  const inner = open ? id.slice(1, -1) : id;
  if (!inner || /[<>]/.test(inner)) return null;
  return id;
}

function dateValue(d: string | null | undefined): number | null {
  if (!d) return null;
  const t = Date.parse(d);
  return Number.isNaN(t) ? null : t;
}

/**
 * Incremental JWZ core: add records in any order, read the threads at any time.
 * `add` costs O(references x thread depth); `threads()` is O(n log n).
 */
export class Threader {
  private readonly byId = new Map<string, Container>();
  private duplicates = 0;

  private get(id: string): Container {
    let c = this.byId.get(id);
    if (!c) {
      c = { id, rec: null, parent: null, children: NO_CHILDREN };
      this.byId.set(id, c);
    }
    return c;
  }

  /** True when making `parent` the parent of `child` would close a loop. */
  private static wouldLoop(child: Container, parent: Container): boolean {
    for (let x: Container | null = parent; x; x = x.parent) if (x === child) return true;
    return false;
  }

  private static link(child: Container, parent: Container | null): void {
    if (child.parent) child.parent.children.delete(child);
    child.parent = parent;
    if (parent) {
      if (parent.children === NO_CHILDREN) parent.children = new Set();
      parent.children.add(child);
    }
  }

  /** Number of records ignored because their Message-ID was already seen. */
  get duplicateCount(): number {
    return this.duplicates;
  }

  /** Add one message. Returns false (and changes nothing) for a duplicate Message-ID. */
  add(r: ThreadInput): boolean {
    const id = r.messageId.trim();
    const c = this.get(id);
    if (c.rec) {
      this.duplicates++;
      return false;
    }
    // Keep only date and subject: References arrays would make memory grow with the archive.
    c.rec = { date: r.date, subject: r.subject };

    // The chain of ancestors this message claims, oldest first, without repeats or itself.
    const chain: string[] = [];
    const seen = new Set<string>([id]);
    for (const ref of r.references ?? []) {
      const x = cleanId(ref);
      if (!x || seen.has(x)) continue;
      seen.add(x);
      chain.push(x);
    }
    let irt = cleanId(r.inReplyTo);
    if (irt === id) irt = null;
    // In-Reply-To names the direct parent: appended when References does not have it (or is
    // absent). When References has it elsewhere, it still names the parent, but the order of
    // References is not rewritten.
    if (irt && !seen.has(irt)) chain.push(irt);
    const own = irt ?? chain[chain.length - 1];

    // Links implied by the chain: only for containers that have no parent yet, never a loop.
    for (let k = 0; k + 1 < chain.length; k++) {
      const p = this.get(chain[k]);
      const ch = this.get(chain[k + 1]);
      if (ch.parent || Threader.wouldLoop(ch, p)) continue;
      Threader.link(ch, p);
    }

    // The message's own parent, from its own headers, replaces an implied one.
    if (own) {
      const p = this.get(own);
      if (c.parent !== p && !Threader.wouldLoop(c, p)) Threader.link(c, p);
    }
    return true;
  }

  /** The threads as they stand. */
  threads(): ThreadSkeletonOut[] {
    // Roots, and ghosts left without children (their only child moved under its real parent).
    const roots: Container[] = [];
    const emptyGhosts: Container[] = [];
    for (const c of this.byId.values()) {
      if (!c.parent) roots.push(c);
      if (!c.rec && c.children.size === 0) emptyGhosts.push(c);
    }
    const pruned = new Set<Container>();
    for (let g of emptyGhosts) {
      // Pruning may empty a ghost parent in turn.
      for (;;) {
        pruned.add(g);
        const p = g.parent;
        if (!p) break;
        p.children.delete(g);
        g.parent = null;
        if (p.rec || p.children.size > 0) break;
        g = p;
      }
    }

    const out: Array<{ t: ThreadSkeletonOut; first: number | null }> = [];
    for (const root of roots) {
      if (pruned.has(root)) continue;
      // Post-order: effective date of each container (own date, or earliest below a ghost).
      const eff = new Map<Container, number | null>();
      const post: Container[] = [];
      const stack: Container[] = [root];
      while (stack.length) {
        const x = stack.pop()!;
        post.push(x);
        for (const ch of x.children) stack.push(ch);
      }
      let first: number | null = null;
      for (let i = post.length - 1; i >= 0; i--) {
        const x = post[i];
        let d = x.rec ? dateValue(x.rec.date) : null;
        if (x.rec && d !== null && (first === null || d < first)) first = d;
        if (!x.rec) {
          for (const ch of x.children) {
            const cd = eff.get(ch) ?? null;
            if (cd !== null && (d === null || cd < d)) d = cd;
          }
        }
        eff.set(x, d);
      }
      const bySiblingOrder = (a: Container, b: Container): number => {
        const da = eff.get(a) ?? null;
        const db = eff.get(b) ?? null;
        if (da !== db) {
          if (da === null) return 1;
          if (db === null) return -1;
          return da - db;
        }
        return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
      };

      const messages: ThreadedMessage[] = [];
      const dfs: Container[] = [root];
      let subject: string | null = null;
      while (dfs.length) {
        const x = dfs.pop()!;
        const kids = [...x.children].sort(bySiblingOrder);
        messages.push({
          messageId: x.id,
          parent: x.parent ? x.parent.id : null,
          ghost: !x.rec,
          children: kids.map((k) => k.id),
        });
        if (subject === null && x.rec) subject = x.rec.subject;
        for (let i = kids.length - 1; i >= 0; i--) dfs.push(kids[i]);
      }
      out.push({
        t: { root: root.id, rootMissing: !root.rec, subject: subject ?? '', messages },
        first,
      });
    }
    out.sort((a, b) => {
      if (a.first !== b.first) {
        if (a.first === null) return 1;
        if (b.first === null) return -1;
        return a.first - b.first;
      }
      return a.t.root < b.t.root ? -1 : a.t.root > b.t.root ? 1 : 0;
    });
    return out.map((x) => x.t);
  }
}

/**
 * Thread a set of messages (JWZ without subject grouping; see the top of this file).
 * Duplicate Message-IDs: the first record wins.
 */
export function buildThreads(records: ReadonlyArray<ThreadInput>): { threads: ThreadSkeletonOut[] } {
  const t = new Threader();
  for (const r of records) t.add(r);
  return { threads: t.threads() };
}
