// mail stage: raw bytes -> ParsedMail, with mailparser doing MIME, encodings and charsets.
// What mailparser does not do for patches is done here: the body `git am` would see
// (in-body From:/Subject:/Date:, scissors), patch attachments, CRLF kept in base64
// bodies, format=flowed detection, 8-bit headers without a declared charset.
import { MailParser, simpleParser, type AddressObject, type Attachment, type ParsedMail as MpParsedMail } from 'mailparser';
import { decode as decodeQuotedPrintable } from 'libqp';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import type { Address, RawMessage, SourceRef } from '../model.js';
import { flattenAddresses, recipientHeaders, type RawRecipients } from './recipients.js';
import { collapseWhitespace } from '../thread/subject.js';

export interface ParsedMail {
  ref: SourceRef;
  messageId: string;
  /** True when the mail had no usable Message-ID and one was derived from its bytes. */
  messageIdSynthesized: boolean;
  inReplyTo: string | null;
  references: string[];
  from: Address;
  /** In-body From: (git am semantics), when present. */
  bodyFrom: Address | null;
  /** In-body Subject:, when present. */
  bodySubject: string | null;
  bodyDate: string | null;
  date: string | null;
  subject: string;
  /** To:/Cc: values, decoded when the record's `to`/`cc` are first read (see recipients.ts). */
  recipients: RawRecipients;
  listIds: string[];
  /** The text `git am` would take as the message body (in-body headers and scissors handled). */
  body: string;
  /**
   * The text as sent, set only when a scissors line cut `body`. A review that proposes a fixup
   * after "-- >8 --" (a habit on qemu-devel and xen-devel) has its quotes and comments above
   * that line: git am drops them, but a reply is read for its comments, not applied.
   */
  uncutBody?: string;
  /** Text of attached patches (text/x-patch, text/x-diff, *.patch, *.diff). */
  patchAttachments: readonly string[];
  flowed: boolean;
  automated: boolean;
  warnings: string[];
  /**
   * The real sender when a mailing list rewrote From: to its own address (DMARC mitigation:
   * From: "Jane Doe via Xen-devel" <xen-devel@lists...>), read from the header named in
   * `header`. Absent or null when From: was not rewritten. buildRecord takes it as the author.
   */
  originalFrom?: { address: Address; header: 'X-Original-From' | 'Reply-To' } | null;
}

export const PARSER_OPTIONS = {
  // Linkification and HTML conversion cost about half the throughput and patches never need them.
  skipHtmlToText: true,
  skipTextToHtml: true,
  skipTextLinks: true,
  skipImageLinks: true,
  keepCidLinks: true,
  maxHtmlLengthToParse: 1_000_000,
} as const;

export class MailParseError extends Error {}

/** The fields of mailparser's ParsedMail that this module reads. */
type MimeParts = Pick<MpParsedMail, 'messageId' | 'references' | 'subject' | 'from' | 'date' | 'text' | 'html' | 'attachments'>;
const MIME_FIELDS = ['messageId', 'references', 'subject', 'from', 'date', 'text', 'html', 'attachments'] as const;

/**
 * mailparser's result, copied into one fixed shape. mailparser adds fields to its result as it
 * meets them, so the result's hidden class varies from mail to mail (which headers there were,
 * whether the body went through mailparser, html, attachments...). Read directly, every new
 * shape reaching one of parseMail's property reads threw away its optimized code: parseMail
 * was compiled again 27 times per parser worker on a 1 GB mbox, ~47 ms each. The one keyed
 * read below sees eight names, so it is megamorphic from the start and never deoptimizes.
 */
function mimeParts(m: MpParsedMail): MimeParts {
  const o = m as unknown as Record<string, unknown>;
  const v: unknown[] = new Array(MIME_FIELDS.length);
  for (let i = 0; i < MIME_FIELDS.length; i++) v[i] = o[MIME_FIELDS[i]];
  return {
    messageId: v[0] as MimeParts['messageId'],
    references: v[1] as MimeParts['references'],
    subject: v[2] as MimeParts['subject'],
    from: v[3] as MimeParts['from'],
    date: v[4] as MimeParts['date'],
    text: v[5] as MimeParts['text'],
    html: v[6] as MimeParts['html'],
    attachments: v[7] as MimeParts['attachments'],
  };
}

/** A line of mailsplit's Headers#getList: the lowercase name and the whole (unfolded) line. */
interface HeaderLine {
  key: string;
  line: string;
}

/** The parts of mailparser headerReader uses: mailsplit's Headers, and MailParser#processHeaders bound to a parser. */
interface MailparserHeaderCode {
  Headers: new (block: Buffer) => { getList(): HeaderLine[] };
  processHeaders: (lines: HeaderLine[]) => Map<string, unknown>;
}

/**
 * Header blocks up to this size only: mailsplit refuses a node's headers past 1 MB counted
 * as at least 64 bytes a line, which 16 kB of lines cannot reach (16,384 / 2 * 64 = 512 kB).
 * Larger blocks go through simpleParser, which gives the error where there is one.
 */
const HEADER_READER_MAX = 16 * 1024;

/**
 * The header lines parseMail reads from mailparser's Map besides From:. processHeaders
 * decodes each line by its own name only, so leaving out the others (MIME-Version, the
 * Content-* headers, which plainTextEncoding has already judged) changes none of these
 * values and saves parsing Content-Type's parameters.
 */
const HEADER_PART_NAMES = new Set(['message-id', 'references', 'subject', 'date']);

/** How many distinct From: lines a HeaderReader keeps mailparser's value of (then it starts over). */
const FROM_CACHE_MAX = 4096;

/**
 * The header block of a plain text mail (all parseMail gives mailparser of it: the body is
 * read by plainTextBody), read by mailparser's own code without its streams: mailsplit's
 * Headers splits the block into header lines, as mailsplit's splitter does for a message's
 * root node, and MailParser's processHeaders decodes them into the same Map simpleParser
 * takes its fields from. simpleParser does exactly that, but through a chain of streams that
 * hop through the event loop a dozen times: 60-75 us a header block on the real sample, 20 us
 * this way. processHeaders is mailparser's (marked internal) and mailsplit is its dependency,
 * loaded from where mailparser loads it; when either is missing (another mailparser release),
 * every mail goes through simpleParser as before. test/unit/plain-body.test.ts holds the two
 * readings equal on all 3,000 real mails and on edge cases.
 */
class HeaderReader {
  /**
   * mailparser's value of a From: line, by the line. From: is the one header of list mail
   * that repeats (a list has hundreds of senders, not one From: line per mail), and the
   * costliest for processHeaders: nodemailer's address parser, then the address formatted
   * as HTML and as text, ~5% of a parser worker's time on real mail. The value depends on
   * the line alone, and parseMail only reads it (firstAddress copies what it takes).
   */
  private readonly fromValues = new Map<string, unknown>();

