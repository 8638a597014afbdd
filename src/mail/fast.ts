// The fast path of the mail stage: most list mail is one text/plain part (git send-email's
// patches, plain-text replies), and for those mailparser's stream machinery (a Transform per
// part, a line splitter, setImmediate between chunks, HTML renderings of every address) costs
// several times the rest of the parse. This reads such a mail directly and gives exactly what
// simpleParser gives for it, field by field, or null when the mail is not one it can read with
// certainty, and then mailparser reads it. What "exactly" means, as mailparser 3.14 with
// mailsplit 5.4, libmime 5.6, libqp 3.0 and nodemailer 10.3's addressparser read a mail:
//  - the header block is the one parse.ts's trimHeaders hands mailparser; a header line is
//    unfolded as libmime's decodeHeader does (a line break and the blanks after it read as one
//    space, then trimmed); the first Message-ID/Subject/Date/From/Content-* wins, To and Cc
//    add up over repeated headers, References tokens add up;
//  - the body is everything after the header block, decoded from quoted-printable as libqp
//    decodes it (or taken as it is for 7bit/8bit/binary), read as UTF-8 (what mailparser does
//    for utf-8, us-ascii and undeclared charsets), with CRLF turned into LF.
// Not read here (null): multipart and non-text/plain mail, format=flowed, base64, other
// charsets, a Content-Disposition other than "inline", 8-bit or encoded-word headers, address lists with quoted
// pairs, comments, groups or anything but "addr", "<addr>", "Name <addr>" and
// "\"Name\" <addr>", a Date that does not parse, an mbox "From " line for a header.
// test/unit/fast-mail.test.ts holds both readings equal on the 3,000 real linux-hyperv mails.
import type { ParsedMail as MpMail, AddressObject, EmailAddress } from 'mailparser';

/** The fields of mailparser's ParsedMail that parse.ts reads. */
export type MimeParts = Pick<MpMail, 'messageId' | 'references' | 'subject' | 'from' | 'to' | 'cc' | 'date' | 'text' | 'html' | 'attachments'>;

/** Same as parse.ts's list: the headers mailparser is given. */
const KEEP_HEADER = /^(from|to|cc|subject|date|message-id|in-reply-to|references|mime-version|content-[a-z-]+|sender|reply-to)$/i;
/** A header block larger than this goes to mailparser (it enforces its own size limits). */
const MAX_HEAD = 64 * 1024;

/**
 * The mail's MIME fields as simpleParser gives them, for a single text/plain part with plain
 * ASCII headers; null when mailparser must read it. `headerEnd` is the offset of the body.
 */
export function readSimpleMail(raw: Buffer, headerEnd: number): MimeParts | null {
  if (headerEnd <= 0 || headerEnd > MAX_HEAD) return null;
  const headers = keptHeaders(raw, headerEnd);
  if (!headers) return null;

  const first = new Map<string, string>();
  const to: string[] = [];
  const cc: string[] = [];
  const refs: string[] = [];
  for (const h of headers) {
    if (h.key === 'to') to.push(h.value);
    else if (h.key === 'cc') cc.push(h.value);
    else if (h.key === 'references') refs.push(h.value);
    else if (first.has(h.key)) {
      // A second Content-Type or transfer encoding: leave such mail to mailparser.
      if (h.key.startsWith('content-')) return null;
      continue;
    } else first.set(h.key, h.value);
  }
  // "inline" alone (Outlook adds it to every mail) reads as no disposition; anything else may be an attachment.
  const disposition = first.get('content-disposition');
  if (disposition !== undefined && !/^inline$/i.test(disposition)) return null;

  // Content-Type: absent, or text/plain with a charset read as UTF-8 and no format=flowed.
  const ct = first.get('content-type');
  if (ct !== undefined && !plainTextType(ct)) return null;
  const cte = (first.get('content-transfer-encoding') ?? '').toLowerCase().trim();
  if (cte.includes('(') || cte === 'base64') return null;

  const fromList = first.has('from') ? addressList(first.get('from')!) : undefined;
  if (fromList === null) return null;
  const toList = to.length ? addressLists(to) : undefined;
  if (toList === null) return null;
  const ccList = cc.length ? addressLists(cc) : undefined;
  if (ccList === null) return null;

  let date: Date | undefined;
  const dateValue = first.get('date');
  if (dateValue !== undefined) {
    date = new Date(dateValue);
    // mailparser puts the current time for a Date it cannot read: leave that to it.
    if (Number.isNaN(date.getTime())) return null;
  }

  const body = raw.subarray(headerEnd);
  const bytes = cte === 'quoted-printable' ? qpDecode(body.toString('latin1')) : body;
  const decoded = bytes.toString('utf8');
  const text = bytes.indexOf(0x0d) < 0 ? decoded : decoded.replace(/\r?\n/g, '\n');

  // simpleParser leaves a field out where this has it undefined: the same to every reader,
  // and one object shape for all mails.
  const messageId = first.get('message-id');
  let references: string | string[] | undefined;
  if (refs.length) {
    const all = refs.flatMap((v) => v.split(/\s+/).map(messageIdFormat).filter((x): x is string => x !== false));
    references = all.length === 1 ? all[0] : all;
  }
  return {
    messageId: messageId ? (messageIdFormat(messageId) as string) : undefined,
    references,
    subject: first.get('subject') || undefined,
    from: fromList ? addressObject(fromList) : undefined,
    to: toList ? (toList.length === 1 ? addressObject(toList[0]) : toList.map(addressObject)) : undefined,
    cc: ccList ? (ccList.length === 1 ? addressObject(ccList[0]) : ccList.map(addressObject)) : undefined,
    date,
    text: text || undefined,
    html: false,
    attachments: [],
  };
}

