// The data flow, end to end for local runs:
//   sources -> mail (worker pool) -> spool + index on disk -> thread (JWZ)
//   -> anchoring of reply comments (worker pool) -> series
// then, one thread at a time: load records, attach the anchored comments, hand to the caller
// (threads output, or rules -> review -> sinks). For the threads output the workers do more
// (LoadOptions.renderOnWorkers): they anchor and render whole threads, written to the spool,
// while the main thread groups series; the main thread then only fills in series ids.
//
// Memory stays flat whatever the size of the input: records are written to the spool by the
// thread that parsed them and read back one thread at a time (only their small head is parsed
// unless a caller reads a diff or reply blocks, see mail/stored.ts), and everything kept per
// message (its Message-ID, thread parent, where its record and comments are, the fields series
// grouping reads) is in an SQLite file beside the spool (store/corpus-index.ts).
import { join } from 'node:path';
import type { Comment, InputError, MessageRecord, RawMessage, Series, Thread } from './model.js';
import { plainFilesBytes, readInputs } from './sources/index.js';
import { Pool } from './mail/pool.js';
import type { ParseResult, RecordSink } from './mail/jobs.js';
import { SpoolDir, SpoolReader, SpoolWriter } from './store/spool.js';
import { CorpusIndex, type StoredMessage } from './store/corpus-index.js';
import { groupSeriesOnDisk, groupSeriesSteps, seriesIdOf, seriesOnDisk } from './store/series-index.js';
import { assembleThread, threadSubject, type ThreadSkeleton } from './thread/assemble.js';
import { fillSeriesSlots, threadJson, threadText } from './sinks/threads.js';
import type { RenderFormat } from './mail/jobs.js';
import { readRecord } from './mail/stored.js';
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
  /** The threads in output order (by first date), each built from the index when read. */
  threads: ThreadList;
  /** The series in output order (by first date), read from the index a page at a time. */
  series: Iterable<Series>;
  /** Id of the series a message belongs to. */
  seriesOf(messageId: string): string | undefined;
  errors: InputError[];
  stats: CorpusStats;
  /** Full record of a message (read back from the spool). */
  load(messageId: string): MessageRecord | undefined;
  /** Assemble one thread: records attached, reply comments anchored, reply trailers merged. */
  thread(t: ThreadSkeleton): Thread;
  /**
   * Every thread as `patchvet threads` writes it, in output order: a JSON thread object (one
   * line) or the text tree. With worker threads (LoadOptions.renderOnWorkers) they render them.
   */
  threadTexts(format: RenderFormat): AsyncIterable<string>;
  /** Ends the run: removes the spool, stops the worker threads if any are left. */
  close(): void;
}

export interface LoadOptions {
  workers?: number;
  /**
   * Keep the worker threads for Corpus.threadTexts, which then anchors reply comments and
   * renders each thread on them while the main thread groups series: for a caller that writes
   * the threads output and nothing else. Without it (or without workers), comments are anchored
   * in advance and series grouped before loadCorpus returns.
   */
  renderOnWorkers?: boolean;
  stdin?: NodeJS.ReadableStream;
  onProgress?: (messages: number) => void;
}

/**
 * Inputs smaller than this (files only) are parsed on the main thread: starting two workers,
 * each loading mailparser, costs more (about 0.2 s of CPU) than parsing a patch series.
 */
const IN_PROCESS_BYTES = 1024 * 1024;

async function* parseHere(src: AsyncIterable<RawMessage>, sink: RecordSink): AsyncGenerator<ParseResult> {
  // Loaded only here: with worker threads, the main thread never parses, and mailparser,
  // its charset tables and the diff reader cost it ~27 MB.
  const { parseEachInto } = await import('./mail/jobs.js');
  yield* parseEachInto(src, sink);
}

