// How a MessageRecord is kept in the run's spool: two JSON texts written back to back.
// The head holds what thread assembly and the threads output read of every message (ids,
// sender, subject, kind, files, trailers...); the rest holds the bulky parts (diff, reply
// blocks, commit message, recipients), about nine tenths of a record's bytes on list mail.
// A record read back parses only its head; the rest is parsed the first time one of its
// fields is read or written, so `patchvet threads` never parses diffs it does not print,
// while a rule that reads `diff` sees exactly the record the parser built.
import type { Diff, DiffLine, Hunk, MessageRecord } from '../model.js';
import { lazyRecipients, rawRecipientsOf, type RawRecipients } from './recipients.js';
import type { SpoolReader } from '../store/spool.js';
import type { StoredAt } from './jobs.js';

/** The two texts of a stored record. */
export interface StoredRecord {
  head: string;
  rest: string;
}

export function encodeRecord(r: MessageRecord): StoredRecord {
  // To/Cc not decoded yet stay as their header values (recipients.ts): in the place of `to`,
  // an object (never an array) holding both; `cc` is then null.
  const raw = rawRecipientsOf(r);
  return {
    head: JSON.stringify([
      r.messageId, r.ref, r.inReplyTo, r.from, r.author, r.date, r.subject, r.parsedSubject, r.kind,
      r.files, r.diffstat, r.trailers, r.whitespaceDamaged, r.damage, r.automated,
    ]),
    rest: JSON.stringify([r.references, r.listIds, raw ? { raw } : r.to, raw ? null : r.cc, r.commitMessage, packDiff(r.diff), r.blocks, r.warnings]),
  };
}

type Rest = [
  MessageRecord['references'], MessageRecord['listIds'], MessageRecord['to'], MessageRecord['cc'],
  MessageRecord['commitMessage'], MessageRecord['diff'], MessageRecord['blocks'], MessageRecord['warnings'],
];
const REST_KEYS = ['references', 'listIds', 'to', 'cc', 'commitMessage', 'diff', 'blocks', 'warnings'] as const;

/**
 * The record again, with its fields in the order buildRecord gives them (so JSON.stringify
 * of it is the same text). `loadRest` is called at most once, on first use of a bulky field.
 */
export function decodeRecord(head: string, loadRest: () => string): MessageRecord {
  const h = JSON.parse(head) as unknown[];
  let parsed = false;
  // Turn the accessors into plain data properties (same keys, same order) on first use.
  const rest = (): MessageRecord => {
    if (!parsed) {
      parsed = true;
      const v = parseRest(loadRest());
      for (let i = 0; i < REST_KEYS.length; i++) {
        Object.defineProperty(r, REST_KEYS[i], { value: v[i], writable: true, enumerable: true, configurable: true });
      }
      const to = v[2] as MessageRecord['to'] | { raw: RawRecipients };
      if (!Array.isArray(to)) lazyRecipients(r, to.raw);
    }
    return r;
  };
  const r: MessageRecord = {
    messageId: h[0] as MessageRecord['messageId'],
    ref: h[1] as MessageRecord['ref'],
    inReplyTo: h[2] as MessageRecord['inReplyTo'],
    get references() { return rest().references; },
    set references(v) { rest().references = v; },
    from: h[3] as MessageRecord['from'],
    author: h[4] as MessageRecord['author'],
    date: h[5] as MessageRecord['date'],
    subject: h[6] as MessageRecord['subject'],
    parsedSubject: h[7] as MessageRecord['parsedSubject'],
    kind: h[8] as MessageRecord['kind'],
    get listIds() { return rest().listIds; },
    set listIds(v) { rest().listIds = v; },
    get to() { return rest().to; },
    set to(v) { rest().to = v; },
    get cc() { return rest().cc; },
    set cc(v) { rest().cc = v; },
    get commitMessage() { return rest().commitMessage; },
    set commitMessage(v) { rest().commitMessage = v; },
    get diff() { return rest().diff; },
    set diff(v) { rest().diff = v; },
    files: h[9] as MessageRecord['files'],
    diffstat: h[10] as MessageRecord['diffstat'],
    trailers: h[11] as MessageRecord['trailers'],
    get blocks() { return rest().blocks; },
    set blocks(v) { rest().blocks = v; },
    whitespaceDamaged: h[12] as MessageRecord['whitespaceDamaged'],
    damage: h[13] as MessageRecord['damage'],
    automated: h[14] as MessageRecord['automated'],
    get warnings() { return rest().warnings; },
    set warnings(v) { rest().warnings = v; },
  };
  return r;
}