  constructor(private readonly code: MailparserHeaderCode) {}

  read(block: Buffer): Map<string, unknown> {
    const kept: HeaderLine[] = [];
    let from: HeaderLine | undefined;
    for (const line of new this.code.Headers(block).getList()) {
      // Of several From: lines, processHeaders keeps the first.
      if (line.key === 'from') from ??= line;
      else if (HEADER_PART_NAMES.has(line.key)) kept.push(line);
    }
    const headers = this.code.processHeaders(kept);
    if (from !== undefined) {
      const value = this.fromValue(from);
      if (value !== undefined) headers.set('from', value);
    }
    return headers;
  }

  private fromValue(line: HeaderLine): unknown {
    if (this.fromValues.has(line.line)) return this.fromValues.get(line.line);
    const value = this.code.processHeaders([line]).get('from');
    if (this.fromValues.size >= FROM_CACHE_MAX) this.fromValues.clear();
    this.fromValues.set(line.line, value);
    return value;
  }
}

/** require() resolving packages as mailparser's own modules do: its dependencies, as installed with it. */
function mailparserRequire(): NodeJS.Require {
  return createRequire(createRequire(import.meta.url).resolve('mailparser'));
}

/**
 * `load` run on first call, its result kept: a part of mailparser's code, or null when this
 * mailparser release does not have it (or loading it throws). The mails that would have used
 * it then go through mailparser's streams, as before.
 */
function lazily<T>(load: () => T | null): () => T | null {
  let loaded = false;
  let value: T | null = null;
  return () => {
    if (!loaded) {
      loaded = true;
      try {
        value = load();
      } catch {
        value = null;
      }
    }
    return value;
  };
}

const headerReader = lazily((): HeaderReader | null => {
  const { Headers } = mailparserRequire()('@zone-eu/mailsplit') as { Headers?: MailparserHeaderCode['Headers'] };
  const parser = new MailParser(PARSER_OPTIONS) as unknown as { processHeaders?: MailparserHeaderCode['processHeaders'] };
  const processHeaders = parser.processHeaders;
  if (typeof Headers !== 'function' || typeof processHeaders !== 'function') return null;
  return new HeaderReader({ Headers, processHeaders: processHeaders.bind(parser) });
});

/** Header blocks of plain text mails are read without mailparser's streams (false: this mailparser lacks the parts). */
export function readsHeadersWithoutStreams(): boolean {
  return headerReader() !== null;
}

/** format=flowed bodies are unfolded without mailparser's streams (false: libmime's decodeFlowed is not there). */
export function readsFlowedWithoutStreams(): boolean {
  return flowedDecoder() !== null;
}

/** simpleParser's fields from a header Map (it copies them at 'end'; a header-only mail has no text or attachments). */
function headerParts(h: Map<string, unknown>): MimeParts {
  return {
    messageId: h.get('message-id') as MimeParts['messageId'],
    references: h.get('references') as MimeParts['references'],
    subject: h.get('subject') as MimeParts['subject'],
    from: h.get('from') as MimeParts['from'],
    date: h.get('date') as MimeParts['date'],
    text: undefined,
    html: undefined,
    attachments: undefined as unknown as MimeParts['attachments'],
  };
}

/** How parseMail may read a mail (tests compare the two readings). */
export interface ParseMailOptions {
  /**
   * Read the body of a plain UTF-8/ASCII text mail here instead of through mailparser's
   * streams (see plainTextBody). Default true; false gives every body to mailparser.
   */
  plainBodyFastPath?: boolean;
}

/**
 * Parse a mail. Most list mail (plain text, see plainTextEncoding) is read without waiting
 * for anything; the rest goes through mailparser's streams.
 */
export async function parseMail(msg: RawMessage, opts: ParseMailOptions = {}): Promise<ParsedMail> {
  const start = startParse(msg, opts);
  if (start.mime !== null) return finishParse(msg, start, start.mime);
  let mp: MimeParts;
  try {
    mp = mimeParts(await simpleParser(start.input, PARSER_OPTIONS));
  } catch (e) {
    throw new MailParseError(`MIME structure could not be parsed: ${(e as Error).message}`);
  }
  return finishParse(msg, start, mp);
}

/**
 * parseMail's result when the mail can be read at once (a plain text mail: its header block
 * by mailparser's header code, its body here); undefined when it needs mailparser's streams
 * (call parseMail). Throws MailParseError as parseMail rejects with it.
 */
export function parseMailNow(msg: RawMessage, opts: ParseMailOptions = {}): ParsedMail | undefined {
  const start = startParse(msg, opts);
  return start.mime !== null ? finishParse(msg, start, start.mime) : undefined;
}

/** What parseMail knows of a mail before mailparser's part. */
interface ParseStart {
  headerEnd: number;
  headers: HeaderBlock;
  plain: PlainText | null;
  /** What mailparser is given. */
  input: Buffer;
  /** mailparser's fields, when read without its streams; null when simpleParser must read `input`. */
  mime: MimeParts | null;
}

function startParse(msg: RawMessage, opts: ParseMailOptions): ParseStart {
  if (msg.raw.length === 0) throw new MailParseError('empty message');
  const headerEnd = findHeaderEnd(msg.raw);
  if (headerEnd < 0 && !/^[\x21-\x39\x3b-\x7e]+:/.test(msg.raw.subarray(0, 200).toString('latin1'))) {
    throw new MailParseError('not a mail: no header block');
  }
  // The header block is decoded and scanned once: the headers kept for mailparser and where
  // each header's value is (List-Id, Auto-Submitted, ... are read from the raw block) come
  // from the same pass. 8 kB of Received/ARC/DKIM lines is typical for list mail.
  const rawHeaders = msg.raw.subarray(0, headerEnd < 0 ? msg.raw.length : headerEnd);
  const scan = scanHeaderBlock(msg.raw, rawHeaders.length, headerEnd > 0);
  const headers: HeaderBlock = { raw: rawHeaders, index: scan.index };
  // Every mail is read by mailparser (given only the headers patchvet uses). The body of a
  // plain text mail is not: mailparser's text of it is its bytes (quoted-printable decoded)
  // read as UTF-8, which plainTextBody gives; its header block is read by mailparser's header
  // code without its streams (HeaderReader). Any other mail goes through simpleParser.
  let plain = headerEnd > 0 && opts.plainBodyFastPath !== false ? plainTextEncoding(scan) : null;
  if (plain?.flowed && flowedDecoder() === null) plain = null;
  const input = headerEnd > 0 ? keptMessage(msg.raw, headerEnd, scan, plain === null) : msg.raw;
  const reader = plain !== null && input.length <= HEADER_READER_MAX ? headerReader() : null;
  let mime: MimeParts | null = null;
  if (reader) {
    try {
      mime = headerParts(reader.read(input));
    } catch (e) {
      throw new MailParseError(`MIME structure could not be parsed: ${(e as Error).message}`);
    }
  }
  return { headerEnd, headers, plain, input, mime };
}

