// Versioned schema migrations for both backends.
//
// Rules for adding one: append a new entry with the next version; never edit or reorder an
// applied one (databases in the field have already run it). Each entry carries the SQL for
// both dialects so the two schemas stay in step. Times are epoch milliseconds (BIGINT) in
// both backends so the shared SQL compares them the same way; records are JSON (TEXT in
// SQLite, JSONB in PostgreSQL); raw mails are bytes (BLOB / BYTEA).
//
// Applying is idempotent: applied versions are listed in `schema_migrations`. SQLite runs the
// whole check-and-apply under BEGIN IMMEDIATE (the database write lock), PostgreSQL under a
// session advisory lock, so two instances starting at once apply each migration exactly once
// and both start.
import type { Database } from 'better-sqlite3';
import type { Pool } from 'pg';

export interface Migration {
  version: number;
  name: string;
  sqlite: string;
  postgres: string;
}

export interface MigrateResult {
  /** Versions applied by this call (empty when the schema was already current). */
  applied: number[];
  /** Schema version after the call. */
  version: number;
}

/** Advisory lock key for migrations (any constant; "patchvet" in ASCII, truncated to int8 range). */
export const MIGRATION_LOCK_KEY = 0x7061746368766574n & 0x7fffffffffffffffn;

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'messages, positions, threads, series, findings, outbox, feedback, budget, cache',
    sqlite: `
CREATE TABLE messages (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  message_id TEXT NOT NULL UNIQUE,
  record TEXT NOT NULL,
  raw BLOB NOT NULL,
  msg_date TEXT,
  received_at INTEGER NOT NULL,
  processed_at INTEGER
);
CREATE INDEX messages_pending ON messages (seq) WHERE processed_at IS NULL;

CREATE TABLE message_sources (
  message_id TEXT NOT NULL REFERENCES messages (message_id) ON DELETE CASCADE,
  source_key TEXT NOT NULL,
  position TEXT NOT NULL,
  seen_at INTEGER NOT NULL,
  PRIMARY KEY (message_id, source_key)
);

CREATE TABLE message_refs (
  message_id TEXT NOT NULL REFERENCES messages (message_id) ON DELETE CASCADE,
  kind TEXT NOT NULL CHECK (kind IN ('in-reply-to', 'references')),
  ord INTEGER NOT NULL,
  ref_id TEXT NOT NULL,
  PRIMARY KEY (message_id, kind, ord)
);
CREATE INDEX message_refs_ref ON message_refs (ref_id);

CREATE TABLE source_positions (
  source_key TEXT PRIMARY KEY,
  position TEXT NOT NULL,
  updated_at INTEGER NOT NULL
);

CREATE TABLE series (
  id TEXT PRIMARY KEY,
  record TEXT NOT NULL,
  updated_at INTEGER NOT NULL
);

CREATE TABLE findings (
  message_id TEXT NOT NULL REFERENCES messages (message_id) ON DELETE CASCADE,
  ord INTEGER NOT NULL,
  rule TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  record TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (message_id, ord)
);
CREATE INDEX findings_rule ON findings (rule);
CREATE INDEX findings_fingerprint ON findings (fingerprint);

CREATE TABLE posted_findings (
  fingerprint TEXT NOT NULL,
  scope TEXT NOT NULL,
  rule TEXT,
  location TEXT NOT NULL,
  posted_at INTEGER NOT NULL,
  PRIMARY KEY (fingerprint, scope)
);
CREATE INDEX posted_findings_rule ON posted_findings (rule);

CREATE TABLE outbox (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  key TEXT NOT NULL UNIQUE,
  message_id TEXT NOT NULL,
  in_reply_to TEXT,
  rcpt_to TEXT NOT NULL,
  rcpt_cc TEXT NOT NULL,
  eml BLOB NOT NULL,
  channel TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('queued', 'sending', 'sent', 'failed')),
  attempts INTEGER NOT NULL DEFAULT 0,
  lease_owner TEXT,
  lease_until INTEGER,
  next_attempt_at INTEGER,
  last_error TEXT,
  uncertain_at INTEGER,
  sent_info TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  sent_at INTEGER
);
CREATE INDEX outbox_state ON outbox (state, seq);
CREATE INDEX outbox_message_id ON outbox (message_id);

CREATE TABLE disputes (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  rule TEXT NOT NULL,
  fingerprint TEXT NOT NULL DEFAULT '',
  message_id TEXT NOT NULL,
  by_whom TEXT NOT NULL,
  reason TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  UNIQUE (message_id, rule, fingerprint, by_whom)
);
CREATE INDEX disputes_rule ON disputes (rule);

CREATE TABLE llm_tokens (
  day TEXT NOT NULL,
  list TEXT NOT NULL,
  tokens INTEGER NOT NULL,
  PRIMARY KEY (day, list)
);

CREATE TABLE kv_cache (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL,
  expires_at INTEGER,
  updated_at INTEGER NOT NULL
);
`,
    postgres: `
CREATE TABLE messages (
  seq BIGSERIAL PRIMARY KEY,
  message_id TEXT NOT NULL UNIQUE,
  record JSONB NOT NULL,
  raw BYTEA NOT NULL,
  msg_date TEXT,
  received_at BIGINT NOT NULL,
  processed_at BIGINT
);
CREATE INDEX messages_pending ON messages (seq) WHERE processed_at IS NULL;

CREATE TABLE message_sources (
  message_id TEXT NOT NULL REFERENCES messages (message_id) ON DELETE CASCADE,
  source_key TEXT NOT NULL,
  position TEXT NOT NULL,
  seen_at BIGINT NOT NULL,
  PRIMARY KEY (message_id, source_key)
);

CREATE TABLE message_refs (
  message_id TEXT NOT NULL REFERENCES messages (message_id) ON DELETE CASCADE,
  kind TEXT NOT NULL CHECK (kind IN ('in-reply-to', 'references')),
  ord INTEGER NOT NULL,
  ref_id TEXT NOT NULL,
  PRIMARY KEY (message_id, kind, ord)
);
CREATE INDEX message_refs_ref ON message_refs (ref_id);

CREATE TABLE source_positions (
  source_key TEXT PRIMARY KEY,
  position TEXT NOT NULL,
  updated_at BIGINT NOT NULL
);

CREATE TABLE series (
  id TEXT PRIMARY KEY,
  record JSONB NOT NULL,
  updated_at BIGINT NOT NULL
);

CREATE TABLE findings (
  message_id TEXT NOT NULL REFERENCES messages (message_id) ON DELETE CASCADE,
  ord INTEGER NOT NULL,
  rule TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  record JSONB NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (message_id, ord)
);
CREATE INDEX findings_rule ON findings (rule);
CREATE INDEX findings_fingerprint ON findings (fingerprint);

CREATE TABLE posted_findings (
  fingerprint TEXT NOT NULL,
  scope TEXT NOT NULL,
  rule TEXT,
  location TEXT NOT NULL,
  posted_at BIGINT NOT NULL,
  PRIMARY KEY (fingerprint, scope)
);
CREATE INDEX posted_findings_rule ON posted_findings (rule);

CREATE TABLE outbox (
  seq BIGSERIAL PRIMARY KEY,
  key TEXT NOT NULL UNIQUE,
  message_id TEXT NOT NULL,
  in_reply_to TEXT,
  rcpt_to JSONB NOT NULL,
  rcpt_cc JSONB NOT NULL,
  eml BYTEA NOT NULL,
  channel TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('queued', 'sending', 'sent', 'failed')),
  attempts INTEGER NOT NULL DEFAULT 0,
  lease_owner TEXT,
  lease_until BIGINT,
  next_attempt_at BIGINT,
  last_error TEXT,
  uncertain_at BIGINT,
  sent_info JSONB,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  sent_at BIGINT
);
CREATE INDEX outbox_state ON outbox (state, seq);
CREATE INDEX outbox_message_id ON outbox (message_id);

CREATE TABLE disputes (
  id BIGSERIAL PRIMARY KEY,
  rule TEXT NOT NULL,
  fingerprint TEXT NOT NULL DEFAULT '',
  message_id TEXT NOT NULL,
  by_whom TEXT NOT NULL,
  reason TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  UNIQUE (message_id, rule, fingerprint, by_whom)
);
CREATE INDEX disputes_rule ON disputes (rule);

CREATE TABLE llm_tokens (
  day TEXT NOT NULL,
  list TEXT NOT NULL,
  tokens BIGINT NOT NULL,
  PRIMARY KEY (day, list)
);

CREATE TABLE kv_cache (
  key TEXT PRIMARY KEY,
  value JSONB NOT NULL,
  expires_at BIGINT,
  updated_at BIGINT NOT NULL
);
`,
  },
  {
    version: 2,
    name: 'GitHub mirror PRs: patch index, PRs and their commits, PR<->patch links, posted comments, jobs, forwards',
    sqlite: `
CREATE TABLE patch_index (
  message_id TEXT PRIMARY KEY REFERENCES messages (message_id) ON DELETE CASCADE,
  patch_id TEXT,
  subject_key TEXT NOT NULL,
  msg_date TEXT,
  indexed_at INTEGER NOT NULL
);
CREATE INDEX patch_index_patch_id ON patch_index (patch_id);
CREATE INDEX patch_index_subject ON patch_index (subject_key);

CREATE TABLE github_prs (
  repo TEXT NOT NULL,
  pr INTEGER NOT NULL,
  installation_id INTEGER,
  head_sha TEXT,
  base_sha TEXT,
  title TEXT,
  author TEXT,
  state TEXT,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (repo, pr)
);

CREATE TABLE github_pr_commits (
  repo TEXT NOT NULL,
  pr INTEGER NOT NULL,
  sha TEXT NOT NULL,
  ord INTEGER NOT NULL,
  patch_id TEXT,
  subject_key TEXT NOT NULL,
  PRIMARY KEY (repo, pr, sha)
);
CREATE INDEX github_pr_commits_patch_id ON github_pr_commits (patch_id);
CREATE INDEX github_pr_commits_subject ON github_pr_commits (subject_key);

CREATE TABLE github_commit_refs (
  message_id TEXT NOT NULL,
  repo TEXT NOT NULL,
  pr INTEGER NOT NULL,
  sha TEXT NOT NULL,
  PRIMARY KEY (message_id, repo, pr, sha)
);

CREATE TABLE github_links (
  repo TEXT NOT NULL,
  pr INTEGER NOT NULL,
  message_id TEXT NOT NULL,
  commit_sha TEXT NOT NULL,
  method TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (repo, pr, message_id)
);
CREATE INDEX github_links_message ON github_links (message_id);

CREATE TABLE github_comments (
  repo TEXT NOT NULL,
  pr INTEGER NOT NULL,
  key TEXT NOT NULL,
  kind TEXT NOT NULL,
  rule TEXT,
  fingerprint TEXT,
  comment_id INTEGER,
  review_id INTEGER,
  path TEXT,
  line INTEGER,
  side TEXT,
  commit_sha TEXT,
  state TEXT NOT NULL CHECK (state IN ('open', 'resolved')),
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (repo, pr, key)
);
CREATE INDEX github_comments_fingerprint ON github_comments (fingerprint);

CREATE TABLE github_jobs (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  key TEXT NOT NULL UNIQUE,
  kind TEXT NOT NULL,
  repo TEXT NOT NULL,
  pr INTEGER NOT NULL,
  installation_id INTEGER,
  payload TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
  attempts INTEGER NOT NULL DEFAULT 0,
  lease_owner TEXT,
  lease_until INTEGER,
  next_attempt_at INTEGER,
  last_error TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  done_at INTEGER
);
CREATE INDEX github_jobs_state ON github_jobs (state, seq);

CREATE TABLE github_forwards (
  repo TEXT NOT NULL,
  kind TEXT NOT NULL,
  comment_id INTEGER NOT NULL,
  login TEXT NOT NULL,
  outbox_key TEXT NOT NULL,
  message_id TEXT NOT NULL,
  in_reply_to TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (repo, kind, comment_id)
);
CREATE INDEX github_forwards_message ON github_forwards (message_id);
`,
    postgres: `
CREATE TABLE patch_index (
  message_id TEXT PRIMARY KEY REFERENCES messages (message_id) ON DELETE CASCADE,
  patch_id TEXT,
  subject_key TEXT NOT NULL,
  msg_date TEXT,
  indexed_at BIGINT NOT NULL
);
CREATE INDEX patch_index_patch_id ON patch_index (patch_id);
CREATE INDEX patch_index_subject ON patch_index (subject_key);

CREATE TABLE github_prs (
  repo TEXT NOT NULL,
  pr INTEGER NOT NULL,
  installation_id BIGINT,
  head_sha TEXT,
  base_sha TEXT,
  title TEXT,
  author TEXT,
  state TEXT,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (repo, pr)
);

CREATE TABLE github_pr_commits (
  repo TEXT NOT NULL,
  pr INTEGER NOT NULL,
  sha TEXT NOT NULL,
  ord INTEGER NOT NULL,
  patch_id TEXT,
  subject_key TEXT NOT NULL,
  PRIMARY KEY (repo, pr, sha)
);
CREATE INDEX github_pr_commits_patch_id ON github_pr_commits (patch_id);
CREATE INDEX github_pr_commits_subject ON github_pr_commits (subject_key);

CREATE TABLE github_commit_refs (
  message_id TEXT NOT NULL,
  repo TEXT NOT NULL,
  pr INTEGER NOT NULL,
  sha TEXT NOT NULL,
  PRIMARY KEY (message_id, repo, pr, sha)
);

CREATE TABLE github_links (
  repo TEXT NOT NULL,
  pr INTEGER NOT NULL,
  message_id TEXT NOT NULL,
  commit_sha TEXT NOT NULL,
  method TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (repo, pr, message_id)
);
CREATE INDEX github_links_message ON github_links (message_id);

CREATE TABLE github_comments (
  repo TEXT NOT NULL,
  pr INTEGER NOT NULL,
  key TEXT NOT NULL,
  kind TEXT NOT NULL,
  rule TEXT,
  fingerprint TEXT,
  comment_id BIGINT,
  review_id BIGINT,
  path TEXT,
  line INTEGER,
  side TEXT,
  commit_sha TEXT,
  state TEXT NOT NULL CHECK (state IN ('open', 'resolved')),
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (repo, pr, key)
);
CREATE INDEX github_comments_fingerprint ON github_comments (fingerprint);

CREATE TABLE github_jobs (
  seq BIGSERIAL PRIMARY KEY,
  key TEXT NOT NULL UNIQUE,
  kind TEXT NOT NULL,
  repo TEXT NOT NULL,
  pr INTEGER NOT NULL,
  installation_id BIGINT,
  payload JSONB NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
  attempts INTEGER NOT NULL DEFAULT 0,
  lease_owner TEXT,
  lease_until BIGINT,
  next_attempt_at BIGINT,
  last_error TEXT,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  done_at BIGINT
);
CREATE INDEX github_jobs_state ON github_jobs (state, seq);

CREATE TABLE github_forwards (
  repo TEXT NOT NULL,
  kind TEXT NOT NULL,
  comment_id BIGINT NOT NULL,
  login TEXT NOT NULL,
  outbox_key TEXT NOT NULL,
  message_id TEXT NOT NULL,
  in_reply_to TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (repo, kind, comment_id)
);
CREATE INDEX github_forwards_message ON github_forwards (message_id);
`,
  },
];

