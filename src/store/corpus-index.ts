// The run's index, on disk: one SQLite file in the spool folder (better-sqlite3, synchronous,
// no journal: it is thrown away with the run). What threading, anchoring and series grouping
// need of every message lives here instead of in the heap, so memory stays flat however
// large the archive: SQLite keeps a bounded page cache and sorts larger than it in temporary
// files. The algorithms are those of thread/jwz.ts and thread/series.ts, run on this storage.
//
// Every scan is paged (a query's rows fetched in slices by key): better-sqlite3 refuses other
// statements while an iterator is open, and the steps write as they read.
import Database from 'better-sqlite3';
import type { Database as Db, Statement } from 'better-sqlite3';
import type { MessageRecord } from '../model.js';
import type { AnchorJob, LightRecord, RenderJob, StoredAt, StoredText } from '../mail/jobs.js';
import { cmpIds, dateValue, linkMessage, threadSkeleton, type Containers, type ThreadNodes, type ThreadSkeletonOut } from '../thread/jwz.js';

const HAS_DIFF = 1;
const HAS_BLOCKS = 2;
const KINDS: ReadonlyArray<MessageRecord['kind']> = ['patch', 'cover', 'reply', 'other'];
/** Rows fetched per slice of a paged scan. */
export const PAGE = 2048;
/** Messages added per transaction. */
const BATCH = 4096;

export interface IndexOptions {
  /** SQLite page cache, in MB (default 16). */
  cacheMb?: number;
}

/** Where a message is in the spool, and where its anchored comments are (null: anchor them when read). */
export interface StoredMessage {
  at: StoredAt;
  kind: MessageRecord['kind'];
  hasBlocks: boolean;
  comments: StoredText | null;
}

/**
 * A bounded cache of recent entries: two generations of at most `max` each, the older one
 * dropped when the newer fills. Threads are read and written where they are active, so the
 * containers of recent mail are the ones asked for again and again.
 */
class RecentMap<K, V> {
  private cur = new Map<K, V>();
  private old = new Map<K, V>();
  constructor(private readonly max: number) {}

  get(k: K): V | undefined {
    const v = this.cur.get(k);
    if (v !== undefined) return v;
    const o = this.old.get(k);
    if (o !== undefined) this.set(k, o);
    return o;
  }

  set(k: K, v: V): void {
    if (this.cur.size >= this.max) {
      this.old = this.cur;
      this.cur = new Map();
    }
    this.cur.set(k, v);
  }
}

/** Entries of each generation of the caches (about 100 bytes an entry). */
const RECENT = 32768;

interface NodeRow {
  c: number;
  mid: string;
  parent: number | null;
  has: number;
  date: number | null;
}

export class CorpusIndex {
  readonly db: Db;
  private duplicates = 0;
  private inBatch = 0;
  private threadCount = -1;
  private readonly q: {
    find: Statement<[string], { c: number; has: number }>;
    ghost: Statement<[string]>;
    message: Statement<[string, number | null, number, number, number, number, number, number]>;
    fill: Statement<[number | null, number, number, number, number, number, number, number]>;
    parent: Statement<[number], { parent: number | null }>;
    link: Statement<[number, number]>;
    cand: Statement<[number, string]>;
  };

  constructor(path: string, opts: IndexOptions = {}) {
    this.db = new Database(path);
    this.db.pragma('journal_mode = OFF');
    this.db.pragma('synchronous = OFF');
    this.db.pragma('locking_mode = EXCLUSIVE');
    this.db.pragma('temp_store = FILE');
    this.db.pragma(`cache_size = -${Math.round((opts.cacheMb ?? 16) * 1024)}`);
    this.db.exec(`
      CREATE TABLE node(
        c INTEGER PRIMARY KEY,
        mid TEXT NOT NULL,
        parent INTEGER,
        has INTEGER NOT NULL DEFAULT 0,
        date REAL,
        kind INTEGER, flags INTEGER,
        file INTEGER, off INTEGER, head INTEGER, rest INTEGER,
        cfile INTEGER, coff INTEGER, clen INTEGER,
        root INTEGER,
        sk INTEGER
      );
      CREATE UNIQUE INDEX node_mid ON node(mid);
      CREATE INDEX node_parent ON node(parent) WHERE parent IS NOT NULL;
      CREATE TABLE cand(c INTEGER PRIMARY KEY, json TEXT NOT NULL);
    `);
    this.q = {
      find: this.db.prepare('SELECT c, has FROM node WHERE mid = ?'),
      ghost: this.db.prepare('INSERT INTO node(mid) VALUES (?)'),
      message: this.db.prepare('INSERT INTO node(mid, has, date, kind, flags, file, off, head, rest) VALUES (?, 1, ?, ?, ?, ?, ?, ?, ?)'),
      fill: this.db.prepare('UPDATE node SET has = 1, date = ?, kind = ?, flags = ?, file = ?, off = ?, head = ?, rest = ? WHERE c = ?'),
      parent: this.db.prepare('SELECT parent FROM node WHERE c = ?'),
      link: this.db.prepare('UPDATE node SET parent = ? WHERE c = ?'),
      cand: this.db.prepare('INSERT INTO cand(c, json) VALUES (?, ?)'),
    };
    this.db.exec('BEGIN');
  }

