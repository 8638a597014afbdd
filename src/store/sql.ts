// One implementation of the Store over a small connection interface, shared by the SQLite and
// PostgreSQL backends so the exactly-once logic (claims, leases, idempotent inserts) is written
// once. The SQL is the common subset of both dialects (ON CONFLICT, RETURNING, CAST), with `?`
// placeholders and `@now` (the database clock in epoch ms) that each backend rewrites.
//
// Transactions: the backend starts one and hands over its connection; this file keeps the
// transaction state (open / failed) and joins nested calls to it, through the `tx` handle or
// through AsyncLocalStorage when the root store is used from inside a transaction callback (on
// SQLite that would otherwise wait for its own lock; on PostgreSQL it would run outside).
import { AsyncLocalStorage } from 'node:async_hooks';
import type { Finding, MessageRecord, Series } from '../model.js';
import type {
  DisputeInput,
  GithubCommentRow,
  GithubForward,
  GithubJob,
  GithubJobInput,
  GithubJobOutcome,
  GithubJobState,
  GithubLink,
  GithubPr,
  LinkMethod,
  OutboxItem,
  OutboxState,
  OutboxStats,
  ReplyInput,
  PatchIndexEntry,
  PrCommitEntry,
  RuleStats,
  SentInfo,
  SourcePosition,
  Store,
} from './store.js';

export type Row = Record<string, unknown>;

/** A connection (or transaction) that runs one statement at a time. */
export interface Conn {
  /** Rows of a query (or of a statement with RETURNING). */
  all<R = Row>(sql: string, params?: readonly unknown[]): Promise<R[]>;
  /** Run a statement; the number of rows it changed. */
  run(sql: string, params?: readonly unknown[]): Promise<number>;
}

export interface Dialect {
  readonly name: 'sqlite' | 'postgres';
  /** Appended to the claim query: lock the chosen rows and skip rows other claimers hold. */
  readonly skipLocked: string;
  /**
   * Run first in a GitHub job claim, to serialise claims across instances (null where the
   * database already runs one writer at a time): the check "no job of this PR is running"
   * is only sound if no other claim can take a job of the same PR meanwhile.
   */
  readonly githubClaimLock: string | null;
  /** A JSON value as a statement parameter. */
  json(value: unknown): unknown;
  /** A JSON column value as read back. */
  parseJson(value: unknown): unknown;
}

export interface Backend {
  readonly dialect: Dialect;
  /** Run fn on a connection in autocommit mode (on SQLite: exclusive while fn runs). */
  withConn<T>(fn: (c: Conn) => Promise<T>): Promise<T>;
  /** Begin a top-level transaction, run fn, commit; roll back if fn rejects. */
  withTransaction<T>(fn: (c: Conn) => Promise<T>): Promise<T>;
  /** Wait for running work and close. */
  close(): Promise<void>;
}

interface TxState {
  conn: Conn;
  open: boolean;
  /** The first error seen inside the transaction: it can no longer commit. */
  failed: { error: unknown } | null;
  store: SqlStore;
}

interface Shared {
  closed: boolean;
  als: AsyncLocalStorage<TxState>;
}

/** How far messagesInThread() follows references before it stops (a runaway "thread"). */
export const MAX_THREAD_IDS = 10_000;
const IN_CHUNK = 400;

function chunks<T>(xs: readonly T[], n: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += n) out.push(xs.slice(i, i + n));
  return out;
}

function num(v: unknown): number {
  return v === null || v === undefined ? 0 : Number(v);
}

function date(v: unknown): Date | null {
  return v === null || v === undefined ? null : new Date(Number(v));
}

function placeholders(n: number): string {
  return new Array(n).fill('?').join(', ');
}

function nonEmpty(what: string, v: unknown): void {
  if (typeof v !== 'string' || v === '') throw new TypeError(`store: ${what} must be a non-empty string`);
}

const OUTBOX_COLUMNS =
  'seq, key, message_id, in_reply_to, rcpt_to, rcpt_cc, eml, channel, state, attempts, lease_owner, lease_until, ' +
  'next_attempt_at, last_error, uncertain_at, sent_info, created_at, sent_at';

/** Claimable: queued and due, or 'sending' with an expired lease. */
const CLAIMABLE =
  "((state = 'queued' AND (next_attempt_at IS NULL OR next_attempt_at <= @now)) OR " +
  "(state = 'sending' AND lease_until <= @now))";

const JOB_COLUMNS =
  'seq, key, kind, repo, pr, installation_id, payload, state, attempts, last_error, created_at';

/** Claimable job: queued and due, or running with an expired lease (its worker died). */
const JOB_CLAIMABLE =
  "((state = 'queued' AND (next_attempt_at IS NULL OR next_attempt_at <= @now)) OR " +
  "(state = 'running' AND lease_until <= @now))";

const COMMENT_COLUMNS = 'repo, pr, key, kind, rule, fingerprint, comment_id, review_id, path, line, side, commit_sha, state';

function numOrNull(v: unknown): number | null {
  return v === null || v === undefined ? null : Number(v);
}

const POSSIBLY_SENT =
  "(state <> 'sent' AND (uncertain_at IS NOT NULL OR (state = 'sending' AND lease_until <= @now)))";

export class SqlStore implements Store {
  readonly backend: 'sqlite' | 'postgres';

  private constructor(
    private readonly b: Backend,
    private readonly shared: Shared,
    /** Set on the handle given to a transaction callback. */
    private readonly bound: TxState | null,
  ) {
    this.backend = b.dialect.name;
  }

  static root(b: Backend): SqlStore {
    return new SqlStore(b, { closed: false, als: new AsyncLocalStorage<TxState>() }, null);
  }

  private get d(): Dialect {
    return this.b.dialect;
  }

  // ------------------------------------------------------------ plumbing

