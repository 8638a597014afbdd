// PostgreSQL backend (pg Pool): for several patchvet instances sharing one store. Single
// statements go through the pool; a transaction checks out one client from BEGIN to COMMIT.
// Isolation is READ COMMITTED: every write is an upsert or a guarded UPDATE whose WHERE clause
// PostgreSQL re-checks after waiting for a concurrent writer, and claims use SKIP LOCKED.
// Times come from the database server's clock so instances on different hosts agree on leases.
import pg from 'pg';
import { migratePostgres } from './migrations.js';
import { SqlStore, type Backend, type Conn, type Dialect } from './sql.js';
import type { Store } from './store.js';

const NOW_MS = '(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT';

/**
 * PostgreSQL text and jsonb cannot hold U+0000, and jsonb rejects lone surrogates; a mail can
 * carry either. Replace them with U+FFFD in what we store as text or JSON (the raw bytes are
 * kept exactly, as bytea), rather than let one odd mail stop a source for good.
 */
function cleanText(s: string): string {
  return s.includes('\0') ? s.replaceAll('\0', '\uFFFD') : s;
}

function cleanJson(text: string): string {
  // JSON.stringify escapes exactly these: \u0000 and lone surrogates (a pair is written as is).
  // An even run of backslashes before "u" is an escaped backslash, not an escape.
  return text.replace(/(?<!\\)((?:\\\\)*)\\u(0000|d[89a-f][0-9a-f]{2})/gi, '$1\\ufffd');
}

/** 'patchvet' + 1, beside the migration lock (migrations.ts). */
const GITHUB_CLAIM_LOCK_KEY = ((0x7061746368766574n & 0x7fffffffffffffffn) + 1n).toString();

const dialect: Dialect = {
  name: 'postgres',
  skipLocked: 'FOR UPDATE SKIP LOCKED',
  // A transaction-level advisory lock, released at commit: claims of GitHub jobs take turns.
  githubClaimLock: `SELECT pg_advisory_xact_lock(${GITHUB_CLAIM_LOCK_KEY})`,
  json: (v) => cleanJson(JSON.stringify(v)),
  // pg parses json/jsonb columns itself.
  parseJson: (v) => v,
};

/** Rewrite the shared SQL: `?` -> `$n`, `@now` -> the server clock. */
function toPg(sql: string): string {
  let n = 0;
  return sql.replaceAll('@now', NOW_MS).replace(/\?/g, () => `$${++n}`);
}

interface Queryable {
  query(text: string, values?: unknown[]): Promise<pg.QueryResult>;
}

class PgBackend implements Backend {
  readonly dialect = dialect;
  private readonly texts = new Map<string, string>();
  private readonly poolConn: Conn;

  constructor(private readonly pool: pg.Pool) {
    this.poolConn = this.connOf(pool);
  }

  private text(sql: string): string {
    let t = this.texts.get(sql);
    if (t === undefined) {
      if (this.texts.size > 500) this.texts.clear();
      t = toPg(sql);
      this.texts.set(sql, t);
    }
    return t;
  }

  private connOf(q: Queryable): Conn {
    const values = (params: readonly unknown[]) =>
      params.map((p) => (typeof p === 'string' ? cleanText(p) : p === undefined ? null : p));
    return {
      all: async <R>(sql: string, params: readonly unknown[] = []) =>
        (await q.query(this.text(sql), values(params))).rows as R[],
      run: async (sql: string, params: readonly unknown[] = []) =>
        (await q.query(this.text(sql), values(params))).rowCount ?? 0,
    };
  }

  withConn<T>(fn: (c: Conn) => Promise<T>): Promise<T> {
    return fn(this.poolConn);
  }

  async withTransaction<T>(fn: (c: Conn) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      try {
        const result = await fn(this.connOf(client));
        await client.query('COMMIT');
        return result;
      } catch (e) {
        await client.query('ROLLBACK').catch((re: Error) => {
          broken = re;
        });
        throw e;
      }
    } finally {
      // A client whose state is unknown is destroyed, not returned to the pool.
      client.release(broken);
    }
  }

  close(): Promise<void> {
    return this.pool.end();
  }
}

/** The URL without its password, for messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'postgres://(unparsable URL)';
  }
}

/** Open a PostgreSQL store and migrate it (safe when several instances start at once). */
export async function openPostgresStore(url: string, opts: { max?: number } = {}): Promise<Store> {
  const pool = new pg.Pool({ connectionString: url, max: opts.max ?? 10, application_name: 'patchvet' });
  // An idle client can lose its connection (server restart); without a listener the pool's
  // 'error' event would kill the process. The pool drops that client; the next query reconnects.
  pool.on('error', () => undefined);
  try {
    await pool.query('SELECT 1');
  } catch (e) {
    await pool.end().catch(() => undefined);
    throw new Error(`store: cannot connect to PostgreSQL at ${redactUrl(url)}: ${(e as Error).message}`, { cause: e });
  }
  try {
    await migratePostgres(pool);
  } catch (e) {
    await pool.end().catch(() => undefined);
    throw e;
  }
  return SqlStore.root(new PgBackend(pool));
}
