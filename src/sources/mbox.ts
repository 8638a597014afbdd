// Streaming mbox splitter.
//
// Why hand-written: the inputs are list archives of hundreds of MB (and gzip streams), so the
// splitter must keep memory bounded by the largest message. It works on Buffers: newlines are
// found with indexOf, whole stretches of a chunk are kept as views (subarray) and only the current
// message's pieces are concatenated when it is complete. Lines are never materialised as strings,
// except the rare candidate "From " line, which is checked against the envelope grammar.
import type { InputError, RawMessage } from '../model.js';

export type MboxFormat = 'mboxrd' | 'mboxo';

export interface SplitMboxOptions {
  /** 'mboxrd' (default) removes one '>' from lines matching /^>+From /; 'mboxo' only from /^>From /. */
  format?: MboxFormat;
  /** Larger messages are reported through onError and skipped without being buffered. Default 64 MiB. */
  maxMessageBytes?: number;
  /** Problems inside the stream (no envelope line, oversized or empty message, read error). */
  onError?: (e: InputError) => void;
}

export const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

const NL = 0x0a;
const CR = 0x0d;
const GT = 0x3e;
const F = 0x46;
const FROM_SP = Buffer.from('From ', 'latin1');

/** A line that starts with 'F', '>' or '\r' is kept whole until its end (if not longer than this). */
const MAX_CANDIDATE_LINE = 8192;
/** No real envelope line is longer than this (git's is ~60 bytes). */
const MAX_ENVELOPE_LINE = 1000;

// ---------------------------------------------------------------- envelope grammar

const WEEKDAY = /^(mon|tue|wed|thu|fri|sat|sun)(day|sday|nesday|rsday|urday)?\.?,?$/i;
const MONTH =
  /^(jan(uary)?|feb(ruary)?|mar(ch)?|apr(il)?|may|june?|july?|aug(ust)?|sep(t(ember)?)?|oct(ober)?|nov(ember)?|dec(ember)?)\.?,?$/i;
const NUMBER = /^\d{1,4},?$/;
const YEAR = /^\d{4},?$/;
const TIME = /^\d{1,2}:\d\d(:\d\d)?$/;
const ZONE = /^([+-]\d{4}|\(?[A-Z]{1,5}\)?)$/;
const ISO = /^\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)?$/;

/**
 * Does this text (one line, without its line end) look like an mbox envelope line,
 * "From <sender> <date>"? Examples: "From mboxrd@z Thu Jan  1 00:00:00 1970",
 * "From 1a2b... Mon Sep 17 00:00:00 2001" (git format-patch), "From - Tue Mar 24 18:19:29 2026"
 * (Thunderbird), "From user@host Tue, 24 Mar 2026 18:19:29 +0100".
 *
 * git's mailsplit only looks for "hh:mm:ss yyyy" near the end of the line; this is stricter, because
 * patchvet also accepts mboxo files whose bodies hold unescaped "From " lines: after the sender,
 * every word must be part of a date (weekday, month, number, time, zone; an old UUCP
 * "remote from host" tail is allowed), and there must be a month, a time and a four-digit year.
 */
export function isEnvelopeText(line: string): boolean {
  if (line.length < 20 || line.length > MAX_ENVELOPE_LINE || !line.startsWith('From ')) return false;
  const words = line.slice(5).trim().split(/\s+/);
  if (words.length < 2) return false;
  words.shift(); // the sender: an address, "-", "MAILER-DAEMON", a commit id, "mboxrd@z"...
  const remote = words.length >= 3 ? words.length - 3 : -1;
  if (remote >= 0 && words[remote].toLowerCase() === 'remote' && words[remote + 1].toLowerCase() === 'from') {
    words.length = remote;
  }
  if (words.length === 0 || words.length > 8) return false;
  let month = false;
  let time = 0;
  let year = false;
  for (const w of words) {
    if (ISO.test(w)) {
      month = true;
      time++;
      year = true;
    } else if (TIME.test(w)) time++;
    else if (MONTH.test(w)) month = true;
    else if (YEAR.test(w)) year = true;
    else if (NUMBER.test(w) || WEEKDAY.test(w) || ZONE.test(w)) continue;
    else return false;
  }
  return month && time === 1 && year;
}