  /** Message-ID -> container, and container -> parent (-1: none), of recently used containers. */
  private readonly recentIds = new RecentMap<string, number>(RECENT);
  private readonly recentParents = new RecentMap<number, number>(RECENT);

  private readonly containers: Containers = {
    intern: (id) => {
      let c = this.recentIds.get(id);
      if (c === undefined) {
        const row = this.q.find.get(id);
        c = row ? row.c : Number(this.q.ghost.run(id).lastInsertRowid);
        this.recentIds.set(id, c);
      }
      return c;
    },
    parentOf: (c) => {
      let p = this.recentParents.get(c);
      if (p === undefined) {
        p = this.q.parent.get(c)?.parent ?? -1;
        this.recentParents.set(c, p);
      }
      return p;
    },
    link: (child, parent) => {
      this.q.link.run(parent, child);
      this.recentParents.set(child, parent);
    },
  };

  /** Number of records ignored because their Message-ID was already seen. */
  get duplicateCount(): number {
    return this.duplicates;
  }

  /** Add one parsed message. Returns false (and changes nothing) for a duplicate Message-ID. */
  add(r: LightRecord): boolean {
    const id = r.messageId.trim();
    const row = this.q.find.get(id);
    if (row?.has) {
      this.duplicates++;
      return false;
    }
    const d = dateValue(r.date);
    const date = d === d ? d : null;
    const flags = (r.hasDiff ? HAS_DIFF : 0) | (r.hasBlocks ? HAS_BLOCKS : 0);
    const kind = KINDS.indexOf(r.kind);
    const { file, offset, headLength, restLength } = r.at;
    let c: number;
    if (row) {
      c = row.c;
      this.q.fill.run(date, kind, flags, file, offset, headLength, restLength, c);
    } else {
      c = Number(this.q.message.run(id, date, kind, flags, file, offset, headLength, restLength).lastInsertRowid);
    }
    this.recentIds.set(id, c);
    linkMessage(this.containers, c, id, r);
    if (r.candidate) this.q.cand.run(c, JSON.stringify({ ...r.candidate, date: r.date, kind: r.kind, hasDiff: r.hasDiff }));
    if (++this.inBatch >= BATCH) {
      this.db.exec('COMMIT; BEGIN');
      this.inBatch = 0;
    }
    return true;
  }

  /**
   * All messages are in: prune ghosts left without children (and ghosts emptied in turn),
   * give every container its thread root, and number the threads in output order (by the
   * earliest date of a message in the thread, threads without dates last, then by root id).
   * Returns the number of threads.
   */
  finish(): number {
    const db = this.db;
    db.exec('COMMIT');
    db.exec('CREATE INDEX node_ghost ON node(c) WHERE has = 0');
    const prune = db.prepare(
      'UPDATE node SET parent = NULL WHERE has = 0 AND parent IS NOT NULL AND NOT EXISTS (SELECT 1 FROM node k WHERE k.parent = node.c)',
    );
    while (prune.run().changes > 0);
    db.exec(`
      CREATE TEMP TABLE tr AS
        WITH RECURSIVE t(c, root) AS (
          SELECT c, c FROM node WHERE parent IS NULL AND (has = 1 OR EXISTS (SELECT 1 FROM node k WHERE k.parent = node.c))
          UNION ALL
          SELECT n.c, t.root FROM node n JOIN t ON n.parent = t.c
        )
        SELECT c, root FROM t;
      UPDATE node SET root = tr.root FROM tr WHERE tr.c = node.c;
      DROP TABLE tr;
      CREATE INDEX node_root ON node(root) WHERE root IS NOT NULL;
      CREATE TABLE troot(k INTEGER PRIMARY KEY, c INTEGER NOT NULL);
      INSERT INTO troot(c)
        SELECT r.root FROM (SELECT root, MIN(CASE WHEN has = 1 THEN date END) AS first FROM node WHERE root IS NOT NULL GROUP BY root) r
        JOIN node n ON n.c = r.root
        ORDER BY r.first IS NULL, r.first, n.mid;
    `);
    this.threadCount = (db.prepare('SELECT COUNT(*) AS n FROM troot').get() as { n: number }).n;
    return this.threadCount;
  }

