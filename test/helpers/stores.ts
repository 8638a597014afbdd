// Fresh, isolated stores for tests, one harness per backend: SQLite files in a temp dir and
// PostgreSQL databases created (and dropped) on the local server. Shared by the store tests
// and the serve tests.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

export const PG_ADMIN_URL = process.env.PATCHVET_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const PG_START_HINT = 'pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start';

export interface StoreHarness {
  name: 'sqlite' | 'postgres';
  setup(): Promise<void>;
  teardown(): Promise<void>;
  /** A URL naming a new, empty database. */
  freshUrl(): Promise<string>;
}

/** `dirPrefix` names the temp folder, e.g. 'patchvet-store-test-'. */
export function sqliteHarness(dirPrefix = 'patchvet-test-'): StoreHarness {
  let dir = '';
  let n = 0;
  return {
    name: 'sqlite',
    async setup() {
      dir = mkdtempSync(join(tmpdir(), dirPrefix));
    },
    async teardown() {
      if (dir) rmSync(dir, { recursive: true, force: true });
    },
    async freshUrl() {
      return `sqlite:${join(dir, `store-${++n}.db`)}`;
    },
  };
}

/** Fails (does not skip) when PostgreSQL is unreachable, and says how to start it. */
/** `dbPrefix` starts every database name, e.g. 'patchvet_test' (clean-up tools look for it). */
export function pgHarness(dbPrefix = 'patchvet_test'): StoreHarness {
  let admin: pg.Client | null = null;
  const created: string[] = [];
  const prefix = `${dbPrefix}_${process.pid}_${randomBytes(3).toString('hex')}`;
  return {
    name: 'postgres',
    async setup() {
      const c = new pg.Client({ connectionString: PG_ADMIN_URL, connectionTimeoutMillis: 5000 });
      try {
        await c.connect();
      } catch (e) {
        await c.end().catch(() => undefined);
        throw new Error(
          `PostgreSQL is not reachable at ${PG_ADMIN_URL} (${(e as Error).message}). ` +
            `Start it with: ${PG_START_HINT} (or set PATCHVET_TEST_PG_URL).`,
        );
      }
      admin = c;
    },
    async teardown() {
      if (!admin) return;
      for (const db of created) await admin.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
      await admin.end();
    },
    async freshUrl() {
      if (!admin) throw new Error('PostgreSQL harness not set up (see the error of beforeAll)');
      const db = `${prefix}_${created.length + 1}`;
      await admin.query(`CREATE DATABASE ${db}`);
      created.push(db);
      const u = new URL(PG_ADMIN_URL);
      u.pathname = `/${db}`;
      return u.toString();
    },
  };
}

