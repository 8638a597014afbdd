// The work the parser threads do (or the main thread, when there are none):
//  - parse: raw mail -> MessageRecord, written to this thread's spool file; what comes back
//    is a handful of fields (threading keys, kind, series-candidate fields) and where the
//    record is, so full records never cross threads as text;
//  - anchor: once threads are known, anchor a reply's new text to the diff of the patch it
//    answers (the costly part of thread assembly), also written to the spool.
import type { Comment, InputError, MessageRecord, RawMessage } from '../model.js';
import { buildRecord } from './record.js';
import { parseMail, parseMailNow, type ParsedMail } from './parse.js';
import { encodeRecord, parseRest, readRecord } from './stored.js';
import { anchorComments } from '../patch/anchor.js';
import { assembleThread, threadSubject, type ThreadSkeleton } from '../thread/assemble.js';
import { threadJsonSlots, threadText } from '../sinks/threads.js';
import { SpoolReader, type SpoolWriter } from '../store/spool.js';

/** Where a record is in the spool: file number, and the byte ranges of its head and rest. */
export interface StoredAt {
  file: number;
  offset: number;
  headLength: number;
  restLength: number;
}

/** What the main thread gets of a parsed message. */
export interface LightRecord {
  messageId: string;
  inReplyTo: string | null;
  references: string[];
  date: string | null;
  kind: MessageRecord['kind'];
  hasDiff: boolean;
  /** The record has reply blocks (thread assembly anchors them). */
  hasBlocks: boolean;
  /** Series-grouping fields, or null for mail that can't be part of a series. */
  candidate: CandidateFields | null;
  at: StoredAt;
}

export type ParseResult = { ok: true; light: LightRecord } | { ok: false; error: InputError };

/** The few fields series grouping reads of a patch or cover letter (see thread/series.ts). */
export interface CandidateFields {
  from: MessageRecord['from'];
  /** Omitted when the same as `from`. */
  author?: MessageRecord['author'];
  parsedSubject: MessageRecord['parsedSubject'];
  diffstat: boolean;
  automated: boolean;
}

/** Series-grouping fields of a patch or cover letter; null for mail that can't be part of a series. */
export function seriesCandidate(r: MessageRecord): CandidateFields | null {
  const ps = r.parsedSubject;
  if (ps.reply || !(ps.series || r.kind === 'patch' || r.kind === 'cover')) return null;
  const same = r.author.address === r.from.address && r.author.name === r.from.name;
  return {
    from: r.from,
    ...(same ? {} : { author: r.author }),
    parsedSubject: ps,
    diffstat: r.diffstat,
    automated: r.automated,
  };
}

/** A spool file this thread appends to. */
export interface RecordSink {
  file: number;
  writer: SpoolWriter;
}

export function storeRecord(r: MessageRecord, sink: RecordSink): StoredAt {
  const { head, rest } = encodeRecord(r);
  const h = sink.writer.append(head);
  const t = sink.writer.append(rest);
  return { file: sink.file, offset: h.offset, headLength: h.length, restLength: t.length };
}

export function lightOf(r: MessageRecord, at: StoredAt): LightRecord {
  return {
    messageId: r.messageId,
    inReplyTo: r.inReplyTo,
    references: r.references,
    date: r.date,
    kind: r.kind,
    hasDiff: r.diff !== null,
    hasBlocks: r.blocks.length > 0,
    candidate: seriesCandidate(r),
    at,
  };
}

/**
 * How many mails are with mailparser's streams at once (parseEachInto). mailparser reads a
 * mail through a chain of streams that hop through the event loop (nextTick, setImmediate) a
 * dozen times; with one mail at a time every hop is a turn of the loop for that mail alone,
 * with sixteen one turn serves them all: parseMail cost ~175 -> ~130 us a mail on the real
 * sample (bench/stages.mjs). Memory stays bounded: sixteen mails at most, and on a worker no
 * more than its parse batch (1 MB of mail, or one bigger mail alone; pool.ts).
 */
export const PARSE_WINDOW = 16;

/** A mail in parseEachInto's window; `done` is set once its parse has settled. */
interface InFlight {
  msg: RawMessage;
  parsed: Promise<ParsedMail | ParseFailure>;
  done: ParsedMail | ParseFailure | undefined;
}

/**
 * Parse messages and store their records, in input order (so the spool is the same bytes as
 * parsing one at a time). A mail that can be read at once (plain text, parseMailNow) is
 * stored at once when no earlier mail is still being parsed, not kept waiting for its turn
 * (1-2% less time on 200 MB in alternating runs; what scavenges find alive did not change
 * measurably). Mails that need mailparser's streams, and any mail behind them, wait in a window of up to
 * PARSE_WINDOW. A mail that cannot be parsed gives an error result and the rest go on. The
 * caller flushes the sink before handing results on.
 */
export async function* parseEachInto(src: AsyncIterable<RawMessage> | Iterable<RawMessage>, sink: RecordSink): AsyncGenerator<ParseResult> {
  const window: InFlight[] = [];
  for await (const msg of src) {
    // Mails at the head of the window whose parse has settled go first.
    while (window.length > 0 && window[0].done !== undefined) {
      const next = window.shift()!;
      yield storeParsed(next.msg, next.done!, sink);
    }
    if (window.length === 0) {
      let now: ParsedMail | ParseFailure | undefined;
      try {
        now = parseMailNow(msg);
      } catch (e) {
        now = new ParseFailure(e);
      }
      if (now !== undefined) {
        yield storeParsed(msg, now, sink);
        continue;
      }
    }
    // Started now, finished in order below; a rejection is caught at once, so none is unhandled.
    const entry: InFlight = { msg, parsed: parseMail(msg).catch((e: unknown) => new ParseFailure(e)), done: undefined };
    void entry.parsed.then((p) => (entry.done = p));
    window.push(entry);
    if (window.length >= PARSE_WINDOW) {
      const next = window.shift()!;
      yield storeParsed(next.msg, await next.parsed, sink);
    }
  }
  while (window.length) {
    const next = window.shift()!;
    yield storeParsed(next.msg, await next.parsed, sink);
  }
}

