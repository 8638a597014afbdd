// Worker thread: parses batches of raw messages into records, anchors reply comments and
// renders threads (see jobs.ts), appending what it makes to this worker's own spool file. Each
// request is answered once its output is written, so the main thread may read it as soon as it
// has the answer.
import { parentPort, workerData } from 'node:worker_threads';
import { getHeapStatistics } from 'node:v8';
import type { ParseResult } from './jobs.js';
import { parseEachInto, runAnchorJobs, runRenderJobs, type RecordSink } from './jobs.js';
import type { WorkerReady, WorkerReply, WorkerRequest, WorkerSetup } from './pool.js';
import { SpoolReader, SpoolWriter } from '../store/spool.js';

const setup = workerData as WorkerSetup;
const sink: RecordSink = { file: setup.spoolFile, writer: new SpoolWriter(setup.spoolPath) };
let reader: SpoolReader | null = null;

// Fault injection for the pool's crash-recovery tests: a mail containing this marker kills the
// worker parsing it; so does rendering a thread whose root Message-ID contains the other one.
const CRASH_MARKER = process.env.PATCHVET_TEST_WORKER_CRASH_MARKER;
const RENDER_CRASH_MARKER = process.env.PATCHVET_TEST_RENDER_CRASH_MARKER;

// Requests are handled one at a time, in the order they came: parsing awaits mailparser, and a
// second request started meanwhile would interleave with the first and could be answered
// before it (the pool matches answers to requests by order).
let queue: Promise<void> = Promise.resolve();
parentPort!.on('message', (req: WorkerRequest) => {
  queue = queue.then(() => handle(req));
});
// The modules loaded (a thread that dies before this is a start-up failure, not a bad mail).
parentPort!.postMessage({ kind: 'ready', heapLimitMb: Math.round(getHeapStatistics().heap_size_limit / 1048576) } satisfies WorkerReady);

async function handle(req: WorkerRequest): Promise<void> {
  let reply: WorkerReply;
  if (req.kind === 'parse') {
    const results: ParseResult[] = [];
    const all = Buffer.from(req.bytes.buffer, req.bytes.byteOffset, req.bytes.byteLength);
    const msgs = req.items.map((it) => {
      const raw = all.subarray(it.start, it.start + it.length);
      if (CRASH_MARKER && raw.includes(CRASH_MARKER)) throw new Error('injected worker crash');
      return { raw, ref: it.ref };
    });
    for await (const r of parseEachInto(msgs, sink)) results.push(r);
    reply = { kind: 'parse', results };
  } else {
    // Other workers' files grow during parsing: open them once parsing is over (anchoring and rendering start after it).
    if (!reader) reader = new SpoolReader(req.paths);
    else reader.update(req.paths);
    if (RENDER_CRASH_MARKER && req.kind === 'render' && req.jobs.some((j) => j.root.includes(RENDER_CRASH_MARKER))) {
      throw new Error('injected worker crash');
    }
    reply =
      req.kind === 'anchor'
        ? { kind: 'anchor', results: runAnchorJobs(req.jobs, reader, sink) }
        : { kind: 'render', results: runRenderJobs(req.jobs, req.format, reader, sink) };
  }
  sink.writer.flush();
  parentPort!.postMessage(reply);
}
