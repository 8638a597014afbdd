// The data flow, end to end for local runs:
//   sources -> mail (worker pool) -> spool + light index -> thread (JWZ)
//   -> anchoring of reply comments (worker pool) -> series
// then, one thread at a time: load records, attach the anchored comments, hand to the caller
// (threads output, or rules -> review -> sinks).
//
// Memory holds only a compact index: per Message-ID a slot in the Threader's typed arrays and
// in the RecordTable below (where the record and its comments are in the spool, its kind),
// plus the few fields series grouping reads of patches and cover letters. Records are written
// to the spool by the thread that parsed them and read back one thread at a time, and only
// their small head is parsed unless a caller reads a diff or reply blocks (see mail/stored.ts).
import type { Address, Comment, InputError, MessageRecord, RawMessage, Series, SeriesMarker, Thread } from './model.js';
import { plainFilesBytes, readInputs } from './sources/index.js';
import { Pool } from './mail/pool.js';
import type { AnchorJob, CandidateFields, LightRecord, ParseResult, RecordSink, StoredAt, StoredText } from './mail/jobs.js';
import { decodeRecord } from './mail/stored.js';
import { SpoolDir, SpoolReader, SpoolWriter } from './store/spool.js';
import { Threader } from './thread/jwz.js';
import { groupSeries, type ThreadParents } from './thread/series.js';
import { CHUNK, Float64Column, Int32Column, Uint16Column, Uint32Column, Uint8Column } from './thread/columns.js';
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

const KINDS: ReadonlyArray<MessageRecord['kind']> = ['patch', 'cover', 'reply', 'other'];
/**
 * Inputs smaller than this (files only) are parsed on the main thread: starting two workers,
 * each loading mailparser, costs more (about 0.2 s of CPU) than parsing a patch series.
 */
const IN_PROCESS_BYTES = 1024 * 1024;
const HAS_DIFF = 1;
const HAS_BLOCKS = 2;

/**
 * Per Threader container: where its record is in the spool, its kind, and where the anchored
 * comments of a reply are. Columns of typed-array chunks: about 40 bytes per message.
 */
class RecordTable {
  readonly file = new Uint16Column();
  readonly offset = new Float64Column();
  readonly headLength = new Uint32Column();
  readonly restLength = new Uint32Column();
  readonly kind = new Uint8Column();
  readonly flags = new Uint8Column();
  /** Comments: file + 1 (0 = not anchored in advance), offset, length. */
  readonly cFile = new Uint16Column();
  readonly cOffset = new Float64Column();
  readonly cLength = new Uint32Column();
  /** Containers below this have room in every column. */
  private n = 0;

  private ensure(c: number): void {
    if (c < this.n) return;
    this.n = Math.ceil((c + 1) / CHUNK) * CHUNK;
    for (const col of [this.file, this.offset, this.headLength, this.restLength, this.kind, this.flags, this.cFile, this.cOffset, this.cLength]) {
      col.ensure(this.n);
    }
  }

  set(c: number, at: StoredAt, kind: MessageRecord['kind'], flags: number): void {
    this.ensure(c);
    this.file.set(c, at.file);
    this.offset.set(c, at.offset);
    this.headLength.set(c, at.headLength);
    this.restLength.set(c, at.restLength);
    this.kind.set(c, KINDS.indexOf(kind));
    this.flags.set(c, flags);
  }

  /** Flags of container c (0 for a ghost never set). */
  flagsOf(c: number): number {
    return c < this.n ? this.flags.get(c) : 0;
  }

  at(c: number): StoredAt {
    return { file: this.file.get(c), offset: this.offset.get(c), headLength: this.headLength.get(c), restLength: this.restLength.get(c) };
  }

  setComments(c: number, t: StoredText): void {
    this.cFile.set(c, t.file + 1);
    this.cOffset.set(c, t.offset);
    this.cLength.set(c, t.length);
  }
}

/**
 * Series candidates (patches and cover letters), in typed arrays: what groupSeries reads of
 * each, about 100 bytes a candidate (its clean subject, mostly). Senders and prefix lists are
 * shared: a list has few of them.
 */
