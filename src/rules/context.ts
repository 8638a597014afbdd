// Code context of a changed line, computed from what the hunk shows (pure; no tree needed):
//   - blocks: the conditions of the enclosing if/else/for/while/switch/macro-loop blocks,
//   - edited / renameOnly: whether an added (or removed) line is a rewrite of a line on the
//     other side of the same hunk, and whether that rewrite only renames identifiers.
//
// The hunk is all we can trust (the tree may be absent), so the scanner is a small C
// statement parser over the visible lines of one side (context + added lines for the new
// side, context + removed lines for the old side). It knows Xen style ("if ( x )" with the
// brace on its own line), K&R ("if (x) {"), brace-less single statements, else / else if,
// loops written as macros ("for_each_vcpu ( d, v )"), and skips comments, strings and
// preprocessor lines. A brace in column 0 is a top-level definition (function, struct):
// it resets the stack, which keeps one hunk spanning two functions honest.
import type { FileDiff, Hunk } from '../model.js';
import type { LineContext, Match, TreeView } from './types.js';

// ---------------------------------------------------------------- tokens

export type TokenType = 'ident' | 'number' | 'string' | 'char' | 'punct' | 'comment';

export interface Token {
  type: TokenType;
  text: string;
  /** Column of the first character (0-based). */
  col: number;
  /** Whitespace (or a line start) precedes the token. */
  spaceBefore: boolean;
}

/** Carried from line to line: inside a block comment, or a preprocessor line continued with '\'. */
export interface ScanState {
  inComment: boolean;
  inPreprocessor: boolean;
}

const PUNCT3 = ['<<=', '>>=', '...'];
const PUNCT2 = ['->', '++', '--', '<<', '>>', '<=', '>=', '==', '!=', '&&', '||', '+=', '-=', '*=', '/=', '%=', '&=', '|=', '^=', '##', '::'];

export const C_KEYWORDS = new Set([
  'auto', 'break', 'case', 'char', 'const', 'continue', 'default', 'do', 'double', 'else', 'enum', 'extern',
  'float', 'for', 'goto', 'if', 'inline', 'int', 'long', 'register', 'restrict', 'return', 'short', 'signed',
  'sizeof', 'static', 'struct', 'switch', 'typedef', 'union', 'unsigned', 'void', 'volatile', 'while',
  'bool', '_Bool', 'true', 'false', 'NULL', 'typeof', '__typeof__', 'asm', '__asm__', 'alignof', '_Alignof',
]);

/**
 * Tokenize one line of C. Comments are dropped unless keepComments (then each comment piece is one
 * 'comment' token with collapsed whitespace). A line starting with '#' (and its '\' continuations)
 * yields no tokens.
 */
export function tokenizeLine(text: string, state: ScanState = { inComment: false, inPreprocessor: false }, keepComments = false): Token[] {
  const out: Token[] = [];
  if (state.inPreprocessor) {
    state.inPreprocessor = /\\\s*$/.test(text);
    return out;
  }
  let i = 0;
  const n = text.length;
  let space = true;
  // Comment text, when kept, is one token per word: comment edits compare word by word, and
  // words in comments are never identifiers (a typo fix is not a rename).
  const pushComment = (s: string, col: number): void => {
    if (!keepComments) return;
    for (const w of s.split(/\s+/)) if (w) out.push({ type: 'comment', text: w, col, spaceBefore: true });
  };
  if (!state.inComment && /^\s*#/.test(text)) {
    state.inPreprocessor = /\\\s*$/.test(text);
    return out;
  }
  while (i < n) {
    if (state.inComment) {
      const end = text.indexOf('*/', i);
      if (end < 0) {
        pushComment(text.slice(i), i);
        return out;
      }
      pushComment(text.slice(i, end), i);
      state.inComment = false;
      i = end + 2;
      space = true;
      continue;
    }
    const c = text[i]!;
    if (c === ' ' || c === '\t' || c === '\r' || c === '\f' || c === '\v') {
      i++;
      space = true;
      continue;
    }
    if (c === '/' && text[i + 1] === '/') {
      pushComment(text.slice(i + 2), i);
      return out;
    }
    if (c === '/' && text[i + 1] === '*') {
      state.inComment = true;
      i += 2;
      continue;
    }
    const start = i;
    if (/[A-Za-z_$]/.test(c)) {
      while (i < n && /[A-Za-z0-9_$]/.test(text[i]!)) i++;
      out.push({ type: 'ident', text: text.slice(start, i), col: start, spaceBefore: space });
    } else if (/[0-9]/.test(c) || (c === '.' && /[0-9]/.test(text[i + 1] ?? ''))) {
      while (i < n && /[0-9A-Za-z_.]/.test(text[i]!)) i++;
      out.push({ type: 'number', text: text.slice(start, i), col: start, spaceBefore: space });
    } else if (c === '"' || c === "'") {
      i++;
      while (i < n && text[i] !== c) i += text[i] === '\\' ? 2 : 1;
      i = Math.min(i + 1, n);
      out.push({ type: c === '"' ? 'string' : 'char', text: text.slice(start, i), col: start, spaceBefore: space });
    } else {
      const three = text.slice(i, i + 3);
      const two = text.slice(i, i + 2);
      const p = PUNCT3.includes(three) ? three : PUNCT2.includes(two) ? two : c;
      i += p.length;
      out.push({ type: 'punct', text: p, col: start, spaceBefore: space });
    }
    space = false;
  }
  return out;
}

