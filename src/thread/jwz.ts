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
import { ByteArena, CHUNK, Float64Column, Int32Column, Uint32Column, Uint8Column } from './columns.js';

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
export function dateValue(d: string | null | undefined): number {
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

/**
 * Interned Message-IDs, numbered in order of first mention. An id of one-byte characters
 * (all real ones: Message-IDs are ASCII) is kept as bytes in a ByteArena and found through
 * an open-addressing table of Int32 slots: about 75 bytes an id, where a Map of strings
 * costs about 130. Other ids (beyond Latin-1) go in a Map.
 */
class IdTable {
  private readonly arena = new ByteArena();
  /** Per id: its position in the arena, or -1 for an id kept in `wide`; its length. */
  private readonly start = new Float64Column();
  private readonly length = new Uint32Column();
  /** Id numbers by hash (linear probing), -1 for a free slot; at most half full. */
  private slots = new Int32Array(2048).fill(-1);
  private inSlots = 0;
  private n = 0;
  private readonly wide = new Map<string, number>();
  private readonly wideIds = new Map<number, string>();

  private static hash(s: string): number {
    let h = 0x811c9dc5;
    for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
    return h >>> 0;
  }

  private static latin1(s: string): boolean {
    for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0xff) return false;
    return true;
  }

  private equals(c: number, s: string): boolean {
    if (this.length.get(c) !== s.length) return false;
    const at = this.start.get(c);
    const b = this.arena.chunk(at);
    const o = ByteArena.offset(at);
    for (let i = 0; i < s.length; i++) if (b[o + i] !== s.charCodeAt(i)) return false;
    return true;
  }

  /** Number of `s`, or -1. */
  get(s: string): number {
    if (!IdTable.latin1(s)) return this.wide.get(s) ?? -1;
    const mask = this.slots.length - 1;
    for (let i = IdTable.hash(s) & mask; ; i = (i + 1) & mask) {
      const c = this.slots[i];
      if (c < 0) return -1;
      if (this.equals(c, s)) return c;
    }
  }

  /** Number of `s`, adding it when new. */
  intern(s: string): number {
    const found = this.get(s);
    if (found >= 0) return found;
    const c = this.n++;
    this.start.ensure(this.n);
    this.length.ensure(this.n);
    this.length.set(c, s.length);
    if (!IdTable.latin1(s)) {
      this.start.set(c, -1);
      this.wide.set(s, c);
      this.wideIds.set(c, s);
      return c;
    }
    this.start.set(c, this.arena.add(s));
    if (++this.inSlots * 2 > this.slots.length) this.rehash();
    else this.place(c, IdTable.hash(s));
    return c;
  }

  private place(c: number, h: number): void {
    const mask = this.slots.length - 1;
    let i = h & mask;
    while (this.slots[i] >= 0) i = (i + 1) & mask;
    this.slots[i] = c;
  }

  private rehash(): void {
    this.slots = new Int32Array(this.slots.length * 2).fill(-1);
    for (let c = 0; c < this.n; c++) if (this.start.get(c) >= 0) this.place(c, IdTable.hash(this.str(c)));
  }

  /** The id numbered c (a new string each time). */
  str(c: number): string {
    const at = this.start.get(c);
    if (at < 0) return this.wideIds.get(c)!;
    return this.arena.text(at, this.length.get(c));
  }

  /** Code-unit order of the ids numbered a and b, as `<` orders strings. */
  compare(a: number, b: number): number {
    const sa = this.start.get(a);
    const sb = this.start.get(b);
    if (sa < 0 || sb < 0) return cmpIds(this.str(a), this.str(b));
    const la = this.length.get(a);
    const lb = this.length.get(b);
    const ba = this.arena.chunk(sa);
    const bb = this.arena.chunk(sb);
    const oa = ByteArena.offset(sa);
    const ob = ByteArena.offset(sb);
    for (let i = 0, n = Math.min(la, lb); i < n; i++) {
      const d = ba[oa + i] - bb[ob + i];
      if (d !== 0) return d;
    }
    return la - lb;
  }
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
 * siblings, date), the ids in an IdTable: about 110 bytes a container with its id, so the
 * index of an archive of a million mails takes about 110 MB.
 */
export class Threader {
  private readonly ids = new IdTable();
  private n = 0;
  private readonly parent = new Int32Column(NONE);
  private readonly firstChild = new Int32Column(NONE);
  private readonly nextSib = new Int32Column(NONE);
  private readonly prevSib = new Int32Column(NONE);
  private readonly childCount = new Int32Column();
  /** 1 when the container holds a message (0: a ghost). */
  private readonly has = new Uint8Column();
  private readonly dates = new Float64Column(NaN);
  private readonly subjects: string[] | null;
  private duplicates = 0;

