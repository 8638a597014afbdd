// Parse a stream of raw messages into records, in order, on a pool of worker threads
// (in-process when workers are off or the compiled worker is not available, e.g. under jest).
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { InputError, MessageRecord, RawMessage } from '../model.js';
import { recordFromRaw } from './record.js';

export type ParseResult = { ok: true; record: MessageRecord } | { ok: false; error: InputError };

export async function parseOne(msg: RawMessage): Promise<ParseResult> {
  try {
    return { ok: true, record: await recordFromRaw(msg) };
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
  yield* parallel(src, url, n);
}

async function* parallel(src: AsyncIterable<RawMessage>, url: URL, n: number): AsyncGenerator<ParseResult> {
  const workers = Array.from({ length: n }, () => new Worker(url, { resourceLimits: { maxYoungGenerationSizeMb: 16 } }));
  const inflight = new Map<number, { resolve: (r: ParseResult[]) => void; reject: (e: Error) => void }>();
  const results = new Map<number, Promise<ParseResult[]>>();
  const load = new Array<number>(n).fill(0);
  let failure: Error | null = null;
  workers.forEach((w, i) => {
    w.on('message', (msg: { id: number; results: ParseResult[] }) => {
      load[i]--;
      inflight.get(msg.id)?.resolve(msg.results);
      inflight.delete(msg.id);
    });
    w.on('error', (e) => {
      failure = e;
      for (const p of inflight.values()) p.reject(e);
      inflight.clear();
    });
  });
  let nextId = 0;
  let nextOut = 0;
  const send = (items: RawMessage[]) => {
    const id = nextId++;
    let wi = 0;
    for (let i = 1; i < n; i++) if (load[i] < load[wi]) wi = i;
    load[wi]++;
    const transfer: ArrayBuffer[] = [];
    const payload = items.map((m) => {
      const u = new Uint8Array(m.raw.length);
      u.set(m.raw);
      transfer.push(u.buffer);
      return { raw: u, ref: m.ref };
    });
    results.set(
      id,
      new Promise<ParseResult[]>((resolve, reject) => {
        inflight.set(id, { resolve, reject });
      }),
    );
    workers[wi].postMessage({ id, items: payload }, transfer);
  };
  try {
    let batch: RawMessage[] = [];
    let bytes = 0;
    for await (const m of src) {
      if (failure) throw failure;
      batch.push(m);
      bytes += m.raw.length;
      if (batch.length >= BATCH_MESSAGES || bytes >= BATCH_BYTES) {
        send(batch);
        batch = [];
        bytes = 0;
        // Keep at most two jobs per worker in flight: bounded memory, busy cores.
        while (nextId - nextOut >= n * 2) {
          for (const r of await results.get(nextOut)!) yield r;
          results.delete(nextOut++);
        }
      }
    }
    if (batch.length) send(batch);
    while (nextOut < nextId) {
      for (const r of await results.get(nextOut)!) yield r;
      results.delete(nextOut++);
    }
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}
