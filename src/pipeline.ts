// The data flow, end to end for local runs:
//   sources -> mail (worker pool) -> spool + light index -> thread (JWZ) -> series
// then, one thread at a time: load records, anchor reply comments, hand to the caller
// (threads output, or rules -> review -> sinks). Memory holds the light index only.
import type { InputError, MessageRecord, Series, Thread } from './model.js';
import { readInputs } from './sources/index.js';
import { parseStream, candidateRecord } from './mail/pool.js';
import { Spool, type SpoolHandle } from './store/spool.js';
import { Threader } from './thread/jwz.js';
import { groupSeries } from './thread/series.js';
import { assembleThread, type ThreadSkeleton } from './thread/assemble.js';
import { log } from './log.js';

export interface CorpusStats {
  messages: number;
  duplicates: number;
  threads: number;
  series: number;
  patches: number;
  errors: number;
}

export interface Corpus {
  threads: ThreadSkeleton[];
  series: Series[];
  errors: InputError[];
  stats: CorpusStats;
  /** Full record of a message (read back from the spool). */
  load(messageId: string): MessageRecord | undefined;
  /** Assemble one thread: records attached, reply comments anchored, reply trailers merged. */
  thread(t: ThreadSkeleton): Thread;
  close(): void;
}

export interface LoadOptions {
  workers?: number;
  stdin?: NodeJS.ReadableStream;
  onProgress?: (messages: number) => void;
}

export async function loadCorpus(inputs: string[], opts: LoadOptions = {}): Promise<Corpus> {
  const errors: InputError[] = [];
  const onError = (e: InputError) => {
    errors.push(e);
    log.warn({ source: e.source }, e.message);
  };
  const spool = new Spool<MessageRecord>();
  // messageId -> where its full record is in the spool. Threading is incremental, and only
  // patch/cover candidates keep a (slim) record for series grouping.
  const index = new Map<string, SpoolHandle>();
  const threader = new Threader();
  const candidates: MessageRecord[] = [];
  const stats: CorpusStats = { messages: 0, duplicates: 0, threads: 0, series: 0, patches: 0, errors: 0 };
  try {
    const raw = readInputs(inputs, { onError, stdin: opts.stdin });
    for await (const res of parseStream(raw, { workers: opts.workers })) {
      if (!res.ok) {
        onError(res.error);
        continue;
      }
      const r = res.light;
      stats.messages++;
      opts.onProgress?.(stats.messages);
      if (index.has(r.messageId)) {
        // Cross-posted or delivered twice: the first copy wins.
        stats.duplicates++;
        continue;
      }
      if (r.kind === 'patch') stats.patches++;
      index.set(r.messageId, spool.appendJson(res.json));
      threader.add(r);
      if (r.candidate) candidates.push(candidateRecord(r.candidate));
    }
  } catch (e) {
    spool.close();
    throw e;
  }

  const threads = threader.threads();
  const series = groupSeries(candidates, threads);
  candidates.length = 0;
  stats.threads = threads.length;
  stats.series = series.length;
  stats.errors = errors.length;
  log.debug({ stats, memory: process.memoryUsage() }, 'corpus loaded');

  const cache = new Map<string, MessageRecord>();
  const load = (id: string): MessageRecord | undefined => {
    const hit = cache.get(id);
    if (hit) return hit;
    const h = index.get(id);
    if (!h) return undefined;
    const r = spool.read(h);
    if (cache.size > 256) cache.delete(cache.keys().next().value as string);
    cache.set(id, r);
    return r;
  };

  return {
    threads,
    series,
    errors,
    stats,
    load,
    thread: (t) => assembleThread(t, load),
    close: () => spool.close(),
  };
}
