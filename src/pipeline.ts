// The data flow, end to end for local runs:
//   sources -> mail (worker pool) -> spool + light index -> thread (JWZ) -> series
//   -> anchoring of reply comments (worker pool)
// then, one thread at a time: load records, attach the anchored comments, hand to the caller
// (threads output, or rules -> review -> sinks).
//
// Memory holds only a compact index: per Message-ID a slot in the Threader's typed arrays and
// in the RecordTable below (where the record and its comments are in the spool, its kind),
// plus the few fields series grouping reads of patches and cover letters. Records are written
// to the spool by the thread that parsed them and read back one thread at a time, and only
// their small head is parsed unless a caller reads a diff or reply blocks (see mail/stored.ts).
import type { Address, Comment, InputError, MessageRecord, RawMessage, Series } from './model.js';
import { readInputs } from './sources/index.js';
import { Pool } from './mail/pool.js';
import { parseInto, type AnchorJob, type CandidateFields, type ParseResult, type RecordSink, type StoredAt, type StoredText } from './mail/jobs.js';
import { decodeRecord } from './mail/stored.js';
import { SpoolDir, SpoolReader, SpoolWriter } from './store/spool.js';
import { Threader } from './thread/jwz.js';
import { groupSeries, type ThreadParents } from './thread/series.js';
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
  thread(t: ThreadSkeleton): import('./model.js').Thread;
  close(): void;
}

export interface LoadOptions {
  workers?: number;
  stdin?: NodeJS.ReadableStream;
  onProgress?: (messages: number) => void;
}

const KINDS: ReadonlyArray<MessageRecord['kind']> = ['patch', 'cover', 'reply', 'other'];
const HAS_DIFF = 1;
const HAS_BLOCKS = 2;

/**
 * Per Threader container: where its record is in the spool, its kind, and where the anchored
 * comments of a reply are. Typed arrays, grown by doubling: about 40 bytes per message.
 */
class RecordTable {
  private cap = 0;
  file = new Uint16Array(0);
  offset = new Float64Array(0);
  headLength = new Uint32Array(0);
  restLength = new Uint32Array(0);
  kind = new Uint8Array(0);
  flags = new Uint8Array(0);
  /** Comments: file + 1 (0 = not anchored in advance), offset, length. */
  cFile = new Uint16Array(0);
  cOffset = new Float64Array(0);
  cLength = new Uint32Array(0);

  private ensure(c: number): void {
    if (c < this.cap) return;
    let cap = Math.max(1024, this.cap);
    while (cap <= c) cap *= 2;
    const grow = <T extends Uint8Array | Uint16Array | Uint32Array | Float64Array>(a: T, make: (n: number) => T): T => {
      const b = make(cap);
      b.set(a);
      return b;
    };
    this.file = grow(this.file, (n) => new Uint16Array(n));
    this.offset = grow(this.offset, (n) => new Float64Array(n));
    this.headLength = grow(this.headLength, (n) => new Uint32Array(n));
    this.restLength = grow(this.restLength, (n) => new Uint32Array(n));
    this.kind = grow(this.kind, (n) => new Uint8Array(n));
    this.flags = grow(this.flags, (n) => new Uint8Array(n));
    this.cFile = grow(this.cFile, (n) => new Uint16Array(n));
    this.cOffset = grow(this.cOffset, (n) => new Float64Array(n));
    this.cLength = grow(this.cLength, (n) => new Uint32Array(n));
    this.cap = cap;
  }

  set(c: number, at: StoredAt, kind: MessageRecord['kind'], flags: number): void {
    this.ensure(c);
    this.file[c] = at.file;
    this.offset[c] = at.offset;
    this.headLength[c] = at.headLength;
    this.restLength[c] = at.restLength;
    this.kind[c] = KINDS.indexOf(kind);
    this.flags[c] = flags;
  }

  at(c: number): StoredAt {
    return { file: this.file[c], offset: this.offset[c], headLength: this.headLength[c], restLength: this.restLength[c] };
  }

  setComments(c: number, t: StoredText): void {
    this.cFile[c] = t.file + 1;
    this.cOffset[c] = t.offset;
    this.cLength[c] = t.length;
  }
}

/** A series candidate: its container and the fields groupSeries reads. */
interface Candidate {
  c: number;
  date: string | null;
  kind: MessageRecord['kind'];
  hasDiff: boolean;
  fields: CandidateFields;
}

/** Shares equal senders and prefix lists among candidates (a list has few senders). */
class Interner {
  private addresses = new Map<string, Address>();
  private lists = new Map<string, string[]>();

  address(a: Address): Address {
    const k = `${a.name}\u0000${a.address}`;
    const hit = this.addresses.get(k);
    if (hit) return hit;
    this.addresses.set(k, a);
    return a;
  }