class CandidateTable {
  private n = 0;
  /** Threader container. */
  readonly c = new Int32Column();
  private readonly date = new Float64Column();
  /** kind index | HAS_DIFF << 2 | ... (see add) */
  private readonly bits = new Uint16Column();
  private readonly version = new Float64Column();
  /** Series index and total; -1 for null. */
  private readonly index = new Int32Column();
  private readonly total = new Int32Column();
  private readonly from = new Int32Column();
  /** -1: the author is the sender. */
  private readonly author = new Int32Column();
  private readonly prefixes = new Int32Column();
  private readonly targets = new Int32Column();
  clean: string[] = [];
  private addresses: Address[] = [];
  private addressIds = new Map<string, number>();
  private lists: string[][] = [];
  private listIds = new Map<string, number>();
  /** Dates that are not toISOString() text, by candidate. */
  private odd = new Map<number, string>();

  get size(): number {
    return this.n;
  }

  private address(a: Address): number {
    const k = `${a.name}\u0000${a.address}`;
    let id = this.addressIds.get(k);
    if (id === undefined) {
      id = this.addresses.push(a) - 1;
      this.addressIds.set(k, id);
    }
    return id;
  }

  private list(l: string[]): number {
    const k = l.join('\u0000');
    let id = this.listIds.get(k);
    if (id === undefined) {
      id = this.lists.push(l) - 1;
      this.listIds.set(k, id);
    }
    return id;
  }

  add(c: number, r: LightRecord, f: CandidateFields): void {
    const i = this.n++;
    if (i % CHUNK === 0) {
      for (const col of [this.c, this.date, this.bits, this.version, this.index, this.total, this.from, this.author, this.prefixes, this.targets]) {
        col.ensure(i + CHUNK);
      }
    }
    const ps = f.parsedSubject;
    const s = ps.series;
    this.c.set(i, c);
    // Record dates are toISOString() text or null, so the number gives the same text back
    // (kept aside otherwise).
    this.date.set(i, r.date === null ? NaN : Date.parse(r.date));
    if (r.date !== null && (Number.isNaN(this.date.get(i)) || new Date(this.date.get(i)).toISOString() !== r.date)) {
      this.odd.set(i, r.date);
    }
    this.bits.set(i, KINDS.indexOf(r.kind) |
      (r.hasDiff ? 4 : 0) |
      (f.diffstat ? 8 : 0) |
      (f.automated ? 16 : 0) |
      (ps.reply ? 32 : 0) |
      (ps.forward ? 64 : 0) |
      (s ? 128 : 0) |
      (s?.rfc ? 256 : 0) |
      (s?.resend ? 512 : 0));
    this.version.set(i, s ? s.version : 0);
    this.index.set(i, s && s.index !== null ? s.index : -1);
    this.total.set(i, s && s.total !== null ? s.total : -1);
    this.from.set(i, this.address(f.from));
    this.author.set(i, f.author ? this.address(f.author) : -1);
    this.prefixes.set(i, s ? this.list(s.prefixes) : -1);
    this.targets.set(i, s ? this.list(s.targets) : -1);
    this.clean[i] = ps.clean;
  }

  /** A MessageRecord shell for groupSeries: everything it does not read points at shared constants. */
  record(i: number, id: string): MessageRecord {
    const b = this.bits.get(i);
    const from = this.addresses[this.from.get(i)];
    const series: SeriesMarker | null =
      b & 128
        ? {
            version: this.version.get(i),
            index: this.index.get(i) < 0 ? null : this.index.get(i),
            total: this.total.get(i) < 0 ? null : this.total.get(i),
            rfc: (b & 256) !== 0,
            resend: (b & 512) !== 0,
            prefixes: this.lists[this.prefixes.get(i)],
            targets: this.lists[this.targets.get(i)],
          }
        : null;
    const d = this.date.get(i);
    return {
      messageId: id,
      ref: NO_REF,
      inReplyTo: null,
      references: NONE,
      from,
      author: this.author.get(i) < 0 ? from : this.addresses[this.author.get(i)],
      date: this.odd.get(i) ?? (Number.isNaN(d) ? null : new Date(d).toISOString()),
      subject: '',
      parsedSubject: { clean: this.clean[i], reply: (b & 32) !== 0, forward: (b & 64) !== 0, series },
      kind: KINDS[b & 3],
      listIds: NONE,
      to: NONE,
      cc: NONE,
      commitMessage: null,
      diff: b & 4 ? NO_DIFF : null,
      files: NONE,
      diffstat: (b & 8) !== 0,
      trailers: NONE,
      blocks: NONE,
      whitespaceDamaged: false,
      damage: NONE,
      automated: (b & 16) !== 0,
      warnings: NONE,
    };
  }
}