/** isEnvelopeText on the bytes [s, e) of buf (a line, with or without its line end). */
export function isEnvelopeLine(buf: Buffer, s = 0, e = buf.length): boolean {
  if (e - s < 20 || e - s > MAX_ENVELOPE_LINE + 2 || buf[s] !== F || buf.compare(FROM_SP, 0, 5, s, s + 5) !== 0) {
    return false;
  }
  if (e > s && buf[e - 1] === NL) e--;
  if (e > s && buf[e - 1] === CR) e--;
  return isEnvelopeText(buf.toString('latin1', s, e));
}

/** "Name: value" — what the first line of a mail without an envelope looks like. */
export function looksLikeHeaderLine(buf: Buffer, s = 0, e = buf.length): boolean {
  let i = s;
  while (i < e && i - s < 100) {
    const c = buf[i];
    if (c === 0x3a) return i > s;
    if (c < 0x21 || c > 0x7e) return false;
    i++;
  }
  return false;
}

// ---------------------------------------------------------------- the splitter

interface Current {
  /** Stream offset of the message's first byte. */
  offset: number;
  parts: Buffer[];
  /** Bytes of the message in the stream (escaped form). */
  size: number;
  /** Bytes of the message once unescaped (what raw will hold). */
  rawSize: number;
  /** Oversized, or not mail at all: already reported, bytes are dropped until the next separator. */
  skip: boolean;
}

/**
 * Push-style splitter: feed chunks with push(), then call end(). Each call returns the messages it
 * completed. Chunks are kept as views until their message is complete, so a caller must not
 * modify a chunk after pushing it (Node streams never do).
 *
 * ref.offset is the stream offset of the message's first byte (the line after the envelope);
 * ref.length is the message's length in the stream, so stream[offset, offset+length) holds the
 * message as stored (escaped form). raw is the same bytes with the mbox escaping removed, so
 * raw.length can be smaller than ref.length by the number of unescaped lines.
 */
export class MboxSplitter {
  private readonly file: string;
  private readonly rd: boolean;
  private readonly max: number;
  private readonly onError?: (e: InputError) => void;

  /** Stream offset of the next byte to be pushed. */
  private pos = 0;
  private started = false;
  private cur: Current | null = null;
  private out: RawMessage[] = [];

  // A line that started in an earlier chunk and is not decided yet.
  private carry: Buffer[] = [];
  private carryLen = 0;
  private carryAt = 0;
  /** Inside a long ordinary line: bytes up to the next newline are plain content. */
  private midLine = false;

  // An empty line held back: it is the mbox format's own if a separator follows it.
  private pendBuf: Buffer | null = null;
  private pendS = 0;
  private pendE = 0;

  // The stretch of content not yet stored in cur.parts (to keep one view per stretch, not per line).
  private runBuf: Buffer | null = null;
  private runS = 0;
  private runE = 0;

  constructor(file: string, opts: SplitMboxOptions = {}) {
    this.file = file;
    this.rd = (opts.format ?? 'mboxrd') === 'mboxrd';
    this.max = opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.onError = opts.onError;
  }

  /** Bytes pushed so far (stream offset of the next byte). */
  get offset(): number {
    return this.pos;
  }

