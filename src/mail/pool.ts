// A pool of worker threads that parse raw messages into records and, once threads are
// known, anchor reply comments (see jobs.ts). Each worker appends what it makes to its own
// spool file; only small results (threading keys, where a record is) come back.
//
// A worker that dies (out of memory on a monstrous mail, a crash in a parser) costs only the
// message that killed it: its parse batches are retried one message at a time in a fresh
// worker, and the culprit is reported as a skipped message. Anchor jobs of a dead worker come
// back as null (the main thread then anchors those replies itself).
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { RawMessage } from '../model.js';
import type { AnchorJob, ParseResult, RenderedThread, RenderFormat, RenderJob, StoredText } from './jobs.js';
import type { SpoolDir } from '../store/spool.js';
import { log } from '../log.js';

export type { CandidateFields, LightRecord, ParseResult, StoredAt, AnchorJob, StoredText, RenderJob, RenderFormat, RenderedThread } from './jobs.js';

/** Messages posted to a worker. */
export type WorkerRequest =
  | { kind: 'parse'; bytes: Uint8Array; items: Array<{ start: number; length: number; ref: RawMessage['ref'] }> }
  | { kind: 'anchor'; jobs: AnchorJob[]; paths: readonly string[] }
  | { kind: 'render'; jobs: RenderJob[]; format: RenderFormat; paths: readonly string[] };

/** What a worker answers, one answer per request, in order. */
export type WorkerReply =
  | { kind: 'parse'; results: ParseResult[] }
  | { kind: 'anchor'; results: StoredText[] }
  | { kind: 'render'; results: RenderedThread[] };

/** Sent once by a worker when its modules are loaded, before any answer. */
export interface WorkerReady {
  kind: 'ready';
  /** The worker's V8 heap limit: WORKER_LIMITS, unless process-wide V8 flags overrode them. */
  heapLimitMb: number;
}

/**
 * The worker threads could not start (their modules failed to load, or Node refused their
 * options): no message was parsed, none is lost, and retrying message by message would only
 * start a failing thread per message.
 */
export class WorkerStartError extends Error {}

/** What a worker is started with. */
export interface WorkerSetup {
  spoolPath: string;
  spoolFile: number;
}

export interface PoolOptions {
  /** Number of worker threads; 0 means none (the caller parses in-process). Default: one per core. */
  workers?: number;
}

const BATCH_MESSAGES = 64;
const BATCH_BYTES = 1024 * 1024;
const ANCHOR_BATCH = 64;
/**
 * Anchor batches per worker sent before the main thread turns to other work (Pool.anchor's
 * `meanwhile`): about a second and a half of anchoring each, a couple of MB of jobs whatever the
 * size of the input.
 */
const ANCHOR_AHEAD = 160;
/** Render batches hold whole threads, this many messages or more (one thread may be longer). */
const RENDER_BATCH_MESSAGES = 128;
/**
 * Heap limits per worker: RSS stays bounded whatever the archive; a mail too big for it is
 * skipped. Process-wide V8 flags override these: bin/patchvet's --max-semi-space-size=4 gives
 * the same 12 MB young generation, and it passes no --max-old-space-size.
 */
const WORKER_LIMITS = { maxYoungGenerationSizeMb: 12, maxOldGenerationSizeMb: 96 };

function workerUrl(): URL | null {
  const url = new URL('./worker.js', import.meta.url);
  if (!import.meta.url.endsWith('.js')) return null;
  return existsSync(fileURLToPath(url)) ? url : null;
}

interface Slot {
  worker: Worker;
  /** Jobs sent to this worker and not answered yet, oldest first. */
  queue: Job[];
  /** The worker said it is ready: it loaded its modules. */
  ready: boolean;
}

interface Job {
  req: WorkerRequest;
  /** The messages of a parse request (to retry them one by one if the worker dies). */
  messages: RawMessage[];
  resolve: (r: WorkerReply) => void;
  reject: (e: Error) => void;
}

export class Pool {
  private slots: Slot[] = [];
  private quarantine: Slot | null = null;
  private retries: Promise<unknown> = Promise.resolve();
  /** Set when a worker died before it was ready: every job from then on fails with it. */
  private broken: WorkerStartError | null = null;

  /** A pool of `workers` threads (default one per core), or null when parsing must stay in-process. */
  static create(spool: SpoolDir, opts: PoolOptions = {}): Pool | null {
    const url = workerUrl();
    const n = opts.workers ?? Math.max(1, availableParallelism());
    if (!url || n <= 0) return null;
    return new Pool(url, n, spool);
  }

  private constructor(
    private url: URL,
    n: number,
    private spool: SpoolDir,
  ) {
    for (let i = 0; i < n; i++) this.slots.push(this.spawn());
  }

  get size(): number {
    return this.slots.length;
  }

