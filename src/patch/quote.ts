// Reply understanding, part 1: split a reply's decoded text body into quoted material
// and new text, in order. Pure functions; no knowledge of the patch (anchor.ts matches
// the quoted lines against the diff).
//
// What mail clients do to replies, and what this module undoes:
//  - '>' quoting at any depth ("> ", ">> ", "> > ", ">" alone for an empty quoted line);
//  - attribution lines ("On <date>, <name> wrote:", "<name> <addr> writes:", "Am ... schrieb ...:",
//    "Le ... a écrit :"), sometimes wrapped onto two lines;
//  - Outlook top-posting: "-----Original Message-----", a "From:/Sent:" header block, or a
//    "____" rule followed by one: everything below is the quoted original, without '>';
//  - signatures after "-- " and the list's footer ("____\nXen-devel mailing list ...");
//  - "[...]", "[snip]", "<snip>", "..." standing for removed quoted material;
//  - quoted lines the client re-wrapped, so that the continuation lost its '>' prefix.

import type { ReplyBlock } from '../model.js';
import { isBlank, splitLines } from './lines.js';

/** Quote depth of one line and its content with the quote markers removed. */
export interface QuoteMarker {
  depth: number;
  /** The line without its markers and without the one space that follows them. */
  content: string;
}

/**
 * Count the quote markers at the start of a line: "> x", ">> x", "> > x", ">x", ">".
 * Only the single space after the last marker is removed, so a quoted diff context line
 * ">  foo" keeps its own leading space (" foo").
 */
export function parseQuoteMarker(line: string): QuoteMarker {
  let i = 0;
  let depth = 0;
  while (line.charCodeAt(i) === 0x3e) {
    depth++;
    i++;
    // "> > x": a single space followed by another '>' is part of the marker.
    if (line.charCodeAt(i) === 0x20 && line.charCodeAt(i + 1) === 0x3e) i++;
  }
  if (depth > 0 && line.charCodeAt(i) === 0x20) i++;
  return { depth, content: depth > 0 ? line.slice(i) : line };
}

// ---------------------------------------------------------------- cheap first looks
// Most lines of a reply are quoted or plain prose: the line-class regexes below are only run
// when the line's first character allows a match, which charCodeAt tells without a regex.

/**
 * The character code may be whitespace to \s (or the line is empty): a regex that allows
 * leading \s* must then be run. Printable ASCII and most other scripts are excluded.
 */
function maybeSpace(c: number): boolean {
  return !(c > 0x20 && c < 0x1680 && c !== 0xa0);
}

/** After its leading whitespace, the line may start with the character code `c`. */
function mayStartWith(line: string, c: number): boolean {
  const f = line.charCodeAt(0);
  return f === c || maybeSpace(f);
}

/** ">From ", ">>From ", ... at the start of the line (mbox escaping). */
function isEscapedFrom(line: string): boolean {
  let k = 0;
  while (line.charCodeAt(k) === 0x3e) k++;
  return k > 0 && line.startsWith('From ', k);
}

// ---------------------------------------------------------------- line classes

const ELISION_BRACKETED =
  /^\s*(\[\s*(\.{2,}|…|(snip|snipped|cut|trimmed|deleted|removed)\b[^\]]*|[^\]]*\b(snip|snipped)\b[^\]]*)\s*\]|<\s*\/?\s*(snip|snipped|cut)\b[^>]*>|\(\s*(snip|snipped|\.{3}|…)\s*\)|-*\s*(snip|8<|>8)\s*-*)\s*$/i;
const ELISION_BARE = /^\s*(\.{3,}|…)\s*$/;

/**
 * The first character of the line lets ELISION_BRACKETED or ELISION_BARE match: after
 * leading whitespace they start with "[", "<", "(", "-", "snip", "8<", ">8", "." or "…".
 */
function mayBeElision(line: string): boolean {
  const f = line.charCodeAt(0);
  if (maybeSpace(f)) return true;
  switch (f) {
    case 0x5b: // [
    case 0x3c: // <
    case 0x28: // (
    case 0x2d: // -
    case 0x73: // s
    case 0x53: // S
    case 0x38: // 8
    case 0x3e: // >
    case 0x2e: // .
    case 0x2026: // …
      return true;
    default:
      return false;
  }
}

/** "[...]", "[snip]", "<snip>", "[ ... trimmed ... ]": stands for removed quoted material. */
export function isElisionMarker(text: string): boolean {
  return ELISION_BRACKETED.test(text) || ELISION_BARE.test(text);
}