  push(chunk: Buffer): RawMessage[] {
    const base = this.pos;
    this.pos += chunk.length;
    const n = chunk.length;
    let i = 0;
    if (this.carryLen > 0) {
      const nl = chunk.indexOf(NL);
      if (nl < 0) {
        this.carry.push(chunk);
        this.carryLen += n;
        if (this.carryLen > MAX_CANDIDATE_LINE) this.flushLongCarry();
        return this.drain();
      }
      const line = Buffer.concat([...this.carry, chunk.subarray(0, nl + 1)]);
      const at = this.carryAt;
      this.carry = [];
      this.carryLen = 0;
      this.line(line, 0, line.length, at, true);
      i = nl + 1;
    }
    while (i < n) {
      const nl = chunk.indexOf(NL, i);
      if (this.midLine) {
        const e = nl < 0 ? n : nl + 1;
        this.content(chunk, i, e, e - i);
        if (nl >= 0) this.midLine = false;
        i = e;
        continue;
      }
      if (nl >= 0) {
        this.line(chunk, i, nl + 1, base + i, true);
        i = nl + 1;
        continue;
      }
      // A line that goes on in the next chunk. Only lines that may be a separator, an escaped
      // "From " or an empty "\r\n" need to be seen whole; others can be stored right away.
      const c = chunk[i];
      if (this.started && this.cur !== null && c !== F && c !== GT && c !== CR) {
        this.line(chunk, i, n, base + i, false);
        this.midLine = true;
      } else {
        this.carry = [chunk.subarray(i)];
        this.carryLen = n - i;
        this.carryAt = base + i;
        if (this.carryLen > MAX_CANDIDATE_LINE) this.flushLongCarry();
      }
      break;
    }
    return this.drain();
  }

  end(): RawMessage[] {
    if (this.carryLen > 0) {
      const line = Buffer.concat(this.carry);
      this.carry = [];
      this.carryLen = 0;
      this.line(line, 0, line.length, this.carryAt, true);
    }
    this.midLine = false;
    // The empty line before the end of the file is the mbox format's, like the one before a separator.
    this.pendBuf = null;
    this.finish();
    return this.drain();
  }

  /**
   * Give up on the message being read (the stream failed): report it so the caller knows a message
   * was lost, and drop it. Returns the messages still queued.
   */
  abort(reason: string): RawMessage[] {
    const at = this.cur ? this.cur.offset : this.pos;
    this.report(at, `${reason}; the message at offset ${at} is incomplete and was dropped`);
    this.cur = null;
    this.carry = [];
    this.carryLen = 0;
    this.pendBuf = null;
    this.runBuf = null;
    return this.drain();
  }

  private drain(): RawMessage[] {
    const out = this.out;
    if (out.length > 0) this.out = [];
    return out;
  }

  private flushLongCarry(): void {
    const line = Buffer.concat(this.carry);
    this.carry = [];
    this.carryLen = 0;
    this.line(line, 0, line.length, this.carryAt, false);
    this.midLine = true;
  }

  private report(offset: number, message: string): void {
    this.onError?.({ source: `${this.file}:${offset}`, message });
  }

  /**
   * One line [s, e) of buf starting at stream offset `at`. complete: the line is whole (it ends with
   * '\n', or the stream ends); otherwise it is the start of a long line that goes on.
   */
  private line(buf: Buffer, s: number, e: number, at: number, complete: boolean): void {
    const len = e - s;
    const blank = complete && buf[e - 1] === NL && (len === 1 || (len === 2 && buf[s] === CR));
    const envelope = complete && buf[s] === F && isEnvelopeLine(buf, s, e);

    if (!this.started) {
      if (blank) return; // blank lines before the first envelope: git skips them too
      this.started = true;
      if (envelope) {
        this.begin(at + len, false);
        return;
      }
      const mail = looksLikeHeaderLine(buf, s, e);
      this.report(
        at,
        mail
          ? "does not start with an mbox 'From ' line; reading it as one message"
          : "does not start with an mbox 'From ' line and is not a mail header; skipped up to the next 'From ' line",
      );
      this.begin(at, !mail);
      // fall through: this line is the message's first line
    } else if (this.pendBuf !== null) {
      if (envelope) {
        this.pendBuf = null;
        this.finish();
        this.begin(at + len, false);
        return;
      }
      const pb = this.pendBuf;
      this.pendBuf = null;
      this.content(pb, this.pendS, this.pendE, this.pendE - this.pendS);
    } else if (envelope && this.cur !== null && this.cur.size === 0) {
      // Two envelope lines in a row: the first message is empty.
      this.finish();
      this.begin(at + len, false);
      return;
    }

    if (blank) {
      this.pendBuf = buf;
      this.pendS = s;
      this.pendE = e;
      return;
    }
    if (buf[s] === GT && this.escaped(buf, s, e)) {
      this.content(buf, s + 1, e, len);
      return;
    }
    this.content(buf, s, e, len);
  }