  private current(): TxState | null {
    if (this.bound) {
      if (!this.bound.open) throw new Error('store: transaction handle used after its transaction ended');
      return this.bound;
    }
    const t = this.shared.als.getStore();
    // A callback scheduled inside a transaction may run after it ended: it then runs on its own.
    return t && t.open ? t : null;
  }

  private checkOpen(): void {
    if (this.shared.closed) throw new Error('store: used after close()');
  }

  private async inTx<T>(tx: TxState, fn: () => Promise<T>): Promise<T> {
    if (tx.failed) {
      throw new Error('store: transaction aborted by an earlier error', { cause: tx.failed.error });
    }
    try {
      return await fn();
    } catch (e) {
      tx.failed ??= { error: e };
      throw e;
    }
  }

  /** One statement or a few reads: in the current transaction if any, else on their own. */
  private async exec<T>(fn: (c: Conn) => Promise<T>): Promise<T> {
    const tx = this.current();
    if (tx) return this.inTx(tx, () => fn(tx.conn));
    this.checkOpen();
    return this.b.withConn(fn);
  }

  /** Several statements that must apply together. */
  private async atomic<T>(fn: (c: Conn) => Promise<T>): Promise<T> {
    return this.transaction((tx) => (tx as SqlStore).exec(fn));
  }

  async transaction<T>(fn: (tx: Store) => Promise<T>): Promise<T> {
    const outer = this.current();
    if (outer) return this.inTx(outer, () => fn(outer.store));
    this.checkOpen();
    return this.b.withTransaction(async (conn) => {
      const st = { conn, open: true, failed: null } as TxState;
      st.store = new SqlStore(this.b, this.shared, st);
      try {
        const result = await this.shared.als.run(st, () => fn(st.store));
        if (st.failed) {
          // The callback caught an error from inside the transaction and went on: what it wrote
          // before and after may not belong together, so nothing commits.
          throw new Error('store: transaction rolled back: an operation inside it failed', {
            cause: st.failed.error,
          });
        }
        return result;
      } finally {
        st.open = false;
      }
    });
  }

  async close(): Promise<void> {
    if (this.bound) throw new Error('store: close() the root store, not a transaction handle');
    if (this.shared.closed) return;
    this.shared.closed = true;
    await this.b.close();
  }

  // ------------------------------------------------------------ messages

  async putMessage(rec: MessageRecord, raw: Buffer, source: SourcePosition): Promise<{ inserted: boolean }> {
    nonEmpty('messageId', rec.messageId);
    nonEmpty('source key', source.key);
    if (!Buffer.isBuffer(raw)) throw new TypeError('store: raw must be a Buffer');
    return this.atomic(async (c) => {
      const ins = await c.all(
        'INSERT INTO messages (message_id, record, raw, msg_date, received_at) VALUES (?, ?, ?, ?, @now) ' +
          'ON CONFLICT (message_id) DO NOTHING RETURNING seq',
        [rec.messageId, this.d.json(rec), raw, rec.date ?? null],
      );
      const inserted = ins.length > 0;
      if (inserted) {
        const refs: Array<[string, number, string]> = [];
        if (rec.inReplyTo && rec.inReplyTo !== rec.messageId) refs.push(['in-reply-to', 0, rec.inReplyTo]);
        rec.references.forEach((r, i) => {
          if (r && r !== rec.messageId) refs.push(['references', i, r]);
        });
        for (const part of chunks(refs, 200)) {
          await c.run(
            `INSERT INTO message_refs (message_id, kind, ord, ref_id) VALUES ${part.map(() => '(?, ?, ?, ?)').join(', ')}`,
            part.flatMap(([kind, ord, ref]) => [rec.messageId, kind, ord, ref]),
          );
        }
      }
      await c.run(
        'INSERT INTO message_sources (message_id, source_key, position, seen_at) VALUES (?, ?, ?, @now) ' +
          'ON CONFLICT (message_id, source_key) DO NOTHING',
        [rec.messageId, source.key, source.position],
      );
      return { inserted };
    });
  }

  async getMessage(messageId: string): Promise<MessageRecord | null> {
    return this.exec(async (c) => {
      const rows = await c.all<{ record: unknown }>('SELECT record FROM messages WHERE message_id = ?', [messageId]);
      return rows.length ? (this.d.parseJson(rows[0]!.record) as MessageRecord) : null;
    });
  }

  async getRaw(messageId: string): Promise<Buffer | null> {
    return this.exec(async (c) => {
      const rows = await c.all<{ raw: Buffer }>('SELECT raw FROM messages WHERE message_id = ?', [messageId]);
      return rows.length ? Buffer.from(rows[0]!.raw) : null;
    });
  }

  async hasMessage(messageId: string): Promise<boolean> {
    return this.exec(async (c) => (await c.all('SELECT 1 AS x FROM messages WHERE message_id = ?', [messageId])).length > 0);
  }

  async sightings(messageId: string): Promise<SourcePosition[]> {
    return this.exec(async (c) => {
      const rows = await c.all<{ source_key: string; position: string }>(
        'SELECT source_key, position FROM message_sources WHERE message_id = ? ORDER BY seen_at, source_key',
        [messageId],
      );
      return rows.map((r) => ({ key: r.source_key, position: r.position }));
    });
  }

  async markProcessed(messageId: string): Promise<boolean> {
    return this.exec(
      async (c) =>
        (await c.run('UPDATE messages SET processed_at = @now WHERE message_id = ? AND processed_at IS NULL', [
          messageId,
        ])) === 1,
    );
  }

  async pendingMessages(limit: number): Promise<MessageRecord[]> {
    return this.exec(async (c) => {
      const rows = await c.all<{ record: unknown }>(
        'SELECT record FROM messages WHERE processed_at IS NULL ORDER BY seq LIMIT ?',
        [Math.max(0, Math.floor(limit))],
      );
      return rows.map((r) => this.d.parseJson(r.record) as MessageRecord);
    });
  }

