// Reply understanding, part 2: anchor each stretch of new text in a reply to the diff line
// it answers (CONTRACT.md, "comments"): the last quoted diff line before it.
//
// Quoted lines are matched to the patch by CONTENT, because reviewers trim hunks (quoted
// "@@" numbers then no longer count the quoted lines) and mail clients damage whitespace
// (tabs turned to spaces, the leading space of context lines lost, lines re-wrapped or,
// with format=flowed, joined). Quotes follow the patch in order, so among equal lines the
// one after the previous match, in the file named by the nearest quoted header, wins.
// When the parent's diff is not available, the quote's own "+++"/"@@" headers still give
// file and line by counting.

import type { Comment, Diff, DiffLine, LineKind, ReplyBlock } from '../model.js';
import { isBlank } from './lines.js';

function count(s: string, ch: string): number {
  let n = 0;
  for (const c of s) if (c === ch) n++;
  return n;
}

// Quoted lines are compared with all whitespace removed ("compacted"). The compacted text
// is never built: lines are hashed and compared skipping whitespace, on the text as it is.
// Building it cost a regex replace and an allocation per line, and every Map lookup by a
// built string hashed it and, on a hit, compared it in full with another string: together
// the largest part of anchoring.

/** Whitespace as /\s/ has it (so also as trim() has it). */
function isSpace(c: number): boolean {
  if (c <= 32) return c === 32 || (c >= 9 && c <= 13);
  if (c < 0xa0) return false;
  return (
    c === 0xa0 || c === 0x1680 || (c >= 0x2000 && c <= 0x200a) || c === 0x2028 || c === 0x2029 ||
    c === 0x202f || c === 0x205f || c === 0x3000 || c === 0xfeff
  );
}

// The strings come in several representations (flat, sliced, joined, internalized, one- or
// two-byte), each with its own hidden class, so `s.charCodeAt` and `s.length` read per
// character would go through V8's slow (megamorphic) property lookup, which tripled the
// cost of these loops. Calling String.prototype.charCodeAt directly, and reading the
// length once, keeps the loops on the fast path.
const charCodeAt = String.prototype.charCodeAt;

/** Length of the text compactHash hashed last, compacted: hash and length come out of one pass. */
let hashedLength = 0;

/** Hash of s[from..] compacted (FNV-1a over its UTF-16 units); sets hashedLength to its length. */
function compactHash(s: string, from: number): number {
  let h = 0x811c9dc5;
  let k = 0;
  const n = s.length;
  for (let i = from; i < n; i++) {
    const c = charCodeAt.call(s, i);
    if (!isSpace(c)) {
      h = Math.imul(h ^ c, 16777619);
      k++;
    }
  }
  hashedLength = k;
  return h;
}

/** s[sf..] and t[tf..] read the same once compacted. */
function sameCompact(s: string, sf: number, t: string, tf: number): boolean {
  const sn = s.length;
  const tn = t.length;
  let i = sf;
  let j = tf;
  for (;;) {
    while (i < sn && isSpace(charCodeAt.call(s, i))) i++;
    while (j < tn && isSpace(charCodeAt.call(t, j))) j++;
    if (i === sn || j === tn) return i === sn && j === tn;
    if (charCodeAt.call(s, i) !== charCodeAt.call(t, j)) return false;
    i++;
    j++;
  }
}

/** Index of the first character of s that is not whitespace (s.length if none): where trimStart() starts. */
function firstNonSpace(s: string): number {
  const n = s.length;
  let i = 0;
  while (i < n && isSpace(charCodeAt.call(s, i))) i++;
  return i;
}

/** Index just after the last character of s that is not whitespace: where trimEnd() ends. */
function endNonSpace(s: string): number {
  let i = s.length;
  while (i > 0 && isSpace(charCodeAt.call(s, i - 1))) i--;
  return i;
}