// Attribution lines. The strict forms are recognisable on their own; the loose ones
// ("Foo Bar wrote:") only when a quote follows.
const ATTRIBUTION_STRICT: RegExp[] = [
  /^On\s.{3,}\s(wrote|writes|said|a écrit)\s*:\s*$/i,
  /^Am\s.{3,}\sschrieb\s.*:\s*$/,
  /^Le\s.{3,}\sa\s+écrit\s*:\s*$/,
  /^El\s.{3,}\sescribió\s*:\s*$/,
  /^Il\s.{3,}\sha\s+scritto\s*:\s*$/,
  /^Op\s.{3,}\sschreef\s.*:\s*$/,
  /^W dniu\s.{3,}\spisze\s*:\s*$/,
  /^Em\s.{3,}\sescreveu\s*:\s*$/,
  /^Den\s.{3,}\sskrev\s.*:\s*$/,
  /^.{1,120}<[^<>\s]+@[^<>\s]+>\s+(writes|wrote|schrieb|escribió|a écrit)\s*:\s*$/i,
  /^Quoting\s.{3,}:\s*$/,
  /^\S+@\S+\s+(writes|wrote)\s*:\s*$/i,
  // Outlook as some kernel reviewers configure it: "From: A <a@b> Sent: Friday, March 20, 2026 3:40 PM".
  /^\*?From:\*?\s.{2,200}\s\*?Sent:\*?\s.{4,80}$/,
];
const ATTRIBUTION_LOOSE = /^.{2,160}\b(wrote|writes|said|schrieb|escribió|écrit|scritto|schreef|pisze|escreveu|skrev)\s*:\s*$/i;
/** First line of an attribution that a client wrapped in two. */
const ATTRIBUTION_HEAD = /^(On|Am|Le|El|Il|Op|W dniu|Em|Den|Quoting)\s/;

function isStrictAttribution(text: string): boolean {
  for (const re of ATTRIBUTION_STRICT) if (re.test(text)) return true;
  return false;
}

/**
 * The line may be an attribution (alone, or as the start of a wrapped one): every pattern
 * but Outlook's "From: ... Sent: ..." ends in ":" once trimmed. False is certain; true
 * means isAttributionLine decides.
 */
function mayBeAttribution(text: string): boolean {
  const t = text.trim();
  return t.charCodeAt(t.length - 1) === 0x3a || t.startsWith('From:') || t.startsWith('*From:');
}

/** True if `text` (one line, or two wrapped lines joined with a space) reads as an attribution. */
export function isAttributionLine(text: string, quoteFollows = true): boolean {
  const t = text.trim();
  if (t.length > 300) return false;
  if (!mayBeAttribution(t)) return false;
  if (isStrictAttribution(t)) {
    // "On second thought, Jan wrote:" with no quote after it, no date and no address is
    // just prose; Gnus users put a greeting between "Name <addr> writes:" and the quote.
    return quoteFollows || /\d|<[^<>\s]+@[^<>\s]+>/.test(t);
  }
  return quoteFollows && ATTRIBUTION_LOOSE.test(t);
}

