// Series: which patch mails were posted together, and which postings are versions of
// each other. Pure: works on records plus the threads buildThreads made of them.
//
// Members. Patch mails are the non-reply mails of kind 'patch' or 'cover', plus numbered
// non-reply mails ("[PATCH 3/9]") of other kinds (a patch whose diff the mail stage could
// not read is still a posted patch: counting it avoids a false "3 is missing"). Cover
// letters are "0/N" mails and unnumbered mails with a diffstat but no diff ("[GIT PULL]"
// excepted: a pull request has no patches to group).
//
// Grouping. Each member gets an anchor by walking up its thread parents:
//  - a cover letter anchors itself, and so does an unnumbered patch ("[PATCH] foo" is a
//    series of one, even when dozens of them hang below one absent mail, as AUTOSEL's do);
//  - a patch whose parent is a member posted by the same sender, with the same version,
//    RESEND flag and total (a cover may have no total) takes that member's anchor: this
//    covers the cover letter (patches reply to 0/N), git send-email's shallow threading
//    (2..N reply to 1/N) and deep threading (each patch replies to the previous one).
//    Below a cover, numbered patches with no version join a versioned cover
//    ("[PATCH v4 00/55]" answered by "[PATCH 01/55]": the version was left out);
//  - ghosts (absent messages) are walked through: above them may be the member that
//    anchors this one (patch 2 of a deep-threaded series missing); when nothing matching
//    lies above, the topmost ghost of that run is the anchor, shared by every patch of the
//    same sender/version/total/RESEND hanging below it (the reference thread: patch 1/9
//    replies to a cover letter that is not in the input);
//  - anything else above (a review, a patch of another version or sender) means the patch
//    starts its own series: a v2 posted in reply to v1 is a series of its own.
// Members with no thread parent at all (a series sent without threading headers) are then
// merged into earlier unthreaded groups of the same sender/version/total/RESEND posted
// within UNTHREADED_WINDOW_MS, when their indexes do not collide and at most one has a cover.
//
// Sender, not author: a series is grouped by the address that posted it (`from`), not the
// in-body author, so that "[PATCH v2 5/9]" written by Wei Liu but sent by Ross Lagerwall
// stays in Ross's series. Series.author is that sender.
//
// Versions. previousVersion is, first, a series that the head of this one (cover, else the
// lowest-numbered patch) replies into: the nearest series up its thread ancestry with a
// lower version, from the same sender or with the same subject. Failing that, across
// threads: same sender and same normalised subject (of the cover, else of patch 1, else of
// the first patch), lower version, posted no later; the highest such version wins (the
// latest posting among equals). A RESEND keeps its version and is a series of its own,
// linked as the next posting of the same version: its previousVersion is the original (or
// the previous resend), and that one's nextVersion is the resend. "v5.1" partial rerolls
// link to v5 like any lower version. nextVersion of X is the lowest-versioned (then
// earliest) series whose previousVersion is X.
//
// Ids. Series.id is the cover letter's Message-ID when the cover is in the input, else
// patch 1's, else the lowest-numbered patch present (stable whatever the arrival order).
import type { MessageRecord, Series, SeriesMarker } from '../model.js';
import { normalizeSubjectKey } from './subject.js';

export interface ThreadLike {
  root: string;
  messages: ReadonlyArray<{ messageId: string; parent: string | null; ghost: boolean }>;
}

/**
 * Thread structure looked up by id, for callers that keep threads in an index of their own
 * rather than as ThreadLike lists: `parent` is undefined for an id the threads do not know.
 */
export interface ThreadParents {
  parent(id: string): string | null | undefined;
  ghost(id: string): boolean;
  /**
   * A message of the input (not a ghost), whether or not it is among the records given:
   * a review met while walking up stops the walk. Without it, only the records given count.
   */
  message?(id: string): boolean;
}

function parentsOf(threads: ReadonlyArray<ThreadLike>): ThreadParents {
  const parentOf = new Map<string, string | null>();
  const ghosts = new Set<string>();
  for (const t of threads) {
    for (const m of t.messages) {
      parentOf.set(m.messageId, m.parent);
      if (m.ghost) ghosts.add(m.messageId);
    }
  }
  return { parent: (id) => parentOf.get(id), ghost: (id) => ghosts.has(id), message: (id) => parentOf.has(id) && !ghosts.has(id) };
}

