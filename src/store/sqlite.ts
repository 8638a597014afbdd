// SQLite backend (better-sqlite3, synchronous): one connection per Store, WAL journal, foreign
// keys on, synchronous=FULL (a reply must not be forgotten after the OS said it was written).
//
// The Store API is async, and a transaction callback awaits between statements, so the one
// connection is guarded by an in-process queue: a transaction holds it from BEGIN to COMMIT and
// other calls on the same Store wait their turn (calls made from inside the callback join the
// transaction instead, see sql.ts). Between processes (or two Stores on one file), BEGIN
// IMMEDIATE takes SQLite's write lock up front; while it is busy we retry asynchronously instead
// of letting busy_timeout block the event loop, which would deadlock two Stores in one process.
import Database from 'better-sqlite3';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { migrateSqlite } from './migrations.js';
import { SqlStore, type Backend, type Conn, type Dialect } from './sql.js';
import type { Store } from './store.js';

/** How long a writer waits for another connection's write transaction (ms). */
export const SQLITE_BUSY_TIMEOUT_MS = 10_000;

const NOW_MS = "CAST(unixepoch('subsec') * 1000 AS INTEGER)";

const dialect: Dialect = {
  name: 'sqlite',
  skipLocked: '',
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
      all: async <R>(sql: string, params: readonly unknown[] = []) => {
        const st = this.prepare(sql);
        const args = params.map(param);
        if (st.reader) return st.all(...args) as R[];
        st.run(...args);
        return [] as R[];
      },
      run: async (sql: string, params: readonly unknown[] = []) => this.prepare(sql).run(...params.map(param)).changes,
    };
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
      await this.begin();
      let result: T;
      try {
        result = await fn(this.conn);
        this.db.exec('COMMIT');
      } catch (e) {
        // SQLite may already have rolled back by itself (e.g. disk full).
        if (this.db.inTransaction) this.db.exec('ROLLBACK');
        throw e;
      }
      return result;
    });
  }

  private async begin(): Promise<void> {
    const deadline = Date.now() + this.busyMs;
    this.db.pragma('busy_timeout = 0');
    try {
      for (let delay = 2; ; delay = Math.min(delay * 2, 100)) {
        try {
          this.db.exec('BEGIN IMMEDIATE');
          return;
        } catch (e) {
          if (!isBusy(e) || Date.now() >= deadline) throw e;
          await sleep(delay * (0.5 + Math.random()));
        }
      }
    } finally {
      this.db.pragma(`busy_timeout = ${this.busyMs}`);
    }
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
    db = new Database(file, { timeout: busyMs });
  } catch (e) {
    throw new Error(`store: cannot open SQLite database ${file}: ${(e as Error).message}`, { cause: e });
  }
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    migrateSqlite(db);
  } catch (e) {
    db.close();
    throw new Error(`store: cannot prepare SQLite database ${file}: ${(e as Error).message}`, { cause: e });
  }
  return SqlStore.root(new SqliteBackend(db, busyMs));
}