  // ------------------------------------------------------------ positions

  async getPosition(sourceKey: string): Promise<string | null> {
    return this.exec(async (c) => {
      const rows = await c.all<{ position: string }>('SELECT position FROM source_positions WHERE source_key = ?', [
        sourceKey,
      ]);
      return rows.length ? rows[0]!.position : null;
    });
  }

  async setPosition(sourceKey: string, position: string): Promise<void> {
    nonEmpty('source key', sourceKey);
    return this.exec(async (c) => {
      await c.run(
        'INSERT INTO source_positions (source_key, position, updated_at) VALUES (?, ?, @now) ' +
          'ON CONFLICT (source_key) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at',
        [sourceKey, position],
      );
    });
  }

  // ------------------------------------------------------------ threads and series

  async messagesInThread(messageId: string): Promise<MessageRecord[]> {
    return this.exec(async (c) => {
      // Breadth-first over the reference graph, both directions: up to the ancestors a message
      // names, down to the replies naming it, and sideways through ids never received.
      const seen = new Set<string>([messageId]);
      let frontier = [messageId];
      while (frontier.length && seen.size < MAX_THREAD_IDS) {
        const next: string[] = [];
        for (const part of chunks(frontier, IN_CHUNK)) {
          const ph = placeholders(part.length);
          const rows = await c.all<{ message_id: string; ref_id: string }>(
            `SELECT message_id, ref_id FROM message_refs WHERE message_id IN (${ph}) OR ref_id IN (${ph})`,
            [...part, ...part],
          );
          for (const r of rows) {
            for (const id of [r.message_id, r.ref_id]) {
              if (!seen.has(id) && seen.size < MAX_THREAD_IDS) {
                seen.add(id);
                next.push(id);
              }
            }
          }
        }
        frontier = next;
      }
      const found: Array<{ seq: number; date: string | null; record: MessageRecord }> = [];
      for (const part of chunks([...seen], IN_CHUNK)) {
        const rows = await c.all<{ seq: unknown; msg_date: string | null; record: unknown }>(
          `SELECT seq, msg_date, record FROM messages WHERE message_id IN (${placeholders(part.length)})`,
          part,
        );
        for (const r of rows) {
          found.push({ seq: num(r.seq), date: r.msg_date, record: this.d.parseJson(r.record) as MessageRecord });
        }
      }
      const t = (d: string | null): number => {
        const ms = d ? Date.parse(d) : NaN;
        return Number.isNaN(ms) ? Infinity : ms;
      };
      found.sort((a, b) => t(a.date) - t(b.date) || a.seq - b.seq);
      return found.map((f) => f.record);
    });
  }

  async putSeries(series: Series): Promise<void> {
    nonEmpty('series id', series.id);
    return this.exec(async (c) => {
      await c.run(
        'INSERT INTO series (id, record, updated_at) VALUES (?, ?, @now) ' +
          'ON CONFLICT (id) DO UPDATE SET record = excluded.record, updated_at = excluded.updated_at',
        [series.id, this.d.json(series)],
      );
    });
  }

  async getSeries(id: string): Promise<Series | null> {
    return this.exec(async (c) => {
      const rows = await c.all<{ record: unknown }>('SELECT record FROM series WHERE id = ?', [id]);
      return rows.length ? (this.d.parseJson(rows[0]!.record) as Series) : null;
    });
  }

  // ------------------------------------------------------------ findings

  async putFindings(messageId: string, findings: Finding[]): Promise<void> {
    nonEmpty('messageId', messageId);
    return this.atomic(async (c) => {
      await c.run('DELETE FROM findings WHERE message_id = ?', [messageId]);
      const rows = findings.map((f, i) => [messageId, i, f.rule, f.fingerprint, this.d.json(f)] as const);
      for (const part of chunks(rows, 100)) {
        await c.run(
          `INSERT INTO findings (message_id, ord, rule, fingerprint, record, created_at) VALUES ${part
            .map(() => '(?, ?, ?, ?, ?, @now)')
            .join(', ')}`,
          part.flat(),
        );
      }
    });
  }

  async findingsFor(messageId: string): Promise<Finding[]> {
    return this.exec(async (c) => {
      const rows = await c.all<{ record: unknown }>('SELECT record FROM findings WHERE message_id = ? ORDER BY ord', [
        messageId,
      ]);
      return rows.map((r) => this.d.parseJson(r.record) as Finding);
    });
  }

  async seenFingerprint(fingerprint: string, scope: string): Promise<boolean> {
    return this.exec(
      async (c) =>
        (await c.all('SELECT 1 AS x FROM posted_findings WHERE fingerprint = ? AND scope = ?', [fingerprint, scope]))
          .length > 0,
    );
  }

  async markFindingPosted(fingerprint: string, scope: string, where: string, rule?: string): Promise<boolean> {
    nonEmpty('fingerprint', fingerprint);
    nonEmpty('scope', scope);
    return this.exec(
      async (c) =>
        (await c.run(
          'INSERT INTO posted_findings (fingerprint, scope, rule, location, posted_at) VALUES (?, ?, ' +
            'COALESCE(CAST(? AS TEXT), (SELECT rule FROM findings WHERE fingerprint = ? LIMIT 1)), ?, @now) ' +
            'ON CONFLICT (fingerprint, scope) DO NOTHING',
          [fingerprint, scope, rule ?? null, fingerprint, where],
        )) === 1,
    );
  }

  // ------------------------------------------------------------ outbox