/**
 * Tokens of one line on its own (comment words kept as tokens), for comparing lines. A line
 * that looks like the inside of a block comment (" * text", or the closing star-slash) is read as comment.
 */
export function lineTokens(text: string): Token[] {
  const inComment = /^\s*\*(?:\s|\/|$)/.test(text);
  return tokenizeLine(text, { inComment, inPreprocessor: false }, true);
}

/** Join tokens back into compact text: one space only where the source had one, none inside parens. */
export function joinTokens(tokens: Token[]): string {
  let s = '';
  tokens.forEach((t, k) => {
    const prev = tokens[k - 1];
    if (prev && t.spaceBefore && prev.text !== '(' && prev.text !== '[' && t.text !== ')' && t.text !== ']' && !(t.text === '(' && prev.type === 'ident')) s += ' ';
    s += t.text;
  });
  return s;
}

// ---------------------------------------------------------------- blocks

interface Open {
  kind: 'brace' | 'stmt';
  /** Reported condition; null for blocks that are not conditions (function bodies, initializers, scopes). */
  cond: string | null;
  /** The body of an if: an `else` may follow when it completes. */
  ifCond: string | null;
  /** Brace block opened by a header (if/else/loop) rather than a bare '{'. */
  header: boolean;
  /** Indentation of the line that opened the header (for brace-less bodies). */
  indent: number;
}

interface Pending {
  cond: string | null;
  ifCond: string | null;
  indent: number;
}

interface SideLine {
  /** Index in hunk.lines. */
  index: number;
  text: string;
}

interface FlatToken extends Token {
  /** Position in the side's line list. */
  pos: number;
  first: boolean;
}

const HEADER_KEYWORDS = new Set(['if', 'while', 'for', 'switch']);

function indentOf(text: string): number {
  let w = 0;
  for (const ch of text) {
    if (ch === ' ') w++;
    else if (ch === '\t') w = w - (w % 8) + 8;
    else break;
  }
  return w;
}

/** Index of the ')' that closes the '(' at toks[open]; -1 if the hunk ends first. */
function closeParen(toks: FlatToken[], open: number): number {
  let depth = 0;
  for (let j = open; j < toks.length; j++) {
    const t = toks[j]!.text;
    if (t === '(') depth++;
    else if (t === ')') {
      depth--;
      if (depth === 0) return j;
    }
  }
  return -1;
}

/**
 * For each visible line of one side, the conditions of its enclosing blocks (innermost last).
 * Lines are (index in hunk.lines, text) in order.
 */