/** Why parseMail rejected a mail. */
class ParseFailure {
  constructor(readonly cause: unknown) {}
}

function storeParsed(msg: RawMessage, parsed: ParsedMail | ParseFailure, sink: RecordSink): ParseResult {
  let r: MessageRecord;
  try {
    if (parsed instanceof ParseFailure) throw parsed.cause;
    r = buildRecord(parsed);
  } catch (e) {
    return { ok: false, error: { source: msg.ref.source, message: `skipped: ${(e as Error).message}` } };
  }
  return { ok: true, light: lightOf(r, storeRecord(r, sink)) };
}

// ---------------------------------------------------------------- anchoring

/** Anchor the reply stored at `reply` to the diff of the patch stored at `patch` (none: null). */
export interface AnchorJob {
  reply: StoredAt;
  patch: StoredAt | null;
}

/** Where a JSON list of comments is in the spool. */
export interface StoredText {
  file: number;
  offset: number;
  length: number;
}

/** Index of `diff` and `blocks` in a stored record's rest (see stored.ts). */
const REST_DIFF = 5;
const REST_BLOCKS = 6;

/**
 * Run anchor jobs, reading records through `reader` and writing each job's comments (JSON)
 * to `sink`. Jobs for the same patch should come together: its diff is parsed once.
 */
export function runAnchorJobs(jobs: AnchorJob[], reader: SpoolReader, sink: RecordSink): StoredText[] {
  let lastKey = '';
  let lastDiff: MessageRecord['diff'] = null;
  const out: StoredText[] = [];
  for (const j of jobs) {
    let diff: MessageRecord['diff'] = null;
    if (j.patch) {
      const key = `${j.patch.file}:${j.patch.offset}`;
      if (key !== lastKey) {
        lastKey = key;
        lastDiff = restOf(reader, j.patch)[REST_DIFF] as MessageRecord['diff'];
      }
      diff = lastDiff;
    }
    const blocks = restOf(reader, j.reply)[REST_BLOCKS] as MessageRecord['blocks'];
    const comments: Comment[] = anchorComments(blocks, diff);
    const w = sink.writer.append(JSON.stringify(comments));
    out.push({ file: sink.file, offset: w.offset, length: w.length });
  }
  return out;
}

// ---------------------------------------------------------------- rendering threads

/** One thread to render: its skeleton, and where its messages' records are (null: a ghost). */
export interface RenderJob {
  root: string;
  rootMissing: boolean;
  messages: Array<ThreadSkeleton['messages'][number] & { at: StoredAt | null; hasBlocks: boolean }>;
}

/** `patchvet threads` output formats. */
export type RenderFormat = 'json' | 'text';

/** Where a rendered thread is in the spool; for JSON, also its seriesId slots' Message-IDs (a JSON list). */
export interface RenderedThread extends StoredText {
  ids: StoredText | null;
}

/**
 * Render threads as `patchvet threads` writes them, each written to `sink`: the thread is
 * assembled from its records (reply comments anchored here, as assembleThread does), then
 * formatted; JSON with its seriesId slots open (sinks/threads.ts), as series may not be grouped yet.
 */
export function runRenderJobs(jobs: RenderJob[], format: RenderFormat, reader: SpoolReader, sink: RecordSink): RenderedThread[] {
  const out: RenderedThread[] = [];
  for (const job of jobs) {
    const t = renderThread(job, reader);
    if (format === 'text') {
      const w = sink.writer.append(threadText(t) + '\n');
      out.push({ file: sink.file, offset: w.offset, length: w.length, ids: null });
    } else {
      const { text, ids } = threadJsonSlots(t);
      const w = sink.writer.append(text);
      const v = sink.writer.append(JSON.stringify(ids));
      out.push({ file: sink.file, offset: w.offset, length: w.length, ids: { file: sink.file, offset: v.offset, length: v.length } });
    }
  }
  return out;
}

/** A render job's thread, assembled as the main thread's Corpus.thread does it (see pipeline.ts). */
function renderThread(job: RenderJob, reader: SpoolReader): ReturnType<typeof assembleThread> {
  const entries = new Map<string, RenderJob['messages'][number]>();
  for (const m of job.messages) entries.set(m.messageId, m);
  const records = new Map<string, MessageRecord | undefined>();
  const load = (id: string): MessageRecord | undefined => {
    if (records.has(id)) return records.get(id);
    const at = entries.get(id)?.at;
    const r = at ? readRecord(reader, at) : undefined;
    records.set(id, r);
    return r;
  };
  const skeleton: ThreadSkeleton = { root: job.root, rootMissing: job.rootMissing, subject: threadSubject(job.messages, load), messages: job.messages };
  // No comments for a message without reply blocks (null), the others anchored now (undefined).
  return assembleThread(skeleton, load, (id) => (entries.get(id)?.hasBlocks ? undefined : null));
}

function restOf(reader: SpoolReader, at: StoredAt): unknown[] {
  return parseRest(reader.text(at.file, at.offset + at.headLength, at.restLength));
}

export { SpoolReader };