/** Unthreaded postings of one series are expected to be sent within this time of each other. */
export const UNTHREADED_WINDOW_MS = 6 * 3600 * 1000;

export interface Member {
  r: MessageRecord;
  id: string;
  sender: string;
  version: number;
  resend: boolean;
  rfc: boolean;
  cover: boolean;
  /** 0 for a cover; 1 for an unnumbered patch. */
  index: number;
  /** An unnumbered patch ("[PATCH] foo"): always a series of its own. */
  single: boolean;
  /** null for an unnumbered cover. */
  total: number | null;
  date: number | null;
}

function dateValue(d: string | null): number | null {
  if (!d) return null;
  const t = Date.parse(d);
  return Number.isNaN(t) ? null : t;
}

function isPull(m: SeriesMarker | null): boolean {
  return !!m && m.prefixes.some((p) => /^(git pull|pull)$/i.test(p));
}

/** The series member a record is, or null for mail that is not part of a series. */
export function toMember(r: MessageRecord): Member | null {
  const ps = r.parsedSubject;
  if (!ps || ps.reply) return null;
  const m = ps.series;
  let cover = false;
  let patch = false;
  if (m && m.index === 0) cover = true;
  else if (m && m.index !== null && m.index >= 1) patch = true;
  else if (!isPull(m) && (r.kind === 'cover' || (r.diffstat && r.diff === null && m !== null))) cover = true;
  else if (r.kind === 'patch') patch = true;
  if (!cover && !patch) return null;
  return {
    r,
    id: r.messageId,
    sender: (r.from?.address || r.author?.address || '').toLowerCase(),
    version: m?.version ?? 1,
    resend: m?.resend ?? false,
    rfc: m?.rfc ?? false,
    cover,
    index: cover ? 0 : (m?.index ?? 1),
    single: !cover && (m?.index ?? null) === null,
    total: m?.total ?? (cover ? null : 1),
    date: dateValue(r.date),
  };
}

/** Can `child` belong to the same series as `above`, the member it hangs below? */
function sameSeries(above: Member, child: Member): boolean {
  if (above.sender !== child.sender || above.resend !== child.resend) return false;
  if (above.cover) {
    // "[PATCH v4 00/55]" followed by "[PATCH 01/55]" replies: the version was left out of
    // the patches, not a v1 posted below a v4 cover.
    const version = above.version === child.version || (child.version === 1 && child.total !== null && child.total > 1);
    return version && (above.total === null || above.total === child.total);
  }
  return above.version === child.version && !child.cover && above.total === child.total;
}

/** Members that share an anchor; they are always in one thread. */
export interface Group {
  key: string;
  members: Member[];
  /** The anchor is a message with no thread parent (unthreaded candidate). */
  rootAnchored: boolean;
}

function cmpDate(a: number | null, b: number | null): number {
  if (a === b) return 0;
  if (a === null) return 1;
  if (b === null) return -1;
  return a - b;
}

export function minDate(ms: ReadonlyArray<Pick<Member, 'date'>>): number | null {
  let d: number | null = null;
  for (const m of ms) if (m.date !== null && (d === null || m.date < d)) d = m.date;
  return d;
}

/**
 * Grouping, step 1: the members among `records`, grouped by anchor (see the top of this
 * file). Anchors lie up the thread, so this can run on one thread's records at a time.
 */
