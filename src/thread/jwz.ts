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

/** No container (no parent, no child, no sibling). */
const NONE = -1;

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

/** Milliseconds since the epoch, or NaN for a missing or unparseable date. */
function dateValue(d: string | null | undefined): number {
  if (!d) return NaN;
  return Date.parse(d);
}

/** Dates ascending, missing dates (NaN) last. */
function cmpDates(a: number, b: number): number {
  const na = a !== a;
  const nb = b !== b;
  if (na || nb) return na === nb ? 0 : na ? 1 : -1;
  return a - b;
}

export interface ThreaderOptions {
  /** Keep each message's subject for ThreadSkeletonOut.subject (default true). Without, it is ''. */
  subjects?: boolean;
}

/**
 * Incremental JWZ core: add records in any order, read the threads at any time.
 * `add` costs O(references x thread depth); `threads()` is O(n log n).
 *
 * Containers are numbers: one slot per Message-ID in typed arrays (parent, first child,
 * siblings, date), the ids themselves in one array. A container costs about 40 bytes plus its
 * id, so the index of an archive of a million mails fits in a little over 100 MB.
 */
export class Threader {
  private readonly ids: string[] = [];
  private readonly index = new Map<string, number>();
  private cap = 0;
  private n = 0;
  private parent = new Int32Array(0);
  private firstChild = new Int32Array(0);
  private nextSib = new Int32Array(0);
  private prevSib = new Int32Array(0);
  private childCount = new Int32Array(0);
  /** 1 when the container holds a message (0: a ghost). */
  private has = new Uint8Array(0);
  private dates = new Float64Array(0);
  private readonly subjects: string[] | null;
  private duplicates = 0;

  constructor(opts: ThreaderOptions = {}) {
    this.subjects = opts.subjects === false ? null : [];
    this.grow(1024);
  }

  private grow(cap: number): void {
    const i32 = (a: Int32Array) => {
      const b = new Int32Array(cap);
      b.set(a);
      return b;
    };
    this.parent = i32(this.parent);
    this.firstChild = i32(this.firstChild);
    this.nextSib = i32(this.nextSib);
    this.prevSib = i32(this.prevSib);
    this.childCount = i32(this.childCount);
    const has = new Uint8Array(cap);
    has.set(this.has);
    this.has = has;
    const dates = new Float64Array(cap);
    dates.set(this.dates);
    this.dates = dates;
    this.cap = cap;
  }

  private get(id: string): number {
    let c = this.index.get(id);
    if (c === undefined) {
      if (this.n === this.cap) this.grow(this.cap * 2);
      c = this.n++;
      this.ids.push(id);
      this.index.set(id, c);
      this.parent[c] = NONE;
      this.firstChild[c] = NONE;
      this.nextSib[c] = NONE;
      this.prevSib[c] = NONE;
      this.childCount[c] = 0;
      this.has[c] = 0;
      this.dates[c] = NaN;
    }
    return c;
  }

  /** True when making `parent` the parent of `child` would close a loop. */
  private wouldLoop(child: number, parent: number): boolean {
    for (let x = parent; x !== NONE; x = this.parent[x]) if (x === child) return true;
    return false;
  }

  private unlink(c: number): void {
    const p = this.parent[c];
    if (p === NONE) return;
    const prev = this.prevSib[c];
    const next = this.nextSib[c];
    if (prev !== NONE) this.nextSib[prev] = next;
    else this.firstChild[p] = next;
    if (next !== NONE) this.prevSib[next] = prev;
    this.prevSib[c] = NONE;
    this.nextSib[c] = NONE;
    this.childCount[p]--;
    this.parent[c] = NONE;
  }

  private link(child: number, parent: number): void {
    this.unlink(child);
    this.parent[child] = parent;
    // Children are kept unordered: threads() sorts siblings by a total order (date, then id).
    const head = this.firstChild[parent];
    this.nextSib[child] = head;
    if (head !== NONE) this.prevSib[head] = child;
    this.firstChild[parent] = child;
    this.childCount[parent]++;
  }

  /** Number of records ignored because their Message-ID was already seen. */
  get duplicateCount(): number {
    return this.duplicates;
  }

  /** Add one message. Returns false (and changes nothing) for a duplicate Message-ID. */
  add(r: ThreadInput): boolean {
    const id = r.messageId.trim();
    const c = this.get(id);
    if (this.has[c]) {
      this.duplicates++;
      return false;
    }
    // Keep only date (and subject): References arrays would make memory grow with the archive.
    this.has[c] = 1;
    this.dates[c] = dateValue(r.date);
    if (this.subjects) this.subjects[c] = r.subject;

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
      if (this.parent[ch] !== NONE || this.wouldLoop(ch, p)) continue;
      this.link(ch, p);
    }