  private outboxItem(r: Row): OutboxItem {
    return {
      key: r.key as string,
      messageId: r.message_id as string,
      inReplyTo: (r.in_reply_to as string | null) ?? null,
      to: this.d.parseJson(r.rcpt_to) as string[],
      cc: this.d.parseJson(r.rcpt_cc) as string[],
      eml: Buffer.from(r.eml as Buffer),
      channel: r.channel as string,
      state: r.state as OutboxState,
      attempts: num(r.attempts),
      leaseOwner: (r.lease_owner as string | null) ?? null,
      leaseUntil: date(r.lease_until),
      nextAttemptAt: date(r.next_attempt_at),
      lastError: (r.last_error as string | null) ?? null,
      possiblySent: r.uncertain_at !== null && r.uncertain_at !== undefined,
      sentInfo: r.sent_info === null || r.sent_info === undefined ? null : (this.d.parseJson(r.sent_info) as SentInfo),
      createdAt: date(r.created_at)!,
      sentAt: date(r.sent_at),
    };
  }

  async enqueueReply(reply: ReplyInput): Promise<boolean> {
    nonEmpty('reply key', reply.key);
    nonEmpty('reply messageId', reply.messageId);
    nonEmpty('reply channel', reply.channel);
    if (!Buffer.isBuffer(reply.eml)) throw new TypeError('store: reply eml must be a Buffer');
    return this.exec(
      async (c) =>
        (await c.run(
          'INSERT INTO outbox (key, message_id, in_reply_to, rcpt_to, rcpt_cc, eml, channel, state, attempts, ' +
            "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', 0, @now, @now) " +
            'ON CONFLICT (key) DO NOTHING',
          [
            reply.key,
            reply.messageId,
            reply.inReplyTo ?? null,
            this.d.json(reply.to),
            this.d.json(reply.cc),
            reply.eml,
            reply.channel,
          ],
        )) === 1,
    );
  }

  async claimReplies(limit: number, leaseSeconds: number, worker: string): Promise<OutboxItem[]> {
    nonEmpty('worker', worker);
    if (!(leaseSeconds > 0)) throw new RangeError('store: leaseSeconds must be > 0');
    const n = Math.floor(limit);
    if (!(n >= 1)) return [];
    const leaseMs = Math.max(1, Math.round(leaseSeconds * 1000));
    return this.atomic(async (c) => {
      // SQLite: the transaction holds the write lock, so nobody else claims in between.
      // PostgreSQL: FOR UPDATE SKIP LOCKED keeps concurrent claimers off each other's rows, and
      // rows changed by a claimer that committed meanwhile are re-checked against CLAIMABLE.
      const picked = await c.all<{ key: string }>(
        `SELECT key FROM outbox WHERE ${CLAIMABLE} ORDER BY seq LIMIT ? ${this.d.skipLocked}`,
        [n],
      );
      if (!picked.length) return [];
      const keys = picked.map((p) => p.key);
      const rows = await c.all(
        "UPDATE outbox SET state = 'sending', lease_owner = ?, lease_until = @now + CAST(? AS BIGINT), " +
          'attempts = attempts + 1, ' +
          // A lease that expired while sending: that attempt may have reached the server.
          "uncertain_at = CASE WHEN state = 'sending' THEN COALESCE(uncertain_at, @now) ELSE uncertain_at END, " +
          `updated_at = @now WHERE key IN (${placeholders(keys.length)}) AND ${CLAIMABLE} RETURNING ${OUTBOX_COLUMNS}`,
        [worker, leaseMs, ...keys],
      );
      return rows.sort((a, b) => num(a.seq) - num(b.seq)).map((r) => this.outboxItem(r));
    });
  }

  async markSent(key: string, info: SentInfo): Promise<boolean> {
    if (typeof info?.response !== 'string') throw new TypeError('store: markSent needs info.response');
    return this.exec(
      async (c) =>
        (await c.run(
          "UPDATE outbox SET state = 'sent', sent_info = ?, sent_at = @now, lease_owner = NULL, lease_until = NULL, " +
            "next_attempt_at = NULL, updated_at = @now WHERE key = ? AND state <> 'sent'",
          [this.d.json(info), key],
        )) === 1,
    );
  }

  async markFailed(key: string, error: string, retryAt: Date | null, worker?: string): Promise<boolean> {
    const next = retryAt === null ? null : retryAt.getTime();
    if (next !== null && Number.isNaN(next)) throw new RangeError('store: retryAt is an invalid Date');
    return this.exec(
      async (c) =>
        (await c.run(
          'UPDATE outbox SET state = ?, last_error = ?, next_attempt_at = ?, lease_owner = NULL, lease_until = NULL, ' +
            "updated_at = @now WHERE key = ? AND state = 'sending' AND (CAST(? AS TEXT) IS NULL OR lease_owner = ?)",
          [next === null ? 'failed' : 'queued', error, next, key, worker ?? null, worker ?? null],
        )) === 1,
    );
  }

  async getReply(key: string): Promise<OutboxItem | null> {
    return this.exec(async (c) => {
      const rows = await c.all(`SELECT ${OUTBOX_COLUMNS} FROM outbox WHERE key = ?`, [key]);
      return rows.length ? this.outboxItem(rows[0]!) : null;
    });
  }

  async replyByMessageId(messageId: string): Promise<OutboxItem | null> {
    return this.exec(async (c) => {
      const rows = await c.all(`SELECT ${OUTBOX_COLUMNS} FROM outbox WHERE message_id = ? ORDER BY seq LIMIT 1`, [
        messageId,
      ]);
      return rows.length ? this.outboxItem(rows[0]!) : null;
    });
  }