  list(l: string[]): string[] {
    const k = l.join('\u0000');
    const hit = this.lists.get(k);
    if (hit) return hit;
    this.lists.set(k, l);
    return l;
  }

  fields(f: CandidateFields): CandidateFields {
    f.from = this.address(f.from);
    if (f.author) f.author = this.address(f.author);
    const s = f.parsedSubject.series;
    if (s) {
      s.prefixes = this.list(s.prefixes);
      s.targets = this.list(s.targets);
    }
    return f;
  }
}

const NONE: never[] = [];
const NO_DIFF = { files: NONE, damage: NONE };
const NO_REF = { source: '', file: '', offset: 0, length: 0 };

/**
 * A MessageRecord shell around candidate fields, for groupSeries: everything it does not read
 * points at shared constants.
 */
function candidateRecord(id: string, k: Candidate): MessageRecord {
  const f = k.fields;
  return {
    messageId: id,
    ref: NO_REF,
    inReplyTo: null,
    references: NONE,
    from: f.from,
    author: f.author ?? f.from,
    date: k.date,
    subject: '',
    parsedSubject: f.parsedSubject,
    kind: k.kind,
    listIds: NONE,
    to: NONE,
    cc: NONE,
    commitMessage: null,
    diff: k.hasDiff ? NO_DIFF : null,
    files: NONE,
    diffstat: f.diffstat,
    trailers: NONE,
    blocks: NONE,
    whitespaceDamaged: false,
    damage: NONE,
    automated: f.automated,
    warnings: NONE,
  };
}

async function* parseHere(src: AsyncIterable<RawMessage>, sink: RecordSink): AsyncGenerator<ParseResult> {
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
  const interner = new Interner();
  let candidates: Candidate[] = [];
  const stats: CorpusStats = { messages: 0, duplicates: 0, threads: 0, series: 0, patches: 0, errors: 0 };
  let pool: Pool | null = null;
  let reader: SpoolReader | null = null;
  let roots: Int32Array;
  try {
    pool = Pool.create(dir, { workers: opts.workers });
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
        if (r.candidate) candidates.push({ c, date: r.date, kind: r.kind, hasDiff: r.hasDiff, fields: interner.fields(r.candidate) });
      }
    } finally {
      local?.writer.close();
    }

    roots = threader.roots();
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
    const series = groupSeries(
      candidates.map((k) => candidateRecord(threader.idOf(k.c), k)),
      parents,
    );
    candidates = [];
    stats.threads = roots.length;
    stats.series = series.length;
    stats.errors = errors.length;

    if (pool) await anchorInAdvance(pool, threader, table);
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
  const replies: number[] = [];
  const patches: number[] = [];
  for (let c = 0; c < threader.size; c++) {
    if (!threader.hasMessage(c) || !(table.flags[c] & HAS_BLOCKS)) continue;
    let p = threader.parentOf(c);
    while (p >= 0 && !(threader.hasMessage(p) && KINDS[table.kind[p]] === 'patch' && table.flags[p] & HAS_DIFF)) {
      p = threader.parentOf(p);
    }
    replies.push(c);
    patches.push(p);
  }
  // Replies to the same patch together: the worker parses that patch's diff once.
  const order = replies.map((_, i) => i).sort((a, b) => patches[a] - patches[b] || replies[a] - replies[b]);
  const jobs: AnchorJob[] = order.map((i) => ({ reply: table.at(replies[i]), patch: patches[i] >= 0 ? table.at(patches[i]) : null }));
  const done = await pool.anchor(jobs);
  for (let k = 0; k < order.length; k++) {
    const t = done[k];
    if (t) table.setComments(replies[order[k]], t);
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
    const file = table.file[c];
    const offset = table.offset[c];
    const headLength = table.headLength[c];
    const restLength = table.restLength[c];
    const r = decodeRecord(reader.text(file, offset, headLength), () => reader.text(file, offset + headLength, restLength));
    if (cache.size > 256) cache.delete(cache.keys().next().value as string);
    cache.set(id, r);
    return r;
  };

  /** Comments anchored in advance; null: the message has no reply blocks; undefined: anchor now. */
  const comments = (id: string): Comment[] | null | undefined => {
    const c = threader.indexOf(id);
    if (c < 0) return undefined;
    if (!(table.flags[c] & HAS_BLOCKS)) return null;
    const f = table.cFile[c];
    if (f === 0) return undefined;
    return JSON.parse(reader.text(f - 1, table.cOffset[c], table.cLength[c])) as Comment[];
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
  const threads: ThreadSkeleton[] = Array.from(roots, (root) => ({
    get root() {
      return threader.idOf(root);
    },
    get rootMissing() {
      return !threader.hasMessage(root);
    },
    get subject() {
      return skeleton(root).subject;
    },
    get messages() {
      return skeleton(root).messages;
    },
  }));

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