/** The rest of parseMail, once mailparser has given its fields. */
function finishParse(msg: RawMessage, start: ParseStart, mp: MimeParts): ParsedMail {
  const { headerEnd, headers, plain } = start;
  const warnings: string[] = [];
  let messageId = idsOf(mp.messageId)[0] ?? null;
  let synthesized = false;
  if (!messageId) {
    messageId = `<patchvet-${createHash('sha1').update(msg.raw).digest('hex').slice(0, 20)}@missing-message-id>`;
    synthesized = true;
    warnings.push('no Message-ID header: using one derived from the message bytes');
  }
  const references = idsOf(mp.references);
  const inReplyTo = idsOf(readHeader(headers, 'in-reply-to') ?? undefined).at(-1) ?? null;

  let subject = mp.subject ?? '';
  let fromObj = firstAddress(mp.from);
  // 8-bit header bytes without a declared charset: mailparser reads them as UTF-8; where that
  // fails (U+FFFD), latin1 is what the sender's client almost certainly meant.
  if (subject.includes('\uFFFD')) {
    const rawSubj = readHeader(headers, 'subject', 'latin1');
    if (rawSubj && !/=\?/.test(rawSubj)) {
      subject = rawSubj;
      warnings.push('Subject has 8-bit bytes that are not UTF-8; read as latin1');
    }
  }
  if (fromObj.name.includes('\uFFFD')) {
    const rawFrom = readHeader(headers, 'from', 'latin1');
    if (rawFrom) fromObj = parseAddressText(rawFrom) ?? fromObj;
  }
  subject = collapseWhitespace(subject);

  // The text part: mailparser turns CRLF into LF; for base64 bodies whose text holds CRLF
  // (patches to CRLF files), decode again ourselves so the diff keeps its bytes.
  let text = plain ? plainTextBody(msg.raw, headerEnd, plain) : (mp.text ?? '');
  if (!text && mp.html) text = htmlToPlain(String(mp.html));
  const crlf = recoverCrlfBody(msg.raw, headers, headerEnd, mp);
  if (crlf !== null) text = crlf;

  const flowed = isFlowed(msg.raw);

  const atts = mp.attachments;
  const patchAttachments = atts !== undefined && atts.length > 0 ? patchAttachmentTexts(atts) : NO_TEXTS;

  const inBody = applyInBodyHeaders(text);
  if (inBody.scissors) warnings.push('scissors line: text above it was cut, as git am does');

  // mailparser gives the time of parsing for a Date it cannot read (new Date(value) failing):
  // such a mail has no date, not "now".
  const rawDate = readHeader(headers, 'date');
  const dateReadable = rawDate !== null && !Number.isNaN(new Date(rawDate.trim()).getTime());
  const dateHeader = dateReadable && mp.date && !Number.isNaN(mp.date.getTime()) ? mp.date.toISOString() : null;
  if (!dateHeader && rawDate) warnings.push('Date header could not be parsed');

  return {
    ref: msg.ref,
    messageId,
    messageIdSynthesized: synthesized,
    inReplyTo,
    references,
    from: fromObj,
    bodyFrom: inBody.from,
    bodySubject: inBody.subject,
    bodyDate: inBody.date,
    date: dateHeader,
    subject,
    recipients: recipientHeaders(headers.raw),
    listIds: listIds(mp, headers),
    body: inBody.body,
    ...(inBody.scissors ? { uncutBody: text.charCodeAt(0) === 0xfeff ? text.slice(1) : text } : {}),
    patchAttachments,
    flowed,
    automated: isAutomated(mp, headers, fromObj),
    warnings,
    originalFrom: dmarcOriginalSender(headers, fromObj),
  };
}

// ---------------------------------------------------------------- headers

/**
 * The message with only the top-level headers patchvet uses, for mailparser: decoding every
 * Received/ARC/DKIM line costs more than the rest of the parse. The raw bytes stay untouched
 * in RawMessage; headers read directly (List-Id, Auto-Submitted, ...) come from the raw block.
 */
export function trimHeaders(raw: Buffer, headerEnd: number): Buffer {
  return keptMessage(raw, headerEnd, scanHeaderBlock(raw, headerEnd, true));
}

/** Offset of the empty line that ends the header block (index of the body's first byte), or -1. */
export function findHeaderEnd(raw: Buffer): number {
  if (raw[0] === 0x0a) return 1;
  if (raw[0] === 0x0d && raw[1] === 0x0a) return 2;
  const lf = raw.indexOf('\n\n');
  // A CRLF end only counts when it starts before the LF one: search no further than that,
  // not through the whole body of an LF mail.
  const crlf = lf < 0 ? raw.indexOf('\r\n\r\n') : raw.subarray(0, lf + 3).indexOf('\r\n\r\n');
  if (lf < 0 && crlf < 0) return -1;
  if (crlf >= 0 && (lf < 0 || crlf < lf)) return crlf + 4;
  return lf + 2;
}

/**
 * Where the first occurrence of each header is in a raw header block, over its latin1 text
 * (one char per byte): `names` holds, per header line, the trimmed name's start and end and
 * the index in `values` of its first value range; `values` the [start, end) of the rest of
 * its first line, then of each continuation line. A header's ranges run up to the next
 * header's first one. Values are decoded only when asked for, in the encoding asked for.
 * null when a header name holds 8-bit bytes (decoding could then change which name it is):
 * headerMapSlow reads those.
 */
interface HeaderIndex {
  text: string;
  names: number[];
  values: number[];
}

/** One pass over a header block: what trimHeaders keeps, and the HeaderIndex of the block. */
interface HeaderScan {
  /** [start, end) byte ranges of the lines kept for mailparser (adjacent lines merged). */
  kept: number[];
  /** The header block ends with CRLF CRLF: the kept block ends with CRLF too. */
  crlf: boolean;
  index: HeaderIndex | null;
  /** The block read as latin1 (one char per byte: `kept` indexes it too). */
  text: string;
}

const rangesCache = new WeakMap<Buffer, HeaderIndex | null>();

/** Whitespace String.prototype.trim removes, among latin1 characters. */
function isLatin1Space(c: number): boolean {
  return (c >= 0x09 && c <= 0x0d) || c === 0x20 || c === 0xa0;
}