const CREATE_TABLE_SQLITE = `CREATE TABLE IF NOT EXISTS schema_migrations (
  version INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  applied_at INTEGER NOT NULL
)`;

const CREATE_TABLE_POSTGRES = `CREATE TABLE IF NOT EXISTS schema_migrations (
  version INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  applied_at BIGINT NOT NULL
)`;

/** Check the list itself: strictly increasing versions (a mistake here would corrupt databases). */
function checkedMigrations(list: readonly Migration[]): readonly Migration[] {
  for (let i = 1; i < list.length; i++) {
    if (list[i]!.version <= list[i - 1]!.version) {
      throw new Error(`store: migrations out of order: ${list[i - 1]!.version} then ${list[i]!.version}`);
    }
  }
  return list;
}

function newerThanKnown(current: number, list: readonly Migration[]): Error | null {
  const known = list.length ? list[list.length - 1]!.version : 0;
  if (current > known) {
    return new Error(
      `store: the database schema is at version ${current}, newer than this patchvet knows (${known}); ` +
        'upgrade patchvet or use another database',
    );
  }
  return null;
}

/**
 * Apply pending migrations to a SQLite database. Everything (reading the applied versions and
 * applying the rest) happens in one BEGIN IMMEDIATE transaction: another connection or process
 * doing the same waits on the write lock (busy_timeout), then finds nothing left to do.
 */