  private spawn(): Slot {
    const { file, path } = this.spool.newFile();
    const setup: WorkerSetup = { spoolPath: path, spoolFile: file };
    const slot: Slot = { worker: new Worker(this.url, { resourceLimits: WORKER_LIMITS, workerData: setup }), queue: [], ready: false };
    slot.worker.on('message', (msg: WorkerReply | WorkerReady) => {
      if (msg.kind === 'ready') {
        slot.ready = true;
        log.debug({ heapLimitMb: msg.heapLimitMb }, 'parser worker ready');
      }
      else slot.queue.shift()?.resolve(msg);
    });
    // A 'ready' sent just before a crash may still be queued when 'error' comes; the public
    // port is drained before 'exit', so a worker not yet ready is judged at its exit.
    slot.worker.on('error', (e) => (slot.ready ? this.died(slot, e) : slot.worker.once('exit', () => this.died(slot, e))));
    return slot;
  }

  /** A worker died: replace it, re-run its unanswered parse jobs one message at a time. */
  private died(slot: Slot, e: Error): void {
    const lost = slot.queue.splice(0);
    if (!slot.ready || this.broken) {
      // It never started: a message cannot be the cause, and a new thread would fail the same way.
      this.broken ??= new WorkerStartError(
        `the parser worker threads could not start (${e.message}); no message was parsed. ` +
          'Check NODE_OPTIONS for options that worker threads refuse, rebuild with `npm run build`, or run with --workers 0 to parse on the main thread.',
      );
      for (const job of lost) job.reject(this.broken);
      return;
    }
    if (slot === this.quarantine) {
      // Only one message is ever in flight here: it is the one that kills the parser.
      this.quarantine = null;
      for (const job of lost) {
        const m = job.messages[0];
        job.resolve({
          kind: 'parse',
          results: [{ ok: false, error: { source: m.ref.source, message: `skipped: the parser crashed or ran out of memory on this message (${e.message})` } }],
        });
      }
      return;
    }
    const i = this.slots.indexOf(slot);
    if (i < 0) return;
    log.warn({ err: e.message }, 'parser worker died; retrying its messages one by one');
    this.slots[i] = this.spawn();
    for (const job of lost) {
      // Comments not anchored and threads not rendered are done on the main thread instead.
      if (job.req.kind === 'anchor' || job.req.kind === 'render') {
        job.resolve({ kind: job.req.kind, results: [] });
        continue;
      }
      Promise.all(job.messages.map((m) => this.retry(m))).then(
        (rs) => job.resolve({ kind: 'parse', results: rs.flatMap((r) => (r.kind === 'parse' ? r.results : [])) }),
        (err: Error) => job.reject(err),
      );
    }
  }

  /** Re-parse one message alone in a dedicated worker, one at a time, so a crash names its culprit. */
  private retry(m: RawMessage): Promise<WorkerReply> {
    const run = this.retries.then(() => {
      if (!this.quarantine) this.quarantine = this.spawn();
      return this.send(this.quarantine, parseRequest([m]), [m]);
    });
    this.retries = run.catch(() => undefined);
    return run;
  }

  private least(): Slot {
    let slot = this.slots[0];
    for (const s of this.slots) if (s.queue.length < slot.queue.length) slot = s;
    return slot;
  }

  private send(slot: Slot, req: WorkerRequest, messages: RawMessage[]): Promise<WorkerReply> {
    const reply: Promise<WorkerReply> = this.broken
      ? Promise.reject(this.broken)
      : new Promise((resolve, reject) => {
          slot.queue.push({ req, messages, resolve, reject });
          slot.worker.postMessage(req, req.kind === 'parse' ? [req.bytes.buffer as ArrayBuffer] : []);
        });
    // When the workers cannot start, every job in flight fails; the caller stops at the first
    // and never awaits the others, whose failure is the same one (not an unhandled rejection).
    reply.catch(() => undefined);
    return reply;
  }

  /** Parse a stream of raw messages; results come in input order. */
  async *parse(src: AsyncIterable<RawMessage>): AsyncGenerator<ParseResult> {
    const pending: Array<Promise<WorkerReply>> = [];
    const limit = this.slots.length * 2; // two batches per worker in flight: busy cores, bounded memory
    let batch: RawMessage[] = [];
    let bytes = 0;
    const submit = () => {
      pending.push(this.send(this.least(), parseRequest(batch), batch));
      batch = [];
      bytes = 0;
    };
    for await (const m of src) {
      batch.push(m);
      bytes += m.raw.length;
      if (batch.length >= BATCH_MESSAGES || bytes >= BATCH_BYTES) {
        submit();
        while (pending.length >= limit) yield* parseResults(await pending.shift()!);
      }
    }
    if (batch.length) submit();
    while (pending.length) yield* parseResults(await pending.shift()!);
  }