  async outboxStats(): Promise<OutboxStats> {
    return this.exec(async (c) => {
      const stats: OutboxStats = { queued: 0, sending: 0, sent: 0, failed: 0, possiblySent: 0, oldestQueuedAt: null };
      const rows = await c.all<{ state: OutboxState; n: unknown; oldest: unknown }>(
        'SELECT state, COUNT(*) AS n, MIN(created_at) AS oldest FROM outbox GROUP BY state',
      );
      for (const r of rows) {
        stats[r.state] = num(r.n);
        if (r.state === 'queued') stats.oldestQueuedAt = date(r.oldest);
      }
      const ps = await c.all<{ n: unknown }>(`SELECT COUNT(*) AS n FROM outbox WHERE ${POSSIBLY_SENT}`);
      stats.possiblySent = num(ps[0]?.n);
      return stats;
    });
  }

  async possiblySent(): Promise<OutboxItem[]> {
    return this.exec(async (c) =>
      (await c.all(`SELECT ${OUTBOX_COLUMNS} FROM outbox WHERE ${POSSIBLY_SENT} ORDER BY seq`)).map((r) =>
        this.outboxItem(r),
      ),
    );
  }

  // ------------------------------------------------------------ feedback

  async recordDispute(d: DisputeInput): Promise<boolean> {
    nonEmpty('dispute rule', d.rule);
    nonEmpty('dispute messageId', d.messageId);
    return this.exec(
      async (c) =>
        (await c.run(
          'INSERT INTO disputes (rule, fingerprint, message_id, by_whom, reason, created_at) VALUES (?, ?, ?, ?, ?, @now) ' +
            'ON CONFLICT (message_id, rule, fingerprint, by_whom) DO NOTHING',
          [d.rule, d.fingerprint ?? '', d.messageId, d.by, d.reason],
        )) === 1,
    );
  }

  async ruleStats(): Promise<RuleStats[]> {
    return this.exec(async (c) => {
      const rows = await c.all<{ rule: string; findings: unknown; posted: unknown; disputes: unknown; disputed: unknown }>(
        'SELECT rule, SUM(f) AS findings, SUM(p) AS posted, SUM(d) AS disputes, SUM(dd) AS disputed FROM (' +
          ' SELECT rule, COUNT(*) AS f, 0 AS p, 0 AS d, 0 AS dd FROM findings GROUP BY rule' +
          ' UNION ALL SELECT rule, 0, COUNT(*), 0, 0 FROM posted_findings WHERE rule IS NOT NULL GROUP BY rule' +
          " UNION ALL SELECT rule, 0, 0, COUNT(*), COUNT(DISTINCT CASE WHEN fingerprint = '' THEN 'message:' || message_id" +
          ' ELSE fingerprint END) FROM disputes GROUP BY rule' +
          ') AS per_rule GROUP BY rule ORDER BY rule',
      );
      return rows.map((r) => {
        const posted = num(r.posted);
        const disputed = Math.min(posted, num(r.disputed));
        return {
          rule: r.rule,
          findings: num(r.findings),
          posted,
          disputes: num(r.disputes),
          precision: posted ? (posted - disputed) / posted : null,
        };
      });
    });
  }

  // ------------------------------------------------------------ GitHub mirror PRs

  async putPatchIndex(e: PatchIndexEntry): Promise<void> {
    nonEmpty('messageId', e.messageId);
    return this.exec(async (c) => {
      await c.run(
        'INSERT INTO patch_index (message_id, patch_id, subject_key, msg_date, indexed_at) VALUES (?, ?, ?, ?, @now) ' +
          'ON CONFLICT (message_id) DO UPDATE SET patch_id = excluded.patch_id, subject_key = excluded.subject_key, ' +
          'msg_date = excluded.msg_date, indexed_at = excluded.indexed_at',
        [e.messageId, e.patchId, e.subjectKey, e.date],
      );
    });
  }

  private async patchesBy(column: 'patch_id' | 'subject_key', value: string): Promise<string[]> {
    return this.exec(async (c) => {
      const rows = await c.all<{ message_id: string; msg_date: string | null; seq: unknown }>(
        `SELECT p.message_id, p.msg_date, m.seq FROM patch_index p JOIN messages m ON m.message_id = p.message_id WHERE p.${column} = ?`,
        [value],
      );
      const t = (d: string | null) => {
        const ms = d ? Date.parse(d) : NaN;
        return Number.isNaN(ms) ? -Infinity : ms;
      };
      return rows.sort((a, b) => t(b.msg_date) - t(a.msg_date) || num(b.seq) - num(a.seq)).map((r) => r.message_id);
    });
  }

  async patchesByPatchId(patchId: string): Promise<string[]> {
    return this.patchesBy('patch_id', patchId);
  }

  async patchesBySubjectKey(subjectKey: string): Promise<string[]> {
    return this.patchesBy('subject_key', subjectKey);
  }

  async putGithubPr(p: GithubPr): Promise<void> {
    nonEmpty('repo', p.repo);
    return this.exec(async (c) => {
      await c.run(
        'INSERT INTO github_prs (repo, pr, installation_id, head_sha, base_sha, title, author, state, updated_at) ' +
          'VALUES (?, ?, ?, ?, ?, ?, ?, ?, @now) ON CONFLICT (repo, pr) DO UPDATE SET ' +
          'installation_id = COALESCE(excluded.installation_id, github_prs.installation_id), ' +
          'head_sha = COALESCE(excluded.head_sha, github_prs.head_sha), base_sha = COALESCE(excluded.base_sha, github_prs.base_sha), ' +
          'title = COALESCE(excluded.title, github_prs.title), author = COALESCE(excluded.author, github_prs.author), ' +
          'state = COALESCE(excluded.state, github_prs.state), updated_at = excluded.updated_at',
        [p.repo, p.pr, p.installationId, p.headSha, p.baseSha, p.title, p.author, p.state],
      );
    });
  }