/** text[s, s + lower.length) equals `lower` when ASCII capitals are lowered. */
function equalsLower(text: string, s: number, lower: string): boolean {
  for (let k = 0; k < lower.length; k++) {
    let c = text.charCodeAt(s + k);
    if (c >= 0x41 && c <= 0x5a) c += 0x20;
    if (c !== lower.charCodeAt(k)) return false;
  }
  return true;
}

/**
 * The header name text[s, e), trimmed, is one of the top-level headers patchvet has
 * mailparser read (list mail carries dozens more: Received, ARC, DKIM, X-...): from, subject,
 * date, message-id, references, mime-version, content-[a-z-]+, in any ASCII case: those whose
 * decoded values patchvet takes from mailparser, and the MIME structure. To and Cc are decoded
 * when first used (recipients.ts); In-Reply-To, Sender and Reply-To are read from the raw
 * block. Switched on the length: most names are rejected without a compare.
 */
function isKeptName(text: string, s: number, e: number): boolean {
  while (s < e && isLatin1Space(text.charCodeAt(s))) s++;
  while (e > s && isLatin1Space(text.charCodeAt(e - 1))) e--;
  const len = e - s;
  switch (len) {
    case 4:
      return equalsLower(text, s, 'from') || equalsLower(text, s, 'date');
    case 7:
      return equalsLower(text, s, 'subject');
    case 10:
      if (equalsLower(text, s, 'message-id') || equalsLower(text, s, 'references')) return true;
      break;
    case 12:
      if (equalsLower(text, s, 'mime-version')) return true;
      break;
  }
  if (len > 8 && equalsLower(text, s, 'content-')) {
    for (let k = s + 8; k < e; k++) {
      const c = text.charCodeAt(k) | 0x20;
      if (!(c >= 0x61 && c <= 0x7a) && text.charCodeAt(k) !== 0x2d) return false;
    }
    return true;
  }
  return false;
}

/**
 * Read the header block raw[0, blockEnd) line by line once. The index stops at the first
 * empty line (a lone "\r" counts as empty); the kept lines (only when `trim`) are read over
 * the whole block, as mailparser is given all of it: a line starting with a space or tab
 * continues the previous header, one starting with CR or LF is dropped without ending it.
 */
function scanHeaderBlock(raw: Buffer, blockEnd: number, trim: boolean): HeaderScan {
  const text = raw.toString('latin1', 0, blockEnd);
  const n = text.length;
  const kept: number[] = [];
  let keep = false;
  const names: number[] = [];
  const values: number[] = [];
  let indexing = true;
  let index: HeaderIndex | null = { text, names, values };
  let open = false; // continuation lines belong to the last indexed header
  for (let i = 0; i < n; ) {
    const nl = text.indexOf('\n', i);
    const next = nl < 0 ? n : nl + 1;
    const c = text.charCodeAt(i);
    const continuation = c === 0x20 || c === 0x09;
    let colon = -2;
    let named = false; // keep was set from the indexed (ASCII, trimmed) name
    if (indexing) {
      let e = nl < 0 ? n : nl;
      if (e > i && text.charCodeAt(e - 1) === 0x0d) e--;
      if (e === i) {
        indexing = false;
        if (!trim) break;
      } else if (continuation) {
        if (open) values.push(i, e);
      } else {
        colon = text.indexOf(':', i);
        if (colon <= i || colon >= e) open = false;
        else {
          let k = i;
          while (k < colon && text.charCodeAt(k) < 0x80) k++;
          if (k < colon) {
            index = null;
            indexing = false;
            if (!trim) break;
          } else {
            // trim(): the name is ASCII, so only \t \n \v \f \r and space.
            let s = i;
            let t = colon;
            while (s < t && isLatin1Space(text.charCodeAt(s))) s++;
            while (t > s && isLatin1Space(text.charCodeAt(t - 1))) t--;
            names.push(s, t, values.length);
            values.push(colon + 1, e);
            open = true;
            if (trim) {
              keep = isKeptName(text, s, t);
              named = true;
            }
          }
        }
      }
    }
    if (trim) {
      let take = false;
      if (named || continuation) take = keep;
      else if (c !== 0x0a && c !== 0x0d) {
        if (colon === -2) colon = text.indexOf(':', i);
        keep = colon > i && colon < next && isKeptName(text, i, colon);
        take = keep;
      }
      if (take) {
        if (kept.length > 0 && kept[kept.length - 1] === i) kept[kept.length - 1] = next;
        else kept.push(i, next);
      }
    }
    i = next;
  }
  return { kept, crlf: text.endsWith('\r\n\r\n'), index, text };
}

/** The kept header lines, the line end that closes the block, then the body (unless not `withBody`), as one buffer. */
function keptMessage(raw: Buffer, headerEnd: number, scan: HeaderScan, withBody = true): Buffer {
  let length = (scan.crlf ? 2 : 1) + (withBody ? raw.length - headerEnd : 0);
  for (let k = 0; k < scan.kept.length; k += 2) length += scan.kept[k + 1] - scan.kept[k];
  const out = Buffer.allocUnsafe(length);
  let pos = 0;
  for (let k = 0; k < scan.kept.length; k += 2) pos += raw.copy(out, pos, scan.kept[k], scan.kept[k + 1]);
  if (scan.crlf) out[pos++] = 0x0d;
  out[pos++] = 0x0a;
  if (withBody) raw.copy(out, pos, headerEnd);
  return out;
}

// ---------------------------------------------------------------- plain text bodies

/** How the body of a plain text mail is sent: as it is, or quoted-printable. */
type PlainEncoding = 'binary' | 'quoted-printable';

/** A plain text mail's body as plainTextBody reads it: its transfer encoding, and format=flowed (RFC 3676). */
interface PlainText {
  encoding: PlainEncoding;
  flowed: boolean;
  /** delsp=yes: a flowed line's trailing space goes with the soft break. */
  delSp: boolean;
}

/**
 * The mail is one text/plain part in UTF-8 or ASCII, sent 7bit, 8bit, binary or
 * quoted-printable, not an attachment, judged on the top-level headers
 * mailparser is given (the kept ones). That is most list mail: git send-email and mutt send
 * nothing else, Outlook sends quoted-printable. For such a mail mailparser's text is the
 * body's bytes, through libqp's decode when quoted-printable (its Decoder stream collects the
 * whole body, then calls decode), read as UTF-8 with CRLF made LF (its 'inline' node: no
 * charset stream for utf8/usascii/ascii, then `.toString().replace(/\r?\n/g, '\n')`). That
 * is what plainTextBody does, without the streams that carry the body line by line: they
 * cost mailparser two thirds of its time on a patch. A format=flowed body (Thunderbird's
 * default, 4.5% of the real sample) goes, before that, through libmime's decodeFlowed over
 * its bytes as latin1, as mailsplit's FlowedDecoder stream does. Anything else, or anything this reading
 * is not sure of (a parameter it does not know, RFC 2231 or encoded words, a header given
 * twice), goes to mailparser whole: null. A test holds the two readings equal on the real
 * sample and on edge cases (test/unit/plain-body.test.ts).
 */
