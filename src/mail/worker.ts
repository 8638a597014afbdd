// Worker thread: parses batches of raw messages into records (mailparser is CPU-bound;
// running it on every core is what makes large archives fast).
import { parentPort } from 'node:worker_threads';
import type { RawMessage } from '../model.js';
import { parseOne, type ParseResult } from './pool.js';

interface Job {
  id: number;
  items: Array<{ raw: Uint8Array; ref: RawMessage['ref'] }>;
}

parentPort!.on('message', async (job: Job) => {
  const out: ParseResult[] = [];
  for (const it of job.items) {
    out.push(await parseOne({ raw: Buffer.from(it.raw.buffer, it.raw.byteOffset, it.raw.byteLength), ref: it.ref }));
  }
  parentPort!.postMessage({ id: job.id, results: out });
});