const NONE: never[] = [];
const NO_DIFF = { files: NONE, damage: NONE };
const NO_REF = { source: '', file: '', offset: 0, length: 0 };

async function* parseHere(src: AsyncIterable<RawMessage>, sink: RecordSink): AsyncGenerator<ParseResult> {
  // Loaded only here: with worker threads, the main thread never parses, and mailparser,
  // its charset tables and the diff reader cost it ~27 MB.
  const { parseInto } = await import('./mail/jobs.js');
  for await (const m of src) {
    yield await parseInto(m, sink);
  }
}

export async function loadCorpus(inputs: string[], opts: LoadOptions = {}): Promise<Corpus> {
  const errors: InputError[] = [];
  const onError = (e: InputError) => {
    errors.push(e);
    log.warn({ source: e.source }, e.message);
  };
  const dir = new SpoolDir();
  const threader = new Threader({ subjects: false });
  const table = new RecordTable();
  let candidates: CandidateTable | null = new CandidateTable();
  const stats: CorpusStats = { messages: 0, duplicates: 0, threads: 0, series: 0, patches: 0, errors: 0 };
  let pool: Pool | null = null;
  let reader: SpoolReader | null = null;
  let roots: Int32Array;
  try {
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
        if (!threader.add({ messageId: r.messageId, inReplyTo: r.inReplyTo, references: r.references, date: r.date, subject: '' })) {
          stats.duplicates++;
          continue;
        }
        if (r.kind === 'patch') stats.patches++;
        const c = threader.indexOf(r.messageId.trim());
        table.set(c, r.at, r.kind, (r.hasDiff ? HAS_DIFF : 0) | (r.hasBlocks ? HAS_BLOCKS : 0));
        if (r.candidate) candidates!.add(c, r, r.candidate);
      }
    } finally {
      local?.writer.close();
    }

    roots = threader.roots();
    // Anchoring first, then the workers go: series grouping is the main thread's one large
    // transient allocation, better made without two worker heaps alongside.
    if (pool) {
      await anchorInAdvance(pool, threader, table);
      await pool.close();
      pool = null;
    }
    const parents: ThreadParents = {
      parent: (id) => {
        const c = threader.indexOf(id);
        if (c < 0) return undefined;
        const p = threader.parentOf(c);
        return p < 0 ? null : threader.idOf(p);
      },
      ghost: (id) => {
        const c = threader.indexOf(id);
        return c >= 0 && !threader.hasMessage(c);
      },
    };
    const cands = candidates!;
    const shells: MessageRecord[] = new Array(cands.size);
    for (let i = 0; i < cands.size; i++) shells[i] = cands.record(i, threader.idOf(cands.c.get(i)));
    candidates = null;
    const series = groupSeries(shells, parents);
    shells.length = 0;
    stats.threads = roots.length;
    stats.series = series.length;
    stats.errors = errors.length;
    log.debug({ stats, memory: process.memoryUsage() }, 'corpus loaded');
    reader = new SpoolReader(dir.paths);
    return corpus(threader, table, roots, series, errors, stats, reader, dir);
  } catch (e) {
    reader?.close();
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
async function anchorInAdvance(pool: Pool, threader: Threader, table: RecordTable): Promise<void> {
  let replies = new Int32Array(1024);
  let patches = new Int32Array(1024);
  let n = 0;
  for (let c = 0; c < threader.size; c++) {
    if (!threader.hasMessage(c) || !(table.flagsOf(c) & HAS_BLOCKS)) continue;
    let p = threader.parentOf(c);
    while (p >= 0 && !(threader.hasMessage(p) && KINDS[table.kind.get(p)] === 'patch' && table.flagsOf(p) & HAS_DIFF)) {
      p = threader.parentOf(p);
    }
    if (n === replies.length) {
      const r = new Int32Array(n * 2);
      r.set(replies);
      replies = r;
      const q = new Int32Array(n * 2);
      q.set(patches);
      patches = q;
    }
    replies[n] = c;
    patches[n] = p;
    n++;
  }
  // Replies to the same patch together: the worker parses that patch's diff once.
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  order.sort((a, b) => patches[a] - patches[b] || replies[a] - replies[b]);
  await pool.anchor(
    n,
    (k): AnchorJob => {
      const i = order[k];
      return { reply: table.at(replies[i]), patch: patches[i] >= 0 ? table.at(patches[i]) : null };
    },
    (k, t) => table.setComments(replies[order[k]], t),
  );
}

/**
 * One thread of the corpus, read from the index when asked for (threads are handed to the
 * caller one at a time; keeping them all built would hold every message's entry at once).
 */
class ThreadView implements ThreadSkeleton {
  constructor(
    private readonly at: number,
    private readonly threader: Threader,
    private readonly skeleton: (root: number) => { messages: ThreadSkeleton['messages']; subject: string },
  ) {}

  get root(): string {
    return this.threader.idOf(this.at);
  }

  get rootMissing(): boolean {
    return !this.threader.hasMessage(this.at);
  }

  get subject(): string {
    return this.skeleton(this.at).subject;
  }

  get messages(): ThreadSkeleton['messages'] {
    return this.skeleton(this.at).messages;
  }

  toJSON(): ThreadSkeleton {
    return { root: this.root, rootMissing: this.rootMissing, subject: this.subject, messages: this.messages };
  }
}

function corpus(
  threader: Threader,
  table: RecordTable,
  roots: Int32Array,
  series: Series[],
  errors: InputError[],
  stats: CorpusStats,
  reader: SpoolReader,
  dir: SpoolDir,
): Corpus {
  const cache = new Map<string, MessageRecord>();
  const load = (id: string): MessageRecord | undefined => {
    const hit = cache.get(id);
    if (hit) return hit;
    const c = threader.indexOf(id);
    if (c < 0 || !threader.hasMessage(c)) return undefined;
    const file = table.file.get(c);
    const offset = table.offset.get(c);
    const headLength = table.headLength.get(c);
    const restLength = table.restLength.get(c);
    const r = decodeRecord(reader.text(file, offset, headLength), () => reader.text(file, offset + headLength, restLength));
    if (cache.size > 256) cache.delete(cache.keys().next().value as string);
    cache.set(id, r);
    return r;
  };

  /** Comments anchored in advance; null: the message has no reply blocks; undefined: anchor now. */
  const comments = (id: string): Comment[] | null | undefined => {
    const c = threader.indexOf(id);
    if (c < 0) return undefined;
    if (!(table.flagsOf(c) & HAS_BLOCKS)) return null;
    const f = table.cFile.get(c);
    if (f === 0) return undefined;
    return JSON.parse(reader.text(f - 1, table.cOffset.get(c), table.cLength.get(c))) as Comment[];
  };

  // The skeleton of the thread being read (its messages and subject are asked for in turn).
  let lastRoot = -1;
  let last: { messages: ThreadSkeleton['messages']; subject: string } | null = null;
  const skeleton = (root: number) => {
    if (root !== lastRoot || !last) {
      const t = threader.thread(root);
      const first = t.messages.find((m) => !m.ghost);
      const subject = first ? (load(first.messageId)?.subject ?? '') : '';
      last = { messages: t.messages, subject };
      lastRoot = root;
    }
    return last;
  };
  const threads: ThreadSkeleton[] = Array.from(roots, (root) => new ThreadView(root, threader, skeleton));

  return {
    threads,
    series,
    errors,
    stats,
    load,
    thread: (t) => assembleThread(t, load, comments),
    close: () => {
      reader.close();
      dir.close();
    },
  };
}