function plainTextEncoding(scan: HeaderScan): PlainText | null {
  const { text, kept } = scan;
  const mime: MimeHeaders = { type: null, encoding: null, disposition: null };
  let name = '';
  let value = '';
  for (let k = 0; k < kept.length; k += 2) {
    for (let i = kept[k]; i < kept[k + 1]; ) {
      let nl = text.indexOf('\n', i);
      if (nl < 0 || nl > kept[k + 1]) nl = kept[k + 1];
      const line = text.slice(i, nl).replace(/\r$/, '');
      i = nl + 1;
      const c = line.charCodeAt(0);
      if (c === 0x20 || c === 0x09) {
        value += ' ' + line.trim();
        continue;
      }
      if (name && !takeMimeHeader(mime, name, value)) return null;
      const colon = line.indexOf(':');
      if (colon <= 0) return null;
      name = line.slice(0, colon).trim().toLowerCase();
      value = line.slice(colon + 1).trim();
    }
  }
  if (name && !takeMimeHeader(mime, name, value)) return null;
  const { type, encoding, disposition } = mime;
  if (disposition !== null && !/^inline$/i.test(disposition)) return null;
  const form = type === null ? FIXED : plainUtf8Type(type);
  if (form === null) return null;
  if (encoding === null || /^(?:7bit|8bit|binary)$/i.test(encoding)) return { encoding: 'binary', ...form };
  return /^quoted-printable$/i.test(encoding) ? { encoding: 'quoted-printable', ...form } : null;
}

const FIXED = { flowed: false, delSp: false } as const;

/** The top-level Content-* values plainTextEncoding judges a mail by. */
interface MimeHeaders {
  type: string | null;
  encoding: string | null;
  disposition: string | null;
}

/**
 * Note one unfolded header (lowercase name); false for one that makes the mail not plain:
 * a Content-* header given twice, or another Content-* header than Content-Language, which
 * Outlook adds to every mail (one in ten of the real sample) and mailparser only records.
 * (A module function, not a closure made per mail: see the note above findFile in
 * patch/anchor.ts.)
 */
function takeMimeHeader(mime: MimeHeaders, name: string, value: string): boolean {
  if (!name.startsWith('content-') || name === 'content-language') return true;
  if (name === 'content-type' && mime.type === null) mime.type = value;
  else if (name === 'content-transfer-encoding' && mime.encoding === null) mime.encoding = value;
  else if (name === 'content-disposition' && mime.disposition === null) mime.disposition = value;
  else return false;
  return true;
}

/**
 * A Content-Type value: text/plain, with at most a UTF-8/ASCII charset, format=fixed or
 * flowed, and delsp=yes or no. Whether it is flowed, as mailsplit reads it (format "flowed"
 * on a text/plain part; delsp "yes" then deletes the space before a soft break); null for
 * any other value.
 */
function plainUtf8Type(value: string): { flowed: boolean; delSp: boolean } | null {
  if (/[()\\*]|=\?/.test(value)) return null; // comments, escapes, RFC 2231, encoded words
  const parts = value.split(';');
  if (parts[0].trim().toLowerCase() !== 'text/plain') return null;
  const seen = new Set<string>();
  let flowed = false;
  let delSp = false;
  for (let k = 1; k < parts.length; k++) {
    if (!parts[k].trim()) continue;
    const m = /^\s*([A-Za-z-]+)\s*=\s*("?)([^"]*)\2\s*$/.exec(parts[k]);
    if (!m) return null;
    const param = m[1].toLowerCase();
    if (seen.has(param)) return null;
    seen.add(param);
    const v = m[3].toLowerCase();
    // mailparser's own test for a charset it need not decode: lowercase, only [a-z0-9].
    if (param === 'charset') {
      if (!['ascii', 'usascii', 'utf8'].includes(v.replace(/[^a-z0-9]+/g, ''))) return null;
    } else if (param === 'format') {
      if (v !== 'fixed' && v !== 'flowed') return null;
      flowed = v === 'flowed';
    } else if (param === 'delsp') {
      if (v !== 'yes' && v !== 'no') return null;
      delSp = v === 'yes';
    } else return null;
  }
  return { flowed, delSp: flowed && delSp };
}

/** parseMail would read this mail's body itself (see plainTextEncoding); for tests. */
export function readsPlainBody(raw: Buffer): PlainEncoding | null {
  return plainBodyOf(raw)?.encoding ?? null;
}

/** How parseMail would read this mail's body itself, flowed or not (null: through mailparser); for tests. */
export function plainBodyOf(raw: Buffer): PlainText | null {
  const headerEnd = findHeaderEnd(raw);
  return headerEnd > 0 ? plainTextEncoding(scanHeaderBlock(raw, headerEnd, true)) : null;
}

/** mailparser's text of a plain text mail (see plainTextEncoding): the body as UTF-8, CRLF made LF. */
function plainTextBody(raw: Buffer, headerEnd: number, plain: PlainText): string {
  let bytes = raw.subarray(headerEnd);
  if (plain.encoding === 'quoted-printable') bytes = decodeQuotedPrintable(bytes);
  // FlowedDecoder passes nothing on for an empty body.
  if (plain.flowed && bytes.length > 0) bytes = Buffer.from(flowedDecoder()!(bytes.toString('latin1'), plain.delSp), 'latin1');
  const body = bytes.toString('utf8');
  return body.includes('\r') ? body.replace(/\r?\n/g, '\n') : body;
}

type DecodeFlowed = (text: string, delSp: boolean) => string;

/** libmime's decodeFlowed, the one mailsplit's FlowedDecoder calls (loaded from where mailsplit loads it). */
const flowedDecoder = lazily((): DecodeFlowed | null => {
  const fromMailsplit = createRequire(mailparserRequire().resolve('@zone-eu/mailsplit'));
  const { Libmime } = fromMailsplit('libmime') as { Libmime?: new (o: object) => { decodeFlowed?: DecodeFlowed } };
  const libmime = Libmime ? new Libmime({}) : null;
  const decode = libmime?.decodeFlowed;
  return libmime && typeof decode === 'function' ? (text, delSp) => decode.call(libmime, text, delSp) : null;
});

function headerIndex(raw: Buffer): HeaderIndex | null {
  const cached = rangesCache.get(raw);
  if (cached !== undefined) return cached;
  const index = scanHeaderBlock(raw, raw.length, false).index;
  rangesCache.set(raw, index);
  return index;
}