export function blocksForLines(lines: SideLine[]): string[][] {
  const state: ScanState = { inComment: false, inPreprocessor: false };
  const toks: FlatToken[] = [];
  lines.forEach((l, pos) => {
    // A hunk may start inside a block comment: " * for (...) {" there is prose, not code.
    if (!state.inComment && !state.inPreprocessor && /^\s*\*(?:\s|\/|$)/.test(l.text)) state.inComment = true;
    tokenizeLine(l.text, state).forEach((t, k) => toks.push({ ...t, pos, first: k === 0 }));
  });
  const indents = lines.map((l) => indentOf(l.text));
  const result: (string[] | null)[] = lines.map(() => null);
  let stack: Open[] = [];
  let pending: Pending | null = null;
  let awaitingElse: string | null = null;
  let stmtStart = true;

  const snapshot = (): string[] => stack.filter((b) => b.cond !== null).map((b) => b.cond as string);
  // A block's body is complete: an if may continue with else; anything else completes the
  // enclosing brace-less body too.
  const completed = (b: Open): void => {
    if (b.ifCond !== null) awaitingElse = b.ifCond;
    else cascade();
  };
  const cascade = (): void => {
    const top = stack[stack.length - 1];
    if (top && top.kind === 'stmt') {
      stack.pop();
      completed(top);
    }
  };

  // Lines without tokens (blank, comment-only, preprocessor) take the state where they stand.
  let seenPos = -1;
  const fillTo = (pos: number): void => {
    for (let p = seenPos + 1; p < pos; p++) if (!result[p]) result[p] = snapshot();
    seenPos = Math.max(seenPos, pos);
  };

  for (let i = 0; i < toks.length; i++) {
    const t = toks[i]!;
    if (t.first) fillTo(t.pos);
    const lineIndent = indents[t.pos]!;
    // A new line that is not indented past an unfinished brace-less body ends it (a macro
    // statement without ';', or a hunk that cut the statement).
    if (t.first && t.text !== '}' && t.text !== '{' && !pending) {
      while (stack.length && stack[stack.length - 1]!.kind === 'stmt' && lineIndent <= stack[stack.length - 1]!.indent) {
        if (awaitingElse !== null && t.text === 'else') break;
        awaitingElse = null;
        const top = stack.pop()!;
        completed(top);
        if (awaitingElse !== null) break;
      }
    }
    if (awaitingElse !== null) {
      if (t.text === 'else') {
        if (t.first) result[t.pos] = snapshot();
        pending = { cond: `!(${awaitingElse})`, ifCond: null, indent: lineIndent };
        awaitingElse = null;
        stmtStart = true;
        continue;
      }
      awaitingElse = null;
      cascade();
      // The cascade may have completed an outer if body: let this token answer that else too.
      if (awaitingElse !== null) {
        i--;
        continue;
      }
    }
    if (t.first && t.col === 0 && t.text === '{') {
      // Body of a top-level definition.
      stack = [];
      pending = null;
      stack.push({ kind: 'brace', cond: null, ifCond: null, header: false, indent: 0 });
      result[t.pos] = snapshot();
      stmtStart = true;
      continue;
    }
    if (t.first && t.col === 0 && t.text === '}') {
      result[t.pos] = snapshot();
      stack = [];
      pending = null;
      stmtStart = true;
      continue;
    }
    if (pending) {
      const p = pending;
      pending = null;
      if (t.text === '{') {
        stack.push({ kind: 'brace', cond: p.cond, ifCond: p.ifCond, header: true, indent: p.indent });
        if (t.first) result[t.pos] = snapshot();
        stmtStart = true;
        continue;
      }
      if (t.text === ';') {
        // Empty body ("while ( x );").
        if (t.first) result[t.pos] = snapshot();
        completed({ kind: 'stmt', cond: p.cond, ifCond: p.ifCond, header: true, indent: p.indent });
        stmtStart = true;
        continue;
      }
      stack.push({ kind: 'stmt', cond: p.cond, ifCond: p.ifCond, header: true, indent: p.indent });
      stmtStart = true;
    }
    if (t.first) result[t.pos] = snapshot();

    if (t.type === 'ident' && HEADER_KEYWORDS.has(t.text) && toks[i + 1]?.text === '(') {
      const close = closeParen(toks, i + 1);
      if (close < 0) break;
      const inner = joinTokens(toks.slice(i + 2, close));
      const cond = t.text === 'if' ? inner : `${t.text} (${inner})`;
      pending = { cond, ifCond: t.text === 'if' ? inner : null, indent: lineIndent };
      i = close;
      continue;
    }
    if (t.type === 'ident' && (t.text === 'do' || t.text === 'else')) {
      pending = { cond: t.text, ifCond: null, indent: lineIndent };
      continue;
    }
    if (t.type === 'ident' && stmtStart && !C_KEYWORDS.has(t.text) && toks[i + 1]?.text === '(') {
      const close = closeParen(toks, i + 1);
      if (close < 0) break;
      const next = toks[close + 1];
      // A loop macro: "for_each_vcpu ( d, v )" then '{', or a statement on a later line
      // indented deeper (else it is a statement macro without ';').
      const body = next && next.first && indents[next.pos]! > lineIndent && (next.type === 'ident' || next.text === '(' || next.text === '*');
      if (next && (next.text === '{' || body)) {
        pending = { cond: joinTokens(toks.slice(i, close + 1)), ifCond: null, indent: lineIndent };
        i = close;
        continue;
      }
      stmtStart = false;
      i = close;
      continue;
    }
    switch (t.text) {
      case '{':
        stack.push({ kind: 'brace', cond: null, ifCond: null, header: false, indent: lineIndent });
        stmtStart = true;
        break;
      case '}': {
        while (stack.length && stack[stack.length - 1]!.kind === 'stmt') stack.pop();
        const b = stack.pop();
        stmtStart = true;
        if (b && b.header) completed(b);
        break;
      }
      case ';':
        stmtStart = true;
        cascade();
        break;
      case ':':
        // "out:" labels and "case X:" start a statement.
        stmtStart = true;
        break;
      default:
        stmtStart = false;
    }
  }
  fillTo(lines.length);
  // A hunk cut inside an unbalanced construct leaves lines unset: use the line before.
  let last: string[] = [];
  return result.map((r) => {
    if (r) last = r;
    return r ?? last;
  });
}