  /**
   * Run `count` anchor jobs on all workers, job(k) making the k-th when it is sent (so the
   * jobs never all exist at once), done(k, where) receiving its comments. A job whose worker
   * died gets no done() call. Adjacent jobs for the same patch share a batch when they can.
   *
   * `meanwhile`, when given, is called once, before the first done(): with up to
   * ANCHOR_AHEAD batches per worker already sent, so the main thread can do other work
   * (series grouping) while the workers anchor, instead of both cores waiting on it after.
   */
  async anchor(
    count: number,
    job: (k: number) => AnchorJob,
    done: (k: number, at: StoredText) => void,
    meanwhile?: () => void,
  ): Promise<void> {
    const paths = this.spool.paths;
    const pending: Array<{ start: number; reply: Promise<WorkerReply> }> = [];
    let early = meanwhile;
    const limit = () => this.slots.length * (early ? ANCHOR_AHEAD : 2);
    const take = async (p: { start: number; reply: Promise<WorkerReply> }) => {
      if (early) {
        const m = early;
        early = undefined;
        m();
      }
      const r = await p.reply;
      if (r.kind === 'anchor') r.results.forEach((t, i) => done(p.start + i, t));
    };
    let next = count > 0 ? job(0) : null;
    for (let start = 0; start < count; ) {
      const jobs: AnchorJob[] = [];
      // Keep a patch's replies in one batch when it is not too long.
      while (next && (jobs.length < ANCHOR_BATCH || (jobs.length < ANCHOR_BATCH * 2 && samePatch(jobs[jobs.length - 1], next)))) {
        jobs.push(next);
        next = start + jobs.length < count ? job(start + jobs.length) : null;
      }
      pending.push({ start, reply: this.send(this.least(), { kind: 'anchor', jobs, paths: [...paths] }, []) });
      start += jobs.length;
      while (pending.length >= limit()) await take(pending.shift()!);
    }
    while (pending.length) await take(pending.shift()!);
    early?.();
  }

  /**
   * Render threads 0..count-1 (jobs.ts runRenderJobs), in order: each thread's place in the
   * spool, or null for one the main thread must render itself (its worker died). Batches go out
   * as workers answer, two per worker at a time, whether or not the caller reads the results
   * yet: a caller busy on the main thread lets them in by yielding to the event loop now and
   * then. Answers wait here until read: a few numbers a thread, the rendered text is on disk.
   */
  render(count: number, job: (k: number) => RenderJob, format: RenderFormat): AsyncIterable<RenderedThread | null> {
    const paths = this.spool.paths;
    const batches: Array<{ size: number; reply: Promise<WorkerReply> }> = [];
    let next = 0;
    let inFlight = 0;
    const pump = () => {
      while (next < count && inFlight < this.slots.length * 2) {
        const jobs: RenderJob[] = [];
        for (let n = 0; next < count && n < RENDER_BATCH_MESSAGES; ) {
          const j = job(next++);
          jobs.push(j);
          n += j.messages.length;
        }
        inFlight++;
        const reply = this.send(this.least(), { kind: 'render', jobs, format, paths: [...paths] }, []);
        const settled = () => {
          inFlight--;
          pump();
        };
        reply.then(settled, settled);
        batches.push({ size: jobs.length, reply });
      }
    };
    pump();
    return {
      // An answered batch always has a successor sent (pump) by the time its awaiter resumes, until all are sent.
      [Symbol.asyncIterator]: async function* () {
        for (let b = batches.shift(); b; b = batches.shift()) {
          const r = await b.reply;
          const results = r.kind === 'render' ? r.results : [];
          for (let j = 0; j < b.size; j++) yield results[j] ?? null;
        }
      },
    };
  }

  async close(): Promise<void> {
    await Promise.all([...this.slots, ...(this.quarantine ? [this.quarantine] : [])].map((s) => s.worker.terminate()));
  }
}

function samePatch(a: AnchorJob, b: AnchorJob): boolean {
  return !!a.patch && !!b.patch && a.patch.file === b.patch.file && a.patch.offset === b.patch.offset;
}

function parseResults(r: WorkerReply): ParseResult[] {
  return r.kind === 'parse' ? r.results : [];
}

/** One transferable buffer holding a batch's messages back to back (one copy, one transfer). */
function parseRequest(batch: RawMessage[]): WorkerRequest {
  let total = 0;
  for (const m of batch) total += m.raw.length;
  const bytes = new Uint8Array(new ArrayBuffer(total));
  const items: Array<{ start: number; length: number; ref: RawMessage['ref'] }> = [];
  let at = 0;
  for (const m of batch) {
    bytes.set(m.raw, at);
    items.push({ start: at, length: m.raw.length, ref: m.ref });
    at += m.raw.length;
  }
  return { kind: 'parse', bytes, items };
}