export async function loadCorpus(inputs: string[], opts: LoadOptions = {}): Promise<Corpus> {
  const errors: InputError[] = [];
  const onError = (e: InputError) => {
    errors.push(e);
    log.warn({ source: e.source }, e.message);
  };
  const dir = new SpoolDir();
  let index: CorpusIndex | null = null;
  const stats: CorpusStats = { messages: 0, duplicates: 0, threads: 0, series: 0, patches: 0, errors: 0 };
  let pool: Pool | null = null;
  let reader: SpoolReader | null = null;
  try {
    index = new CorpusIndex(join(dir.dir, 'index.sqlite'));
    let workers = opts.workers;
    if (workers === undefined) {
      const bytes = await plainFilesBytes(inputs);
      if (bytes !== null && bytes < IN_PROCESS_BYTES) {
        workers = 0;
        log.debug({ bytes }, 'small input: parsing on the main thread, no worker threads');
      }
    }
    pool = Pool.create(dir, { workers });
    let local: RecordSink | null = null;
    if (!pool) {
      const f = dir.newFile();
      local = { file: f.file, writer: new SpoolWriter(f.path) };
    }
    try {
      const raw = readInputs(inputs, { onError, stdin: opts.stdin });
      for await (const res of pool ? pool.parse(raw) : parseHere(raw, local!)) {
        if (!res.ok) {
          onError(res.error);
          continue;
        }
        const r = res.light;
        stats.messages++;
        opts.onProgress?.(stats.messages);
        // Cross-posted or delivered twice: the first copy wins.
        if (!index.add(r)) {
          stats.duplicates++;
          continue;
        }
        if (r.kind === 'patch') stats.patches++;
      }
    } finally {
      local?.writer.close();
    }

    const t0 = performance.now();
    stats.threads = index.finish();
    const t1 = performance.now();
    if (pool && opts.renderOnWorkers) {
      log.debug({ threadsMs: Math.round(t1 - t0) }, 'index steps');
      stats.errors = errors.length;
      reader = new SpoolReader(dir.paths);
      const c = corpus(index, errors, stats, reader, dir, pool);
      pool = null;
      return c;
    }
    // Series grouping runs on the main thread: with workers, while they anchor reply comments.
    let seriesMs = 0;
    const group = () => {
      const s0 = performance.now();
      stats.series = groupSeriesOnDisk(index!);
      seriesMs = performance.now() - s0;
    };
    if (pool) {
      await anchorInAdvance(pool, index, group);
      await pool.close();
      pool = null;
    } else group();
    log.debug({ threadsMs: Math.round(t1 - t0), anchorAndSeriesMs: Math.round(performance.now() - t1), seriesMs: Math.round(seriesMs) }, 'index steps');
    stats.errors = errors.length;
    log.debug({ stats, memory: process.memoryUsage() }, 'corpus loaded');
    reader = new SpoolReader(dir.paths);
    return corpus(index, errors, stats, reader, dir, null);
  } catch (e) {
    reader?.close();
    index?.close();
    dir.close();
    throw e;
  } finally {
    await pool?.close();
  }
}

/**
 * Anchor every reply's comments on the workers, before any thread is read: it is the costly
 * part of thread assembly, and the main thread alone would spend as long on it as both cores
 * on parsing. The patch a reply answers is the one assembleThread would pick: the nearest
 * ancestor holding a patch with a diff.
 */
async function anchorInAdvance(pool: Pool, index: CorpusIndex, meanwhile: () => void): Promise<void> {
  const n = index.prepareAnchors();
  let open = false;
  try {
    await pool.anchor(
      n,
      (k) => index.anchorJob(k),
      (k, t) => index.setComments(k, t),
      // The first batches are out: group series (its own transactions), then one for the comments.
      () => {
        meanwhile();
        index.begin();
        open = true;
      },
    );
  } finally {
    if (open) index.commit();
  }
}

/**
 * One thread of the corpus, read from the index when asked for (threads are handed to the
 * caller one at a time; keeping them all built would hold every message's entry at once).
 */
class ThreadView implements ThreadSkeleton {
  constructor(
    private readonly k: number,
    private readonly skeleton: (k: number) => ThreadSkeleton,
  ) {}

  get root(): string {
    return this.skeleton(this.k).root;
  }

  get rootMissing(): boolean {
    return this.skeleton(this.k).rootMissing;
  }

  get subject(): string {
    return this.skeleton(this.k).subject;
  }

  get messages(): ThreadSkeleton['messages'] {
    return this.skeleton(this.k).messages;
  }

  toJSON(): ThreadSkeleton {
    return { root: this.root, rootMissing: this.rootMissing, subject: this.subject, messages: this.messages };
  }
}

/** The corpus' threads in output order, built one at a time from the index. */
export class ThreadList implements Iterable<ThreadSkeleton> {
  constructor(
    readonly length: number,
    private readonly view: (k: number) => ThreadSkeleton,
  ) {}

  at(k: number): ThreadSkeleton | undefined {
    if (k < 0) k += this.length;
    return k >= 0 && k < this.length ? this.view(k) : undefined;
  }

  *[Symbol.iterator](): Iterator<ThreadSkeleton> {
    for (let k = 0; k < this.length; k++) yield this.view(k);
  }
}

