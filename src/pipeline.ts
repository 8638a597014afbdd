// The data flow, end to end for local runs:
//   sources -> mail (worker pool) -> spool + light index -> thread (JWZ) -> series
// then, one thread at a time: load records, anchor reply comments, hand to the caller
// (threads output, or rules -> review -> sinks). Memory holds the light index only.
import type { InputError, MessageRecord, Series, Thread } from './model.js';
import { readInputs } from './sources/index.js';
import { parseStream } from './mail/pool.js';
import { Spool, type SpoolHandle } from './store/spool.js';
import { buildThreads } from './thread/jwz.js';
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

/** A record without its heavy parts: what threading and series grouping need. */
function lighten(r: MessageRecord): MessageRecord {
  return {
    ...r,
    commitMessage: null,
    diff: r.diff ? { files: [], damage: [] } : null,
    blocks: [],
    trailers: [],
    warnings: [],
    to: [],
    cc: [],
  };
}

export async function loadCorpus(inputs: string[], opts: LoadOptions = {}): Promise<Corpus> {
  const errors: InputError[] = [];
  const onError = (e: InputError) => {
    errors.push(e);
    log.warn({ source: e.source }, e.message);
  };
  const spool = new Spool<MessageRecord>();
  const index = new Map<string, { light: MessageRecord; h: SpoolHandle }>();
  const stats: CorpusStats = { messages: 0, duplicates: 0, threads: 0, series: 0, patches: 0, errors: 0 };
  try {
    const raw = readInputs(inputs, { onError, stdin: opts.stdin });
    for await (const res of parseStream(raw, { workers: opts.workers })) {
      if (!res.ok) {
        onError(res.error);
        continue;
      }
      const r = res.record;
      stats.messages++;
      opts.onProgress?.(stats.messages);
      if (index.has(r.messageId)) {
        // Cross-posted or delivered twice: the first copy wins.
        stats.duplicates++;
        continue;
      }
      if (r.kind === 'patch') stats.patches++;
      index.set(r.messageId, { light: lighten(r), h: spool.append(r) });
    }
  } catch (e) {
    spool.close();
    throw e;
  }

  const lights = [...index.values()].map((v) => v.light);
  const { threads } = buildThreads(lights);
  const series = groupSeries(lights, threads);
  stats.threads = threads.length;
  stats.series = series.length;
  stats.errors = errors.length;

  const cache = new Map<string, MessageRecord>();
  const load = (id: string): MessageRecord | undefined => {
    const hit = cache.get(id);
    if (hit) return hit;
    const e = index.get(id);
    if (!e) return undefined;
    const r = spool.read(e.h);
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
