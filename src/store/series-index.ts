// Series grouping on the run's on-disk index (see corpus-index.ts): the steps of
// thread/series.ts, each over a table sorted by what it needs, so that only one thread's
// candidates, one group or one bucket is in memory at a time:
//   1. per thread: members and anchors -> groups (grp, gm);
//   2. per unthreaded bucket, in date order: groups posted without threading headers merged;
//   3. per group: the series built (ser), each member pointing at its series (node.sk);
//   4. versions: up the thread from each series' head, else same sender and subject key;
//   5. nextVersion from the previous-version links.
import type { MessageRecord, Series } from '../model.js';
import type { CandidateFields } from '../mail/jobs.js';
import {
  anchorGroups,
  betterNext,
  betterPrevious,
  buildSeries,
  minDate,
  repliesToPrevious,
  toMember,
  unthreadedBucket,
  UnthreadedRun,
  type Member,
  type ThreadParents,
  type VersionKey,
} from '../thread/series.js';
import { PAGE, type CorpusIndex } from './corpus-index.js';

/** What the index keeps of a series candidate (a patch or cover letter). */
export interface StoredCandidate extends CandidateFields {
  date: string | null;
  kind: MessageRecord['kind'];
  hasDiff: boolean;
}

const NONE: never[] = [];
const NO_DIFF = { files: NONE, damage: NONE };
const NO_REF = { source: '', file: '', offset: 0, length: 0 };

/** A MessageRecord shell for series grouping: everything it does not read points at shared constants. */
export function shellOf(id: string, c: StoredCandidate): MessageRecord {
  return {
    messageId: id,
    ref: NO_REF,
    inReplyTo: null,
    references: NONE,
    from: c.from,
    author: c.author ?? c.from,
    date: c.date,
    subject: '',
    parsedSubject: c.parsedSubject,
    kind: c.kind,
    listIds: NONE,
    to: NONE,
    cc: NONE,
    commitMessage: null,
    diff: c.hasDiff ? NO_DIFF : null,
    files: NONE,
    diffstat: c.diffstat,
    trailers: NONE,
    blocks: NONE,
    whitespaceDamaged: false,
    damage: NONE,
    automated: c.automated,
    warnings: NONE,
  };
}

interface SerRow {
  s: number;
  id: string;
  date: number | null;
  sender: string;
  skey: string;
  version: number;
  resend: number;
}

const keyOf = (r: SerRow): VersionKey => ({
  id: r.id,
  version: r.version,
  date: r.date,
  sender: r.sender,
  subjectKey: r.skey,
  resend: r.resend === 1,
});

/** Rows of `table` (made sorted, so rowid order is the order wanted), PAGE at a time. */
function* pages<T>(ix: CorpusIndex, sql: string): Generator<T[]> {
  const stmt = ix.db.prepare(sql);
  for (let after = 0; ; ) {
    const rows = stmt.all(after, PAGE) as Array<T & { rid: number }>;
    if (!rows.length) return;
    after = rows[rows.length - 1].rid;
    yield rows;
  }
}

/** Rows grouped by consecutive equal keys, across pages. */
function* runs<T>(src: Generator<T[]>, key: (r: T) => number): Generator<T[]> {
  let cur: T[] = [];
  for (const rows of src) {
    for (const r of rows) {
      if (cur.length && key(cur[0]) !== key(r)) {
        yield cur;
        cur = [];
      }
      cur.push(r);
    }
  }
  if (cur.length) yield cur;
}