/** Give the event loop a turn (worker threads' answers) at most this often while grouping series. */
const YIELD_MS = 5;

function corpus(index: CorpusIndex, errors: InputError[], stats: CorpusStats, reader: SpoolReader, dir: SpoolDir, pool: Pool | null): Corpus {
  // Series are grouped before loadCorpus returns, unless the workers are kept for threadTexts:
  // then while they render, or else on first use.
  let grouped = pool === null;
  const groupNow = () => {
    if (grouped) return;
    grouped = true;
    stats.series = groupSeriesOnDisk(index);
  };
  const groupMeanwhile = async () => {
    if (grouped) return;
    grouped = true;
    const steps = groupSeriesSteps(index);
    let since = performance.now();
    for (;;) {
      const r = steps.next();
      if (r.done) {
        stats.series = r.value;
        return;
      }
      if (performance.now() - since >= YIELD_MS) {
        await new Promise<void>((resolve) => setImmediate(resolve));
        since = performance.now();
      }
    }
  };
  // Index entries of the thread being read: a message's record and its comments are asked for in turn.
  const entries = new Map<string, StoredMessage | undefined>();
  const entry = (id: string): StoredMessage | undefined => {
    if (entries.has(id)) return entries.get(id);
    if (entries.size >= 512) entries.clear();
    const m = index.message(id);
    entries.set(id, m);
    return m;
  };
  const cache = new Map<string, MessageRecord>();
  const load = (id: string): MessageRecord | undefined => {
    const hit = cache.get(id);
    if (hit) return hit;
    const m = entry(id);
    if (!m) return undefined;
    const r = readRecord(reader, m.at);
    if (cache.size > 256) cache.delete(cache.keys().next().value as string);
    cache.set(id, r);
    return r;
  };

  /** Comments anchored in advance; null: the message has no reply blocks; undefined: anchor now. */
  const comments = (id: string): Comment[] | null | undefined => {
    const m = entry(id);
    if (!m) return undefined;
    if (!m.hasBlocks) return null;
    if (!m.comments) return undefined;
    return JSON.parse(reader.text(m.comments.file, m.comments.offset, m.comments.length)) as Comment[];
  };

  // The skeleton of the thread being read (its messages and subject are asked for in turn).
  let lastK = -1;
  let last: ThreadSkeleton | null = null;
  const skeleton = (k: number): ThreadSkeleton => {
    if (k !== lastK || !last) {
      const t = index.skeleton(index.rootOf(k));
      t.subject = threadSubject(t.messages, load);
      last = t;
      lastK = k;
    }
    return last;
  };
  let seriesIds: ((id: string) => string | undefined) | null = null;
  const seriesOf = (id: string): string | undefined => {
    groupNow();
    return (seriesIds ??= seriesIdOf(index))(id);
  };
  const thread = (t: ThreadSkeleton): Thread => assembleThread(t, load, comments);
  const renderHere = (k: number, format: RenderFormat): string => {
    const t = thread(new ThreadView(k, skeleton));
    return format === 'text' ? threadText(t) + '\n' : JSON.stringify(threadJson(t, seriesOf));
  };

  async function* threadTexts(format: RenderFormat): AsyncGenerator<string> {
    if (!pool) {
      for (let k = 0; k < stats.threads; k++) yield renderHere(k, format);
      return;
    }
    const p = pool;
    try {
      const rendered = p.render(stats.threads, (k) => index.renderJob(k), format);
      await groupMeanwhile();
      let k = 0;
      for await (const at of rendered) {
        if (!at) yield renderHere(k, format);
        else {
          const text = reader.text(at.file, at.offset, at.length);
          yield at.ids ? fillSeriesSlots(text, JSON.parse(reader.text(at.ids.file, at.ids.offset, at.ids.length)) as string[], seriesOf) : text;
        }
        k++;
      }
    } finally {
      pool = null;
      await p.close();
    }
  }

  return {
    threads: new ThreadList(stats.threads, (k) => new ThreadView(k, skeleton)),
    series: {
      [Symbol.iterator]: () => {
        groupNow();
        return seriesOnDisk(index);
      },
    },
    seriesOf,
    errors,
    get stats() {
      groupNow();
      return stats;
    },
    load,
    thread,
    threadTexts,
    close: () => {
      // Kept for threadTexts and never used: stopping the threads needs no wait.
      void pool?.close();
      pool = null;
      reader.close();
      index.close();
      dir.close();
    },
  };
}
