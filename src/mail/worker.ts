// Worker thread: parses batches of raw messages into records (mailparser is CPU-bound;
// running it on every core is what makes large archives fast).
import { parentPort } from 'node:worker_threads';
import type { RawMessage } from '../model.js';
import { parseOne, type ParseResult } from './pool.js';

interface Job {
  items: Array<{ raw: Uint8Array; ref: RawMessage['ref'] }>;
}

// Fault injection for the pool's crash-recovery test: a mail containing this marker kills the worker.
const CRASH_MARKER = process.env.PATCHVET_TEST_WORKER_CRASH_MARKER;

parentPort!.on('message', async (job: Job) => {
  const out: ParseResult[] = [];
  for (const it of job.items) {
    if (CRASH_MARKER && Buffer.from(it.raw.buffer, it.raw.byteOffset, it.raw.byteLength).includes(CRASH_MARKER)) {
      throw new Error('injected worker crash');
    }
    out.push(await parseOne({ raw: Buffer.from(it.raw.buffer, it.raw.byteOffset, it.raw.byteLength), ref: it.ref }));
  }
  parentPort!.postMessage({ results: out });
});
