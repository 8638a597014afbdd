// Subject parsing: reply/forward prefixes, list tags and the patch bracket.
//
// A subject is read as a run of leading "prefix items" followed by the text:
//   items := reply prefix ("Re:", "AW:", "Re[2]:", ...) | forward prefix ("Fwd:", "WG:", ...)
//          | bracket group ("[Xen-devel]", "[PATCH v2 1/9]") | b4's "(subset)"
// Bracket groups are either patch markers or tags. A bracket is a marker when it names
// PATCH (also "PATCHv3", "PATCH-next", the "PPATCH" typo), RFC, RFT, RESEND, PULL, or
// carries a version ("v2") or numbering ("3/9"): that also covers the netdev
// patchwork-bot shape "[net-next,v3,4/6]". Anything else ("[Xen-devel]", "[EXTERNAL]",
// "[BUG]", "[ANNOUNCE]", "[tip:irq/core]") is a tag: removed from `clean`, not a marker.
// Marker brackets that follow each other directly ("[PATCH] [v2] foo") are read as one
// marker; a target-only bracket next to a marker ("[PATCH] [net-next] foo",
// "[for-4.21][PATCH]") joins it. Reply/forward prefixes are only read before the marker:
// what follows it is the commit title, whatever it starts with.
//
// "[GIT PULL]" is a marker with prefixes ["GIT PULL"] and no numbering: pull requests
// are patch traffic a reviewer wants to see, and `kind` (not the marker) tells them
// apart from patches.
import type { ParsedSubject, SeriesMarker } from '../model.js';

// Reply prefixes in the languages mail clients localise them into. "VS" is Finnish
// "vastaus" (reply); Danish/Norwegian clients use it for forwards, but a forward of a
// patch mail threads the same way, so the difference is harmless.
// Short words that are also kernel subsystem prefixes ("rv:", runtime verification) are
// left out.
const REPLY_WORDS = ['re', 'aw', 'sv', 'vs', 'antw', 'antwort', 'odp', 'ynt', 'atb', 'rif', 'vá', 'απ', '回复', '答复', '回覆'];
const FORWARD_WORDS = ['fwd', 'fw', 'wg', 'tr', 'doorst', 'πρθ', '转发', '轉寄'];

// "Re:", "RE :", "Re[2]:", "Re(2):", "Re^2:", full-width colon from CJK clients.
const PREFIX_RE = new RegExp(
  `^(${[...REPLY_WORDS, ...FORWARD_WORDS].map(escapeRe).join('|')})\\s*(?:\\[\\d+\\]|\\(\\d+\\)|\\^\\d+)?\\s*[:：]`,
  'iu',
);
const REPLY_SET = new Set(REPLY_WORDS);

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

const VERSION_RE = /^v(\d+(?:\.\d+)?)$/i;
const NUMBERING_RE = /^(\d+)\/(\d+)$/;
const PATCH_WORD_RE = /^p?patch(.*)$/i;
const KEYWORDS = new Set(['RFC', 'RFT', 'RESEND', 'PULL', 'GIT', 'PATCH', 'PPATCH', 'REPOST']);

type Token =
  | { t: 'version'; version: number }
  | { t: 'numbering'; index: number; total: number }
  | { t: 'word'; word: string };

/** Split one bracket's content into tokens ("PATCH net-next,V4, 3/3" -> PATCH, net-next, V4, 3/3). */
function tokenize(content: string): Token[] {
  const out: Token[] = [];
  // Commas separate words in the netdev/patchwork shapes ("net-next,V4,"), but not inside
  // an accidental "--to=a@b,c@d" that git send-email put into the bracket.
  const raws: string[] = [];
  for (const w of splitWhitespace(content)) {
    if (w.includes('=') || w.includes('@')) raws.push(w.replace(/,+$/, ''));
    else if (w.includes(',')) for (const part of w.split(',')) raws.push(part);
    else raws.push(w);
  }
  for (let i = 0; i < raws.length; i++) {
    const raw = raws[i];
    if (!raw) continue;
    // The patterns below start with a digit, "v" or "p": other words are plain words.
    const c = raw.charCodeAt(0);
    const digit = c >= 0x30 && c <= 0x39;
    // Mercurial's patchbomb numbers "[PATCH 2 of 5]" (patchwork reads it as 2/5): without
    // this its patches would each be a series of one.
    if (digit && /^\d+$/.test(raw) && /^of$/i.test(raws[i + 1] ?? '') && /^\d+$/.test(raws[i + 2] ?? '')) {
      out.push({ t: 'numbering', index: parseInt(raw, 10), total: parseInt(raws[i + 2], 10) });
      i += 2;
      continue;
    }
    const num = digit ? NUMBERING_RE.exec(raw) : null;
    if (num) {
      out.push({ t: 'numbering', index: parseInt(num[1], 10), total: parseInt(num[2], 10) });
      continue;
    }
    const lower = c | 0x20;
    const ver = lower === 0x76 ? VERSION_RE.exec(raw) : null;
    if (ver) {
      out.push({ t: 'version', version: parseFloat(ver[1]) });
      continue;
    }
    const pw = lower === 0x70 ? PATCH_WORD_RE.exec(raw) : null;
    if (pw && pw[1]) {
      // "PATCHv3", "PATCH-v3", "PATCH-next": the word glued to what follows it.
      const word = raw.slice(0, raw.length - pw[1].length);
      const rest = pw[1].replace(/^-(?=v\d)/i, '');
      const rv = VERSION_RE.exec(rest);
      out.push({ t: 'word', word });
      if (rv) out.push({ t: 'version', version: parseFloat(rv[1]) });
      else out.push({ t: 'word', word: rest });
      continue;
    }
    out.push({ t: 'word', word: raw });
  }
  return out;
}