  /** Is [s, e) an escaped "From " line whose first '>' goes? */
  private escaped(buf: Buffer, s: number, e: number): boolean {
    let i = s + 1;
    if (this.rd) while (i < e && buf[i] === GT) i++;
    return e - i >= 5 && buf.compare(FROM_SP, 0, 5, i, i + 5) === 0;
  }

  private begin(offset: number, skip: boolean): void {
    this.cur = { offset, parts: [], size: 0, rawSize: 0, skip };
    this.runBuf = null;
  }

  /** Add [s, e) of buf to the message; streamLen is how many stream bytes it stands for. */
  private content(buf: Buffer, s: number, e: number, streamLen: number): void {
    const cur = this.cur;
    if (cur === null) return;
    cur.size += streamLen;
    if (cur.skip) return;
    if (cur.size > this.max) {
      cur.skip = true;
      cur.parts = [];
      this.runBuf = null;
      this.report(
        cur.offset,
        `message is larger than ${this.max} bytes (the maxMessageBytes limit); skipped`,
      );
      return;
    }
    cur.rawSize += e - s;
    if (this.runBuf === buf && this.runE === s) {
      this.runE = e;
      return;
    }
    this.flushRun();
    this.runBuf = buf;
    this.runS = s;
    this.runE = e;
  }

  private flushRun(): void {
    if (this.runBuf !== null && this.cur !== null && this.runE > this.runS) {
      this.cur.parts.push(this.runBuf.subarray(this.runS, this.runE));
    }
    this.runBuf = null;
  }

  private finish(): void {
    const cur = this.cur;
    if (cur === null) return;
    this.flushRun();
    this.cur = null;
    if (cur.skip) return;
    if (cur.size === 0) {
      this.report(cur.offset, 'empty message (nothing between two envelope lines); skipped');
      return;
    }
    // Buffer.concat always copies: the message does not pin the (larger) chunks it came from.
    const raw = Buffer.concat(cur.parts, cur.rawSize);
    this.out.push({
      raw,
      ref: { source: `${this.file}:${cur.offset}`, file: this.file, offset: cur.offset, length: cur.size },
    });
  }
}

/** A stream chunk as a Buffer (string chunks come from a stream with an encoding set). */
export function toBuffer(chunk: unknown): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  return Buffer.from(String(chunk), 'utf8');
}

/**
 * Split an mbox stream into messages, lazily. Memory is bounded by the largest message (plus a
 * chunk). Problems inside the stream are reported through opts.onError and the split goes on; if
 * reading the stream itself fails, that is reported too (the partial last message is dropped) when
 * onError is given, and thrown otherwise.
 */
export async function* splitMbox(
  input: AsyncIterable<Buffer> | NodeJS.ReadableStream,
  file: string,
  opts: SplitMboxOptions = {},
): AsyncGenerator<RawMessage> {
  const splitter = new MboxSplitter(file, opts);
  const it = (input as AsyncIterable<unknown>)[Symbol.asyncIterator]();
  let finished = false;
  try {
    for (;;) {
      let r: IteratorResult<unknown>;
      try {
        r = await it.next();
      } catch (err) {
        finished = true;
        if (!opts.onError) throw err;
        const why = err instanceof Error ? err.message : String(err);
        yield* splitter.abort(`reading failed after ${splitter.offset} bytes: ${why}`);
        return;
      }
      if (r.done) {
        finished = true;
        break;
      }
      const chunk = toBuffer(r.value);
      if (chunk.length > 0) yield* splitter.push(chunk);
    }
    yield* splitter.end();
  } finally {
    // The consumer stopped early: let the input close (destroys a file or zlib stream).
    if (!finished) await it.return?.();
  }
}

/** The same as splitMbox on one in-memory buffer (small inputs and tests). */
export function splitMboxBuffer(buf: Buffer, file: string, opts: SplitMboxOptions = {}): RawMessage[] {
  const s = new MboxSplitter(file, opts);
  return [...s.push(buf), ...s.end()];
}