// ---------------------------------------------------------------- twins (edited / renameOnly)

/** Longest common subsequence length of two token-text arrays. */
function lcs(a: string[], b: string[]): number {
  if (!a.length || !b.length) return 0;
  let prev = new Array<number>(b.length + 1).fill(0);
  for (let i = 1; i <= a.length; i++) {
    const cur = new Array<number>(b.length + 1).fill(0);
    for (let j = 1; j <= b.length; j++) {
      cur[j] = a[i - 1] === b[j - 1] ? prev[j - 1]! + 1 : Math.max(prev[j]!, cur[j - 1]!);
    }
    prev = cur;
  }
  return prev[b.length]!;
}

const dice = (a: string[], b: string[]): number => (a.length + b.length ? (2 * lcs(a, b)) / (a.length + b.length) : 1);

/** A line's tokens and words, computed once per line when pairing a hunk. */
interface LineShape {
  raw: string;
  all: string[];
  words: string[];
}

function shapeOf(text: string): LineShape {
  const ts = lineTokens(text);
  return {
    raw: text.trim(),
    all: ts.map((t) => t.text),
    // Words split at '_': "vcpu_restore_fpu_nonlazy" -> "vcpu restore fpu" is mostly "vcpu_restore_fpu".
    words: ts.filter((t) => t.type !== 'punct').flatMap((t) => (t.type === 'ident' ? t.text.split('_').filter(Boolean) : [t.text])),
  };
}

/** Upper bound of dice() from the lengths alone. */
const diceBound = (m: number, n: number): number => (m + n ? (2 * Math.min(m, n)) / (m + n) : 1);

function shapeSimilarity(a: LineShape, b: LineShape, threshold = 0): number {
  if (!a.all.length && !b.all.length) return a.raw === b.raw ? 1 : 0;
  const noWords = !a.words.length && !b.words.length;
  // Cheap reject: even a perfect LCS could not reach the threshold.
  const bound = noWords ? diceBound(a.all.length, b.all.length) : (diceBound(a.all.length, b.all.length) + diceBound(a.words.length, b.words.length)) / 2;
  if (bound < threshold) return 0;
  const all = dice(a.all, b.all);
  if (noWords) return all;
  return (all + dice(a.words, b.words)) / 2;
}

/**
 * Similarity of two lines (0..1): the mean of the token LCS ratio and the same ratio over the
 * words only (identifier parts, numbers, strings, comment words), so that punctuation alone
 * ("clts();" vs "vcpu_restore_fpu_lazy(curr);") does not make two lines look alike.
 */
export function tokenSimilarity(a: string, b: string): number {
  return shapeSimilarity(shapeOf(a), shapeOf(b));
}

const isRenameable = (t: Token): boolean => t.type === 'ident' && !C_KEYWORDS.has(t.text);