  async getGithubPr(repo: string, pr: number): Promise<GithubPr | null> {
    return this.exec(async (c) => {
      const rows = await c.all<Row>(
        'SELECT repo, pr, installation_id, head_sha, base_sha, title, author, state FROM github_prs WHERE repo = ? AND pr = ?',
        [repo, pr],
      );
      const r = rows[0];
      if (!r) return null;
      return {
        repo: r.repo as string,
        pr: num(r.pr),
        installationId: numOrNull(r.installation_id),
        headSha: (r.head_sha as string | null) ?? null,
        baseSha: (r.base_sha as string | null) ?? null,
        title: (r.title as string | null) ?? null,
        author: (r.author as string | null) ?? null,
        state: (r.state as string | null) ?? null,
      };
    });
  }

  async putPrCommits(repo: string, pr: number, commits: PrCommitEntry[]): Promise<void> {
    nonEmpty('repo', repo);
    return this.atomic(async (c) => {
      await c.run('DELETE FROM github_pr_commits WHERE repo = ? AND pr = ?', [repo, pr]);
      await c.run('DELETE FROM github_commit_refs WHERE repo = ? AND pr = ?', [repo, pr]);
      const rows = commits.map((x, i) => [repo, pr, x.sha, i, x.patchId, x.subjectKey] as const);
      for (const part of chunks(rows, 100)) {
        await c.run(
          `INSERT INTO github_pr_commits (repo, pr, sha, ord, patch_id, subject_key) VALUES ${part.map(() => '(?, ?, ?, ?, ?, ?)').join(', ')} ` +
            'ON CONFLICT (repo, pr, sha) DO NOTHING',
          part.flat(),
        );
      }
      const refs = commits.flatMap((x) => [...new Set(x.messageIds)].map((id) => [id, repo, pr, x.sha] as const));
      for (const part of chunks(refs, 100)) {
        await c.run(
          `INSERT INTO github_commit_refs (message_id, repo, pr, sha) VALUES ${part.map(() => '(?, ?, ?, ?)').join(', ')} ` +
            'ON CONFLICT (message_id, repo, pr, sha) DO NOTHING',
          part.flat(),
        );
      }
    });
  }

  async prCommitsMatching(q: {
    messageId: string;
    patchId: string | null;
    subjectKey: string;
  }): Promise<Array<{ repo: string; pr: number; sha: string; method: LinkMethod }>> {
    return this.exec(async (c) => {
      const out: Array<{ repo: string; pr: number; sha: string; method: LinkMethod }> = [];
      const seen = new Set<string>();
      const add = (rows: Array<{ repo: string; pr: unknown; sha: string }>, method: LinkMethod) => {
        for (const r of rows) {
          const k = `${r.repo}#${num(r.pr)}`;
          if (seen.has(k)) continue; // one link per PR: the strongest evidence wins
          seen.add(k);
          out.push({ repo: r.repo, pr: num(r.pr), sha: r.sha, method });
        }
      };
      add(await c.all('SELECT repo, pr, sha FROM github_commit_refs WHERE message_id = ? ORDER BY repo, pr', [q.messageId]), 'trailer');
      if (q.patchId) {
        add(
          await c.all('SELECT repo, pr, sha FROM github_pr_commits WHERE patch_id = ? ORDER BY repo, pr, ord', [q.patchId]),
          'patch-id',
        );
      }
      add(
        await c.all('SELECT repo, pr, sha FROM github_pr_commits WHERE subject_key = ? ORDER BY repo, pr, ord', [q.subjectKey]),
        'subject',
      );
      return out;
    });
  }

  async addGithubLink(l: GithubLink): Promise<boolean> {
    nonEmpty('repo', l.repo);
    nonEmpty('messageId', l.messageId);
    return this.exec(
      async (c) =>
        (await c.run(
          'INSERT INTO github_links (repo, pr, message_id, commit_sha, method, created_at) VALUES (?, ?, ?, ?, ?, @now) ' +
            'ON CONFLICT (repo, pr, message_id) DO NOTHING',
          [l.repo, l.pr, l.messageId, l.commitSha, l.method],
        )) === 1,
    );
  }

  private linkOf(r: Row): GithubLink {
    return {
      repo: r.repo as string,
      pr: num(r.pr),
      messageId: r.message_id as string,
      commitSha: r.commit_sha as string,
      method: r.method as LinkMethod,
    };
  }

  async githubLinks(repo: string, pr: number): Promise<GithubLink[]> {
    return this.exec(async (c) =>
      (
        await c.all(
          'SELECT l.repo, l.pr, l.message_id, l.commit_sha, l.method FROM github_links l LEFT JOIN github_pr_commits k ' +
            'ON k.repo = l.repo AND k.pr = l.pr AND k.sha = l.commit_sha WHERE l.repo = ? AND l.pr = ? ' +
            'ORDER BY COALESCE(k.ord, 1000000), l.created_at, l.message_id',
          [repo, pr],
        )
      ).map((r) => this.linkOf(r)),
    );
  }

  async githubLinksForMessages(messageIds: readonly string[]): Promise<GithubLink[]> {
    const ids = [...new Set(messageIds.filter(Boolean))];
    if (!ids.length) return [];
    return this.exec(async (c) => {
      const out: GithubLink[] = [];
      for (const part of chunks(ids, IN_CHUNK)) {
        const rows = await c.all(
          `SELECT repo, pr, message_id, commit_sha, method FROM github_links WHERE message_id IN (${placeholders(part.length)}) ` +
            'ORDER BY repo, pr, created_at',
          part,
        );
        out.push(...rows.map((r) => this.linkOf(r)));
      }
      return out;
    });
  }