export function anchorGroups(records: Iterable<MessageRecord>, tp: ThreadParents): Group[] {
  const recById = new Map<string, MessageRecord>();
  for (const r of records) if (!recById.has(r.messageId)) recById.set(r.messageId, r);

  // Thread parents (ghost-aware); for records the threads do not know, their own headers.
  const unthreaded = new Map<string, string | null>();
  for (const r of recById.values()) {
    if (tp.parent(r.messageId) === undefined) unthreaded.set(r.messageId, r.inReplyTo ?? r.references.at(-1) ?? null);
  }
  const parentOf = (id: string): string | null => {
    const p = tp.parent(id);
    return (p !== undefined ? p : unthreaded.get(id)) ?? null;
  };
  const isMessage = tp.message ? (id: string) => recById.has(id) || tp.message!(id) : (id: string) => recById.has(id);

  const members = new Map<string, Member>();
  for (const r of recById.values()) {
    const m = toMember(r);
    if (m) members.set(m.id, m);
  }

  const anchorKey = new Map<string, string>();
  const rootAnchored = new Set<string>();
  const resolve = (start: Member): string => {
    // Walk up, collecting same-series members until one whose anchor is known or decided.
    const path: Member[] = [];
    let cur = start;
    let key: string | null = null;
    const visited = new Set<string>();
    for (;;) {
      const known = anchorKey.get(cur.id);
      if (known) {
        key = known;
        break;
      }
      path.push(cur);
      visited.add(cur.id);
      if (cur.cover) {
        key = `m:${cur.id}`;
        if (parentOf(cur.id) === null) rootAnchored.add(key);
        break;
      }
      let x = parentOf(cur.id);
      let ghostTop: string | null = null;
      let next: Member | null = null;
      if (cur.single) {
        // Sasha's AUTOSEL mails: dozens of unnumbered patches below one absent cover.
        key = `m:${cur.id}`;
        if (x === null) rootAnchored.add(key);
        break;
      }
      while (x !== null && !visited.has(x)) {
        const mem = members.get(x);
        if (mem && !tp.ghost(x)) {
          if (sameSeries(mem, cur)) next = mem;
          break;
        }
        if (isMessage(x) && !tp.ghost(x)) break; // a review or other mail: stop
        ghostTop = x;
        visited.add(x);
        x = parentOf(x);
      }
      if (next) {
        cur = next;
        continue;
      }
      if (ghostTop !== null) {
        key = `g:${ghostTop}\u0000${cur.sender}\u0000${cur.version}\u0000${cur.total}\u0000${cur.resend}`;
      } else {
        key = `m:${cur.id}`;
        if (x === null) rootAnchored.add(key);
      }
      break;
    }
    for (const p of path) anchorKey.set(p.id, key);
    return key;
  };

  const groups = new Map<string, Group>();
  for (const m of members.values()) {
    const key = resolve(m);
    let g = groups.get(key);
    if (!g) {
      g = { key, members: [], rootAnchored: false };
      groups.set(key, g);
    }
    g.members.push(m);
  }
  for (const g of groups.values()) g.rootAnchored = rootAnchored.has(g.key);
  return [...groups.values()];
}

/**
 * Grouping, step 2: groups that may be one series posted without threading headers share
 * this bucket (sender, version, total, RESEND); null for a group that is not a candidate.
 */
export function unthreadedBucket(g: Group): string | null {
  if (!g.rootAnchored) return null;
  const h = g.members[0];
  const total = g.members.find((m) => m.total !== null)?.total ?? null;
  if (total === null || total < 2) return null;
  return `${h.sender}\u0000${h.version}\u0000${total}\u0000${h.resend}`;
}

/** Order of the groups of one bucket: by first date (undated last), then by key (SQL twin in store/series-index.ts). */
function cmpUnthreaded(a: { start: number | null; key: string }, b: { start: number | null; key: string }): number {
  return cmpDate(a.start, b.start) || (a.key < b.key ? -1 : 1);
}

/**
 * Walks one bucket's groups in cmpUnthreaded order: `join` tells whether a group joins the
 * series open before it (indexes do not collide, posted within UNTHREADED_WINDOW_MS of its
 * last mail) and, either way, updates the open series.
 */
export class UnthreadedRun {
  private indexes: Set<number> | null = null;
  private last = -Infinity;

  join(members: ReadonlyArray<Pick<Member, 'index' | 'date'>>): boolean {
    const start = minDate(members);
    if (this.indexes) {
      // Index 0 is the cover: two covers collide like two patches 3/9 do.
      const collide = members.some((m) => this.indexes!.has(m.index));
      const near = start !== null && this.last !== -Infinity && start - this.last <= UNTHREADED_WINDOW_MS;
      if (!collide && near) {
        this.add(members);
        return true;
      }
    }
    this.indexes = new Set();
    this.last = -Infinity;
    this.add(members);
    return false;
  }