export function migrateSqlite(db: Database, list: readonly Migration[] = MIGRATIONS): MigrateResult {
  checkedMigrations(list);
  const run = db.transaction((): MigrateResult => {
    db.exec(CREATE_TABLE_SQLITE);
    const done = new Set(
      (db.prepare('SELECT version FROM schema_migrations').all() as Array<{ version: number }>).map((r) => r.version),
    );
    const current = Math.max(0, ...done);
    const err = newerThanKnown(current, list);
    if (err) throw err;
    const applied: number[] = [];
    const insert = db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)');
    for (const m of list) {
      if (done.has(m.version)) continue;
      db.exec(m.sqlite);
      insert.run(m.version, m.name, Date.now());
      applied.push(m.version);
    }
    return { applied, version: Math.max(current, ...applied) };
  });
  return run.immediate();
}

/**
 * Apply pending migrations to a PostgreSQL database. A session advisory lock serialises
 * instances starting at once (CREATE TABLE IF NOT EXISTS alone is not safe under concurrency:
 * two sessions can both pass the check and one fails on the catalog's unique index). Each
 * migration runs in its own transaction together with its schema_migrations row, so a failed
 * migration leaves the earlier ones applied and itself not at all.
 */
export async function migratePostgres(pool: Pool, list: readonly Migration[] = MIGRATIONS): Promise<MigrateResult> {
  checkedMigrations(list);
  const client = await pool.connect();
  let broken = false;
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY.toString()]);
    try {
      await client.query(CREATE_TABLE_POSTGRES);
      const rows = (await client.query<{ version: number }>('SELECT version FROM schema_migrations')).rows;
      const done = new Set(rows.map((r) => Number(r.version)));
      const current = Math.max(0, ...done);
      const err = newerThanKnown(current, list);
      if (err) throw err;
      const applied: number[] = [];
      for (const m of list) {
        if (done.has(m.version)) continue;
        await client.query('BEGIN');
        try {
          await client.query(m.postgres);
          await client.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [
            m.version,
            m.name,
            Date.now(),
          ]);
          await client.query('COMMIT');
        } catch (e) {
          await client.query('ROLLBACK').catch(() => {
            broken = true;
          });
          throw new Error(`store: migration ${m.version} (${m.name}) failed: ${(e as Error).message}`, { cause: e });
        }
        applied.push(m.version);
      }
      return { applied, version: Math.max(current, ...applied) };
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY.toString()]).catch(() => {
        // The lock dies with the session: drop the connection rather than return it locked.
        broken = true;
      });
    }
  } finally {
    client.release(broken || undefined);
  }
}
