// SQLite backend (better-sqlite3, synchronous): one connection per Store, WAL journal, foreign
// keys on, synchronous=FULL (a reply must not be forgotten after the OS said it was written).
//
// The Store API is async, and a transaction callback awaits between statements, so the one
// connection is guarded by an in-process queue: a transaction holds it from BEGIN to COMMIT and
// other calls on the same Store wait their turn (calls made from inside the callback join the
// transaction instead, see sql.ts).
//
// Waiting for another connection's write lock: SQLite's busy_timeout sleeps inside the call and
// so blocks Node's event loop. If the lock holder is another Store in the same process (two
// connections on one file), it can then never finish, and the waiter fails after the whole
// timeout. So busy_timeout stays short (it only smooths brief contention with other processes)
// and the real wait is an async retry, up to busyTimeoutMs, around everything that can meet a
// busy database: BEGIN IMMEDIATE, COMMIT, statements outside a transaction, and opening
// (WAL switch and migrations). BEGIN IMMEDIATE takes the write lock up front, so statements
// inside a transaction never meet it.
import Database from 'better-sqlite3';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { migrateSqlite } from './migrations.js';
import { SqlStore, type Backend, type Conn, type Dialect } from './sql.js';
import type { Store } from './store.js';

/** How long a writer waits for another connection's write transaction (ms). */
export const SQLITE_BUSY_TIMEOUT_MS = 10_000;
/** SQLite's own (thread-blocking) busy_timeout: short, see above. */
const BLOCKING_BUSY_MS = 20;

const NOW_MS = "CAST(unixepoch('subsec') * 1000 AS INTEGER)";

const dialect: Dialect = {
  name: 'sqlite',
  skipLocked: '',
  // BEGIN IMMEDIATE already makes every write transaction, claims included, take turns.
  githubClaimLock: null,
  json: (v) => JSON.stringify(v),
  parseJson: (v) => (typeof v === 'string' ? JSON.parse(v) : v),
};

class Queue {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn);
    this.tail = result.catch(() => undefined);
    return result;
  }
}

function isBusy(e: unknown): boolean {
  const code = (e as { code?: string } | null)?.code ?? '';
  return code === 'SQLITE_BUSY' || code.startsWith('SQLITE_BUSY_') || code === 'SQLITE_LOCKED';
}

/** Run a step that may meet SQLITE_BUSY (it then did nothing) again until it passes or time is up. */
async function retryBusy<T>(step: () => T, waitMs: number): Promise<T> {
  const deadline = Date.now() + waitMs;
  for (let delay = 2; ; delay = Math.min(delay * 2, 100)) {
    try {
      return step();
    } catch (e) {
      if (!isBusy(e) || Date.now() >= deadline) throw e;
      await sleep(delay * (0.5 + Math.random()));
    }
  }
}

type Param = string | number | bigint | Buffer | null;

function param(v: unknown): Param {
  if (v === undefined || v === null) return null;
  if (typeof v === 'boolean') return v ? 1 : 0;
  return v as Param;
}

class SqliteBackend implements Backend {
  readonly dialect = dialect;
  private readonly stmts = new Map<string, Database.Statement>();
  private readonly queue = new Queue();
  private readonly conn: Conn;

  constructor(
    private readonly db: Database.Database,
    private readonly busyMs: number,
  ) {
    this.conn = {
      all: <R>(sql: string, params: readonly unknown[] = []) =>
        this.step(() => {
          const st = this.prepare(sql);
          const args = params.map(param);
          if (st.reader) return st.all(...args) as R[];
          st.run(...args);
          return [] as R[];
        }),
      run: (sql: string, params: readonly unknown[] = []) =>
        this.step(() => this.prepare(sql).run(...params.map(param)).changes),
    };
  }

  /** Inside our transaction the lock is ours; outside, a statement may have to wait for it. */
  private async step<T>(fn: () => T): Promise<T> {
    return this.db.inTransaction ? fn() : retryBusy(fn, this.busyMs);
  }

  private prepare(sql: string): Database.Statement {
    let st = this.stmts.get(sql);
    if (!st) {
      // Statements built for a number of values (IN lists, multi-row inserts) vary; keep the
      // cache bounded.
      if (this.stmts.size > 500) this.stmts.clear();
      st = this.db.prepare(sql.replaceAll('@now', NOW_MS));
      this.stmts.set(sql, st);
    }
    return st;
  }

  withConn<T>(fn: (c: Conn) => Promise<T>): Promise<T> {
    return this.queue.run(() => fn(this.conn));
  }

  withTransaction<T>(fn: (c: Conn) => Promise<T>): Promise<T> {
    return this.queue.run(async () => {
      await retryBusy(() => this.db.exec('BEGIN IMMEDIATE'), this.busyMs);
      let result: T;
      try {
        result = await fn(this.conn);
        // A busy COMMIT leaves the transaction open and may be retried.
        await retryBusy(() => this.db.exec('COMMIT'), this.busyMs);
      } catch (e) {
        // SQLite may already have rolled back by itself (e.g. disk full).
        if (this.db.inTransaction) this.db.exec('ROLLBACK');
        throw e;
      }
      return result;
    });
  }

  close(): Promise<void> {
    return this.queue.run(async () => {
      if (this.db.open) this.db.close();
    });
  }
}

/** The file a `sqlite:` URL names: "./x.db" (relative to the working directory), "/abs/x.db", "///abs/x.db" (sqlite:///abs/x.db), ":memory:". */
export function sqlitePath(spec: string): string {
  if (spec === ':memory:' || spec === '') return ':memory:';
  const path = spec.startsWith('//') ? spec.slice(2) : spec;
  return resolve(path);
}

/** Open a SQLite store (the part of the URL after "sqlite:"), creating and migrating it as needed. */
export async function openSqliteStore(spec: string, opts: { busyTimeoutMs?: number } = {}): Promise<Store> {
  const file = sqlitePath(spec);
  const busyMs = opts.busyTimeoutMs ?? SQLITE_BUSY_TIMEOUT_MS;
  let db: Database.Database;
  try {
    db = new Database(file, { timeout: BLOCKING_BUSY_MS });
  } catch (e) {
    throw new Error(`store: cannot open SQLite database ${file}: ${(e as Error).message}`, { cause: e });
  }
  try {
    await retryBusy(() => db.pragma('journal_mode = WAL'), busyMs);
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    // The pragma does nothing, without an error, inside a transaction or where SQLite was built
    // without foreign keys: findings and outbox rows could then point at messages never stored.
    if (db.pragma('foreign_keys', { simple: true }) !== 1) throw new Error('foreign keys could not be turned on (a SQLite built without them?)');
    await retryBusy(() => migrateSqlite(db), busyMs);
  } catch (e) {
    db.close();
    throw new Error(`store: cannot prepare SQLite database ${file}: ${(e as Error).message}`, { cause: e });
  }
  return SqlStore.root(new SqliteBackend(db, busyMs));
}