/** The only white space in s is single spaces (no runs, tabs, line breaks or other \s). */
function singleSpaced(s: string): boolean {
  let prevSpace = false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x20) {
      if (prevSpace) return false;
      prevSpace = true;
    } else if (c < 0x20 || (c >= 0x80 && /\s/.test(s[i]))) {
      return false;
    } else prevSpace = false;
  }
  return true;
}

/**
 * content.split(/\s+/) (leading and trailing whitespace give an empty first and last word):
 * split(' ') gives the same when the only whitespace is single spaces, as in the collapsed
 * subjects parseSubject passes.
 */
function splitWhitespace(content: string): string[] {
  return singleSpaced(content) ? content.split(' ') : content.split(/\s+/);
}

/** s.replace(/\s+/g, ' ').trim(), without the regex when words are already single-spaced. */
export function collapseWhitespace(s: string): string {
  // A leading space needs the regex's trim; a single trailing one is cut here.
  if (s.charCodeAt(0) === 0x20 || !singleSpaced(s)) return s.replace(/\s+/g, ' ').trim();
  return s.endsWith(' ') ? s.slice(0, -1) : s;
}

function isMarkerWord(w: string): boolean {
  return /^(p?patch|rfc|rft|resend|pull)$/i.test(w);
}

function isMarkerBracket(tokens: Token[]): boolean {
  return tokens.some((t) => t.t !== 'word' || isMarkerWord(t.word));
}

/** A word that names a branch, release or tree rather than being a keyword. */
function isTargetWord(w: string): boolean {
  if (KEYWORDS.has(w.toUpperCase())) return false;
  if (/[=@<>:]/.test(w)) return false; // "--to=a@b,c@d" and similar accidents
  // All-caps words are keywords of a project or workflow: "XEN", "AUTOSEL", "MINI-OS".
  if (/^[A-Z][A-Z0-9_-]*$/.test(w) && /[A-Z]{2}/.test(w)) return false;
  return true;
}

/** Target-like words strong enough to join a neighbouring marker as their own bracket. */
function isStrongTarget(w: string): boolean {
  return (
    /^for-/i.test(w) ||
    /^-/.test(w) ||
    /(^|-)next$/i.test(w) ||
    /-(fixes|rc\d*|stable)$/i.test(w) ||
    /^\d+(\.\d+)+(\.y)?([-.][\d.]+)?$/i.test(w) ||
    /^\d+\.y$/i.test(w) ||
    /^(net|rdma|bpf|stable|rc|mm|tip|staging)$/i.test(w)
  );
}

interface Bracket {
  tokens: Token[];
  marker: boolean;
  targetOnly: boolean;
}

function readBracket(content: string): Bracket {
  const tokens = tokenize(content);
  const marker = isMarkerBracket(tokens);
  const targetOnly =
    !marker && tokens.length > 0 && tokens.every((t) => t.t === 'word' && isStrongTarget(t.word));
  return { tokens, marker, targetOnly };
}

