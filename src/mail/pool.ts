// Parse a stream of raw messages into records, in order, on a pool of worker threads
// (in-process when workers are off or the compiled worker is not available, e.g. under jest).
// A worker that dies (out of memory on a monstrous mail, a crash in a parser) costs only the
// message that killed it: its batch is retried one message at a time in a fresh worker, and
// the culprit is reported as a skipped message.
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { InputError, MessageRecord, RawMessage } from '../model.js';
import { recordFromRaw } from './record.js';
import { log } from '../log.js';

/** What the main thread keeps of a record while reading: threading keys and, for patch/cover candidates, a slim record for series grouping. */
export interface LightRecord {
  messageId: string;
  inReplyTo: string | null;
  references: string[];
  date: string | null;
  subject: string;
  kind: MessageRecord['kind'];
  /** Series-grouping fields, or null for mail that can't be part of a series. */
  candidate: CandidateFields | null;
}

/**
 * A parsed message: the full record as JSON text (made where it was parsed, so the main thread
 * only appends it to the spool) and its light part.
 */
export type ParseResult = { ok: true; json: string; light: LightRecord } | { ok: false; error: InputError };

/** The few fields series grouping reads of a patch or cover letter (see thread/series.ts). */
export interface CandidateFields {
  messageId: string;
  inReplyTo: string | null;
  from: MessageRecord['from'];
  /** Omitted when the same as `from`. */
  author?: MessageRecord['author'];
  date: string | null;
  parsedSubject: MessageRecord['parsedSubject'];
  kind: MessageRecord['kind'];
  hasDiff: boolean;
  diffstat: boolean;
  automated: boolean;
}

/** Series-grouping fields of a patch or cover letter; null for mail that can't be part of a series. */
export function seriesCandidate(r: MessageRecord): CandidateFields | null {
  const ps = r.parsedSubject;
  if (ps.reply || !(ps.series || r.kind === 'patch' || r.kind === 'cover')) return null;
  const same = r.author.address === r.from.address && r.author.name === r.from.name;
  return {
    messageId: r.messageId,
    inReplyTo: r.inReplyTo,
    from: r.from,
    ...(same ? {} : { author: r.author }),
    date: r.date,
    parsedSubject: ps,
    kind: r.kind,
    hasDiff: r.diff !== null,
    diffstat: r.diffstat,
    automated: r.automated,
  };
}

const NONE: never[] = [];
const NO_DIFF = { files: NONE, damage: NONE };
const NO_REF = { source: '', file: '', offset: 0, length: 0 };

/**
 * A MessageRecord shell around candidate fields, for groupSeries: everything it does not read
 * points at shared constants, so tens of thousands of candidates stay small in memory.
 */