  async putGithubComment(row: GithubCommentRow): Promise<boolean> {
    nonEmpty('repo', row.repo);
    nonEmpty('key', row.key);
    return this.exec(
      async (c) =>
        (await c.run(
          `INSERT INTO github_comments (${COMMENT_COLUMNS}, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, @now, @now) ` +
            'ON CONFLICT (repo, pr, key) DO NOTHING',
          [
            row.repo,
            row.pr,
            row.key,
            row.kind,
            row.rule ?? null,
            row.fingerprint ?? null,
            row.commentId ?? null,
            row.reviewId ?? null,
            row.path ?? null,
            row.line ?? null,
            row.side ?? null,
            row.commitSha ?? null,
            row.state,
          ],
        )) === 1,
    );
  }

  async setGithubCommentState(repo: string, pr: number, key: string, state: 'open' | 'resolved'): Promise<boolean> {
    return this.exec(
      async (c) =>
        (await c.run('UPDATE github_comments SET state = ?, updated_at = @now WHERE repo = ? AND pr = ? AND key = ? AND state <> ?', [
          state,
          repo,
          pr,
          key,
          state,
        ])) === 1,
    );
  }

  async githubComments(repo: string, pr: number): Promise<GithubCommentRow[]> {
    return this.exec(async (c) =>
      (await c.all(`SELECT ${COMMENT_COLUMNS} FROM github_comments WHERE repo = ? AND pr = ? ORDER BY created_at, key`, [repo, pr])).map(
        (r) => ({
          repo: r.repo as string,
          pr: num(r.pr),
          key: r.key as string,
          kind: r.kind as GithubCommentRow['kind'],
          rule: (r.rule as string | null) ?? null,
          fingerprint: (r.fingerprint as string | null) ?? null,
          commentId: numOrNull(r.comment_id),
          reviewId: numOrNull(r.review_id),
          path: (r.path as string | null) ?? null,
          line: numOrNull(r.line),
          side: (r.side as 'LEFT' | 'RIGHT' | null) ?? null,
          commitSha: (r.commit_sha as string | null) ?? null,
          state: r.state as 'open' | 'resolved',
        }),
      ),
    );
  }

  private jobOf(r: Row): GithubJob {
    return {
      key: r.key as string,
      kind: r.kind as string,
      repo: r.repo as string,
      pr: num(r.pr),
      installationId: numOrNull(r.installation_id),
      payload: this.d.parseJson(r.payload),
      state: r.state as GithubJobState,
      attempts: num(r.attempts),
      lastError: (r.last_error as string | null) ?? null,
      createdAt: date(r.created_at)!,
    };
  }

  async enqueueGithubJob(job: GithubJobInput): Promise<boolean> {
    nonEmpty('job key', job.key);
    nonEmpty('job kind', job.kind);
    return this.exec(
      async (c) =>
        (await c.run(
          'INSERT INTO github_jobs (key, kind, repo, pr, installation_id, payload, state, attempts, created_at, updated_at) ' +
            "VALUES (?, ?, ?, ?, ?, ?, 'queued', 0, @now, @now) ON CONFLICT (key) DO NOTHING",
          [job.key, job.kind, job.repo, job.pr, job.installationId, this.d.json(job.payload ?? null)],
        )) === 1,
    );
  }

  async claimGithubJobs(limit: number, leaseSeconds: number, worker: string, key?: string): Promise<GithubJob[]> {
    nonEmpty('worker', worker);
    if (!(leaseSeconds > 0)) throw new RangeError('store: leaseSeconds must be > 0');
    const n = Math.floor(limit);
    if (!(n >= 1)) return [];
    const leaseMs = Math.max(1, Math.round(leaseSeconds * 1000));
    return this.atomic(async (c) => {
      // Jobs of one PR never run on two instances at once (two pushes in quick succession must
      // not both post a review): a PR with a job under another worker's live lease is skipped.
      // The same worker may take more of a PR's jobs: it runs them one after the other (worker.ts).
      if (this.d.githubClaimLock) await c.all(this.d.githubClaimLock);
      const picked = await c.all<{ key: string }>(
        `SELECT key FROM github_jobs g WHERE ${JOB_CLAIMABLE}${key === undefined ? '' : ' AND key = ?'} AND NOT EXISTS (` +
          "SELECT 1 FROM github_jobs o WHERE o.repo = g.repo AND o.pr = g.pr AND o.key <> g.key AND o.state = 'running' " +
          `AND o.lease_until > @now AND o.lease_owner <> ?) ORDER BY seq LIMIT ? ${this.d.skipLocked}`,
        key === undefined ? [worker, n] : [key, worker, n],
      );
      if (!picked.length) return [];
      const keys = picked.map((p) => p.key);
      const rows = await c.all(
        "UPDATE github_jobs SET state = 'running', lease_owner = ?, lease_until = @now + CAST(? AS BIGINT), attempts = attempts + 1, " +
          `updated_at = @now WHERE key IN (${placeholders(keys.length)}) AND ${JOB_CLAIMABLE} RETURNING ${JOB_COLUMNS}`,
        [worker, leaseMs, ...keys],
      );
      return rows.sort((a, b) => num(a.seq) - num(b.seq)).map((r) => this.jobOf(r));
    });
  }

  async finishGithubJob(key: string, worker: string, outcome: GithubJobOutcome): Promise<boolean> {
    const guard = "WHERE key = ? AND state = 'running' AND lease_owner = ?";
    return this.exec(async (c) => {
      if (outcome.state === 'done') {
        return (
          (await c.run(
            `UPDATE github_jobs SET state = 'done', lease_owner = NULL, lease_until = NULL, next_attempt_at = NULL, last_error = NULL, done_at = @now, updated_at = @now ${guard}`,
            [key, worker],
          )) === 1
        );
      }
      if (outcome.state === 'retry') {
        const at = outcome.at.getTime();
        if (Number.isNaN(at)) throw new RangeError('store: retry time is an invalid Date');
        return (
          (await c.run(
            `UPDATE github_jobs SET state = 'queued', lease_owner = NULL, lease_until = NULL, next_attempt_at = ?, last_error = ?, updated_at = @now ${guard}`,
            [at, outcome.error, key, worker],
          )) === 1
        );
      }
      return (
        (await c.run(
          `UPDATE github_jobs SET state = 'failed', lease_owner = NULL, lease_until = NULL, next_attempt_at = NULL, last_error = ?, updated_at = @now ${guard}`,
          [outcome.error, key, worker],
        )) === 1
      );
    });
  }