function buildMarker(brackets: Bracket[]): SeriesMarker {
  const m: SeriesMarker = {
    version: 1,
    index: null,
    total: null,
    rfc: false,
    resend: false,
    prefixes: [],
    targets: [],
  };
  let sawVersion = false;
  let sawNumbering = false;
  for (const b of brackets) {
    const toks = b.tokens;
    for (let i = 0; i < toks.length; i++) {
      const t = toks[i];
      if (t.t === 'version') {
        // First one wins: "[PATCH v2] [v3]" is a sender's mistake, not a v3.
        if (!sawVersion) m.version = t.version;
        sawVersion = true;
      } else if (t.t === 'numbering') {
        if (!sawNumbering) {
          m.index = t.index;
          m.total = t.total;
        }
        sawNumbering = true;
      } else {
        const w = t.word;
        const up = w.toUpperCase();
        const next = toks[i + 1];
        if (up === 'GIT' && next && next.t === 'word' && next.word.toUpperCase() === 'PULL') {
          m.prefixes.push(`${w} ${next.word}`);
          i++;
          continue;
        }
        if (up === 'RFC') m.rfc = true;
        if (up === 'RESEND') m.resend = true;
        m.prefixes.push(w);
        if (isTargetWord(w)) m.targets.push(w);
      }
    }
  }
  return m;
}

/** Parse a (decoded) Subject header. Pure; never throws. */
export function parseSubject(subject: string): ParsedSubject {
  let s = collapseWhitespace(subject ?? '');
  let reply = false;
  let forward = false;

  // Old Mozilla forwards: "[Fwd: original subject]".
  const mozFwd = s.charCodeAt(0) === 0x5b ? /^\[(?:fwd|fw):\s*(.*)\]$/i.exec(s) : null;
  if (mozFwd) {
    forward = true;
    s = mozFwd[1].trim();
  }

  // Groups of consecutive brackets, split wherever a reply/forward prefix sits between them.
  const groups: Bracket[][] = [[]];
  let sawMarker = false;
  for (;;) {
    // After the patch marker comes the commit title: "[PATCH] rv: fix ..." keeps its "rv:".
    const p = sawMarker ? null : PREFIX_RE.exec(s);
    // git am (mailinfo's cleanup_subject) drops a "Re:" wherever it sits in the leading run,
    // so "[PATCH] Re: 3c515 doesn't build" (a reply turned into a patch) is committed as
    // "3c515 doesn't build". Only the exact "re:" goes: "[PATCH] rv: ..." keeps its "rv:".
    // The mail stays a patch (its marker comes first), not a reply.
    if (sawMarker && /^re:/i.test(s)) {
      s = s.slice(3).trimStart();
      // Brackets after it are the quoted subject's, not part of this mail's marker.
      if (groups[groups.length - 1].length) groups.push([]);
      continue;
    }
    if (p) {
      if (REPLY_SET.has(p[1].toLowerCase())) reply = true;
      else forward = true;
      s = s.slice(p[0].length).trimStart();
      if (groups[groups.length - 1].length) groups.push([]);
      continue;
    }
    if (s.startsWith('[')) {
      const end = s.indexOf(']');
      // An unclosed "[" is text, not a tag.
      if (end < 0) break;
      const b = readBracket(s.slice(1, end));
      if (b.marker) sawMarker = true;
      groups[groups.length - 1].push(b);
      // "[PATCH]: Fix ..." (an old, still common style): git am drops the ":" with the
      // bracket, and a title never starts with one.
      s = s.slice(end + 1).replace(/^[\s:]+/, '');
      continue;
    }
    // b4's thank-you mails: "Re: (subset) [PATCH 00/12] ...".
    const subset = /^\(subset\)\s*(?=\[)/i.exec(s);
    if (subset) {
      s = s.slice(subset[0].length);
      continue;
    }
    break;
  }

  let series: SeriesMarker | null = null;
  for (const g of groups) {
    const first = g.findIndex((b) => b.marker);
    if (first < 0) continue;
    // Extend the marker over adjacent marker or target-only brackets on both sides.
    let lo = first;
    while (lo > 0 && (g[lo - 1].marker || g[lo - 1].targetOnly)) lo--;
    let hi = first;
    while (hi + 1 < g.length && (g[hi + 1].marker || g[hi + 1].targetOnly)) hi++;
    series = buildMarker(g.slice(lo, hi + 1));
    break;
  }

  return { clean: s.trim(), reply, forward, series };
}

/**
 * Key for comparing subjects across versions and postings: lowercase, whitespace
 * collapsed, a trailing full stop dropped (rerolls often gain or lose one).
 */
export function normalizeSubjectKey(clean: string): string {
  return clean.toLowerCase().replace(/\s+/g, ' ').trim().replace(/\.+$/, '').trimEnd();
}