export function candidateRecord(c: CandidateFields): MessageRecord {
  return {
    messageId: c.messageId,
    ref: NO_REF,
    inReplyTo: c.inReplyTo,
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

export function toResult(r: MessageRecord): ParseResult {
  return {
    ok: true,
    json: JSON.stringify(r),
    light: {
      messageId: r.messageId,
      inReplyTo: r.inReplyTo,
      references: r.references,
      date: r.date,
      subject: r.subject,
      kind: r.kind,
      candidate: seriesCandidate(r),
    },
  };
}

export async function parseOne(msg: RawMessage): Promise<ParseResult> {
  try {
    return toResult(await recordFromRaw(msg));
  } catch (e) {
    return { ok: false, error: { source: msg.ref.source, message: `skipped: ${(e as Error).message}` } };
  }
}

export interface PoolOptions {
  /** Number of worker threads; 0 parses in-process. Default: one per core. */
  workers?: number;
}

const BATCH_MESSAGES = 32;
const BATCH_BYTES = 512 * 1024;
/** Heap limits per worker: RSS stays bounded whatever the archive; a mail too big for it is skipped. */
const WORKER_LIMITS = { maxYoungGenerationSizeMb: 12, maxOldGenerationSizeMb: 96 };

function workerUrl(): URL | null {
  const url = new URL('./worker.js', import.meta.url);
  if (!import.meta.url.endsWith('.js')) return null;
  return existsSync(fileURLToPath(url)) ? url : null;
}

export async function* parseStream(src: AsyncIterable<RawMessage>, opts: PoolOptions = {}): AsyncGenerator<ParseResult> {
  const url = workerUrl();
  const n = opts.workers ?? Math.max(1, availableParallelism());
  if (!url || n <= 0) {
    for await (const m of src) yield await parseOne(m);
    return;
  }
  const pool = new Pool(url, n);
  try {
    yield* pool.run(src);
  } finally {
    await pool.close();
  }
}

interface Slot {
  worker: Worker;
  /** Jobs sent to this worker and not answered yet, oldest first. */
  queue: Job[];
}

interface Job {
  items: RawMessage[];
  resolve: (r: ParseResult[]) => void;
}

class Pool {
  private slots: Slot[] = [];

  constructor(
    private url: URL,
    n: number,
  ) {
    for (let i = 0; i < n; i++) this.slots.push(this.spawn());
  }

  private spawn(): Slot {
    const slot: Slot = { worker: new Worker(this.url, { resourceLimits: WORKER_LIMITS }), queue: [] };
    slot.worker.on('message', (msg: { results: ParseResult[] }) => slot.queue.shift()?.resolve(msg.results));
    slot.worker.on('error', (e) => this.died(slot, e));
    return slot;
  }

  /** A worker died: replace it, and re-run its unanswered jobs one message at a time. */
  private died(slot: Slot, e: Error): void {
    const lost = slot.queue.splice(0);
    if (slot === this.quarantine) {
      // Only one message is ever in flight here: it is the one that kills the parser.
      this.quarantine = null;
      for (const job of lost) {
        const m = job.items[0];
        job.resolve([{ ok: false, error: { source: m.ref.source, message: `skipped: the parser crashed or ran out of memory on this message (${e.message})` } }]);
      }
      return;
    }
    const i = this.slots.indexOf(slot);
    if (i < 0) return;
    log.warn({ err: e.message }, 'parser worker died; retrying its messages one by one');
    this.slots[i] = this.spawn();
    for (const job of lost) {
      Promise.all(job.items.map((m) => this.retry(m))).then((rs) => job.resolve(rs.flat()));
    }
  }

  private quarantine: Slot | null = null;
  private retries: Promise<unknown> = Promise.resolve();

  /** Re-parse one message alone in a dedicated worker, one at a time, so a crash names its culprit. */
  private retry(m: RawMessage): Promise<ParseResult[]> {
    const run = this.retries.then(() => {
      if (!this.quarantine) this.quarantine = this.spawn();
      return this.send(this.quarantine, [m]);
    });
    this.retries = run.catch(() => undefined);
    return run;
  }

  submit(items: RawMessage[]): Promise<ParseResult[]> {
    let slot = this.slots[0];
    for (const s of this.slots) if (s.queue.length < slot.queue.length) slot = s;
    return this.send(slot, items);
  }

  private send(slot: Slot, items: RawMessage[]): Promise<ParseResult[]> {
    return new Promise((resolve) => {
      slot.queue.push({ items, resolve });
      const transfer: ArrayBuffer[] = [];
      const payload = items.map((m) => {
        const u = new Uint8Array(m.raw.length);
        u.set(m.raw);
        transfer.push(u.buffer);
        return { raw: u, ref: m.ref };
      });
      slot.worker.postMessage({ items: payload }, transfer);
    });
  }

  async *run(src: AsyncIterable<RawMessage>): AsyncGenerator<ParseResult> {
    const pending: Array<Promise<ParseResult[]>> = [];
    const limit = this.slots.length * 2; // two jobs per worker in flight: busy cores, bounded memory
    let batch: RawMessage[] = [];
    let bytes = 0;
    for await (const m of src) {
      batch.push(m);
      bytes += m.raw.length;
      if (batch.length >= BATCH_MESSAGES || bytes >= BATCH_BYTES) {
        pending.push(this.submit(batch));
        batch = [];
        bytes = 0;
        while (pending.length >= limit) for (const r of await pending.shift()!) yield r;
      }
    }
    if (batch.length) pending.push(this.submit(batch));
    while (pending.length) for (const r of await pending.shift()!) yield r;
  }

  async close(): Promise<void> {
    await Promise.all([...this.slots, ...(this.quarantine ? [this.quarantine] : [])].map((s) => s.worker.terminate()));
  }
}