/** First value of each header (lowercase name -> unfolded value): the plain reading, for blocks with 8-bit names. */
function headerMapSlow(rawHeaders: Buffer, encoding: BufferEncoding): Map<string, string> {
  const map = new Map<string, string>();
  const text = rawHeaders.toString(encoding);
  let name: string | null = null;
  let value = '';
  const flush = () => {
    if (name !== null && !map.has(name)) map.set(name, value.trim());
  };
  for (let i = 0; i < text.length; ) {
    let j = text.indexOf('\n', i);
    if (j < 0) j = text.length;
    const line = text.slice(i, j).replace(/\r$/, '');
    i = j + 1;
    if (line === '') break;
    if (line[0] === ' ' || line[0] === '\t') {
      if (name !== null) value += ' ' + line.trim();
      continue;
    }
    flush();
    const colon = line.indexOf(':');
    if (colon <= 0) {
      name = null;
      continue;
    }
    name = line.slice(0, colon).trim().toLowerCase();
    value = line.slice(colon + 1);
  }
  flush();
  return map;
}

/**
 * The unfolded value of the first header `name` in a raw header block: the rest of its first
 * line, then each continuation line trimmed, joined by spaces, trimmed.
 */
export function headerValue(rawHeaders: Buffer, name: string, encoding: BufferEncoding = 'utf8'): string | null {
  return readHeader({ raw: rawHeaders, index: headerIndex(rawHeaders) }, name, encoding);
}

/** A raw header block with its index (null: 8-bit names, read the slow way). */
interface HeaderBlock {
  raw: Buffer;
  index: HeaderIndex | null;
}

/** headerValue on a block already indexed. */
function readHeader(block: HeaderBlock, name: string, encoding: BufferEncoding = 'utf8'): string | null {
  const { raw, index } = block;
  if (!index) return headerMapSlow(raw, encoding).get(name.toLowerCase()) ?? null;
  const { text, names, values } = index;
  const lower = name.toLowerCase();
  for (let h = 0; h < names.length; h += 3) {
    if (names[h + 1] - names[h] !== lower.length || !equalsLower(text, names[h], lower)) continue;
    const end = h + 3 < names.length ? names[h + 5] : values.length;
    let r = names[h + 2];
    let value = raw.toString(encoding, values[r], values[r + 1]);
    for (r += 2; r < end; r += 2) value += ' ' + raw.toString(encoding, values[r], values[r + 1]).trim();
    return value.trim();
  }
  return null;
}

/** The message ids in a header value (mailparser gives one string, or several). */
function idsOf(v: string | string[] | undefined): string[] {
  if (!v) return [];
  return extractIds(Array.isArray(v) ? v.join(' ') : v);
}

export function extractIds(text: string): string[] {
  const out: string[] = [];
  const re = /<([^<>\s]+)>/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(text))) out.push(`<${m[1]}>`);
  if (out.length === 0) {
    // Some clients send ids without angle brackets.
    for (const tok of text.split(/[\s,]+/)) if (/^[^@\s<>]+@[^@\s<>]+$/.test(tok)) out.push(`<${tok}>`);
  }
  return out;
}

function firstAddress(obj: AddressObject | AddressObject[] | undefined): Address {
  return addresses(obj)[0] ?? { name: '', address: '' };
}

function addresses(obj: AddressObject | AddressObject[] | undefined): Address[] {
  if (!obj) return [];
  const out: Address[] = [];
  for (const o of Array.isArray(obj) ? obj : [obj]) flattenAddresses(o.value ?? [], out);
  return out;
}

/** "Name <addr>", "addr (Name)" or bare "addr". */
export function parseAddressText(text: string): Address | null {
  const t = text.trim();
  let m = /^(.*?)\s*<([^<>]*)>\s*$/.exec(t);
  if (m) return { name: unquote(m[1]), address: m[2].trim().toLowerCase() };
  m = /^([^\s()]+@[^\s()]+)\s*\((.*)\)\s*$/.exec(t);
  if (m) return { name: m[2].trim(), address: m[1].toLowerCase() };
  m = /^([^\s<>]+@[^\s<>]+)$/.exec(t);
  if (m) return { name: '', address: m[1].toLowerCase() };
  return null;
}

function unquote(s: string): string {
  let t = s.trim();
  if (t.startsWith('"') && t.endsWith('"') && t.length >= 2) t = t.slice(1, -1).replace(/\\(.)/g, '$1');
  return t.trim();
}

function listIds(mp: MimeParts, rawHeaders: HeaderBlock): string[] {
  const out = new Set<string>();
  const id = readHeader(rawHeaders, 'list-id');
  if (id) {
    const m = /<([^>]+)>/.exec(id);
    out.add((m ? m[1] : id).toLowerCase());
  }
  const post = readHeader(rawHeaders, 'list-post');
  if (post) {
    const m = /mailto:([^>\s]+)/i.exec(post);
    if (m) out.add(m[1].toLowerCase());
  }
  void mp;
  return [...out];
}

/**
 * Lists whose senders' domains publish DMARC p=reject rewrite From: to the list's own address
 * and keep the sender elsewhere: Google Groups in X-Original-From ("'Jane Doe' via Group"
 * <group@googlegroups.com>), Mailman in Reply-To ("Jane Doe via Xen-devel"
 * <xen-devel@lists.xenproject.org>). A list is never a patch's author, so when From: is the
 * list's address (its List-Post mailto, or its List-Id with the "@" as a ".") the sender is
 * taken back from X-Original-From, which exists only to carry a rewritten From, or else from
 * Reply-To, but only when the display name also says "<name> via <list>": Reply-To is set for
 * many other reasons (reply-to-list, a sender's other address).
 */
function dmarcOriginalSender(rawHeaders: HeaderBlock, from: Address): ParsedMail['originalFrom'] {
  if (!from.address || !isListAddress(rawHeaders, from.address)) return null;
  const pick = (header: 'X-Original-From' | 'Reply-To'): Address | null => {
    const value = readHeader(rawHeaders, header);
    if (!value) return null;
    for (const part of splitAddressList(decodeWords(value))) {
      const a = parseAddressText(part);
      if (a && a.address.includes('@') && a.address !== from.address && !isListAddress(rawHeaders, a.address)) return a;
    }
    return null;
  };
  const xof = pick('X-Original-From');
  if (xof) return { address: xof, header: 'X-Original-From' };
  if (!/\svia\s+\S.*$/.test(from.name)) return null;
  const rt = pick('Reply-To');
  return rt ? { address: rt, header: 'Reply-To' } : null;
}