/**
 * True when `b` is `a` with identifiers consistently renamed (a one-to-one mapping applied to
 * every occurrence, to names the other line does not use: "a = b" -> "b = a" is a change, not a
 * rename), or with whitespace changes only.
 */
export function isRenameOnly(a: string, b: string): boolean {
  const ta = lineTokens(a);
  const tb = lineTokens(b);
  if (ta.length !== tb.length || !ta.length) return false;
  const namesA = new Set(ta.filter(isRenameable).map((t) => t.text));
  const namesB = new Set(tb.filter(isRenameable).map((t) => t.text));
  const fwd = new Map<string, string>();
  const back = new Map<string, string>();
  for (let k = 0; k < ta.length; k++) {
    const x = ta[k]!;
    const y = tb[k]!;
    if (isRenameable(x) && isRenameable(y)) {
      if ((fwd.get(x.text) ?? y.text) !== y.text || (back.get(y.text) ?? x.text) !== x.text) return false;
      if (x.text !== y.text && (namesA.has(y.text) || namesB.has(x.text))) return false;
      fwd.set(x.text, y.text);
      back.set(y.text, x.text);
    } else if (x.text !== y.text) {
      return false;
    }
  }
  return true;
}

/** Lines must share at least this much (token LCS similarity) to count as an edit of each other. */
export const EDIT_SIMILARITY = 0.5;

interface Twin {
  twin: number;
  renameOnly: boolean;
}

/**
 * Pair added lines with removed lines of the same hunk (one-to-one, best similarity first,
 * lines of the same -/+ run preferred). Returns twin info for both sides, by hunk line index.
 */
export function pairTwins(hunk: Hunk): Map<number, Twin> {
  const run: number[] = [];
  let r = 0;
  hunk.lines.forEach((l, k) => {
    if (l.kind === 'ctx') r++;
    run[k] = r;
  });
  const adds = hunk.lines.map((l, k) => (l.kind === 'add' ? k : -1)).filter((k) => k >= 0);
  const dels = hunk.lines.map((l, k) => (l.kind === 'del' ? k : -1)).filter((k) => k >= 0);
  const pairs: { a: number; d: number; score: number }[] = [];
  // Hunks are small; bound the work anyway for generated files.
  if (adds.length * dels.length <= 40000) {
    const shapes = new Map<number, LineShape>();
    for (const k of [...adds, ...dels]) shapes.set(k, shapeOf(hunk.lines[k]!.text));
    for (const a of adds) {
      for (const d of dels) {
        const s = shapeSimilarity(shapes.get(d)!, shapes.get(a)!, EDIT_SIMILARITY);
        if (s >= EDIT_SIMILARITY) pairs.push({ a, d, score: s + (run[a] === run[d] ? 1 : 0) });
      }
    }
  }
  pairs.sort((x, y) => y.score - x.score || Math.abs(x.a - x.d) - Math.abs(y.a - y.d));
  const out = new Map<number, Twin>();
  for (const p of pairs) {
    if (out.has(p.a) || out.has(p.d)) continue;
    const ro = isRenameOnly(hunk.lines[p.d]!.text, hunk.lines[p.a]!.text);
    out.set(p.a, { twin: p.d, renameOnly: ro });
    out.set(p.d, { twin: p.a, renameOnly: ro });
  }
  return out;
}

// ---------------------------------------------------------------- LineContext

interface HunkAnalysis {
  newBlocks: Map<number, string[]>;
  oldBlocks: Map<number, string[]>;
  twins: Map<number, Twin>;
}

const cache = new WeakMap<Hunk, HunkAnalysis>();
const treeCache = new WeakMap<Hunk, WeakMap<TreeView, HunkAnalysis>>();

/** How far back from a hunk to look for the start of its function in the tree. */
const MAX_PREAMBLE = 3000;

/**
 * The pre-image lines between the start of the hunk's function (its column-0 '{') and the
 * hunk, from the tree; [] when the tree lacks the file or its text does not line up with the
 * hunk (another revision).
 */