/** Group the index's candidates into series and link versions. Returns the number of series. */
export function groupSeriesOnDisk(ix: CorpusIndex): number {
  const steps = groupSeriesSteps(ix);
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

/**
 * groupSeriesOnDisk one thread, group or page of rows at a time: it yields between them, so a
 * caller can let other work (worker threads' answers) in while it runs. Nothing else may write
 * to the index until it is done.
 */
export function* groupSeriesSteps(ix: CorpusIndex): Generator<void, number> {
  const db = ix.db;
  const tp: ThreadParents = {
    parent: (id) => ix.parentId(id),
    ghost: (id) => ix.hasId(id) === 0,
    message: (id) => ix.hasId(id) === 1,
  };

  // ---- 1. per thread: anchors and groups
  db.exec(`
    CREATE TABLE cr AS SELECT n.root AS root, n.c AS c, n.mid AS mid, cand.json AS json
      FROM cand JOIN node n ON n.c = cand.c ORDER BY n.root, n.c;
    CREATE TABLE grp(g INTEGER PRIMARY KEY, key TEXT NOT NULL, bucket TEXT, start REAL);
    CREATE TABLE gm(c INTEGER PRIMARY KEY, g INTEGER NOT NULL, idx INTEGER NOT NULL, date REAL);
  `);
  const addGroup = db.prepare('INSERT INTO grp(key, bucket, start) VALUES (?, ?, ?)');
  const addMember = db.prepare('INSERT INTO gm(c, g, idx, date) VALUES (?, ?, ?, ?)');
  ix.begin();
  type Cand = { rid: number; root: number; c: number; mid: string; json: string };
  for (const thread of runs(pages<Cand>(ix, 'SELECT rowid AS rid, root, c, mid, json FROM cr WHERE rowid > ? ORDER BY rowid LIMIT ?'), (r) => r.root)) {
    const cOf = new Map<string, number>();
    const shells = thread.map((r) => {
      cOf.set(r.mid, r.c);
      return shellOf(r.mid, JSON.parse(r.json) as StoredCandidate);
    });
    for (const g of anchorGroups(shells, tp)) {
      const gid = Number(addGroup.run(g.key, unthreadedBucket(g), minDate(g.members)).lastInsertRowid);
      for (const m of g.members) addMember.run(cOf.get(m.id)!, gid, m.index, m.date);
    }
    yield;
  }
  ix.commit();

  // ---- 2. unthreaded postings: merge root-anchored groups of one bucket, in date order
  db.exec(`
    DROP TABLE cr;
    CREATE INDEX gm_g ON gm(g);
    -- within a bucket, the order of cmpUnthreaded (thread/series.ts)
    CREATE TABLE ug AS SELECT g, bucket FROM grp WHERE bucket IS NOT NULL ORDER BY bucket, start IS NULL, start, key;
  `);
  const membersOf = db.prepare('SELECT idx AS "index", date FROM gm WHERE g = ?');
  const move = db.prepare('UPDATE gm SET g = ? WHERE g = ?');
  ix.begin();
  let bucket: string | null = null;
  let run = new UnthreadedRun();
  let open = -1;
  for (const rows of pages<{ rid: number; g: number; bucket: string }>(ix, 'SELECT rowid AS rid, g, bucket FROM ug WHERE rowid > ? ORDER BY rowid LIMIT ?')) {
    for (const r of rows) {
      if (r.bucket !== bucket) {
        bucket = r.bucket;
        run = new UnthreadedRun();
      }
      const ms = membersOf.all(r.g) as Array<Pick<Member, 'index' | 'date'>>;
      if (run.join(ms)) move.run(open, r.g);
      else open = r.g;
    }
    yield;
  }
  ix.commit();

  // ---- 3. build the series, numbered in output order
  db.exec(`
    DROP TABLE ug;
    CREATE TABLE bm AS SELECT gm.g AS g, n.mid AS mid, cand.json AS json
      FROM gm JOIN node n ON n.c = gm.c JOIN cand ON cand.c = gm.c ORDER BY gm.g, gm.c;
    CREATE TABLE ser(s INTEGER PRIMARY KEY, id TEXT NOT NULL, date REAL, sender TEXT NOT NULL, skey TEXT NOT NULL,
      version REAL NOT NULL, resend INTEGER NOT NULL, head TEXT NOT NULL, json TEXT NOT NULL, ord INTEGER, prev INTEGER, next INTEGER);
  `);
  const addSeries = db.prepare('INSERT INTO ser(id, date, sender, skey, version, resend, head, json) VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
  const setSeries = db.prepare('UPDATE node SET sk = ? WHERE mid = ?');
  ix.begin();
  type Bm = { rid: number; g: number; mid: string; json: string };
  for (const group of runs(pages<Bm>(ix, 'SELECT rowid AS rid, g, mid, json FROM bm WHERE rowid > ? ORDER BY rowid LIMIT ?'), (r) => r.g)) {
    const members = group.map((r) => toMember(shellOf(r.mid, JSON.parse(r.json) as StoredCandidate))!);
    const b = buildSeries(members);
    const s = Number(
      addSeries.run(b.s.id, b.date, b.sender, b.subjectKey, b.s.version, b.resend ? 1 : 0, b.head.id, JSON.stringify(b.s)).lastInsertRowid,
    );
    for (const id of b.memberIds) setSeries.run(s, id);
    yield;
  }
  db.exec(`
    DROP TABLE bm;
    -- the order of cmpBuilt (thread/series.ts)
    CREATE TABLE sord AS SELECT s FROM ser ORDER BY date IS NULL, date, id;
    UPDATE ser SET ord = sord.rowid FROM sord WHERE sord.s = ser.s;
    DROP TABLE sord;
    CREATE UNIQUE INDEX ser_ord ON ser(ord);
    CREATE INDEX ser_subject ON ser(sender, skey, ord);
  `);
  ix.commit();

  // ---- 4. previous versions: in reply to an earlier version, else across threads
  const cols = 's, id, date, sender, skey, version, resend';
  const seriesAt = db.prepare(`SELECT ${cols} FROM ser WHERE s = (SELECT sk FROM node WHERE mid = ?)`);
  const setPrev = db.prepare('UPDATE ser SET prev = ? WHERE s = ?');
  ix.begin();
  type Ser = SerRow & { rid: number; head: string };
  for (const rows of pages<Ser>(ix, `SELECT ord AS rid, ${cols}, head FROM ser WHERE ord > ? ORDER BY ord LIMIT ?`)) {
    for (const r of rows) {
      const s = keyOf(r);
      const seen = new Set<string>();
      for (let x = ix.parentId(r.head) ?? null; x !== null && !seen.has(x); x = ix.parentId(x) ?? null) {
        seen.add(x);
        const t = seriesAt.get(x) as SerRow | undefined;
        if (t && repliesToPrevious(keyOf(t), s)) {
          setPrev.run(t.s, r.s);
          break;
        }
      }
    }
    yield;
  }
  // Across threads: the series of one sender and subject key together, in output order (a
  // bot or a repeated subject can make such a run long: it is read once, not once a member).
  db.exec(`CREATE TABLE sj AS SELECT ${cols}, prev FROM ser ORDER BY sender, skey, ord`);
  type Sj = SerRow & { rid: number; prev: number | null };
  let same: Sj[] = [];
  const across = () => {
    const keys = same.map(keyOf);
    same.forEach((r, i) => {
      if (r.prev !== null) return;
      let best = -1;
      for (let j = 0; j < same.length; j++) if (betterPrevious(best < 0 ? null : keys[best], keys[j], keys[i])) best = j;
      if (best >= 0) setPrev.run(same[best].s, r.s);
    });
  };
  for (const rows of pages<Sj>(ix, `SELECT rowid AS rid, ${cols}, prev FROM sj WHERE rowid > ? ORDER BY rowid LIMIT ?`)) {
    for (const r of rows) {
      if (same.length && (same[0].sender !== r.sender || same[0].skey !== r.skey)) {
        across();
        same = [];
      }
      same.push(r);
    }
    yield;
  }
  across();
  db.exec('DROP TABLE sj');
  ix.commit();

  // ---- 5. next versions: per previous version, the best of the series that follow it
  db.exec('CREATE TABLE nx AS SELECT s AS s, prev, id, date, sender, skey, version, resend FROM ser WHERE prev IS NOT NULL ORDER BY prev, ord');
  const setNext = db.prepare('UPDATE ser SET next = ? WHERE s = ?');
  ix.begin();
  type Nx = SerRow & { rid: number; prev: number };
  for (const followers of runs(pages<Nx>(ix, 'SELECT rowid AS rid, * FROM nx WHERE rowid > ? ORDER BY rowid LIMIT ?'), (r) => r.prev)) {
    let cur: Nx | null = null;
    for (const f of followers) if (betterNext(cur ? keyOf(cur) : null, keyOf(f))) cur = f;
    setNext.run(cur!.s, cur!.prev);
    yield;
  }
  db.exec('DROP TABLE nx');
  ix.commit();
  return (db.prepare('SELECT COUNT(*) AS n FROM ser').get() as { n: number }).n;
}

/** The series in output order (by first date, undated last, then id), read PAGE at a time. */
export function* seriesOnDisk(ix: CorpusIndex): Generator<Series> {
  const sql = `SELECT s.ord AS rid, s.json AS json, p.id AS prev, x.id AS next
    FROM ser s LEFT JOIN ser p ON p.s = s.prev LEFT JOIN ser x ON x.s = s.next WHERE s.ord > ? ORDER BY s.ord LIMIT ?`;
  for (const rows of pages<{ json: string; prev: string | null; next: string | null }>(ix, sql)) {
    for (const r of rows) yield { ...(JSON.parse(r.json) as Series), previousVersion: r.prev, nextVersion: r.next };
  }
}

/** Id of the series a message belongs to. */
export function seriesIdOf(ix: CorpusIndex): (id: string) => string | undefined {
  const stmt = ix.db.prepare('SELECT s.id AS id FROM node n JOIN ser s ON s.s = n.sk WHERE n.mid = ?');
  return (id) => (stmt.get(id) as { id: string } | undefined)?.id;
}