interface HeaderLine {
  key: string;
  value: string;
}

/**
 * The headers parse.ts keeps for mailparser, unfolded; null when one of them holds a byte
 * mailparser would decode (8-bit, control characters, a lone CR) or an encoded word.
 */
function keptHeaders(raw: Buffer, headerEnd: number): HeaderLine[] | null {
  const head = raw.toString('latin1', 0, headerEnd);
  const out: HeaderLine[] = [];
  let line = '';
  let keep = false;
  const flush = (): boolean => {
    if (!keep) return true;
    if (out.length === 0 && /^From /i.test(line)) return false; // mailsplit reads that as an mbox line
    const colon = line.indexOf(':');
    // libmime's decodeHeader: every line break with the blanks after it is one space.
    const value = line.slice(colon + 1).replace(/(?:\r?\n|\r)[ \t]*/g, ' ').trim();
    if (value.includes('=?')) return false;
    out.push({ key: line.slice(0, colon).toLowerCase().trim(), value });
    return true;
  };
  for (let i = 0; i < head.length; ) {
    let j = head.indexOf('\n', i);
    j = j < 0 ? head.length : j + 1;
    const c = head.charCodeAt(i);
    if (c === 0x20 || c === 0x09) {
      if (keep) {
        if (!plainAscii(head, i, j)) return null;
        line += '\r\n' + head.slice(i, lineEnd(head, i, j));
      }
    } else if (c !== 0x0a && c !== 0x0d) {
      if (!flush()) return null;
      const colon = head.indexOf(':', i);
      keep = colon > i && colon < j && KEEP_HEADER.test(head.slice(i, colon).trim());
      if (keep) {
        if (!plainAscii(head, i, j)) return null;
        line = head.slice(i, lineEnd(head, i, j));
      }
    }
    i = j;
  }
  return flush() ? out : null;
}

/** End of the line [i, j) without its CRLF or LF. */
function lineEnd(s: string, i: number, j: number): number {
  let e = j;
  if (e > i && s.charCodeAt(e - 1) === 0x0a) e--;
  if (e > i && s.charCodeAt(e - 1) === 0x0d) e--;
  return e;
}

/** Printable ASCII and tabs, then the line end (LF or CRLF); nothing mailparser would decode. */
function plainAscii(s: string, i: number, j: number): boolean {
  const e = lineEnd(s, i, j);
  for (let k = i; k < e; k++) {
    const c = s.charCodeAt(k);
    if ((c < 0x20 && c !== 0x09) || c > 0x7e) return false;
  }
  return true;
}

/** text/plain, parameters only charset (UTF-8 or ASCII), format (not flowed) and delsp. */
function plainTextType(value: string): boolean {
  const m = /^text\/plain[ \t]*((?:;[ \t]*[A-Za-z-]+[ \t]*=[ \t]*(?:"[^"\\]*"|[^\s;"()\\]+)[ \t]*)*);?[ \t]*$/i.exec(value);
  if (!m) return false;
  for (const p of m[1].matchAll(/;[ \t]*([A-Za-z-]+)[ \t]*=[ \t]*(?:"([^"\\]*)"|([^\s;"()\\]+))/g)) {
    const name = p[1].toLowerCase();
    const v = (p[2] ?? p[3]).trim().toLowerCase();
    if (name === 'charset') {
      if (!['ascii', 'usascii', 'utf8'].includes(v.replace(/[^a-z0-9]+/g, ''))) return false;
    } else if (name === 'format') {
      if (v === 'flowed') return false;
    } else if (name !== 'delsp') return false;
  }
  return true;
}