  async getGithubJob(key: string): Promise<GithubJob | null> {
    return this.exec(async (c) => {
      const rows = await c.all(`SELECT ${JOB_COLUMNS} FROM github_jobs WHERE key = ?`, [key]);
      return rows.length ? this.jobOf(rows[0]!) : null;
    });
  }

  async githubJobStats(): Promise<Record<GithubJobState, number>> {
    return this.exec(async (c) => {
      const out: Record<GithubJobState, number> = { queued: 0, running: 0, done: 0, failed: 0 };
      for (const r of await c.all<{ state: GithubJobState; n: unknown }>('SELECT state, COUNT(*) AS n FROM github_jobs GROUP BY state')) {
        out[r.state] = num(r.n);
      }
      return out;
    });
  }

  async recordGithubForward(f: GithubForward): Promise<boolean> {
    nonEmpty('repo', f.repo);
    nonEmpty('outbox key', f.outboxKey);
    return this.exec(
      async (c) =>
        (await c.run(
          'INSERT INTO github_forwards (repo, kind, comment_id, login, outbox_key, message_id, in_reply_to, created_at) ' +
            'VALUES (?, ?, ?, ?, ?, ?, ?, @now) ON CONFLICT (repo, kind, comment_id) DO NOTHING',
          [f.repo, f.kind, f.commentId, f.login, f.outboxKey, f.messageId, f.inReplyTo],
        )) === 1,
    );
  }

  private forwardOf(r: Row): GithubForward {
    return {
      repo: r.repo as string,
      kind: r.kind as GithubForward['kind'],
      commentId: num(r.comment_id),
      login: r.login as string,
      outboxKey: r.outbox_key as string,
      messageId: r.message_id as string,
      inReplyTo: r.in_reply_to as string,
    };
  }

  async githubForward(repo: string, kind: GithubForward['kind'], commentId: number): Promise<GithubForward | null> {
    return this.exec(async (c) => {
      const rows = await c.all(
        'SELECT repo, kind, comment_id, login, outbox_key, message_id, in_reply_to FROM github_forwards WHERE repo = ? AND kind = ? AND comment_id = ?',
        [repo, kind, commentId],
      );
      return rows.length ? this.forwardOf(rows[0]!) : null;
    });
  }

  async githubForwardByMessageId(messageId: string): Promise<GithubForward | null> {
    return this.exec(async (c) => {
      const rows = await c.all(
        'SELECT repo, kind, comment_id, login, outbox_key, message_id, in_reply_to FROM github_forwards WHERE message_id = ? LIMIT 1',
        [messageId],
      );
      return rows.length ? this.forwardOf(rows[0]!) : null;
    });
  }

  // ------------------------------------------------------------ LLM budget and cache

  async addTokens(day: string, list: string, tokens: number): Promise<number> {
    if (!Number.isSafeInteger(tokens) || tokens < 0) throw new RangeError('store: tokens must be a non-negative integer');
    return this.exec(async (c) => {
      const rows = await c.all<{ tokens: unknown }>(
        'INSERT INTO llm_tokens (day, list, tokens) VALUES (?, ?, ?) ' +
          'ON CONFLICT (day, list) DO UPDATE SET tokens = llm_tokens.tokens + excluded.tokens RETURNING tokens',
        [day, list, tokens],
      );
      return num(rows[0]?.tokens);
    });
  }

  async tokensFor(day: string, list: string): Promise<number> {
    return this.exec(async (c) => {
      const rows = await c.all<{ tokens: unknown }>('SELECT tokens FROM llm_tokens WHERE day = ? AND list = ?', [day, list]);
      return num(rows[0]?.tokens);
    });
  }

  async tokenUsage(sinceDay: string): Promise<Array<{ day: string; list: string; tokens: number }>> {
    return this.exec(async (c) => {
      const rows = await c.all<{ day: unknown; list: unknown; tokens: unknown }>(
        'SELECT day, list, tokens FROM llm_tokens WHERE day >= ? ORDER BY day, list',
        [sinceDay],
      );
      return rows.map((r) => ({ day: String(r.day), list: String(r.list), tokens: num(r.tokens) }));
    });
  }

  async cacheGet<T = unknown>(key: string): Promise<T | undefined> {
    return this.exec(async (c) => {
      const rows = await c.all<{ value: unknown }>(
        'SELECT value FROM kv_cache WHERE key = ? AND (expires_at IS NULL OR expires_at > @now)',
        [key],
      );
      return rows.length ? (this.d.parseJson(rows[0]!.value) as T) : undefined;
    });
  }

  async cachePut(key: string, value: unknown, ttlSeconds?: number): Promise<void> {
    if (value === undefined) throw new TypeError('store: cachePut needs a JSON value (not undefined)');
    const ttlMs = ttlSeconds === undefined ? null : Math.max(0, Math.round(ttlSeconds * 1000));
    return this.exec(async (c) => {
      await c.run(
        'INSERT INTO kv_cache (key, value, expires_at, updated_at) VALUES (?, ?, ' +
          'CASE WHEN CAST(? AS BIGINT) IS NULL THEN NULL ELSE @now + CAST(? AS BIGINT) END, @now) ' +
          'ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at, ' +
          'updated_at = excluded.updated_at',
        [key, this.d.json(value), ttlMs, ttlMs],
      );
    });
  }
}