/** The record stored at `at` in the spool: its head parsed now, its rest when first used. */
export function readRecord(reader: SpoolReader, at: StoredAt): MessageRecord {
  return decodeRecord(reader.text(at.file, at.offset, at.headLength), () => reader.text(at.file, at.offset + at.headLength, at.restLength));
}

/** A stored record's rest (see encodeRecord), its diff unpacked: the record's own values. */
export function parseRest(text: string): Rest {
  const v = JSON.parse(text) as Rest;
  v[5] = unpackDiff(v[5]);
  return v;
}

// ---------------------------------------------------------------- diff lines, packed
//
// A diff line as an object ({"kind":"ctx","text":...,"oldLine":12,"newLine":12,"fn":"f"}) is
// mostly key names and numbers: half of a patch's record, and of the time spent writing
// and reading it. In the spool, a hunk's lines are kept as columns instead: one letter a
// line for the kind, the texts, the function names run-length coded, and which lines end
// without a newline. The line numbers are not kept: they count up from the hunk's starts,
// as diff.ts numbers them; a hunk whose numbers do not (or whose lines have other fields)
// keeps its lines as they are.

interface PackedLines {
  /** One letter a line: a(dd), d(el), c(tx). */
  k: string;
  t: string[];
  /** Function names as runs: name, count, name, count... */
  f: Array<string | null | number>;
  /** Lines followed by "\ No newline at end of file". */
  n?: number[];
}

function packDiff(d: Diff | null): unknown {
  if (!d) return d;
  return { files: d.files.map((f) => ({ ...f, hunks: f.hunks.map(packHunk) })), damage: d.damage };
}

function packHunk(h: Hunk): unknown {
  const lines = h.lines;
  let k = '';
  const t: string[] = new Array(lines.length);
  const f: Array<string | null | number> = [];
  let n: number[] | undefined;
  let o = h.oldStart;
  let w = h.newStart;
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i];
    if (l.kind === 'add') {
      if (l.oldLine !== null || l.newLine !== w++) return h;
      k += 'a';
    } else if (l.kind === 'del') {
      if (l.oldLine !== o++ || l.newLine !== null) return h;
      k += 'd';
    } else {
      if (l.oldLine !== o++ || l.newLine !== w++) return h;
      k += 'c';
    }
    t[i] = l.text;
    if (f.length > 0 && f[f.length - 2] === l.fn) (f[f.length - 1] as number)++;
    else f.push(l.fn, 1);
    if (l.noNewline !== undefined) {
      if (l.noNewline !== true) return h;
      (n ??= []).push(i);
    }
  }
  return { ...h, lines: n ? { k, t, f, n } : { k, t, f } };
}

function unpackDiff(d: unknown): Diff | null {
  const diff = d as Diff | null;
  if (!diff) return diff;
  for (const file of diff.files) for (const h of file.hunks) if (!Array.isArray(h.lines)) h.lines = unpackLines(h, h.lines as unknown as PackedLines);
  return diff;
}

function unpackLines(h: Hunk, p: PackedLines): DiffLine[] {
  const out: DiffLine[] = new Array(p.k.length);
  let o = h.oldStart;
  let w = h.newStart;
  let run = 0;
  let left = 0;
  let fn: string | null = null;
  let nn = 0;
  for (let i = 0; i < out.length; i++) {
    if (left === 0) {
      fn = p.f[run] as string | null;
      left = p.f[run + 1] as number;
      run += 2;
    }
    left--;
    const c = p.k.charCodeAt(i);
    const line: DiffLine =
      c === 0x61
        ? { kind: 'add', text: p.t[i], oldLine: null, newLine: w++, fn }
        : c === 0x64
          ? { kind: 'del', text: p.t[i], oldLine: o++, newLine: null, fn }
          : { kind: 'ctx', text: p.t[i], oldLine: o++, newLine: w++, fn };
    if (p.n && p.n[nn] === i) {
      line.noNewline = true;
      nn++;
    }
    out[i] = line;
  }
  return out;
}
