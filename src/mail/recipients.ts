// To and Cc, decoded when first read.
//
// On list mail, reading To/Cc was the costliest thing mailparser did: kernel and xen-devel
// mail carries Cc lists of dozens of addresses, and simpleParser runs every address through
// nodemailer's addressparser and renders each list as HTML and as text. Measured on the
// 3,000 linux-hyperv mails, that was 45% of its time (390 -> 215 us of CPU a mail without
// them). Few readers need the recipients: replies by email, the serve policy, rules scoped
// to lists, the LLM pass. `patchvet threads` needs none.
//
// So the mail stage keeps the two headers' values as simpleParser would hand them to its
// address parser, and the record decodes them on first use with mailparser's own
// `parseAddressHeader` (the function simpleParser's address handling is made of, exported for
// this): the addresses are the ones simpleParser gives, only later. A test holds the two
// equal on the 3,000 real mails.
//
// mailparser is loaded here on first use, not imported: records are read back on the main
// thread, which parses no mail, and mailparser's modules there cost 5 MB of heap and three
// times the full GCs on 200 MB of mail (measured with --trace-gc), for nothing.
import { createRequire } from 'node:module';
import type { EmailAddress } from 'mailparser';
import type { Address } from '../model.js';

type ParseAddressHeader = (typeof import('mailparser'))['parseAddressHeader'];
let parseAddressHeader: ParseAddressHeader | null = null;

function addressParser(): ParseAddressHeader {
  if (!parseAddressHeader) {
    const mp = createRequire(import.meta.url)('mailparser') as typeof import('mailparser');
    parseAddressHeader = mp.parseAddressHeader;
  }
  return parseAddressHeader;
}

/** The values of a mail's To: and Cc: headers (each occurrence), ready for the address parser. */
export interface RawRecipients {
  to: string[];
  cc: string[];
}

/**
 * To:/Cc: values of a header block, prepared as simpleParser prepares them: mailsplit's
 * logical lines (a line and its continuation lines, split at LF or CRLF), then libmime's
 * decodeHeader (line breaks and the indentation after them become one space; the value is
 * what follows the first colon, trimmed), then the bytes read as UTF-8.
 */
export function recipientHeaders(rawHeaders: Buffer): RawRecipients {
  const out: RawRecipients = { to: [], cc: [] };
  const n = rawHeaders.length;
  let i = 0;
  while (i < n) {
    const c = rawHeaders[i] | 0x20;
    // Only a line starting "to" or "cc" (any case, maybe spaces before the colon) is read further.
    const lineEnd = nextLine(rawHeaders, i);
    if ((c === 0x74 || c === 0x63) && (rawHeaders[i + 1] | 0x20) === (c === 0x74 ? 0x6f : 0x63)) {
      let end = lineEnd;
      while (end < n && (rawHeaders[end] === 0x20 || rawHeaders[end] === 0x09)) end = nextLine(rawHeaders, end);
      const line = rawHeaders.toString('latin1', i, end);
      const colon = line.indexOf(':');
      const key = colon < 0 ? '' : line.slice(0, colon).trim().toLowerCase();
      if (key === 'to' || key === 'cc') {
        const unfolded = line.replace(/(?:\r?\n|\r)[ \t]*/g, ' ').trim();
        const m = /^\s*([^:]+):(.*)$/.exec(unfolded);
        const value = ((m && m[2]) || '').trim();
        out[key].push(Buffer.from(value, 'latin1').toString());
      }
      i = end;
    } else {
      i = lineEnd;
    }
  }
  return out;
}

function nextLine(buf: Buffer, i: number): number {
  const nl = buf.indexOf(0x0a, i);
  return nl < 0 ? buf.length : nl + 1;
}

/** The addresses of header values, as simpleParser gives them, groups flattened, addresses lower-cased. */
export function decodeAddressValues(values: readonly string[]): Address[] {
  if (values.length === 0) return [];
  return flattenAddresses(addressParser()([...values]).value);
}

/** mailparser's addresses as records keep them: groups flattened, addresses lower-cased (appended to `out`). */
export function flattenAddresses(value: readonly EmailAddress[], out: Address[] = []): Address[] {
  for (const v of value) {
    if (v.group) for (const g of v.group) out.push({ name: g.name ?? '', address: (g.address ?? '').toLowerCase() });
    else out.push({ name: v.name ?? '', address: (v.address ?? '').toLowerCase() });
  }
  return out;
}

const STATE = Symbol('patchvet.recipients');

interface LazyState {
  raw: RawRecipients;
  /** A value was assigned to `to` or `cc`: the raw values no longer describe the record. */
  assigned: boolean;
  to?: Address[];
  cc?: Address[];
}

/**
 * Make `to` and `cc` of `target` decode `raw` when first read. They stay enumerable,
 * assignable properties in the same place among the keys (JSON.stringify, structured clone
 * and jest's equality see plain arrays).
 */
export function lazyRecipients<T extends { to: Address[]; cc: Address[] }>(target: T, raw: RawRecipients): T {
  const state: LazyState = { raw, assigned: false };
  Object.defineProperty(target, STATE, { value: state, enumerable: false, configurable: true });
  for (const key of ['to', 'cc'] as const) {
    Object.defineProperty(target, key, {
      enumerable: true,
      configurable: true,
      get: () => (state[key] ??= decodeAddressValues(state.raw[key])),
      set: (v: Address[]) => {
        state[key] = v;
        state.assigned = true;
      },
    });
  }
  return target;
}

/** The raw To/Cc values behind a record's lazy recipients, or null (plain arrays, or assigned since). */
export function rawRecipientsOf(r: object): RawRecipients | null {
  const s = (r as { [STATE]?: LazyState })[STATE];
  return s && !s.assigned ? s.raw : null;
}