/** An elision marker the reviewer wrote: "[...]", "[ … ]", "[snip]" (after trimming). */
const SNIP = /^\[\s*(\.\.\.|…|snip)/i;

const PREFIX: Record<LineKind, string> = { add: '+', del: '-', ctx: ' ' };

// ---------------------------------------------------------------- the patch, indexed

interface Entry {
  /** Position in the whole diff, in patch order. */
  g: number;
  fi: number;
  hi: number;
  li: number;
  /** Position of the first line of this entry's hunk (g - li). */
  hs: number;
  path: string;
  line: DiffLine;
  /** Length of line.text compacted: 0 exactly when the line is blank (trim and \s agree). */
  klen: number;
}

/** Patch lines of one kind that read the same compacted; `next` is another text with the same hash. */
interface Group {
  list: number[];
  next: Group | null;
}

/** A quoted line as the index sees it: how it may read, and the patch lines it may be. */
interface Looked {
  /** Kind of the one alternative that is not weak, if any (the alternatives' kinds differ). */
  strong: LineKind | null;
  /** candidates(alts) inside a run of diff lines, and outside one. Shared: never modified. */
  inRun: readonly number[];
  outRun: readonly number[];
  /** inRun has a line that is not blank. */
  textInRun: boolean;
}

interface DiffIndex {
  diff: Diff;
  entries: Entry[];
  /** compactHash(text) -> the patch lines reading so, one map per line kind. */
  exact: Record<LineKind, Map<number, Group>>;
  /**
   * Quoted line -> what it may be in this patch. The replies to one patch quote the same
   * lines, and one reply looks at each quoted line several times (lookahead, re-wrap checks).
   */
  looked: Map<string, Looked>;
}

/**
 * The index of a diff, made once per diff object: the replies to one patch are anchored
 * against the same diff one after another (thread assembly, the pipeline's workers), and
 * indexing hashes every line of it. The index only reads the diff, which nobody changes
 * once it is parsed.
 */
const indexes = new WeakMap<Diff, DiffIndex>();

function indexDiff(diff: Diff): DiffIndex {
  let ix = indexes.get(diff);
  if (!ix) indexes.set(diff, (ix = buildIndex(diff)));
  return ix;
}

function buildIndex(diff: Diff): DiffIndex {
  const entries: Entry[] = [];
  const exact: Record<LineKind, Map<number, Group>> = { add: new Map(), del: new Map(), ctx: new Map() };
  const files = diff.files;
  for (let fi = 0; fi < files.length; fi++) {
    const f = files[fi]!;
    for (let hi = 0; hi < f.hunks.length; hi++) {
      const lines = f.hunks[hi]!.lines;
      const hs = entries.length;
      for (let li = 0; li < lines.length; li++) {
        const line = lines[li]!;
        const g = entries.length;
        const text = line.text;
        const h = compactHash(text, 0);
        entries.push({ g, fi, hi, li, hs, path: f.path, line, klen: hashedLength });
        const byHash = exact[line.kind];
        let grp = byHash.get(h);
        if (!grp) {
          byHash.set(h, { list: [g], next: null });
          continue;
        }
        for (;;) {
          if (sameCompact(entries[grp.list[0]!]!.line.text, 0, text, 0)) {
            grp.list.push(g);
            break;
          }
          if (!grp.next) {
            grp.next = { list: [g], next: null };
            break;
          }
          grp = grp.next;
        }
      }
    }
  }
  return { diff, entries, exact, looked: new Map() };
}

/** Positions of the patch lines of `kind` reading as s[from..] compacted, ascending; undefined if none. */
function linesReading(ix: DiffIndex, kind: LineKind, h: number, s: string, from: number): number[] | undefined {
  for (let grp: Group | null | undefined = ix.exact[kind].get(h); grp; grp = grp.next) {
    if (sameCompact(ix.entries[grp.list[0]!]!.line.text, 0, s, from)) return grp.list;
  }
  return undefined;
}

/** The patch has a line (of any kind) reading as s[from..] compacted. */
function inDiff(ix: DiffIndex, s: string, from: number): boolean {
  const h = compactHash(s, from);
  return (
    linesReading(ix, 'add', h, s, from) !== undefined ||
    linesReading(ix, 'del', h, s, from) !== undefined ||
    linesReading(ix, 'ctx', h, s, from) !== undefined
  );
}

/** The patch lines an alternative reading matches. */
function altLines(ix: DiffIndex, a: Alt): number[] | undefined {
  return linesReading(ix, a.kind, a.hash, a.src, a.from);
}

/** What quoted line `content` may be in the patch, worked out once per index. */
function look(ix: DiffIndex, content: string): Looked {
  let l = ix.looked.get(content);
  if (!l) {
    // candidates(alts, true) and candidates(alts, false), each alternative looked up once.
    const alts = alternatives(content);
    let inRun: readonly number[] = NONE;
    let outRun: readonly number[] = NONE;
    let textInRun = false;
    for (const a of alts) {
      if (a.len === 0 && a.kind === 'ctx') continue;
      const list = altLines(ix, a);
      if (!list) continue;
      inRun = inRun.length ? union(inRun, list) : list;
      // A lost-prefix line must be in a run of diff lines, or long enough not to be prose by chance.
      if (!(a.weak && a.len < 12)) outRun = outRun.length ? union(outRun, list) : list;
      if (a.len !== 0) textInRun = true;
    }
    l = { strong: strongKind(alts), inRun, outRun, textInRun };
    ix.looked.set(content, l);
  }
  return l;
}

// Loops, not findIndex/map/some with closures, in this file's per-reply code: a closure made
// per call loses its optimized code at each full GC (V8 holds it weakly) and is compiled
// again, which on a long run cost more than the closures' work.

/** The kind of a quoted line for reclaimPastedPatch: 'H' header, 'D' a patch line, 'B' blank, 'X' diff-looking but not the patch's, 'T' text. */
function lineKind(ix: DiffIndex, l: string, next: string | undefined): string {
  if (isBlank(l)) return 'B';
  if (parseHeader(l, next)) return 'H';
  const c0 = l[0];
  if (c0 !== '+' && c0 !== '-' && c0 !== ' ' && c0 !== '\t') return 'T';
  for (const a of alternatives(l)) if (!a.weak && altLines(ix, a) !== undefined) return 'D';
  return c0 === '+' || c0 === '-' ? 'X' : 'T';
}

function findFile(ix: DiffIndex, path: string): number | null {
  const files = ix.diff.files;
  for (let fi = 0; fi < files.length; fi++) {
    const f = files[fi];
    if (f.path === path || f.newPath === path || f.oldPath === path) return fi;
  }
  // A path quoted with a different prefix depth ("a/b/c.c" vs "b/c.c").
  for (let fi = 0; fi < files.length; fi++) {
    const f = files[fi];
    if (f.path.endsWith(`/${path}`) || path.endsWith(`/${f.path}`)) return fi;
  }
  return null;
}

function findHunk(ix: DiffIndex, fi: number, h: QuotedHunkHeader): number | null {
  const hunks = ix.diff.files[fi]!.hunks;
  for (let hi = 0; hi < hunks.length; hi++) if (hunks[hi].oldStart === h.oldStart && hunks[hi].newStart === h.newStart) return hi;
  for (let hi = 0; hi < hunks.length; hi++) if (hunks[hi].newStart === h.newStart || hunks[hi].oldStart === h.oldStart) return hi;
  if (h.fnText) for (let hi = 0; hi < hunks.length; hi++) if ((hunks[hi].headerFunction ?? '').trim() === h.fnText) return hi;
  return null;
}

// ---------------------------------------------------------------- quoted headers

interface QuotedHunkHeader {
  oldStart: number;
  newStart: number;
  fnText: string;
}

const HUNK_HEADER = /^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@ ?(.*)$/;
const DIFF_GIT = /^diff --git "?a\/(.+?)"? "?b\/(.+?)"?\s*$/;
const MINUS_HEADER = /^--- (?:"?a\/(.+?)"?|\/dev\/null)(\t.*)?\s*$/;
const PLUS_HEADER = /^\+\+\+ (?:"?b\/(.+?)"?|\/dev\/null)(\t.*)?\s*$/;
const OTHER_HEADER =
  /^(index [0-9a-f]+\.\.[0-9a-f]+|(new|deleted) file mode |old mode |new mode |similarity index |dissimilarity index |rename (from|to) |copy (from|to) |Binary files |\\ No newline at end of file)/;

type Header =
  | { h: 'file'; path: string | null }
  | { h: 'hunk'; hunk: QuotedHunkHeader }
  | { h: 'other' };

function parseHeader(content: string, next: string | undefined): Header | null {
  // Every header starts (after indentation) with one of a few characters; most quoted lines
  // start with another, and each regex below only matches after its own first character.
  const i = firstNonSpace(content);
  if (i === content.length) return null;
  const c0 = charCodeAt.call(content, i);
  const c = i === 0 ? content : content.slice(i);
  switch (c0) {
    case 0x2b: // '+'
      return c.startsWith('+++ ') ? plusHeader(c) : null;
    case 0x2d: // '-'
      return c.startsWith('--- ') ? minusHeader(c, next) : null;
    case 0x40: // '@'
      return c.startsWith('@@ -') ? hunkHeader(c) : null;
    case 0x64: // 'd': "diff --git", "deleted file mode", "dissimilarity index"
      return diffGitHeader(c) ?? otherHeader(c);
    case 0x69: // index
    case 0x6e: // new file mode, new mode
    case 0x6f: // old mode
    case 0x73: // similarity index
    case 0x72: // rename
    case 0x63: // copy
    case 0x42: // Binary files
    case 0x5c: // \ No newline at end of file
      return otherHeader(c);
    default:
      return null;
  }
}

function diffGitHeader(c: string): Header | null {
  const m = DIFF_GIT.exec(c);
  return m ? { h: 'file', path: m[2]! } : null;
}

function plusHeader(c: string): Header | null {
  const m = PLUS_HEADER.exec(c);
  return m ? { h: 'file', path: m[1] ?? null } : null;
}

function minusHeader(c: string, next: string | undefined): Header | null {
  const m = MINUS_HEADER.exec(c);
  if (m && next !== undefined && next.trimStart().startsWith('+++ ')) return { h: 'file', path: null };
  return null;
}

function hunkHeader(c: string): Header | null {
  const m = HUNK_HEADER.exec(c);
  return m ? { h: 'hunk', hunk: { oldStart: Number(m[1]), newStart: Number(m[2]), fnText: m[3]!.trim() } } : null;
}

function otherHeader(c: string): Header | null {
  return OTHER_HEADER.test(c) ? { h: 'other' } : null;
}

/** Function name from a hunk header's funcname or a definition line ("int foo(struct bar *b)"). */
function functionName(text: string): string | null {
  const t = text.trim();
  if (/^(if|for|while|switch|return|else|do)\b/.test(t)) return null;
  const m = /([A-Za-z_]\w*)\s*\(/.exec(t);
  return m ? m[1]! : null;
}

/** A definition starting at column 0, as C puts them: "static int foo(..." (not a call or statement). */
function definitionName(text: string): string | null {
  if (!/^[A-Za-z_]/.test(text) || /;\s*$/.test(text)) return null;
  if (!/^[A-Za-z_][\w\s*]*\b[A-Za-z_]\w*\s*\(/.test(text)) return null;
  return functionName(text);
}

// ---------------------------------------------------------------- quoted lines, classified

type Classified =
  | { t: 'neutral' }
  | { t: 'prose' }
  | { t: 'header'; path: string | null }
  /** Tail of the previous diff line (re-wrapped by a mail client). */
  | { t: 'cont' }
  | {
      t: 'diff';
      kind: LineKind;
      /** "+" alone, or an empty context line. */
      blank: boolean;
      /** The matched patch line, when the diff is known. */
      entry: Entry | null;
      /** Else: what the quote's own headers give. */
      path: string | null;
      line: number | null;
      fn: string | null;
      /** The line as quoted, with a normalised prefix. */
      quoted: string;
    };

interface Alt {
  kind: LineKind;
  /** The reading is src[from..] compacted; hash and len are its hash and length. */
  src: string;
  from: number;
  hash: number;
  len: number;
  /** A context line whose leading space was lost: only trusted in a run or when distinctive. */
  weak: boolean;
}

function alt(kind: LineKind, src: string, from: number, weak: boolean): Alt {
  const hash = compactHash(src, from);
  return { kind, src, from, hash, len: hashedLength, weak };
}

/** How a quoted line may read as a diff line. */
function alternatives(content: string): Alt[] {
  const alts: Alt[] = [];
  const c0 = content[0];
  if (c0 === '+' || c0 === '-') {
    alts.push(alt(c0 === '+' ? 'add' : 'del', content, 1, false));
  } else if (c0 === ' ' || c0 === '\t') {
    alts.push(alt('ctx', content, 0, false));
    // format=flowed joins an empty context line with the next one ("   +foo"), and some
    // clients indent quotes: the real prefix then follows the whitespace.
    const i = firstNonSpace(content);
    const p = content[i];
    if (p === '+' || p === '-') alts.push(alt(p === '+' ? 'add' : 'del', content, i + 1, true));
  } else if (content !== '') {
    alts.push(alt('ctx', content, 0, true));
  }
  return alts;
}

function isBlankDiffContent(content: string): boolean {
  return /^[+-]\s*$/.test(content);
}

function looksLikeCode(text: string): boolean {
  return /[;{}]\s*$|^\s*[{}]|->|&&|\|\||\w\(|^\s*(\/\*|\*|#\s*(if|else|endif|define|include))/.test(text);
}

/** State carried through the quote blocks of one reply, in order. */
interface State {
  ix: DiffIndex | null;
  /** Position of the last matched patch line, -1 before any. */
  cursor: number;
  /** A file or hunk header was quoted after the last match: the next match need not be adjacent. */
  headerSinceMatch: boolean;
  fileHint: number | null;
  filePath: string | null;
  hunkHint: { fi: number; hi: number } | null;
  /**
   * Counting from the quote's own "@@" header: next old/new line numbers. `foreign` when the
   * quoted header names a file or hunk the patch does not have: a diff the reviewer wrote or
   * took from elsewhere, whose lines are not the patch's.
   */
  local: { old: number | null; new: number | null; fn: string | null; foreign: boolean };
  /**
   * The last quoted diff line was placed by counting (it matched no patch line): quoted
   * blank lines then count too. Reviewers (and review bots) quote the file as it reads after
   * the patch, added lines with a context prefix; the blank lines between them are lines.
   */
  counting: boolean;
  /**
   * The run of quoted diff lines under way, carried from block to block: a reviewer's
   * inline comment splits one quoted hunk into several quote blocks. `suspended` is the
   * depth of a run that quoted text at another depth interrupted (the reviewer's words,
   * ">", between the patch lines, ">>", in an author's answer): it goes on at that depth.
   */
  run: { open: boolean; depth: number; suspended: number | null };
}

/** Classify every line of a quote block, matching diff lines against the patch. */
function classifyBlock(st: State, lines: string[], depths: number[]): Classified[] {
  const out: Classified[] = new Array(lines.length);
  let inRun = st.run.open;
  let runDepth = st.run.depth;
  let suspended = st.run.suspended;
  for (let k = 0; k < lines.length; k++) {
    const content = lines[k]!;
    const depth = depths[k]!;
    if (!inRun && suspended === depth && /^([+\- \t]|$)/.test(content)) {
      inRun = true;
      runDepth = depth;
      suspended = null;
    }
    const header = parseHeader(content, lines[k + 1]);
    if (header) {
      out[k] = { t: 'header', path: header.h === 'file' ? header.path : st.filePath };
      inRun = true;
      runDepth = depth;
      suspended = null;
      st.headerSinceMatch = true;
      if (header.h === 'file' && header.path) {
        st.filePath = header.path;
        st.fileHint = st.ix ? findFile(st.ix, header.path) : null;
        st.hunkHint = null;
        st.local = { old: null, new: null, fn: null, foreign: st.ix !== null && st.fileHint === null };
        st.counting = false;
      } else if (header.h === 'hunk') {
        const hh = header.hunk;
        const hi = st.ix && st.fileHint !== null ? findHunk(st.ix, st.fileHint, hh) : null;
        st.hunkHint = hi !== null ? { fi: st.fileHint!, hi } : null;
        st.local = { old: hh.oldStart, new: hh.newStart, fn: functionName(hh.fnText), foreign: st.ix !== null && hi === null };
        st.counting = false;
        // A long funcname the client wrapped: "@@ ... @@ int foo(struct bar\n*b)".
        if (count(hh.fnText, '(') > count(hh.fnText, ')') && k + 1 < lines.length && !/^[+\- \t@]/.test(lines[k + 1]!)) {
          out[++k] = { t: 'cont' };
        }
      }
      continue;
    }
    // content.trim(), looked at in place: [i0, i1).
    const i0 = firstNonSpace(content);
    const i1 = i0 === content.length ? i0 : endNonSpace(content);
    const tlen = i1 - i0;
    if ((tlen === 2 && content.startsWith('--', i0)) || (tlen === 3 && content.startsWith('---', i0))) {
      // The patch's own signature or the commit message separator: prose.
      out[k] = { t: 'prose' };
      inRun = false;
      continue;
    }
    if (tlen === 0 || (charCodeAt.call(content, i0) === 0x5b && SNIP.test(content.slice(i0))) || (tlen === 3 && content.startsWith('...', i0))) {
      out[k] = matchEmptyContext(st, inRun, depth === runDepth) ?? { t: 'neutral' };
      continue;
    }

    // A patch line, maybe broken in two (or three) by the client.
    const m = st.ix ? matchPatchLine(st, st.ix, lines, k, inRun) : null;
    if (m) {
      const e = st.ix!.entries[m.g]!;
      out[k] = fromEntry(st, e);
      for (let j = 1; j < m.span; j++) out[k + j] = { t: 'cont' };
      k += m.span - 1;
      inRun = true;
      runDepth = depth;
      continue;
    }

    // No match in the patch (or no patch): a diff-looking line inside a run still counts,
    // with line numbers from the quote's own headers.
    const c0 = content[0];
    const prev = k > 0 ? out[k - 1] : undefined;
    if (inRun && depth === runDepth) {
      if (c0 === '+' || c0 === '-' || ((c0 === ' ' || c0 === '\t') && (!st.ix || looksLikeCode(content)))) {
        // An added or removed line that the patch has nowhere, in any form: the reviewer is
        // quoting another patch ("as you wrote in 21/23:"); what follows is no comment on this one.
        if (st.ix && c0 !== ' ' && c0 !== '\t' && !isBlankDiffContent(content) && !inDiff(st.ix, content, 1)) st.local.foreign = true;
        out[k] = counted(st, c0 === '+' ? 'add' : c0 === '-' ? 'del' : 'ctx', content, isBlankDiffContent(content));
        continue;
      }
      if (!st.ix && prev && (prev.t === 'diff' || prev.t === 'cont') && k > 0 && lines[k - 1]!.length >= 50 && tlen <= 60 && !/^[A-Z][a-z]+\s/.test(content.trim())) {
        // Tail of a re-wrapped diff line: nothing to match it against, so trust the shape.
        out[k] = { t: 'cont' };
        continue;
      }
      if (!st.ix && looksLikeCode(content)) {
        out[k] = counted(st, 'ctx', content, false);
        continue;
      }
    }
    suspended = inRun && depth !== runDepth ? runDepth : depth === suspended ? null : suspended;
    out[k] = { t: 'prose' };
    inRun = false;
  }
  st.run = { open: inRun, depth: runDepth, suspended };
  return out;
}

/** An empty quoted line inside a run is an empty context line when the patch has one next. */
function matchEmptyContext(st: State, inRun: boolean, sameDepth: boolean): Classified | null {
  if (!inRun) return null;
  if (st.ix) {
    const next = st.ix.entries[st.cursor + 1];
    const cur = st.ix.entries[st.cursor];
    if (next && cur && !st.headerSinceMatch && next.fi === cur.fi && next.hi === cur.hi && next.line.kind === 'ctx' && next.klen === 0) {
      return fromEntry(st, next);
    }
    // Past what the patch shows (counting, or after a hunk's last line), a blank quoted line
    // is the file's next line.
    const pastHunk = st.counting || (cur !== undefined && !st.headerSinceMatch && (!next || next.fi !== cur.fi || next.hi !== cur.hi));
    return pastHunk && sameDepth && st.local.new !== null ? counted(st, 'ctx', ' ', true) : null;
  }
  return sameDepth && st.local.new !== null ? counted(st, 'ctx', ' ', true) : null;
}

function fromEntry(st: State, e: Entry): Classified {
  st.cursor = e.g;
  st.counting = false;
  st.local.foreign = false;
  st.headerSinceMatch = false;
  st.fileHint = e.fi;
  st.filePath = e.path;
  const l = e.line;
  if (l.kind !== 'add' && l.oldLine !== null) st.local.old = l.oldLine + 1;
  if (l.kind !== 'del' && l.newLine !== null) st.local.new = l.newLine + 1;
  st.local.fn = l.fn;
  return {
    t: 'diff',
    kind: l.kind,
    blank: e.klen === 0,
    entry: e,
    path: e.path,
    line: l.kind === 'del' ? l.oldLine : l.newLine,
    fn: l.fn,
    quoted: PREFIX[l.kind] + l.text,
  };
}

function counted(st: State, kind: LineKind, content: string, blank: boolean): Classified {
  const text = kind === 'ctx' ? content.replace(/^[ \t]/, '') : content.slice(1);
  let line: number | null;
  if (kind === 'add') {
    line = st.local.new;
    if (st.local.new !== null) st.local.new++;
  } else if (kind === 'del') {
    line = st.local.old;
    if (st.local.old !== null) st.local.old++;
  } else {
    line = st.local.new;
    if (st.local.new !== null) st.local.new++;
    if (st.local.old !== null) st.local.old++;
  }
  st.counting = st.ix !== null;
  if (kind !== 'del') st.local.fn = definitionName(text) ?? st.local.fn;
  // Lines of a foreign diff are no place in the patch: a comment after them is unanchored.
  const path = st.local.foreign ? null : st.filePath;
  return { t: 'diff', kind, blank, entry: null, path, line, fn: st.local.fn, quoted: PREFIX[kind] + text };
}

/**
 * Find the patch line quoted at lines[k] (maybe re-wrapped over the next one or two quoted
 * lines). Returns its position and how many quoted lines it spans.
 */
function matchPatchLine(st: State, ix: DiffIndex, lines: string[], k: number, inRun: boolean): { g: number; span: number } | null {
  const content = lines[k]!;
  const lk = look(ix, content);
  const direct = plausible(st, ix, lk.strong, inRun ? lk.inRun : lk.outRun);
  if (direct.length) return { g: choose(st, ix, direct, lines, k + 1), span: 1 };
  // Re-wrapped: the line's tail went to the next quoted line(s), which match nothing alone.
  let joined = content;
  for (let j = 1; j <= 2 && k + j < lines.length; j++) {
    const tail = lines[k + j]!;
    if (isBlank(tail) || parseHeader(tail, lines[k + j + 1])) break;
    if (look(ix, tail).textInRun) break;
    joined = `${joined} ${tail.trim()}`;
    const jalts = alternatives(joined);
    const c = plausible(st, ix, strongKind(jalts), candidates(ix, jalts, inRun));
    if (c.length) return { g: choose(st, ix, c, lines, k + j + 1), span: j + 1 };
  }
  return null;
}

const NONE: readonly number[] = [];

/** Patch positions whose line reads as one of `alts`, ascending. May be the index's own array: never modify it. */
function candidates(ix: DiffIndex, alts: Alt[], inRun: boolean): readonly number[] {
  let out: readonly number[] = NONE;
  for (const a of alts) {
    // A lost-prefix line must be in a run of diff lines, or long enough not to be prose by chance.
    if (a.weak && !inRun && a.len < 12) continue;
    if (a.len === 0 && a.kind === 'ctx') continue;
    const list = altLines(ix, a);
    if (!list) continue;
    out = out.length ? union(out, list) : list;
  }
  return out;
}

/** The ascending union of two ascending lists. */
function union(a: readonly number[], b: readonly number[]): number[] {
  const out: number[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    const x = i < a.length ? a[i]! : Infinity;
    const y = j < b.length ? b[j]! : Infinity;
    if (x <= y) {
      out.push(x);
      i++;
      if (x === y) j++;
    } else {
      out.push(y);
      j++;
    }
  }
  return out;
}

/** Kind of the alternative that is not weak (there is at most one), else null. */
function strongKind(alts: Alt[]): LineKind | null {
  for (const a of alts) if (!a.weak) return a.kind;
  return null;
}

/** Index of the first element of ascending `list` greater than `p`. */
function firstAfter(list: readonly number[], p: number): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid]! > p) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/**
 * Keep the candidates a quoted line can credibly be. Short lines ("}", "return 0;") and
 * lines that lost their prefix occur all over a patch: they are taken only next to the
 * previous match (or at the start of the quoted hunk). Inside a foreign diff, context
 * lines are the reviewer's, not the patch's.
 *
 * `strong` is the kind of the quoted line's alternative that is not weak. Its alternatives
 * have different kinds and every candidate came from one of them, so a candidate matches
 * the strong alternative exactly when it has that kind.
 */
function plausible(st: State, ix: DiffIndex, strong: LineKind | null, cands: readonly number[]): readonly number[] {
  if (!cands.length) return cands;
  // Counting: the quote went past what the patch shows (a reviewer quoting beyond the hunk,
  // or the file as patched). It goes on forward: "break;" or "int ret;" quoted there is the
  // file's next line, not the same text in an earlier hunk.
  const forwardOnly = st.counting && st.cursor >= 0;
  const foreign = st.local.foreign;
  const cursor = st.cursor;
  const cur = cursor >= 0 ? ix.entries[cursor]! : null;
  // Next to the previous match (reach 4), or at the start of the quoted hunk.
  const afterCur = cur !== null && !st.headerSinceMatch;
  const hint = st.headerSinceMatch ? st.hunkHint : null;
  const out: number[] = [];
  for (let i = 0; i < cands.length; i++) {
    const g = cands[i]!;
    if (forwardOnly && g <= cursor) continue;
    const e = ix.entries[g]!;
    if (foreign && e.line.kind === 'ctx') continue;
    const isStrong = e.line.kind === strong;
    let keep: boolean;
    if (isStrong && e.klen >= 6) keep = true;
    else if (afterCur && g > cursor && g - cursor <= 4 && e.fi === cur.fi && e.hi === cur.hi) keep = true;
    else if (hint && e.fi === hint.fi && e.hi === hint.hi && g - e.hs < 4) keep = true;
    // A short '+'/'-' line: somewhere after the last match in the same file will do.
    else if (isStrong) keep = cur !== null && g > cursor && g - cursor <= 40 && e.fi === cur.fi;
    // A lost-prefix line that is long and distinctive.
    else keep = e.klen >= 12;
    if (keep) out.push(g);
  }
  return out;
}

/** Candidates of the next few non-blank quoted lines, for lookahead. */
function nextLists(ix: DiffIndex, lines: string[], from: number): Array<readonly number[]> {
  const out: Array<readonly number[]> = [];
  for (let j = from; j < lines.length && out.length < 4; j++) {
    const l = lines[j]!;
    if (isBlank(l)) continue;
    out.push(look(ix, l).inRun);
  }
  return out;
}

/** How many of the next quoted lines follow candidate g in the patch, in order (a few lines apart at most). */
function lookahead(ix: DiffIndex, g: number, next: Array<readonly number[]>): number {
  let score = 0;
  let p = g;
  for (const list of next) {
    const c = list[firstAfter(list, p)];
    if (c === undefined || c > p + 6) break;
    const e = ix.entries[c]!;
    const here = ix.entries[p]!;
    if (e.fi !== here.fi || e.hi !== here.hi) break;
    score++;
    p = c;
  }
  return score;
}

/**
 * Pick among equal-looking patch lines: adjacent to the last match, in the quoted hunk/file,
 * followed by the next quoted lines, after the last match. A line repeated all over a big
 * patch ("+}") is only weighed at the places that can win: near the cursor and in the hints.
 */
function choose(st: State, ix: DiffIndex, cands: readonly number[], lines: string[], from: number): number {
  if (cands.length === 1) return cands[0]!;
  let pool = cands;
  if (cands.length > 48) {
    const i = firstAfter(cands, st.cursor);
    const keep = new Set<number>([...cands.slice(i, i + 24), ...cands.slice(0, 8)]);
    let inHunk = 0;
    let inFile = 0;
    for (let j = i; j < cands.length && (inHunk < 16 || inFile < 16); j++) {
      const e = ix.entries[cands[j]!]!;
      if (st.hunkHint && e.fi === st.hunkHint.fi && e.hi === st.hunkHint.hi && inHunk++ < 16) keep.add(e.g);
      if (st.fileHint !== null && e.fi === st.fileHint && inFile++ < 16) keep.add(e.g);
      if (st.fileHint === null && !st.hunkHint) break;
    }
    pool = [...keep].sort((x, y) => x - y);
  }
  const next = nextLists(ix, lines, from);
  const cur = st.cursor >= 0 ? ix.entries[st.cursor]! : null;
  let best = pool[0]!;
  let bestScore = -Infinity;
  for (const g of pool) {
    const e = ix.entries[g]!;
    let s = 0;
    if (cur && !st.headerSinceMatch && g > st.cursor && g - st.cursor <= 3 && e.fi === cur.fi && e.hi === cur.hi) s += 1000 - (g - st.cursor);
    if (st.hunkHint && e.fi === st.hunkHint.fi && e.hi === st.hunkHint.hi) s += 500;
    if (st.fileHint !== null && e.fi === st.fileHint) s += 300;
    s += 50 * lookahead(ix, g, next);
    if (g > st.cursor) s += 100;
    // Nearest after the cursor, else earliest.
    s -= (g > st.cursor ? g - st.cursor : g + ix.entries.length) / (ix.entries.length * 2 + 1);
    if (s > bestScore) {
      bestScore = s;
      best = g;
    }
  }
  return best;
}

// ---------------------------------------------------------------- patch pasted without '>'

/**
 * Some reviewers (Outlook users, mostly) paste the part of the patch they answer without
 * '>' markers: "[snip]\n\n--- a/x.h\n+++ b/x.h\n@@ ...\n-old\n+new\n\nMy comment". Such a
 * stretch is quoted material, not new text, when every diff line of it is a line of the
 * patch with the same +/-/space prefix. A diff the reviewer proposes has lines of its own
 * and stays new text.
 */
function reclaimPastedPatch(blocks: ReplyBlock[], ix: DiffIndex): ReplyBlock[] {
  const out: ReplyBlock[] = [];
  for (const b of blocks) {
    if (b.type !== 'text' || !/^([+\- \t]|@@ |diff --git )/m.test(b.text)) {
      out.push(b);
      continue;
    }
    const lines = b.text.split('\n');
    // 'H' header, 'D' a patch line, 'B' blank, 'X' diff-looking but not the patch's, 'T' text.
    const kinds = new Array<string>(lines.length);
    for (let i = 0; i < lines.length; i++) kinds[i] = lineKind(ix, lines[i], lines[i + 1]);
    const spans: Array<[number, number]> = [];
    let i = 0;
    while (i < lines.length) {
      if (kinds[i] !== 'H' && kinds[i] !== 'D') {
        i++;
        continue;
      }
      let j = i;
      let last = i;
      while (j < lines.length && (kinds[j] === 'H' || kinds[j] === 'D' || kinds[j] === 'B' || kinds[j] === 'X')) {
        if (kinds[j] !== 'B') last = j;
        j++;
      }
      const run = kinds.slice(i, last + 1);
      const d = run.filter((k) => k === 'D').length;
      const changed = lines.slice(i, last + 1).filter((l, n) => run[n] === 'D' && /^[+-]/.test(l)).length;
      if (!run.includes('X') && d >= 1 && (run.includes('H') ? d >= 1 : d >= 3 && changed >= 1)) spans.push([i, last + 1]);
      i = j;
    }
    if (!spans.length) {
      out.push(b);
      continue;
    }
    let at = 0;
    const pushText = (from: number, to: number) => {
      const t = lines.slice(from, to);
      while (t.length && t[0]!.trim() === '') t.shift();
      while (t.length && t[t.length - 1]!.trim() === '') t.pop();
      if (t.length) out.push({ type: 'text', text: t.join('\n') });
    };
    for (const [from, to] of spans) {
      pushText(at, from);
      const q = lines.slice(from, to);
      out.push({ type: 'quote', lines: q, depths: q.map(() => 1) });
      at = to;
    }
    pushText(at, lines.length);
  }
  return out;
}

// ---------------------------------------------------------------- comments

const UNANCHORED = { file: null, line: null, side: null, quoted: [] as string[], function: null };

/** The comment's anchor from the quote block before it: its last diff line, else nothing. */
function anchorFrom(cls: Classified[], matched: Set<number>, ix: DiffIndex | null): Omit<Comment, 'text'> {
  let blankAnchor = -1;
  for (let k = cls.length - 1; k >= 0; k--) {
    const c = cls[k]!;
    if (c.t === 'neutral' || c.t === 'cont') continue;
    if (c.t === 'diff') {
      // Blank diff lines ("+" alone) give way to the non-blank line just before them.
      if (c.blank) {
        if (blankAnchor < 0) blankAnchor = k;
        continue;
      }
      return toComment(cls, k, matched, ix);
    }
    if (blankAnchor >= 0) return toComment(cls, blankAnchor, matched, ix);
    if (c.t === 'header' && c.path) {
      // Right after a file/hunk header: about the file as a whole (if it is the patch's).
      const path = ix ? findFileOrNull(ix, c.path) : c.path;
      if (path) return { file: path, line: null, side: null, quoted: [], function: null };
    }
    return { ...UNANCHORED, quoted: [] };
  }
  if (blankAnchor >= 0) return toComment(cls, blankAnchor, matched, ix);
  return { ...UNANCHORED, quoted: [] };
}

function findFileOrNull(ix: DiffIndex, path: string): string | null {
  const fi = findFile(ix, path);
  return fi === null ? null : ix.diff.files[fi]!.path;
}

function toComment(cls: Classified[], k: number, matched: Set<number>, ix: DiffIndex | null): Omit<Comment, 'text'> {
  const c = cls[k] as Extract<Classified, { t: 'diff' }>;
  const side = c.kind === 'del' ? 'old' : 'new';
  let quoted: string[];
  if (c.entry && ix) {
    // The run of changed lines ending at the anchor, as far as it was quoted (at most 3).
    quoted = [c.quoted];
    if (c.kind !== 'ctx') {
      const hunk = ix.diff.files[c.entry.fi]!.hunks[c.entry.hi]!;
      const base = c.entry.g - c.entry.li;
      for (let li = c.entry.li - 1; li >= 0 && quoted.length < 3; li--) {
        const l = hunk.lines[li]!;
        if (l.kind === 'ctx' || !matched.has(base + li)) break;
        quoted.unshift(PREFIX[l.kind] + l.text);
      }
    }
  } else {
    quoted = [c.quoted];
    if (c.kind !== 'ctx') {
      for (let j = k - 1; j >= 0 && quoted.length < 3; j--) {
        const p = cls[j]!;
        if (p.t === 'cont') continue;
        if (p.t !== 'diff' || p.kind === 'ctx') break;
        quoted.unshift(p.quoted);
      }
    }
  }
  if (c.path === null) return { ...UNANCHORED, quoted: [] };
  return { file: c.path, line: c.line, side: c.line === null ? null : side, quoted, function: c.fn };
}

/**
 * Turn a reply's blocks into comments: each 'text' block anchored to the last quoted
 * diff line before it (file null when it answers prose, the commit message, or nothing).
 * `diff` is the parent patch's diff, or null when the parent is not available.
 */
export function anchorComments(blocks: ReplyBlock[], diff: Diff | null): Comment[] {
  const ix = diff ? indexDiff(diff) : null;
  const st: State = {
    ix,
    cursor: -1,
    headerSinceMatch: false,
    fileHint: null,
    filePath: null,
    hunkHint: null,
    local: { old: null, new: null, fn: null, foreign: false },
    counting: false,
    run: { open: false, depth: 0, suspended: null },
  };
  const comments: Comment[] = [];
  let last: { cls: Classified[]; matched: Set<number> } | null = null;
  for (const b of ix ? reclaimPastedPatch(blocks, ix) : blocks) {
    if (b.type === 'quote') {
      const cls = classifyBlock(st, b.lines, b.depths);
      const matched = new Set<number>();
      for (const c of cls) if (c && c.t === 'diff' && c.entry) matched.add(c.entry.g);
      last = { cls, matched };
    } else if (b.type === 'elision') {
      // Quoted material was cut here: counting from the quote's own headers cannot go on
      // over the gap (the file still can).
      st.local = { old: null, new: null, fn: st.local.fn, foreign: st.local.foreign };
      st.counting = false;
    } else if (b.type === 'attribution') {
      st.run = { open: false, depth: 0, suspended: null };
    } else if (b.type === 'text') {
      const anchor = last ? anchorFrom(last.cls, last.matched, ix) : { ...UNANCHORED, quoted: [] };
      comments.push({ ...anchor, text: b.text });
    }
  }
  return comments;
}