/** mailparser's ensureMessageIDFormat. */
function messageIdFormat(v: string): string | false {
  if (!v.length) return false;
  let out = v;
  if (out.charAt(0) !== '<') out = '<' + out;
  if (out.charAt(out.length - 1) !== '>') out += '>';
  return out;
}

/** An addr-spec without anything addressparser would read specially. */
const ADDR = /^[^\s"(),:;<>@[\]\\]+@[^\s"(),:;<>@[\]\\]+$/;

function addressLists(values: string[]): EmailAddress[][] | null {
  const out: EmailAddress[][] = [];
  for (const v of values) {
    const l = addressList(v);
    if (!l) return null;
    out.push(l);
  }
  return out;
}

/**
 * An address list of plain entries, as addressparser (plus mailparser's decodeAddresses)
 * reads it; null for anything else (groups, comments, quoted pairs, names without address).
 */
function addressList(value: string): EmailAddress[] | null {
  if (value.includes('=?') || value.includes('\\') || value.includes('\t') || /@xn--/i.test(value)) return null;
  const out: EmailAddress[] = [];
  let start = 0;
  for (let i = 0; i <= value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === 0x22) {
      // a quoted display name: commas, parentheses, colons inside are plain text
      const close = value.indexOf('"', i + 1);
      if (close < 0) return null;
      i = close;
      continue;
    }
    // outside quotes: comments, groups, domain literals, ';' separators are for addressparser
    if (c === 0x28 || c === 0x29 || c === 0x3a || c === 0x3b || c === 0x5b || c === 0x5d) return null;
    if (i < value.length && c !== 0x2c) continue;
    const entry = value.slice(start, i).trim();
    start = i + 1;
    if (!entry) continue; // addressparser skips empty entries
    const a = addressEntry(entry);
    if (!a) return null;
    out.push(a);
  }
  return out;
}

function addressEntry(e: string): EmailAddress | null {
  if (ADDR.test(e)) return { address: e, name: '' };
  if (!e.endsWith('>')) return null;
  const lt = e.lastIndexOf('<');
  if (lt < 0) return null;
  const address = e.slice(lt + 1, -1);
  if (!ADDR.test(address)) return null;
  const before = e.slice(0, lt).trim();
  if (!before) return { address, name: '' };
  let name: string;
  if (before.charCodeAt(0) === 0x22) {
    // "Name" <addr>: the quoted text, trimmed, and nothing else before the '<'
    if (before.length < 3 || before.indexOf('"', 1) !== before.length - 1) return null;
    name = before.slice(1, -1).trim();
  } else {
    if (/["<>@]/.test(before)) return null;
    name = before;
  }
  if (!name) return null;
  // "a@b" <a@b> (Outlook writes many): addressparser keeps only the address.
  return { address, name: name === address ? '' : name };
}

function addressObject(value: EmailAddress[]): AddressObject {
  return { value, html: '', text: '' };
}

// ---------------------------------------------------------------- quoted-printable

function hexValue(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  if (code >= 0x41 && code <= 0x46) return code - 0x41 + 10;
  if (code >= 0x61 && code <= 0x66) return code - 0x61 + 10;
  return -1;
}

/**
 * libqp 3.0's decode, step for step (its Decoder decodes the whole body at once): blanks at
 * the end of lines dropped, soft line breaks removed, =XX escapes decoded, all else copied.
 * `input` holds one char per byte (latin1).
 */
export function qpDecode(input: string): Buffer {
  const s = input.replace(/(^|[^ \t])[ \t]+(?=[\n\r\u2028\u2029]|$)/g, '$1').replace(/[=](?:\r?\n|$)/g, '');
  const len = s.length;
  let escapes = 0;
  for (let i = s.indexOf('='); i >= 0 && i < len - 2; i = s.indexOf('=', i + 1)) {
    if (hexValue(s.charCodeAt(i + 1)) >= 0 && hexValue(s.charCodeAt(i + 2)) >= 0) {
      escapes++;
      i += 2;
    }
  }
  const out = Buffer.alloc(len - escapes * 2);
  let at = 0;
  for (let i = 0; i < len; i++) {
    const code = s.charCodeAt(i);
    if (code === 0x3d && i < len - 2) {
      const hi = hexValue(s.charCodeAt(i + 1));
      const lo = hexValue(s.charCodeAt(i + 2));
      if (hi >= 0 && lo >= 0) {
        out[at++] = hi * 16 + lo;
        i += 2;
        continue;
      }
    }
    out[at++] = code;
  }
  return out;
}