  get threads(): number {
    return this.threadCount;
  }

  /** Root container of thread k (0-based, output order). */
  rootOf(k: number): number {
    return ((this._root ??= this.db.prepare('SELECT c FROM troot WHERE k = ?')).get(k + 1) as { c: number }).c;
  }
  private _root?: Statement;

  /** The skeleton of the thread rooted at container `root` (subject left ''). */
  skeleton(root: number): ThreadSkeletonOut {
    return this.skeletonOf(root, (this._members ??= this.db.prepare('SELECT c, mid, parent, has, date FROM node WHERE root = ?')).all(root) as NodeRow[]);
  }
  private _members?: Statement;

  /**
   * Thread k (0-based, output order) as a render job: its skeleton, and where each message's
   * record is (one query for the thread, where assembling it on the main thread asks per message).
   */
  renderJob(k: number): RenderJob {
    const root = this.rootOf(k);
    const rows = (this._renderRows ??= this.db.prepare(
      'SELECT c, mid, parent, has, date, flags, file, off, head, rest FROM node WHERE root = ?',
    )).all(root) as Array<NodeRow & { flags: number; file: number; off: number; head: number; rest: number }>;
    const t = this.skeletonOf(root, rows);
    const byId = new Map<string, (typeof rows)[number]>();
    for (const r of rows) byId.set(r.mid, r);
    return {
      root: t.root,
      rootMissing: t.rootMissing,
      messages: t.messages.map((m) => {
        const r = byId.get(m.messageId)!;
        const stored = !m.ghost && r.has === 1;
        return {
          messageId: m.messageId,
          parent: m.parent,
          ghost: m.ghost,
          children: m.children,
          at: stored ? { file: r.file, offset: r.off, headLength: r.head, restLength: r.rest } : null,
          hasBlocks: stored && (r.flags & HAS_BLOCKS) !== 0,
        };
      }),
    };
  }
  private _renderRows?: Statement;

  private skeletonOf(root: number, rows: NodeRow[]): ThreadSkeletonOut {
    const byC = new Map<number, NodeRow>();
    const kids = new Map<number, number[]>();
    for (const r of rows) {
      byC.set(r.c, r);
      if (r.parent !== null) {
        const k = kids.get(r.parent);
        if (k) k.push(r.c);
        else kids.set(r.parent, [r.c]);
      }
    }
    const nodes: ThreadNodes = {
      children: (c) => [...(kids.get(c) ?? [])],
      hasMessage: (c) => byC.get(c)!.has === 1,
      date: (c) => byC.get(c)!.date ?? NaN,
      parentOf: (c) => byC.get(c)!.parent ?? -1,
      idOf: (c) => byC.get(c)!.mid,
      compare: (a, b) => cmpIds(byC.get(a)!.mid, byC.get(b)!.mid),
    };
    return threadSkeleton(root, nodes);
  }

  /** The message stored under a Message-ID, or undefined (unknown, or a ghost). */
  message(id: string): StoredMessage | undefined {
    const r = (this._message ??= this.db.prepare(
      'SELECT has, kind, flags, file, off, head, rest, cfile, coff, clen FROM node WHERE mid = ?',
    )).get(id) as
      | { has: number; kind: number; flags: number; file: number; off: number; head: number; rest: number; cfile: number | null; coff: number; clen: number }
      | undefined;
    if (!r || !r.has) return undefined;
    return {
      at: { file: r.file, offset: r.off, headLength: r.head, restLength: r.rest },
      kind: KINDS[r.kind],
      hasBlocks: (r.flags & HAS_BLOCKS) !== 0,
      comments: r.cfile === null ? null : { file: r.cfile, offset: r.coff, length: r.clen },
    };
  }
  private _message?: Statement;