    // The message's own parent, from its own headers, replaces an implied one.
    if (own) {
      const p = this.get(own);
      if (this.parent[c] !== p && !this.wouldLoop(c, p)) this.link(c, p);
    }
    return true;
  }

  /**
   * Drop ghosts left without children (their only child moved under its real parent), and
   * ghosts that are left empty in turn. Returns the roots, in thread order: by the earliest
   * date of a message in the thread (threads without dates last), then by root id.
   */
  roots(): Int32Array {
    const roots: number[] = [];
    for (let c = 0; c < this.n; c++) {
      if (this.has[c] || this.childCount[c] > 0) {
        if (this.parent[c] === NONE) roots.push(c);
        continue;
      }
      // Pruning may empty a ghost parent in turn.
      for (let g = c; ; ) {
        const p = this.parent[g];
        if (p === NONE) break;
        this.unlink(g);
        if (this.has[p] || this.childCount[p] > 0) break;
        g = p;
      }
    }
    // A pruned ghost that was found as a root before pruning reached it.
    const live = roots.filter((r) => this.has[r] || this.childCount[r] > 0);
    const first = new Float64Array(this.n);
    const stack: number[] = [];
    for (const root of live) {
      let min = NaN;
      stack.push(root);
      while (stack.length) {
        const x = stack.pop()!;
        const d = this.dates[x];
        if (this.has[x] && d === d && !(d >= min)) min = d;
        for (let ch = this.firstChild[x]; ch !== NONE; ch = this.nextSib[ch]) stack.push(ch);
      }
      first[root] = min;
    }
    live.sort((a, b) => cmpDates(first[a], first[b]) || cmpIds(this.ids[a], this.ids[b]));
    return Int32Array.from(live);
  }

  /** The thread below `root` (a number from roots()), messages depth-first, siblings by date. */
  thread(root: number): ThreadSkeletonOut {
    // Post-order: effective date of each container (own date, or earliest below a ghost).
    const eff = new Map<number, number>();
    const post: number[] = [];
    const stack: number[] = [root];
    while (stack.length) {
      const x = stack.pop()!;
      post.push(x);
      for (let ch = this.firstChild[x]; ch !== NONE; ch = this.nextSib[ch]) stack.push(ch);
    }
    for (let i = post.length - 1; i >= 0; i--) {
      const x = post[i];
      let d = this.has[x] ? this.dates[x] : NaN;
      if (!this.has[x]) {
        for (let ch = this.firstChild[x]; ch !== NONE; ch = this.nextSib[ch]) {
          const cd = eff.get(ch)!;
          if (cd === cd && !(cd >= d)) d = cd;
        }
      }
      eff.set(x, d);
    }
    const bySiblingOrder = (a: number, b: number): number =>
      cmpDates(eff.get(a)!, eff.get(b)!) || cmpIds(this.ids[a], this.ids[b]);

    const messages: ThreadedMessage[] = [];
    const dfs: number[] = [root];
    let subject: string | null = null;
    const kids: number[] = [];
    while (dfs.length) {
      const x = dfs.pop()!;
      kids.length = 0;
      for (let ch = this.firstChild[x]; ch !== NONE; ch = this.nextSib[ch]) kids.push(ch);
      kids.sort(bySiblingOrder);
      const p = this.parent[x];
      messages.push({
        messageId: this.ids[x],
        parent: p === NONE ? null : this.ids[p],
        ghost: !this.has[x],
        children: kids.map((k) => this.ids[k]),
      });
      if (subject === null && this.has[x] && this.subjects) subject = this.subjects[x];
      for (let i = kids.length - 1; i >= 0; i--) dfs.push(kids[i]);
    }
    return { root: this.ids[root], rootMissing: !this.has[root], subject: subject ?? '', messages };
  }

  /** The threads as they stand. */
  threads(): ThreadSkeletonOut[] {
    return Array.from(this.roots(), (r) => this.thread(r));
  }

  // ---- the index by container number, for callers that keep per-message data of their own

  /** Number of containers (messages and ghosts, pruned ones included). */
  get size(): number {
    return this.n;
  }

  /** Container number of a Message-ID (as given to add, or as referenced), or -1. */
  indexOf(id: string): number {
    return this.index.get(id) ?? NONE;
  }

  idOf(c: number): string {
    return this.ids[c];
  }

  /** Parent container, or -1. */
  parentOf(c: number): number {
    return this.parent[c];
  }

  /** The container holds a message (not a ghost). */
  hasMessage(c: number): boolean {
    return this.has[c] === 1;
  }
}

function cmpIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
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
