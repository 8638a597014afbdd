// Trailers: the "Key: value" lines at the end of a commit message (git interpret-trailers
// rules), and the tags reviewers give in their replies ("Reviewed-by: ..." in new text).
import type { Trailer } from '../model.js';
import { isBlank, splitLines } from './lines.js';

// Canonical spelling of the trailers people write in many cases ("CC:", "Acked-By:").
// Unknown names are kept as written.
const CANONICAL = new Map(
  [
    'Signed-off-by',
    'Reviewed-by',
    'Acked-by',
    'Tested-by',
    'Reported-by',
    'Suggested-by',
    'Co-developed-by',
    'Co-authored-by',
    'Fixes',
    'Link',
    'Closes',
    'Cc',
    'Release-acked-by',
    'Requested-by',
    'Reported-and-tested-by',
    'Reviewed-and-tested-by',
    'Tested-and-acked-by',
    'Originally-by',
    'Based-on-patch-by',
    'Debugged-by',
    'Analyzed-by',
    'Bisected-by',
    'Helped-by',
    'Inspired-by',
    'Assisted-by',
    'Amends',
    'Change-Id',
    'Message-ID',
    'Backport-of',
    'Coverity-ID',
    'Resolves',
    'Bug',
    'Cherry-picked-from',
  ].map((n) => [n.toLowerCase(), n]),
);

/** "acked-By" -> "Acked-by"; names we do not know stay as written. */
export function canonicalTrailerName(name: string): string {
  return CANONICAL.get(name.toLowerCase()) ?? name;
}

// git: a token is letters, digits and '-', followed (maybe after spaces) by the separator.
const TRAILER_LINE = /^([A-Za-z0-9][A-Za-z0-9-]*)[ \t]*:[ \t]*(.*)$/;

function matchTrailerLine(line: string): { name: string; value: string } | null {
  const m = TRAILER_LINE.exec(line);
  if (!m) return null;
  // "https://..." at the start of a line is a URL, not a trailer called "https".
  if (m[2].startsWith('//')) return null;
  return { name: m[1], value: m[2] };
}

/** The commit message proper: stop at git's "---" separator or a signature. */
function commitPart(text: string): string[] {
  const lines = splitLines(text);
  let end = 0;
  for (; end < lines.length; end++) {
    const l = lines[end];
    const c = l.charCodeAt(0);
    // Only lines starting with "-" or "d" can end it: test those alone.
    if (c === 0x2d ? /^---\s*$/.test(l) || l === '-- ' : c === 0x64 && l.startsWith('diff --git ')) break;
  }
  return end < lines.length ? lines.slice(0, end) : lines;
}

/**
 * Trailers of a commit message, git interpret-trailers style: the last paragraph counts
 * when every line in it is a trailer (or a continuation line starting with whitespace),
 * or when at least a quarter are and one is a Signed-off-by / "(cherry picked from" line
 * git itself writes (then the other lines, e.g. "[jb: fixed typo]", are skipped).
 */