  constructor(opts: ThreaderOptions = {}) {
    this.subjects = opts.subjects === false ? null : [];
  }

  private get(id: string): number {
    let c = this.ids.get(id);
    if (c < 0) {
      c = this.n++;
      this.ids.intern(id);
      // New entries start as a parentless, childless ghost without a date (the columns' initial values).
      if (c % CHUNK === 0) {
        this.parent.ensure(this.n);
        this.firstChild.ensure(this.n);
        this.nextSib.ensure(this.n);
        this.prevSib.ensure(this.n);
        this.childCount.ensure(this.n);
        this.has.ensure(this.n);
        this.dates.ensure(this.n);
      }
    }
    return c;
  }

  private unlink(c: number): void {
    const p = this.parent.get(c);
    if (p === NONE) return;
    const prev = this.prevSib.get(c);
    const next = this.nextSib.get(c);
    if (prev !== NONE) this.nextSib.set(prev, next);
    else this.firstChild.set(p, next);
    if (next !== NONE) this.prevSib.set(next, prev);
    this.prevSib.set(c, NONE);
    this.nextSib.set(c, NONE);
    this.childCount.set(p, this.childCount.get(p) - 1);
    this.parent.set(c, NONE);
  }

  private link(child: number, parent: number): void {
    this.unlink(child);
    this.parent.set(child, parent);
    // Children are kept unordered: threads() sorts siblings by a total order (date, then id).
    const head = this.firstChild.get(parent);
    this.nextSib.set(child, head);
    if (head !== NONE) this.prevSib.set(head, child);
    this.firstChild.set(parent, child);
    this.childCount.set(parent, this.childCount.get(parent) + 1);
  }

  /** Number of records ignored because their Message-ID was already seen. */
  get duplicateCount(): number {
    return this.duplicates;
  }

  /** Add one message. Returns false (and changes nothing) for a duplicate Message-ID. */
  add(r: ThreadInput): boolean {
    const id = r.messageId.trim();
    const c = this.get(id);
    if (this.has.get(c)) {
      this.duplicates++;
      return false;
    }
    // Keep only date (and subject): References arrays would make memory grow with the archive.
    this.has.set(c, 1);
    this.dates.set(c, dateValue(r.date));
    if (this.subjects) this.subjects[c] = r.subject;
    linkMessage(this.containers, c, id, r);
    return true;
  }

  private readonly containers: Containers = {
    intern: (id) => this.get(id),
    parentOf: (c) => this.parent.get(c),
    link: (child, parent) => this.link(child, parent),
  };

  /**
   * Drop ghosts left without children (their only child moved under its real parent), and
   * ghosts that are left empty in turn. Returns the roots, in thread order: by the earliest
   * date of a message in the thread (threads without dates last), then by root id.
   */
  roots(): Int32Array {
    const roots: number[] = [];
    for (let c = 0; c < this.n; c++) {
      if (this.has.get(c) || this.childCount.get(c) > 0) {
        if (this.parent.get(c) === NONE) roots.push(c);
        continue;
      }
      // Pruning may empty a ghost parent in turn.
      for (let g = c; ; ) {
        const p = this.parent.get(g);
        if (p === NONE) break;
        this.unlink(g);
        if (this.has.get(p) || this.childCount.get(p) > 0) break;
        g = p;
      }
    }
    // A pruned ghost that was found as a root before pruning reached it.
    const live = roots.filter((r) => this.has.get(r) || this.childCount.get(r) > 0);
    const first = new Float64Array(this.n);
    const stack: number[] = [];
    for (const root of live) {
      let min = NaN;
      stack.push(root);
      while (stack.length) {
        const x = stack.pop()!;
        const d = this.dates.get(x);
        if (this.has.get(x) && d === d && !(d >= min)) min = d;
        for (let ch = this.firstChild.get(x); ch !== NONE; ch = this.nextSib.get(ch)) stack.push(ch);
      }
      first[root] = min;
    }
    live.sort((a, b) => cmpDates(first[a], first[b]) || this.ids.compare(a, b));
    return Int32Array.from(live);
  }

  /** The thread below `root` (a number from roots()), messages depth-first, siblings by date. */
  thread(root: number): ThreadSkeletonOut {
    const t = threadSkeleton(root, this.nodes);
    if (this.subjects) {
      const first = t.messages.find((m) => !m.ghost);
      if (first) t.subject = this.subjects[this.ids.get(first.messageId)];
    }
    return t;
  }