export function treePreamble(file: FileDiff, hunk: Hunk, tree: TreeView | undefined): string[] {
  if (!tree || !file.oldPath || hunk.oldStart < 2) return [];
  const text = tree.fileText(file.oldPath);
  if (text === undefined) return [];
  const lines = text.split('\n');
  const start = hunk.oldStart - 1;
  const old = hunk.lines.filter((l) => l.kind !== 'add').slice(0, 3);
  if (!old.length || old.some((l, k) => (lines[start + k] ?? '').trimEnd() !== l.text.trimEnd())) return [];
  let s = start - 1;
  while (s >= 0 && start - s <= MAX_PREAMBLE && !/^[{}]/.test(lines[s]!)) s--;
  if (s < 0 || start - s > MAX_PREAMBLE) return [];
  // After a previous function's '}', only file-scope lines follow: nothing encloses the hunk.
  return lines[s]!.startsWith('}') ? [] : lines.slice(s, start);
}

function analyse(file: FileDiff, hunk: Hunk, tree?: TreeView): HunkAnalysis {
  const byTree = tree ? treeCache.get(hunk)?.get(tree) : cache.get(hunk);
  if (byTree) return byTree;
  const pre = treePreamble(file, hunk, tree).map((text) => ({ index: -1, text }));
  const side = (kind: 'add' | 'del'): Map<number, string[]> => {
    const lines: SideLine[] = [...pre];
    hunk.lines.forEach((l, index) => {
      if (l.kind === 'ctx' || l.kind === kind) lines.push({ index, text: l.text });
    });
    const blocks = blocksForLines(lines);
    return new Map(lines.map((l, k) => [l.index, blocks[k]!]));
  };
  const a = { newBlocks: side('add'), oldBlocks: side('del'), twins: pairTwins(hunk) };
  if (tree) {
    let m = treeCache.get(hunk);
    if (!m) treeCache.set(hunk, (m = new WeakMap()));
    m.set(tree, a);
  } else {
    cache.set(hunk, a);
  }
  return a;
}

/**
 * Context of hunk.lines[index]: enclosing block conditions on the line's own side (new side for
 * added and context lines, old side for removed lines), and whether it has a twin on the other side.
 * `edited`/`renameOnly` are set for removed lines too (their added twin).
 * With a tree, the blocks also see the pre-image lines from the start of the function down to
 * the hunk (so an `if` opened above the hunk's context still counts), when the tree's text
 * lines up with the hunk.
 */
export function lineContext(file: FileDiff, hunk: Hunk, index: number, tree?: TreeView): LineContext {
  const line = hunk.lines[index];
  if (!line) throw new RangeError(`lineContext: no line ${index} in hunk ${hunk.header} of ${file.path}`);
  const a = analyse(file, hunk, tree);
  const blocks = (line.kind === 'del' ? a.oldBlocks : a.newBlocks).get(index) ?? [];
  const twin = line.kind === 'ctx' ? undefined : a.twins.get(index);
  return {
    file,
    hunk,
    index,
    line,
    blocks: [...blocks],
    edited: twin !== undefined,
    renameOnly: twin?.renameOnly ?? false,
  };
}

/** The removed (or added) line an edited line was paired with, if any. */
export function twinOf(file: FileDiff, hunk: Hunk, index: number): number | null {
  return analyse(file, hunk).twins.get(index)?.twin ?? null;
}

// ---------------------------------------------------------------- helpers for matchers

/** A function name as rules compare it: "int arch_vcpu_create(struct vcpu *v)" -> "arch_vcpu_create". */
export function functionName(fn: string | null | undefined): string | null {
  if (!fn) return null;
  const m = /([A-Za-z_][A-Za-z0-9_]*)\s*\(/.exec(fn);
  if (m) return m[1]!;
  // "struct vcpu" (a struct/union/enum body) keeps its keyword: "vcpu" alone would read as a function.
  const tagged = /^(struct|union|enum)\s+([A-Za-z_]\w*)/.exec(fn.trim());
  if (tagged) return `${tagged[1]} ${tagged[2]}`;
  const w = fn.trim().split(/\s+/).pop();
  return w ? w.replace(/[^A-Za-z0-9_]/g, '') || null : null;
}

/** The Match for a line as the engine makes it when a rule has no matcher; `extra` overrides fields. */
export function matchAt(lc: LineContext, extra: Partial<Match> = {}): Match {
  const del = lc.line.kind === 'del';
  return {
    file: lc.file.path,
    line: del ? lc.line.oldLine : lc.line.newLine,
    side: del ? 'old' : 'new',
    function: functionName(lc.line.fn),
    code: lc.line.text,
    ...extra,
  };
}