  private add(members: ReadonlyArray<Pick<Member, 'index' | 'date'>>): void {
    for (const m of members) {
      this.indexes!.add(m.index);
      if ((m.date ?? -Infinity) > this.last) this.last = m.date ?? -Infinity;
    }
  }
}

/** A series as built from its members, with what linking versions reads of it. */
export interface Built {
  s: Series;
  date: number | null;
  head: Member;
  sender: string;
  subjectKey: string;
  resend: boolean;
  memberIds: string[];
}

/** Grouping, step 3: the series a group's members make (versions not linked yet). */
export function buildSeries(members: ReadonlyArray<Member>): Built {
  const ordered = [...members].sort((a, b) => cmpDate(a.date, b.date) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const cover = ordered.find((m) => m.cover) ?? null;
  const patchMembers = ordered.filter((m) => m !== cover);
  const total = cover?.total ?? patchMembers.find((m) => m.total !== null)?.total ?? (patchMembers.length ? 1 : null);
  const patches: Array<string | null> = total !== null ? new Array<string | null>(total).fill(null) : [];
  const extra: string[] = [];
  const byIndex = new Map<number, Member>();
  for (const m of patchMembers) {
    if (m.cover || total === null || m.index < 1 || m.index > total || patches[m.index - 1] !== null) {
      // Beyond the total ("3/2"), or a second mail for an index already filled.
      extra.push(m.id);
      continue;
    }
    patches[m.index - 1] = m.id;
    byIndex.set(m.index, m);
  }
  const missing: number[] = [];
  patches.forEach((p, i) => {
    if (p === null) missing.push(i + 1);
  });
  const firstIdx = [...byIndex.keys()].sort((a, b) => a - b)[0];
  const first = byIndex.get(1) ?? (firstIdx !== undefined ? byIndex.get(firstIdx) : undefined);
  const head = cover ?? first ?? ordered[0];
  const subject = head.r.parsedSubject.clean;
  const s: Series = {
    id: head.id,
    version: head.version,
    total,
    subject,
    author: head.r.from ?? head.r.author,
    cover: cover?.id ?? null,
    patches,
    extra,
    complete: total !== null && total >= 1 && missing.length === 0,
    missing,
    rfc: ordered.some((m) => m.rfc),
    previousVersion: null,
    nextVersion: null,
  };
  return {
    s,
    date: minDate(ordered),
    head,
    sender: head.sender,
    subjectKey: normalizeSubjectKey(subject),
    resend: head.resend,
    memberIds: ordered.map((m) => m.id),
  };
}

/** Output order of series: by first date (undated last), then by id (SQL twin in store/series-index.ts). */
function cmpBuilt(a: { date: number | null; id: string }, b: { date: number | null; id: string }): number {
  return cmpDate(a.date, b.date) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/** What linking versions reads of a series. */
export interface VersionKey {
  id: string;
  version: number;
  date: number | null;
  sender: string;
  subjectKey: string;
  resend: boolean;
}

function versionKey(b: Built): VersionKey {
  return { id: b.s.id, version: b.s.version, date: b.date, sender: b.sender, subjectKey: b.subjectKey, resend: b.resend };
}

function canPrecede(t: VersionKey, s: VersionKey): boolean {
  return t.id !== s.id && (t.version < s.version || (s.resend && t.version === s.version));
}

/** Versions, first test: `t`, met up the thread from the head of `s`, is its previous version. */
export function repliesToPrevious(t: VersionKey, s: VersionKey): boolean {
  return canPrecede(t, s) && (t.sender === s.sender || t.subjectKey === s.subjectKey);
}

/**
 * Versions, second test: among series of the same sender and subject key, taken in output
 * order, is `t` a better previous version of `s` than `best` (null: none yet)?
 */
export function betterPrevious(best: VersionKey | null, t: VersionKey, s: VersionKey): boolean {
  if (!canPrecede(t, s)) return false;
  if (t.date !== null && s.date !== null && t.date > s.date) return false;
  if (s.resend && t.version === s.version && (t.date === null || s.date === null)) return false;
  return !best || t.version > best.version || (t.version === best.version && cmpDate(best.date, t.date) < 0);
}

/** nextVersion of t: among the series whose previous version t is, in output order, is `s` better than `cur`? */
export function betterNext(cur: VersionKey | null, s: VersionKey): boolean {
  return !cur || s.version < cur.version || (s.version === cur.version && cmpDate(s.date, cur.date) < 0);
}

/** Group patch mails into series and link their versions. */
export function groupSeries(records: ReadonlyArray<MessageRecord>, threads: ReadonlyArray<ThreadLike> | ThreadParents): Series[] {
  const tp = Array.isArray(threads) ? parentsOf(threads as ReadonlyArray<ThreadLike>) : (threads as ThreadParents);
  const recById = new Map<string, MessageRecord>();
  for (const r of records) if (!recById.has(r.messageId)) recById.set(r.messageId, r);
  const parentOf = (id: string): string | null => {
    const p = tp.parent(id);
    if (p !== undefined) return p;
    const r = recById.get(id);
    return r ? (r.inReplyTo ?? r.references.at(-1) ?? null) : null;
  };

  const groups = anchorGroups(recById.values(), tp);

  // ---- unthreaded postings: merge root-anchored groups of one sender/version/total/resend
  const buckets = new Map<string, Group[]>();
  for (const g of groups) {
    const b = unthreadedBucket(g);
    if (b === null) continue;
    if (!buckets.has(b)) buckets.set(b, []);
    buckets.get(b)!.push(g);
  }
  const merged = new Set<Group>();
  for (const list of buckets.values()) {
    if (list.length < 2) continue;
    const keyed = list.map((g) => ({ g, start: minDate(g.members), key: g.key }));
    keyed.sort(cmpUnthreaded);
    const run = new UnthreadedRun();
    let open: Group | null = null;
    for (const { g } of keyed) {
      if (run.join(g.members) && open) {
        open.members.push(...g.members);
        merged.add(g);
      } else open = g;
    }
  }

  // ---- build the series
  const built = groups.filter((g) => !merged.has(g)).map((g) => buildSeries(g.members));
  built.sort((a, b) => cmpBuilt({ date: a.date, id: a.s.id }, { date: b.date, id: b.s.id }));
  const keys = new Map<Built, VersionKey>(built.map((b) => [b, versionKey(b)]));

  // ---- versions
  const seriesOf = new Map<string, Built>();
  for (const b of built) for (const id of b.memberIds) seriesOf.set(id, b);
  const prev = new Map<Built, Built>();
  // In reply to an earlier version.
  for (const s of built) {
    const seen = new Set<string>();
    let x = parentOf(s.head.id);
    while (x !== null && !seen.has(x)) {
      seen.add(x);
      const t = seriesOf.get(x);
      if (t && repliesToPrevious(keys.get(t)!, keys.get(s)!)) {
        prev.set(s, t);
        break;
      }
      x = parentOf(x);
    }
  }
  // Across threads: same sender, same subject.
  const bySubject = new Map<string, Built[]>();
  for (const b of built) {
    const k = `${b.sender}\u0000${b.subjectKey}`;
    if (!bySubject.has(k)) bySubject.set(k, []);
    bySubject.get(k)!.push(b);
  }
  for (const s of built) {
    if (prev.has(s)) continue;
    let best: Built | null = null;
    for (const t of bySubject.get(`${s.sender}\u0000${s.subjectKey}`) ?? []) {
      if (betterPrevious(best ? keys.get(best)! : null, keys.get(t)!, keys.get(s)!)) best = t;
    }
    if (best) prev.set(s, best);
  }
  const next = new Map<Built, Built>();
  for (const s of built) {
    const t = prev.get(s);
    if (!t) continue;
    s.s.previousVersion = t.s.id;
    const cur = next.get(t);
    if (betterNext(cur ? keys.get(cur)! : null, keys.get(s)!)) next.set(t, s);
  }
  for (const [t, s] of next) t.s.nextVersion = s.s.id;

  return built.map((b) => b.s);
}