  private readonly nodes: ThreadNodes = {
    children: (x) => {
      const kids: number[] = [];
      for (let ch = this.firstChild.get(x); ch !== NONE; ch = this.nextSib.get(ch)) kids.push(ch);
      return kids;
    },
    hasMessage: (x) => this.has.get(x) === 1,
    date: (x) => this.dates.get(x),
    parentOf: (x) => this.parent.get(x),
    idOf: (x) => this.ids.str(x),
    compare: (a, b) => this.ids.compare(a, b),
  };

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
    return this.ids.get(id);
  }

  idOf(c: number): string {
    return this.ids.str(c);
  }

  /** Parent container, or -1. */
  parentOf(c: number): number {
    return this.parent.get(c);
  }

  /** The container holds a message (not a ghost). */
  hasMessage(c: number): boolean {
    return this.has.get(c) === 1;
  }
}

/** What the linking step of JWZ needs of a container index (in memory here, or on disk). */
export interface Containers {
  /** Container of an id, created (as a parentless ghost) when new. */
  intern(id: string): number;
  /** Parent container, or -1. */
  parentOf(c: number): number;
  /** Make `parent` the parent of `child`, moving it from any former parent. */
  link(child: number, parent: number): void;
}

/** True when making `parent` the parent of `child` would close a loop. */
function wouldLoop(cs: Containers, child: number, parent: number): boolean {
  for (let x = parent; x !== NONE; x = cs.parentOf(x)) if (x === child) return true;
  return false;
}

/**
 * Link message `c` (Message-ID `id`, already marked as holding a message) into the
 * containers: the References chain, then its own parent (see the top of this file).
 */
export function linkMessage(cs: Containers, c: number, id: string, r: Pick<ThreadInput, 'inReplyTo' | 'references'>): void {
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
    const p = cs.intern(chain[k]);
    const ch = cs.intern(chain[k + 1]);
    if (cs.parentOf(ch) !== NONE || wouldLoop(cs, ch, p)) continue;
    cs.link(ch, p);
  }

  // The message's own parent, from its own headers, replaces an implied one.
  if (own) {
    const p = cs.intern(own);
    if (cs.parentOf(c) !== p && !wouldLoop(cs, c, p)) cs.link(c, p);
  }
}

/** What building a thread's skeleton reads of its containers. */
export interface ThreadNodes {
  /** Child containers, in any order. */
  children(c: number): number[];
  hasMessage(c: number): boolean;
  /** Milliseconds since the epoch, NaN when missing. */
  date(c: number): number;
  parentOf(c: number): number;
  idOf(c: number): string;
  /** Code-unit order of the two containers' ids. */
  compare(a: number, b: number): number;
}

/** The thread below `root`: messages depth-first, siblings by date (subject left ''). */
export function threadSkeleton(root: number, nodes: ThreadNodes): ThreadSkeletonOut {
  // Post-order: effective date of each container (own date, or earliest below a ghost).
  const eff = new Map<number, number>();
  const kidsOf = new Map<number, number[]>();
  const post: number[] = [];
  const stack: number[] = [root];
  while (stack.length) {
    const x = stack.pop()!;
    post.push(x);
    const kids = nodes.children(x);
    kidsOf.set(x, kids);
    for (const ch of kids) stack.push(ch);
  }
  for (let i = post.length - 1; i >= 0; i--) {
    const x = post[i];
    const has = nodes.hasMessage(x);
    let d = has ? nodes.date(x) : NaN;
    if (!has) {
      for (const ch of kidsOf.get(x)!) {
        const cd = eff.get(ch)!;
        if (cd === cd && !(cd >= d)) d = cd;
      }
    }
    eff.set(x, d);
  }
  const bySiblingOrder = (a: number, b: number): number => cmpDates(eff.get(a)!, eff.get(b)!) || nodes.compare(a, b);

  const messages: ThreadedMessage[] = [];
  const dfs: number[] = [root];
  while (dfs.length) {
    const x = dfs.pop()!;
    const kids = kidsOf.get(x)!.sort(bySiblingOrder);
    const p = nodes.parentOf(x);
    messages.push({
      messageId: nodes.idOf(x),
      parent: p === NONE ? null : nodes.idOf(p),
      ghost: !nodes.hasMessage(x),
      children: kids.map((k) => nodes.idOf(k)),
    });
    for (let i = kids.length - 1; i >= 0; i--) dfs.push(kids[i]);
  }
  return { root: nodes.idOf(root), rootMissing: !nodes.hasMessage(root), subject: '', messages };
}

export function cmpIds(a: string, b: string): number {
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