/** The address is the list's own: its List-Post mailto, or its List-Id ("xen-devel.lists.xenproject.org"). */
function isListAddress(rawHeaders: HeaderBlock, address: string): boolean {
  const post = readHeader(rawHeaders, 'list-post');
  if (post) {
    for (const m of post.matchAll(/mailto:([^>\s,?]+)/gi)) if (m[1].toLowerCase() === address) return true;
  }
  const id = readHeader(rawHeaders, 'list-id');
  if (id) {
    const m = /<([^>]+)>/.exec(id);
    const listId = (m ? m[1] : id).trim().toLowerCase();
    if (listId === address || listId === address.replace('@', '.')) return true;
  }
  return false;
}

/** Split "A <a@x>, \"B, b\" <b@y>" at the commas that separate addresses (not those in quotes or <>). */
function splitAddressList(text: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  let angle = 0;
  let paren = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '\\' && quoted) {
      cur += c + (text[i + 1] ?? '');
      i++;
      continue;
    }
    if (c === '"') quoted = !quoted;
    else if (!quoted && c === '<') angle++;
    else if (!quoted && c === '>') angle = Math.max(0, angle - 1);
    else if (!quoted && c === '(') paren++;
    else if (!quoted && c === ')') paren = Math.max(0, paren - 1);
    else if (c === ',' && !quoted && angle === 0 && paren === 0) {
      if (cur.trim()) out.push(cur.trim());
      cur = '';
      continue;
    }
    cur += c;
  }
  if (cur.trim()) out.push(cur.trim());
  return out;
}

/**
 * Mail written by a program, not a person: auto-replies (RFC 3834's Auto-Submitted, and the
 * older Precedence: auto_reply and X-Autoreply/X-Autorespond), bounces and delivery reports,
 * a list server's own notices (Mailman's X-List-Administrivia), and patchvet's own replies.
 * "Precedence: bulk" (or junk) counts only on mail that did not come through a mailing list:
 * list servers stamp it on every mail they pass on (vger.kernel.org: bulk; Mailman: list), so
 * on list mail it says nothing about who wrote it.
 */
function isAutomated(mp: MimeParts, rawHeaders: HeaderBlock, from: Address): boolean {
  const auto = readHeader(rawHeaders, 'auto-submitted');
  if (auto && auto.toLowerCase() !== 'no') return true;
  const prec = readHeader(rawHeaders, 'precedence');
  if (prec && /^auto_reply$/i.test(prec)) return true;
  if (prec && /^(bulk|junk)$/i.test(prec) && !viaList(rawHeaders)) return true;
  if (readHeader(rawHeaders, 'x-autoreply') || readHeader(rawHeaders, 'x-autorespond')) return true;
  if (/^yes$/i.test(readHeader(rawHeaders, 'x-list-administrivia') ?? '')) return true;
  if (/^(mailer-daemon|postmaster)@/i.test(from.address)) return true;
  const ct = readHeader(rawHeaders, 'content-type') ?? '';
  if (/multipart\/report/i.test(ct)) return true;
  if (readHeader(rawHeaders, 'x-patchvet')) return true;
  void mp;
  return false;
}

/** The mail came through a mailing list (RFC 2919 List-Id, RFC 2369 List-Post, ezmlm's Mailing-List). */
function viaList(rawHeaders: HeaderBlock): boolean {
  return !!(readHeader(rawHeaders, 'list-id') || readHeader(rawHeaders, 'list-post') || readHeader(rawHeaders, 'mailing-list'));
}

// ---------------------------------------------------------------- body

/** A text/plain part (top level or inside multipart) declared format=flowed. */
function isFlowed(raw: Buffer): boolean {
  const window = raw.subarray(0, 256 * 1024);
  // Cheap byte search first: almost no mail says "flowed" at all.
  if (!hasFlowedWord(window)) return false;
  const head = window.toString('latin1');
  return /^content-type:[ \t]*text\/plain[^\n]*(?:\r?\n[ \t][^\n]*)*format[ \t]*=[ \t]*"?flowed/im.test(head);
}

/**
 * "flowed", "Flowed" or "FLOWED" occurs in the bytes. Two searches, not three: "wed" is
 * rarer in mail than the "f" a search for "flowed" stops at, and covers both lowercase forms.
 */
function hasFlowedWord(buf: Buffer): boolean {
  for (let i = buf.indexOf('wed', 3); i >= 0; i = buf.indexOf('wed', i + 1)) {
    if (buf[i - 1] === 0x6f && buf[i - 2] === 0x6c && (buf[i - 3] === 0x66 || buf[i - 3] === 0x46)) return true;
  }
  return buf.indexOf('FLOWED') >= 0;
}

const NO_TEXTS: readonly string[] = Object.freeze([]);

/** The texts of the attachments that hold a patch. */
function patchAttachmentTexts(atts: Attachment[]): string[] {
  const out: string[] = [];
  for (const att of atts) if (isPatchAttachment(att)) out.push(stripEmbeddedMailHeaders(att.content.toString('utf8')));
  return out;
}

function isPatchAttachment(att: Attachment): boolean {
  const ct = (att.contentType ?? '').toLowerCase();
  const name = (att.filename ?? '').toLowerCase();
  if (/^text\/(x-)?(patch|diff)$/.test(ct) || ct === 'text/x-diff') return true;
  if (/\.(patch|diff)$/.test(name) && (ct.startsWith('text/') || ct === 'application/octet-stream')) return true;
  return false;
}

/** An attached `git format-patch` file carries its own mail headers: keep its body only. */
function stripEmbeddedMailHeaders(text: string): string {
  if (!/^(From [0-9a-f]{40} |From: |Subject: )/.test(text)) return text;
  const i = text.search(/\r?\n\r?\n/);
  if (i < 0) return text;
  const head = text.slice(0, i);
  const body = text.slice(i).replace(/^\r?\n\r?\n/, '');
  // Keep its From:/Subject: as in-body headers so the author is still the patch's.
  const keep = head
    .split(/\r?\n/)
    .filter((l) => /^(From|Subject|Date):/i.test(l))
    .join('\n');
  return keep ? `${keep}\n\n${body}` : body;
}

/** Re-decode a single-part base64 text body when its decoded bytes hold CRLF line ends. */
function recoverCrlfBody(raw: Buffer, rawHeaders: HeaderBlock, headerEnd: number, mp: MimeParts): string | null {
  if (headerEnd < 0) return null;
  const cte = readHeader(rawHeaders, 'content-transfer-encoding', 'latin1');
  if (!cte || !/^base64/i.test(cte)) return null;
  const headers = rawHeaders.index ? rawHeaders.index.text : raw.subarray(0, headerEnd).toString('latin1');
  const ct = /^content-type:\s*([^;\r\n]+)(.*(?:\r?\n[ \t].*)*)/im.exec(headers);
  if (ct && !/^text\/plain/i.test(ct[1].trim())) return null;
  const bytes = Buffer.from(raw.subarray(headerEnd).toString('latin1'), 'base64');
  if (bytes.indexOf('\r\n') < 0) return null;
  const cs = ct ? /charset\s*=\s*"?([^";\s]+)/i.exec(ct[2] ?? '') : null;
  try {
    return new TextDecoder(cs?.[1] ?? 'utf-8').decode(bytes);
  } catch {
    return mp.text ?? null;
  }
}