const ORIGINAL_MESSAGE =
  /^\s*-{3,}\s*(Original Message|Ursprüngliche Nachricht|Message d'origine|Mensaje original|Messaggio originale|Oorspronkelijk bericht|Originalnachricht|Forwarded message|Weitergeleitete Nachricht)\s*-{3,}\s*$/i;
const UNDERSCORE_RULE = /^\s*_{10,}\s*$/;
const HDR_FROM = /^\s*\*?(From|Von|De|Da|Van|Od|Från|Fra)\s?:\*?(\s|$)/i;
const HDR_SENT = /^\s*\*?(Sent|Date|Gesendet|Datum|Envoyé|Enviado|Inviato|Verzonden|Skickat|Sendt|Wysłano)\s?:\*?(\s|$)/i;
const HDR_OTHER = /^\s*\*?(To|Cc|Subject|An|Betreff|À|A|Objet|Para|Asunto|Oggetto|Aan|Onderwerp|Till|Ämne|Emne|Til|Do|Temat|Kopie)\s?:\*?(\s|$)/i;
const HDR_ANY = new RegExp(`${HDR_FROM.source}|${HDR_SENT.source}|${HDR_OTHER.source}`, 'i');

/** "From: ...\nSent: ...\nTo: ...\nSubject: ..." starting at line i (Outlook's quoted header). */
function isHeaderBlockAt(lines: string[], i: number): boolean {
  if (!HDR_FROM.test(lines[i] ?? '')) return false;
  let sent = false;
  let other = false;
  for (let j = i + 1; j < Math.min(lines.length, i + 8); j++) {
    const l = lines[j]!;
    if (l.trim() === '') break;
    if (HDR_SENT.test(l)) sent = true;
    else if (HDR_OTHER.test(l)) other = true;
  }
  return sent && other;
}

/** Where Outlook-style quoted material starts at line i: returns the header block's length, or 0. */
function outlookQuoteAt(lines: string[], i: number): number {
  const line = lines[i]!;
  const f = line.charCodeAt(0);
  if (f === 0x3e) return 0; // quoted ('>')
  // ORIGINAL_MESSAGE starts with "-", UNDERSCORE_RULE with "_", HDR_FROM with "*" or From,
  // Von, De, Da, Van, Od, Från, Fra (any case), all after optional whitespace.
  if (!maybeSpace(f) && f !== 0x2d && f !== 0x5f && f !== 0x2a) {
    const l = f | 0x20;
    if (l !== 0x66 && l !== 0x76 && l !== 0x64 && l !== 0x6f) return 0;
  }
  let j: number;
  if (ORIGINAL_MESSAGE.test(line) || UNDERSCORE_RULE.test(line)) {
    j = i + 1;
    while (j < lines.length && j <= i + 2 && lines[j]!.trim() === '') j++;
    const isRule = UNDERSCORE_RULE.test(line);
    if (!isHeaderBlockAt(lines, j)) {
      // "-----Original Message-----" alone still says everything below is the original.
      return isRule ? 0 : j - i;
    }
  } else if (isHeaderBlockAt(lines, i) && (i === 0 || lines[i - 1]!.trim() === '' || /^\s*-{3,}|_{10,}/.test(lines[i - 1]!))) {
    j = i;
  } else {
    return 0;
  }
  // The header block runs to the first blank line; wrapped header values ("Cc: a,\n b") included.
  let k = j;
  while (k < lines.length && k < j + 20 && lines[k]!.trim() !== '') {
    if (k > j && !HDR_ANY.test(lines[k]!) && !/^\s/.test(lines[k]!) && !/[,;]\s*$/.test(lines[k - 1]!)) break;
    k++;
  }
  return k - i;
}

/** The list's footer: "____\nXen-devel mailing list\nXen-devel@lists.xenproject.org\nhttps://.../listinfo/...". */
function isListFooterAt(lines: string[], i: number): boolean {
  if (!mayStartWith(lines[i]!, 0x5f) || !UNDERSCORE_RULE.test(lines[i]!)) return false;
  for (let j = i + 1; j < Math.min(lines.length, i + 4); j++) {
    if (/mailing list|\/listinfo\b|\/mailman\//i.test(lines[j]!)) return true;
  }
  return false;
}

function isSignatureSeparator(line: string): boolean {
  return line === '-- ' || line === '--';
}

// ---------------------------------------------------------------- re-wrapped quotes

/** Where mail clients break lines; a quoted line this long may have lost its tail to the next line. */
const WRAP_WIDTH = 72;

function looksLikeCode(text: string): boolean {
  return /[;{}]\s*$|^\s*[{}]|->|&&|\|\||[()]|\w_\w|^\s*[\w.]+\s*[+\-*/|&]?=\s/.test(text);
}

/**
 * An unquoted line between two quoted lines that is really the tail of the first one
 * (the client re-wrapped the quote and the continuation lost its '>'). A genuine short
 * answer ("How?", "Agreed.") must stay new text, so this asks for the shape of a wrap:
 * the quoted line is long enough that the fragment's first word would not have fitted,
 * and the fragment reads as a continuation (lowercase or code), not as a sentence.
 */
function isWrappedQuoteTail(prevRaw: string, fragment: string, nextQuoted: boolean, prevContent: string): boolean {
  const f = fragment.trim();
  if (f === '' || f.length > 80) return false;
  if (prevRaw.trimEnd().length < 50) return false;
  const firstWord = f.split(/\s+/)[0]!;
  if (prevRaw.trimEnd().length + 1 + firstWord.length <= WRAP_WIDTH) return false;
  if (/[?!]\s*$/.test(f)) return false;
  if (isElisionMarker(f) || isSignatureSeparator(fragment)) return false;
  const code = looksLikeCode(f);
  const lowerStart = /^[a-z0-9_(\[{)\]}*&|,.;:'"`/=<+-]/.test(f);
  if (!lowerStart && !code) return false;
  if (nextQuoted) return true;
  // At the end of a quote, only the tail of a quoted diff line is taken: prose there is
  // too often a terse answer.
  return code && /^[+\- \t]/.test(prevContent);
}

// ---------------------------------------------------------------- splitting

type Item =
  | { k: 'q'; depth: number; content: string }
  | { k: 'b' }
  | { k: 't'; text: string }
  | { k: 'a'; text: string }
  | { k: 'e'; text: string };

/** Next line index at or after i that is not blank, or -1. */
function nextNonBlank(lines: string[], i: number): number {
  for (let j = i; j < lines.length; j++) if (!isBlank(lines[j]!)) return j;
  return -1;
}

function prevNonBlank(lines: string[], i: number): number {
  for (let j = i; j >= 0; j--) if (!isBlank(lines[j]!)) return j;
  return -1;
}

/**
 * Split a reply's decoded text body into quoted material and new text, in order.
 * Blank lines around text belong to no block; signatures and list footers are dropped.
 */
export function splitReply(body: string): ReplyBlock[] {
  const lines = splitLines(body);
  const quoted: boolean[] = [];
  for (let k = 0; k < lines.length; k++) quoted.push(isQuotedLine(lines, lines[k]!, k));

  const items: Item[] = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i]!;
    if (!quoted[i]) {
      if (isListFooterAt(lines, i)) break;
      const span = outlookQuoteAt(lines, i);
      if (span > 0) {
        items.push({ k: 'a', text: lines.slice(i, i + span).map((l) => l.trim()).filter((l) => l !== '').join('\n') });
        pushOutlookQuote(lines.slice(i + span), items);
        break;
      }
      if (isSignatureSeparator(line)) {
        // What follows is the signature, up to the next quoted material (a top-poster's
        // signature sits above the quote).
        i++;
        while (i < lines.length && !quoted[i] && outlookQuoteAt(lines, i) === 0 && !isListFooterAt(lines, i)) {
          if (mayBeAttribution(lines[i]!)) {
            const nn = nextNonBlank(lines, i + 1);
            if (isAttributionLine(lines[i]!, nn >= 0 && quoted[nn]!)) break;
          }
          i++;
        }
        continue;
      }
    }
    if (quoted[i]) {
      const m = parseQuoteMarker(line);
      items.push({ k: 'q', depth: m.depth, content: m.content });
      i++;
      continue;
    }
    if (isBlank(line)) {
      items.push({ k: 'b' });
      i++;
      continue;
    }
    // Attribution, possibly wrapped onto two lines.
    if (mayBeAttribution(line)) {
      const nn1 = nextNonBlank(lines, i + 1);
      if (isAttributionLine(line, nn1 >= 0 && quoted[nn1]!)) {
        items.push({ k: 'a', text: line.trim() });
        i++;
        continue;
      }
    }
    if (i + 1 < lines.length && !quoted[i + 1] && !isBlank(lines[i + 1]!) && ATTRIBUTION_HEAD.test(line.trim())) {
      const joined = `${line.trim()} ${lines[i + 1]!.trim()}`;
      if (mayBeAttribution(joined)) {
        const nn2 = nextNonBlank(lines, i + 2);
        if (isAttributionLine(joined, nn2 >= 0 && quoted[nn2]!)) {
          items.push({ k: 'a', text: joined });
          i += 2;
          continue;
        }
      }
    }
    const prevQuoted = i > 0 && quoted[i - 1]!;
    const nextQuoted = i + 1 < lines.length && quoted[i + 1]!;
    if (isElision(lines, quoted, i)) {
      items.push({ k: 'e', text: line.trim() });
      i++;
      continue;
    }
    if (prevQuoted) {
      const prev = parseQuoteMarker(lines[i - 1]!);
      const atQuoteEnd = i + 1 >= lines.length || isBlank(lines[i + 1]!);
      if ((nextQuoted || atQuoteEnd) && prev.content.trim() !== '' && isWrappedQuoteTail(lines[i - 1]!, line, nextQuoted, prev.content)) {
        items.push({ k: 'q', depth: prev.depth, content: line.trim() });
        quoted[i] = true; // a following fragment test sees this as quoted
        i++;
        continue;
      }
    }
    // An mbox ">From " escape left in the body reads as what was written: "From ".
    items.push({ k: 't', text: (isEscapedFrom(line) ? line.slice(1) : line).trimEnd() });
    i++;
  }
  return groupItems(items);
}

/**
 * A line that starts with '>' is quoted, except the mbox "From " escape (">From ...")
 * standing alone between unquoted text lines: an mboxo archive's escaping, not a quote.
 */
function isQuotedLine(lines: string[], line: string, i: number): boolean {
  if (line.charCodeAt(0) !== 0x3e) return false;
  if (isEscapedFrom(line)) {
    const p = i > 0 ? lines[i - 1]! : '';
    const n = i + 1 < lines.length ? lines[i + 1]! : '';
    const unquotedText = (l: string) => !l.startsWith('>') && !isBlank(l);
    const quotedish = (l: string) => l.startsWith('>');
    if (!quotedish(p) && !quotedish(n) && (unquotedText(p) || unquotedText(n))) return false;
  }
  return true;
}

/** "[...]"/"[snip]"/"<snip>" anywhere unquoted; a bare "..." only where it stands between quotes. */
function isElision(lines: string[], quoted: boolean[], i: number): boolean {
  const line = lines[i]!;
  if (!mayBeElision(line)) return false;
  if (ELISION_BRACKETED.test(line)) return true;
  if (!ELISION_BARE.test(line)) return false;
  // "..." glued to a text line is part of that text (an ellipsis, elided log output).
  const touchingText = (j: number) => j >= 0 && j < lines.length && !quoted[j] && !isBlank(lines[j]!);
  if (touchingText(i - 1) || touchingText(i + 1)) return false;
  const p = prevNonBlank(lines, i - 1);
  const n = nextNonBlank(lines, i + 1);
  return (p >= 0 && quoted[p]!) || (n >= 0 && quoted[n]!);
}

/** Everything below an Outlook separator is the quoted original, '>' or not. */
function pushOutlookQuote(rest: string[], items: Item[]): void {
  let end = rest.length;
  for (let j = 0; j < rest.length; j++) {
    if (isListFooterAt(rest, j)) {
      end = j;
      break;
    }
  }
  while (end > 0 && isBlank(rest[end - 1]!)) end--;
  let start = 0;
  while (start < end && isBlank(rest[start]!)) start++;
  for (let j = start; j < end; j++) {
    const m = parseQuoteMarker(rest[j]!);
    items.push({ k: 'q', depth: m.depth + 1, content: m.depth > 0 ? m.content : rest[j]! });
  }
}

function groupItems(items: Item[]): ReplyBlock[] {
  const blocks: ReplyBlock[] = [];
  let quote: { lines: string[]; depths: number[] } | null = null;
  let text: string[] | null = null;

  const closeText = () => {
    if (!text) return;
    while (text.length && text[text.length - 1] === '') text.pop();
    while (text.length && text[0] === '') text.shift();
    if (text.length) blocks.push({ type: 'text', text: text.join('\n') });
    text = null;
  };
  const closeQuote = () => {
    if (!quote) return;
    blocks.push({ type: 'quote', lines: quote.lines, depths: quote.depths });
    quote = null;
  };

  for (const it of items) {
    switch (it.k) {
      case 'q':
        closeText();
        if (!quote) quote = { lines: [], depths: [] };
        quote.lines.push(it.content);
        quote.depths.push(it.depth);
        break;
      case 'b':
        // A blank line inside a quote stretch ("> a\n\n> b") does not end it; inside text
        // it separates paragraphs of the same text block.
        if (text) text.push('');
        break;
      case 't':
        closeQuote();
        if (!text) text = [];
        text.push(it.text);
        break;
      case 'a':
      case 'e':
        closeText();
        closeQuote();
        blocks.push({ type: it.k === 'a' ? 'attribution' : 'elision', text: it.text });
        break;
    }
  }
  closeText();
  closeQuote();
  return blocks;
}

/** All new text of a reply, paragraphs joined by a blank line (for trailer collection). */
export function newText(blocks: ReplyBlock[]): string {
  return blocks
    .filter((b): b is Extract<ReplyBlock, { type: 'text' }> => b.type === 'text')
    .map((b) => b.text)
    .join('\n\n');
}