  /** Thread parent of a Message-ID (may be a ghost): null for a root, undefined for an id the index does not know. */
  parentId(id: string): string | null | undefined {
    const r = (this._parentId ??= this.db.prepare(
      'SELECT p.mid AS p FROM node n LEFT JOIN node p ON p.c = n.parent WHERE n.mid = ?',
    )).get(id) as { p: string | null } | undefined;
    return r ? r.p : undefined;
  }
  private _parentId?: Statement;

  /** 1: a message, 0: a ghost, undefined: unknown. */
  hasId(id: string): number | undefined {
    return this.q.find.get(id)?.has;
  }

  // ---- anchoring in advance

  /**
   * List every reply with reply blocks, with the patch it answers (the nearest ancestor
   * holding a patch with a diff, as assembleThread picks it), replies to the same patch
   * together. Returns how many there are; anchorJob(k) reads them.
   */
  prepareAnchors(): number {
    const db = this.db;
    db.exec('CREATE TEMP TABLE aj0(reply INTEGER, patch INTEGER)');
    const up = db.prepare('SELECT parent, has, kind, flags FROM node WHERE c = ?');
    const page = db.prepare(`SELECT c, parent FROM node WHERE has = 1 AND (flags & ${HAS_BLOCKS}) != 0 AND c > ? ORDER BY c LIMIT ${PAGE}`);
    const put = db.prepare('INSERT INTO aj0(reply, patch) VALUES (?, ?)');
    const patchKind = KINDS.indexOf('patch');
    db.exec('BEGIN');
    for (let after = 0; ; ) {
      const rows = page.all(after) as Array<{ c: number; parent: number | null }>;
      if (!rows.length) break;
      for (const r of rows) {
        let p = r.parent;
        while (p !== null) {
          const n = up.get(p) as { parent: number | null; has: number; kind: number; flags: number };
          if (n.has && n.kind === patchKind && n.flags & HAS_DIFF) break;
          p = n.parent;
        }
        put.run(r.c, p ?? -1);
      }
      after = rows[rows.length - 1].c;
    }
    db.exec(`
      CREATE TABLE aj(k INTEGER PRIMARY KEY, reply INTEGER NOT NULL, patch INTEGER NOT NULL);
      INSERT INTO aj(reply, patch) SELECT reply, patch FROM aj0 ORDER BY patch, reply;
      DROP TABLE aj0;
      COMMIT;
    `);
    return (db.prepare('SELECT COUNT(*) AS n FROM aj').get() as { n: number }).n;
  }

  /** Anchor job k (0-based) of prepareAnchors' list. */
  anchorJob(k: number): AnchorJob {
    const r = (this._job ??= this.db.prepare(`
      SELECT r.file AS rf, r.off AS ro, r.head AS rh, r.rest AS rr, p.file AS pf, p.off AS po, p.head AS ph, p.rest AS pr
      FROM aj JOIN node r ON r.c = aj.reply LEFT JOIN node p ON p.c = aj.patch WHERE aj.k = ?`)).get(k + 1) as {
      rf: number; ro: number; rh: number; rr: number; pf: number | null; po: number; ph: number; pr: number;
    };
    return {
      reply: { file: r.rf, offset: r.ro, headLength: r.rh, restLength: r.rr },
      patch: r.pf === null ? null : { file: r.pf, offset: r.po, headLength: r.ph, restLength: r.pr },
    };
  }
  private _job?: Statement;

  /** Where the comments of anchor job k were stored. */
  setComments(k: number, t: StoredText): void {
    (this._setComments ??= this.db.prepare('UPDATE node SET cfile = ?, coff = ?, clen = ? WHERE c = (SELECT reply FROM aj WHERE k = ?)')).run(
      t.file,
      t.offset,
      t.length,
      k + 1,
    );
  }
  private _setComments?: Statement;

  /** Writes between begin() and commit() go in one transaction (each would commit alone otherwise). */
  begin(): void {
    this.db.exec('BEGIN');
  }

  commit(): void {
    this.db.exec('COMMIT');
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