function htmlToPlain(html: string): string {
  return html
    .replace(/<(script|style)[\s\S]*?<\/\1>/gi, '')
    .replace(/<br\s*\/?>/gi, '\n')
    .replace(/<\/(p|div|pre|blockquote)>/gi, '\n')
    .replace(/<[^>]+>/g, '')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&nbsp;/g, ' ')
    .replace(/&amp;/g, '&');
}

export interface InBody {
  body: string;
  from: Address | null;
  subject: string | null;
  date: string | null;
  scissors: boolean;
}

const SCISSORS = /^[ \t]*(?:-+\s*)?(?:>8|8<)(?:\s*-+)?[ \t]*$|^[ \t]*-{2,}[ \t]*(?:>8|8<)[ \t]*-{2,}[ \t]*$/;

/**
 * git am semantics: a scissors line ("-- >8 --") discards everything above it; then
 * "From:", "Subject:" and "Date:" lines at the very top of the body (up to the first blank
 * line) override the mail's headers and are removed from the body.
 */
export function applyInBodyHeaders(text: string): InBody {
  let body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  let scissors = false;
  // No ">8"/"8<" anywhere: no line can be a scissors line, and the scan below only looks for one.
  if (body.includes('>8') || body.includes('8<')) {
    const lines = body.split('\n');
    for (let i = 0; i < lines.length; i++) {
      const l = lines[i].replace(/\r$/, '');
      if (isScissorsLine(l)) {
        // Only a scissors line before the diff counts.
        const before = lines.slice(0, i).join('\n');
        if (!/^diff --git |^--- a\//m.test(before)) {
          body = lines.slice(i + 1).join('\n');
          scissors = true;
        }
        break;
      }
      if (/^(diff --git |---\s*$)/.test(l)) break;
    }
  }
  const res: InBody = { body, from: null, subject: null, date: null, scissors };
  // The lines of the body are read one at a time from the top (a line starts at p; past the
  // last line p is body.length + 1): only the first few matter.
  const end = body.length;
  // Skip leading blank lines, then read header-like lines.
  let p = 0;
  while (p <= end && lineAt(body, p).trim() === '') p = nextLineAt(body, p);
  // format-patch output pasted into the body starts with its "From <commit> Mon Sep 17 ..."
  // line: git mailinfo skips it and reads the From:/Subject: below it. mailinfo sees it as
  // ">From ..." (mboxo escaping, kept by git am's mailsplit); patchvet's mbox reader removes
  // that ">", so both shapes are skipped to give the author git am gives on the archive.
  let afterSeparator = -1;
  if (p <= end && FORMAT_PATCH_SEPARATOR.test(lineAt(body, p).replace(/\r$/, ''))) {
    p = afterSeparator = nextLineAt(body, p);
    while (p <= end && lineAt(body, p).trim() === '') p = nextLineAt(body, p);
  }
  let seen = false;
  while (p <= end) {
    const l = lineAt(body, p).replace(/\r$/, '');
    if (/^\[PATCH\][ \t]/.test(l)) {
      // git mailinfo: a "[PATCH] title" line among the in-body headers is the Subject (the
      // convention from before format-patch wrote a Subject: line).
      res.subject = l.replace(/\s+/g, ' ').trim();
      seen = true;
      p = nextLineAt(body, p);
      continue;
    }
    const m = /^(From|Subject|Date)[ \t]*:[ \t]*(.*)$/i.exec(l);
    if (!m) break;
    let value = m[2];
    for (let q = nextLineAt(body, p); q <= end; q = nextLineAt(body, q)) {
      const u = lineAt(body, q);
      if (!/^[ \t]+\S/.test(u) || /^(From|Subject|Date):/i.test(u.trim())) break;
      value += ' ' + u.trim();
      p = q;
    }
    const key = m[1].toLowerCase();
    if (key === 'from') res.from = parseAddressText(decodeWords(value)) ?? res.from;
    else if (key === 'subject') res.subject = decodeWords(value).replace(/\s+/g, ' ').trim();
    else res.date = toIso(value);
    seen = true;
    p = nextLineAt(body, p);
  }
  if (seen && (p > end || lineAt(body, p).trim() === '')) {
    res.body = body.slice(p).replace(/^\n+/, '');
  } else {
    if (seen) {
      // "From: x" followed directly by text is prose, not an in-body header block.
      res.from = null;
      res.subject = null;
      res.date = null;
    }
    if (afterSeparator >= 0) res.body = body.slice(afterSeparator).replace(/^\n+/, '');
  }
  return res;
}

/** Where the line after the one starting at p begins (text.length + 1 past the last line). */
function nextLineAt(text: string, p: number): number {
  const nl = text.indexOf('\n', p);
  return nl < 0 ? text.length + 1 : nl + 1;
}

/** The line starting at p, without its "\n". */
function lineAt(text: string, p: number): string {
  return text.slice(p, nextLineAt(text, p) - 1);
}

/** The first line of a `git format-patch` file, ">"-escaped or not, as git's is_format_patch_separator reads it. */
const FORMAT_PATCH_SEPARATOR = /^>?From [0-9a-f]{40} Mon Sep 17 00:00:00 2001$/;

export function isScissorsLine(line: string): boolean {
  const t = line.trim();
  if (!/(>8|8<)/.test(t)) return false;
  // git: a line of mostly dashes/spaces with a scissors mark, at least 8 chars of perforation.
  const perforation = t.replace(/>8|8</g, '').replace(/[ \t]/g, '');
  return SCISSORS.test(t) || (/^[-\s]*$/.test(perforation) && perforation.length >= 2);
}

function toIso(value: string): string | null {
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

/** Decode RFC 2047 encoded words in an in-body header. */
export function decodeWords(s: string): string {
  return s.replace(/=\?([^?]+)\?([bBqQ])\?([^?]*)\?=(\s+(?==\?))?/g, (_m, cs: string, enc: string, data: string) => {
    try {
      const bytes =
        enc.toUpperCase() === 'B'
          ? Buffer.from(data, 'base64')
          : Buffer.from(
              data.replace(/_/g, ' ').replace(/=([0-9a-fA-F]{2})/g, (_x, h: string) => String.fromCharCode(parseInt(h, 16))),
              'latin1',
            );
      return new TextDecoder(cs.split('*')[0]).decode(bytes);
    } catch {
      return _m;
    }
  });
}