function commitTrailers(text: string): Trailer[] {
  const lines = commitPart(text);
  let end = lines.length;
  while (end > 0 && isBlank(lines[end - 1])) end--;
  let start = end;
  while (start > 0 && !isBlank(lines[start - 1])) start--;
  const para = lines.slice(start, end);
  if (!para.length) return [];

  const found: Array<{ name: string; value: string }> = [];
  let trailerLines = 0;
  let otherLines = 0;
  let recognised = false;
  let last: { name: string; value: string } | null = null;
  for (const line of para) {
    if (/^[ \t]/.test(line) && last) {
      // Continuation of the previous trailer (a wrapped Fixes: subject, a long Link).
      last.value = `${last.value} ${line.trim()}`;
      continue;
    }
    const t = matchTrailerLine(line);
    if (t) {
      trailerLines++;
      if (t.name.toLowerCase() === 'signed-off-by') recognised = true;
      last = { name: t.name, value: t.value };
      found.push(last);
    } else {
      otherLines++;
      if (/^\(cherry picked from commit /.test(line)) recognised = true;
      last = null;
    }
  }
  const accepted =
    (trailerLines > 0 && otherLines === 0) || (recognised && trailerLines * 3 >= otherLines);
  if (!accepted) return [];
  return found
    .map((t) => ({ name: canonicalTrailerName(t.name), value: t.value.trim() }))
    .filter((t) => t.value !== '');
}

// ---------------------------------------------------------------- trailers given in replies

/** A trailer a reviewer gave in a reply, with the condition attached to it, if any. */
export interface ReplyTrailer {
  trailer: Trailer;
  /** "with the nit fixed", "Preferably with this adjusted to be unambiguous": null when unconditional. */
  condition: string | null;
  /** 0-based line of the trailer in the text given. */
  line: number;
}

// In a reply only tags a reviewer gives count: "*-by" (with an address) and Fixes. A
// "Link:" or "Note:" in prose is not a tag.
const REPLY_TAG = /^(?:(.*?[:,;])\s+)?([A-Za-z][A-Za-z-]*-by|Fixes)[ \t]*:[ \t]*(\S.*)$/i;
const CONDITION_START =
  /^(with|provided|preferably|assuming|if|once|as long as|subject to|but|albeit|when|after|modulo|except)\b/i;

function splitValue(name: string, rest: string): { value: string; after: string } | null {
  if (name === 'Fixes') {
    const m = /^([0-9a-f]{6,64}\b(?:\s*\(".*"\))?)(.*)$/i.exec(rest);
    return m ? { value: m[1].trim(), after: m[2].trim() } : null;
  }
  // "Name <addr>" or a bare address; what follows is a comment ("# x86") or a condition.
  const m = /^([^<>]*<[^<>\s]+@[^<>\s]+>|[^\s<>]+@[^\s<>]+)(.*)$/.exec(rest);
  if (!m) return null;
  const after = m[2].trim();
  if (after.startsWith('#')) return { value: `${m[1].trim()} ${after}`, after: '' };
  return { value: m[1].trim(), after };
}

/** The last sentence of a stretch of prose, for a condition written before the tag. */
function lastSentence(prose: string): string {
  const parts = prose.split(/(?<=[.!?])\s+/);
  return parts[parts.length - 1].trim();
}

/**
 * Tags given in a reply's new text (the caller passes only new, unquoted text), each on
 * its own line, or after a short lead-in ending in ':' on the same line. A condition is
 * taken from the same line ("... <a@b> with the nit fixed"), a lead-in sentence ending in
 * ':' just before the tag ("Preferably with this adjusted:\nReviewed-by: ..."), or a
 * following line starting with "with", "provided", "if", ...
 */
export function findReplyTrailers(text: string): ReplyTrailer[] {
  const lines = splitLines(text);
  const out: ReplyTrailer[] = [];
  // A lead-in before a block of tags applies to all of them ("With that fixed:\nAcked-by: A\nTested-by: A").
  let blockCondition: { line: number; condition: string } | null = null;
  for (let i = 0; i < lines.length; i++) {
    // A tag has a ':' (REPLY_TAG is not run on the many lines without one).
    if (!lines[i].includes(':')) continue;
    const line = lines[i].replace(/^[ \t]{0,4}/, '');
    const m = REPLY_TAG.exec(line);
    if (!m) continue;
    const at = i;
    const name = canonicalTrailerName(m[2]);
    let rest = m[3].trim();
    // A client that wrapped "Reviewed-by: Long Name\n<addr>".
    if (name !== 'Fixes' && !rest.includes('@') && i + 1 < lines.length && /^\s*<[^>]+@[^>]+>/.test(lines[i + 1])) {
      rest = `${rest} ${lines[i + 1].trim()}`;
      i++;
    }
    const v = splitValue(name, rest);
    if (!v) continue;

    let condition: string | null = null;
    if (v.after) condition = v.after;
    else if (m[1]) condition = m[1].replace(/[:,;]$/, '').trim();
    else if (blockCondition && blockCondition.line === at - 1) condition = blockCondition.condition;
    else {
      // The prose just before the tag, within the same paragraph, if it leads into it.
      let j = at - 1;
      const before: string[] = [];
      while (j >= 0 && !isBlank(lines[j]) && !REPLY_TAG.test(lines[j].trim())) before.unshift(lines[j--].trim());
      const prose = before.join(' ');
      if (prose.endsWith(':')) {
        condition = lastSentence(prose).replace(/:$/, '').trim();
        blockCondition = { line: i, condition };
      } else {
        const next = i + 1 < lines.length ? lines[i + 1].trim() : '';
        if (next && !REPLY_TAG.test(next) && CONDITION_START.test(next)) condition = next;
      }
    }
    if (blockCondition && blockCondition.line === at - 1 && condition === blockCondition.condition) blockCondition.line = i;
    out.push({ trailer: { name, value: v.value }, condition: condition || null, line: at });
  }
  return out;
}

/**
 * Trailers of a commit message; with `fromReply`, the tags a reviewer gave in the new
 * text of a reply (the caller sets `givenIn`).
 */
export function parseTrailers(text: string, opts: { fromReply?: boolean } = {}): Trailer[] {
  if (!text) return [];
  if (opts.fromReply) return findReplyTrailers(text).map((r) => r.trailer);
  return commitTrailers(text);
}

/**
 * Check a Fixes: value against the kernel/Xen form `<sha of 12+ hex digits> ("subject")`.
 * Returns what is wrong, or null when it is well formed.
 */
export function validateFixes(value: string): string | null {
  const v = value.trim();
  if (!v) return 'empty Fixes: tag';
  const m = /^(\S+)(.*)$/s.exec(v)!;
  const sha = m[1];
  const rest = m[2];
  const problems: string[] = [];
  if (!/^[0-9a-f]+$/i.test(sha)) {
    problems.push(`"${sha}" is not a hexadecimal commit id`);
  } else if (sha.length < 12) {
    problems.push(`commit id ${sha} has ${sha.length} digits; use at least 12`);
  } else if (sha.length > 64) {
    problems.push(`commit id ${sha} is longer than any object id`);
  }
  if (!/^\s+\(".*"\)/s.test(rest)) {
    problems.push('no quoted subject: write it as <sha> ("subject line of that commit")');
  }
  return problems.length ? problems.join('; ') : null;
}
