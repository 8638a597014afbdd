// Small, pure helpers for reading C code one diff line (or a few) at a time.
// They are deliberately shallow: a hunk shows a few lines of a function, never a
// whole translation unit, so everything here works on text and indentation, and
// says "don't know" (null / []) rather than guess when a construct is cut off.
import type { DiffLine, Hunk } from '../../model.js';

// ---------------------------------------------------------------- tokens

export type TokenKind = 'id' | 'num' | 'str' | 'chr' | 'punct';

export interface Token {
  kind: TokenKind;
  text: string;
  /** Offset in the (comment-stripped) text. */
  start: number;
}

/** Comment state carried from line to line when stripping a run of lines. */
export interface CommentState {
  inBlock: boolean;
}

/**
 * Remove comments (keeping string literals intact). Block comments that open on
 * this line and do not close are tracked in `state` so a caller walking lines in
 * order can strip the rest of them too.
 */
export function stripComments(text: string, state: CommentState = { inBlock: false }): string {
  let out = '';
  let i = 0;
  while (i < text.length) {
    if (state.inBlock) {
      const end = text.indexOf('*/', i);
      if (end < 0) return out;
      state.inBlock = false;
      i = end + 2;
      out += ' ';
      continue;
    }
    const c = text[i];
    if (c === '/' && text[i + 1] === '*') {
      state.inBlock = true;
      i += 2;
      continue;
    }
    if (c === '/' && text[i + 1] === '/') break;
    if (c === '"' || c === "'") {
      const end = skipLiteral(text, i);
      out += text.slice(i, end);
      i = end;
      continue;
    }
    out += c;
    i++;
  }
  return out;
}

function skipLiteral(text: string, start: number): number {
  const q = text[start];
  let i = start + 1;
  while (i < text.length) {
    if (text[i] === '\\') {
      i += 2;
      continue;
    }
    if (text[i] === q) return i + 1;
    i++;
  }
  return text.length;
}

const PUNCT3 = ['<<=', '>>=', '...', '->*'];
const PUNCT2 = ['->', '++', '--', '<<', '>>', '<=', '>=', '==', '!=', '&&', '||', '+=', '-=', '*=', '/=', '%=', '&=', '|=', '^=', '##', '::'];

/** Tokenize one line of C (comments are removed first). */
export function tokenize(text: string): Token[] {
  const src = stripComments(text);
  const out: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i];
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (/[A-Za-z_]/.test(c)) {
      let j = i + 1;
      while (j < src.length && /[A-Za-z0-9_]/.test(src[j])) j++;
      out.push({ kind: 'id', text: src.slice(i, j), start: i });
      i = j;
      continue;
    }
    if (/[0-9]/.test(c) || (c === '.' && /[0-9]/.test(src[i + 1] ?? ''))) {
      let j = i + 1;
      while (j < src.length && /[A-Za-z0-9_.]/.test(src[j])) j++;
      out.push({ kind: 'num', text: src.slice(i, j), start: i });
      i = j;
      continue;
    }
    if (c === '"' || c === "'") {
      const j = skipLiteral(src, i);
      out.push({ kind: c === '"' ? 'str' : 'chr', text: src.slice(i, j), start: i });
      i = j;
      continue;
    }
    const three = src.slice(i, i + 3);
    const two = src.slice(i, i + 2);
    if (PUNCT3.includes(three)) {
      out.push({ kind: 'punct', text: three, start: i });
      i += 3;
    } else if (PUNCT2.includes(two)) {
      out.push({ kind: 'punct', text: two, start: i });
      i += 2;
    } else {
      out.push({ kind: 'punct', text: c, start: i });
      i++;
    }
  }
  return out;
}

/** Tokens joined by single spaces: equal for lines that differ only in layout or comments. */
export function normalizeCode(text: string): string {
  return tokenize(text)
    .map((t) => t.text)
    .join(' ');
}

/** Identifiers on a line, in order (comments and string contents excluded). */
export function identifiers(text: string): string[] {
  return tokenize(text)
    .filter((t) => t.kind === 'id')
    .map((t) => t.text);
}

/** True when `name` appears as a whole identifier in the code of `text`. */
export function mentions(text: string, name: string): boolean {
  return identifiers(text).includes(name);
}

// ---------------------------------------------------------------- line shapes

/** Indentation width (tabs count to the next multiple of 8, as Xen's and Linux's style assume). */
export function indentWidth(text: string): number {
  let w = 0;
  for (const c of text) {
    if (c === ' ') w++;
    else if (c === '\t') w = (Math.floor(w / 8) + 1) * 8;
    else break;
  }
  return w;
}

export function isBlank(text: string): boolean {
  return stripComments(text).trim() === '';
}

export function isPreprocessor(text: string): boolean {
  return /^\s*#/.test(text);
}

/** A line that is only (part of) a comment, judged on the line alone. */
export function isCommentLine(text: string): boolean {
  const t = text.trim();
  return t.startsWith('/*') || t.startsWith('*') || t.startsWith('//') || t.endsWith('*/');
}

/** A line that holds C statements (not blank, not a comment, not a preprocessor line, not a lone label). */
export function isCode(text: string): boolean {
  if (isBlank(text) || isPreprocessor(text)) return false;
  const t = text.trim();
  if (t.startsWith('*') && !/^\*\s*\w+\s*(=|->|\.)/.test(t)) return false;
  return true;
}

/** `label:` on its own line (goto targets), not `case X:` / `default:`. */
export function labelOf(text: string): string | null {
  const m = /^\s*([A-Za-z_]\w*)\s*:\s*(?:\/\*.*)?$/.exec(stripComments(text));
  if (!m || m[1] === 'default' || m[1] === 'case') return null;
  return m[1];
}

// ---------------------------------------------------------------- calls

export interface Call {
  name: string;
  /** Argument texts, trimmed; the last one may be partial when the call is cut off. */
  args: string[];
  /** Offset of the name in the comment-stripped text. */
  start: number;
  /** Offset just after ')' (or the text length when the call does not close on this text). */
  end: number;
  complete: boolean;
}

const NOT_CALLS = new Set([
  'if', 'while', 'for', 'switch', 'return', 'sizeof', 'typeof', '__typeof__', 'alignof', '_Alignof',
  '__alignof', '__alignof__', 'do', 'else', 'case', 'defined', 'offsetof', '__builtin_expect',
]);

/** Every call `name(args)` in the text, outermost and nested, in source order. Keywords are not calls. */
export function findCalls(text: string): Call[] {
  const src = stripComments(text);
  const toks = tokenize(src);
  const calls: Call[] = [];
  for (let k = 0; k < toks.length - 1; k++) {
    const t = toks[k];
    if (t.kind !== 'id' || toks[k + 1].text !== '(' || NOT_CALLS.has(t.text)) continue;
    // A declaration like "int foo(" at the start is not a call, but treating it as one is harmless here.
    const open = toks[k + 1].start;
    const { args, end, complete } = splitArgs(src, open);
    calls.push({ name: t.text, args, start: t.start, end, complete });
  }
  return calls;
}

/** Split the argument list that opens at `open` ('(') into top-level arguments. */
export function splitArgs(src: string, open: number): { args: string[]; end: number; complete: boolean } {
  let depth = 0;
  let cur = '';
  const args: string[] = [];
  for (let i = open; i < src.length; i++) {
    const c = src[i];
    if (c === '"' || c === "'") {
      const j = skipLiteral(src, i);
      cur += src.slice(i, j);
      i = j - 1;
      continue;
    }
    if (c === '(' || c === '[' || c === '{') {
      depth++;
      if (depth === 1 && c === '(') continue;
    } else if (c === ')' || c === ']' || c === '}') {
      depth--;
      if (depth === 0) {
        if (cur.trim() !== '' || args.length > 0) args.push(cur.trim());
        return { args, end: i + 1, complete: true };
      }
    } else if (c === ',' && depth === 1) {
      args.push(cur.trim());
      cur = '';
      continue;
    }
    cur += c;
  }
  if (cur.trim() !== '') args.push(cur.trim());
  return { args, end: src.length, complete: false };
}

/** Names of the functions called on the line. */
export function calledNames(text: string): string[] {
  return findCalls(text).map((c) => c.name);
}

/** The first call to `name` on the line, if any. */
export function callTo(text: string, name: string | RegExp): Call | null {
  for (const c of findCalls(text)) {
    if (typeof name === 'string' ? c.name === name : name.test(c.name)) return c;
  }
  return null;
}

// ---------------------------------------------------------------- expressions

/** Remove spaces, redundant outer parentheses, casts and a leading '&' / '*': "&(x->y)" -> "x->y". */
export function normalizeExpr(expr: string): string {
  let e = stripComments(expr).replace(/\s+/g, '');
  for (;;) {
    const before = e;
    e = e.replace(/^\((?:const)?(?:struct|union|enum)?\w+\*?\)(?=[\w&*(])/, ''); // (type *)x
    if (e.startsWith('&') || e.startsWith('*')) e = e.slice(1);
    if (e.startsWith('(') && e.endsWith(')') && balancedInside(e)) e = e.slice(1, -1);
    if (e === before) return e;
  }
}

function balancedInside(e: string): boolean {
  let depth = 0;
  for (let i = 0; i < e.length; i++) {
    if (e[i] === '(') depth++;
    else if (e[i] === ')') {
      depth--;
      if (depth === 0 && i < e.length - 1) return false;
    }
  }
  return depth === 0;
}

/** The last member name of an lvalue: "v->arch.xsave_area" -> "xsave_area"; "p" -> "p"; "a[i].b" -> "b". */
export function lastMember(expr: string): string | null {
  const e = normalizeExpr(expr).replace(/\[[^\]]*\]$/, '');
  const m = /([A-Za-z_]\w*)$/.exec(e);
  return m ? m[1] : null;
}

/** The variable an lvalue starts from: "v->arch.x" -> "v"; "&ctxt.flags" -> "ctxt". */
export function baseVar(expr: string): string | null {
  const m = /^([A-Za-z_]\w*)/.exec(normalizeExpr(expr));
  return m ? m[1] : null;
}

export interface Assignment {
  /** Left-hand side as written (trimmed). */
  target: string;
  /** "=", "|=", "&=", ... */
  op: string;
  /** Right-hand side up to ';' (trimmed). */
  value: string;
  /** Last member name of the target ("fpu_initialised" for "v->fpu_initialised"). */
  field: string | null;
  /** True for a declaration with an initializer ("struct foo x = {};"). */
  declaration: boolean;
}

const LVALUE_RE = /^\*?\s*\(?\s*\*?\s*[A-Za-z_]\w*(?:\s*(?:->|\.)\s*[A-Za-z_]\w*|\s*\[[^\]]*\])*\s*\)?$/;
const ASSIGN_OPS = ['<<=', '>>=', '+=', '-=', '*=', '/=', '%=', '&=', '|=', '^=', '='];

/**
 * The assignment a line makes, if it is a simple statement "lhs op rhs;" or a
 * declaration with an initializer. Conditions ("if ( (rc = f()) )"), comparisons
 * and macro wrappers ("c(flags |= X)") are not assignments here.
 */
export function assignment(text: string): Assignment | null {
  const src = stripComments(text).trim();
  if (src === '' || /^(if|while|for|switch|return|case|else|do|goto)\b/.test(src) || src.startsWith('#')) return null;
  // first top-level assignment operator
  let depth = 0;
  for (let i = 0; i < src.length; i++) {
    const c = src[i];
    if (c === '"' || c === "'") {
      i = skipLiteral(src, i) - 1;
      continue;
    }
    if ('([{'.includes(c)) depth++;
    else if (')]}'.includes(c)) depth--;
    if (depth !== 0) continue;
    const op = ASSIGN_OPS.find((o) => src.startsWith(o, i));
    if (!op) continue;
    if (op === '=' && (src[i + 1] === '=' || '=!<>'.includes(src[i - 1] ?? ''))) {
      i++;
      continue;
    }
    const lhs = src.slice(0, i).trim();
    const value = src.slice(i + op.length).replace(/;\s*$/, '').trim();
    if (LVALUE_RE.test(lhs)) return { target: lhs, op, value, field: lastMember(lhs), declaration: false };
    const decl = op === '=' ? declarations(lhs + ';') : [];
    if (decl.length === 1) return { target: decl[0].name, op, value, field: decl[0].name, declaration: true };
    return null;
  }
  return null;
}

/** Literal truth value of an expression: true/1 -> true, false/0 -> false, anything else -> null. */
export function literalBool(expr: string): boolean | null {
  const e = normalizeExpr(expr);
  if (e === 'true' || e === '1' || e === '!0') return true;
  if (e === 'false' || e === '0' || e === '!1') return false;
  return null;
}

// ---------------------------------------------------------------- allocations / memset

export interface Allocation {
  /** Where the result is stored ("v->arch.foo", "p"), null when it is not assigned on this line. */
  target: string | null;
  allocator: string;
  /** True when the allocator hands back zeroed memory. */
  zeroed: boolean;
  call: Call;
}

/** Xen's heap allocators: name -> whether they zero. */
export const XEN_ALLOCATORS: Record<string, boolean> = {
  xmalloc: false,
  xmalloc_array: false,
  xmalloc_bytes: false,
  xmalloc_flex_struct: false,
  _xmalloc: false,
  _xmalloc_array: false,
  xvmalloc: false,
  xvmalloc_array: false,
  xvmalloc_flex_struct: false,
  _xvmalloc: false,
  vmalloc: false,
  xzalloc: true,
  xzalloc_array: true,
  xzalloc_bytes: true,
  xzalloc_flex_struct: true,
  _xzalloc: true,
  _xzalloc_array: true,
  xvzalloc: true,
  xvzalloc_array: true,
  xvzalloc_flex_struct: true,
  _xvzalloc: true,
  vzalloc: true,
  alloc_xenheap_page: false,
  alloc_xenheap_pages: false,
  alloc_domheap_page: false,
  alloc_domheap_pages: false,
};

/** The zeroing twin of a non-zeroing allocator ("xmalloc_array" -> "xzalloc_array"). */
export function zeroingTwin(allocator: string): string | null {
  if (XEN_ALLOCATORS[allocator] !== false) return null;
  const twin = allocator.replace('xmalloc', 'xzalloc').replace('xvmalloc', 'xvzalloc').replace(/^vmalloc$/, 'vzalloc');
  return twin !== allocator && XEN_ALLOCATORS[twin] === true ? twin : null;
}

/** The allocation made on a line, if any: "p = xmalloc(struct foo);" or "if ( !(p = xzalloc(...)) )". */
export function allocation(text: string): Allocation | null {
  const src = stripComments(text);
  for (const call of findCalls(src)) {
    if (!(call.name in XEN_ALLOCATORS)) continue;
    const before = src.slice(0, call.start);
    const m = /([A-Za-z_]\w*(?:\s*(?:->|\.)\s*[A-Za-z_]\w*|\s*\[[^\]]*\])*)\s*=\s*(?:\([^()]*\)\s*)?$/.exec(before);
    const target = m && !/[=!<>]$/.test(before.slice(0, m.index).trimEnd()) ? m[1].replace(/\s+/g, '') : null;
    return { target, allocator: call.name, zeroed: XEN_ALLOCATORS[call.name], call };
  }
  return null;
}

export interface Memset {
  /** Destination as written ("&x", "p", "v->arch.foo"). */
  dest: string;
  value: string;
  size: string;
  call: Call;
}

/** memset(dest, value, size) on the line, if any. */
export function memsetCall(text: string): Memset | null {
  const call = callTo(text, 'memset');
  if (!call || call.args.length < 3) return null;
  return { dest: call.args[0], value: call.args[1], size: call.args[2], call };
}

/** The operand of "sizeof(x)" / "sizeof x" when the size is exactly that, else null. */
export function sizeofOperand(expr: string): string | null {
  const e = stripComments(expr).trim();
  const m = /^sizeof\s*\(\s*(.*)\s*\)$/.exec(e) ?? /^sizeof\s+([\w>.\-*]+)$/.exec(e);
  if (!m) return null;
  if (m[0].startsWith('sizeof(') || m[0].startsWith('sizeof (')) {
    // make sure the parenthesis that closes is the one that opened
    const open = e.indexOf('(');
    const { end } = splitArgs(e, open);
    if (end !== e.length) return null;
  }
  return m[1].trim();
}

// ---------------------------------------------------------------- declarations

export interface Declaration {
  name: string;
  /** Type text before the name ("struct xen_foo", "uint8_t"). */
  type: string;
  pointer: boolean;
  array: boolean;
  /** Initializer text after '=', or null. */
  init: string | null;
}

const TYPE_WORDS = /^(?:(?:static|const|volatile|unsigned|signed|register)\s+)*(?:(?:struct|union|enum)\s+)?[A-Za-z_]\w*$/;
const NOT_TYPES = new Set(['return', 'goto', 'else', 'case', 'break', 'continue', 'sizeof', 'typeof', 'do']);

/**
 * Local declarations on a line: "struct foo a, *b = NULL, c[4];". Returns [] for
 * statements (calls, assignments to existing variables, ...).
 */
export function declarations(text: string): Declaration[] {
  const src = stripComments(text).trim();
  if (!src.endsWith(';') || /^(return|goto|if|while|for|switch|case|else|do)\b/.test(src)) return [];
  const body = src.slice(0, -1);
  // Type = leading words up to the first declarator.
  const m = /^((?:(?:static|const|volatile|unsigned|signed|register)\s+)*(?:(?:struct|union|enum)\s+)?[A-Za-z_]\w*)\s*(.*)$/.exec(body);
  if (!m || !TYPE_WORDS.test(m[1].trim())) return [];
  const type = m[1].trim();
  if (NOT_TYPES.has(type.split(/\s+/).pop() ?? '')) return [];
  const rest = m[2];
  if (rest === '' || /^[=([.\-]/.test(rest) || rest.startsWith('->')) return [];
  const out: Declaration[] = [];
  for (const part of splitTopLevel(rest, ',')) {
    const dm = /^(\**)\s*(?:const\s+)?([A-Za-z_]\w*)\s*((?:\[[^\]]*\]\s*)*)(?:=\s*([\s\S]*))?$/.exec(part.trim());
    if (!dm) return [];
    out.push({ name: dm[2], type, pointer: dm[1].length > 0, array: dm[3].trim() !== '', init: dm[4]?.trim() ?? null });
  }
  return out;
}

function splitTopLevel(s: string, sep: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const c of s) {
    if ('([{'.includes(c)) depth++;
    else if (')]}'.includes(c)) depth--;
    if (c === sep && depth === 0) {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  out.push(cur);
  return out;
}

/** Parameters of a function as written in a hunk header ("int foo(struct vcpu *v, unsigned int n)"). */
export function parameters(signature: string): Declaration[] {
  const open = signature.indexOf('(');
  if (open < 0) return [];
  const { args } = splitArgs(signature, open);
  const out: Declaration[] = [];
  for (const a of args) {
    const d = declarations(a.replace(/\)?\s*$/, '') + ';');
    out.push(...d);
  }
  return out;
}

// ---------------------------------------------------------------- conditions and blocks

export interface Condition {
  keyword: 'if' | 'else if' | 'while' | 'for' | 'switch';
  cond: string;
}

/** The controlling expression of "if ( x )", "} else if ( y ) {", "while ( z )", ... on the line. */
export function conditionOf(text: string): Condition | null {
  const src = stripComments(text).trim();
  const m = /^(?:\}\s*)?(else\s+if|if|while|for|switch)\s*\(/.exec(src);
  if (!m) return null;
  const open = src.indexOf('(', m[0].length - 1);
  const { args, complete } = splitArgs(src, open);
  const cond = m[1] === 'for' ? args.join(', ') : args.join(', ');
  const kw = m[1].replace(/\s+/, ' ') as Condition['keyword'];
  return { keyword: kw, cond: complete ? cond : cond + ' ...' };
}

export interface ViewLine {
  text: string;
  /** Index in hunk.lines. */
  index: number;
  line: DiffLine;
}

/** The hunk as it reads after the patch (context and added lines). */
export function newSide(hunk: Hunk): ViewLine[] {
  const out: ViewLine[] = [];
  hunk.lines.forEach((line, index) => {
    if (line.kind !== 'del') out.push({ text: line.text, index, line });
  });
  return out;
}

/** The hunk as it read before the patch (context and removed lines). */
export function oldSide(hunk: Hunk): ViewLine[] {
  const out: ViewLine[] = [];
  hunk.lines.forEach((line, index) => {
    if (line.kind !== 'add') out.push({ text: line.text, index, line });
  });
  return out;
}

/** Position of hunk index `index` within a side view, or -1. */
export function positionIn(view: ViewLine[], index: number): number {
  return view.findIndex((v) => v.index === index);
}

/**
 * Statements before view[pos] in the same block (same indentation, nothing less
 * indented in between), nearest first. Lines inside nested blocks (more indented)
 * are skipped but their openers are included.
 */
export function sameBlockBefore(view: ViewLine[], pos: number): number[] {
  const out: number[] = [];
  if (pos < 0) return out;
  const indent = indentWidth(view[pos].text);
  for (let i = pos - 1; i >= 0; i--) {
    const t = view[i].text;
    if (!isCode(t)) continue;
    const w = indentWidth(t);
    if (labelOf(t)) {
      if (w < indent && indent - w <= 4) return out; // "fail:" labels sit one step out
      continue;
    }
    if (w < indent) return out; // the line that opened our block
    if (w === indent) out.push(i);
  }
  return out;
}

/** The statement starting at view[pos], joined with its continuation lines (up to ';' or '{'). */
export function statementAt(view: ViewLine[], pos: number, maxLines = 6): string {
  let text = view[pos].text;
  let depth = parenDepth(text);
  for (let i = pos + 1; i < view.length && i < pos + maxLines && (depth > 0 || !/[;{}]\s*$/.test(stripComments(text).trim())); i++) {
    if (depth <= 0 && conditionOf(text)) break; // a complete braceless "if ( x )"
    text += ' ' + view[i].text.trim();
    depth += parenDepth(view[i].text);
  }
  return text;
}

function parenDepth(text: string): number {
  let d = 0;
  for (const t of tokenize(text)) {
    if (t.text === '(') d++;
    else if (t.text === ')') d--;
  }
  return d;
}

/** Position of the first line of the statement view[pos] belongs to (a continuation line of a condition goes back to its "if"). */
export function statementStart(view: ViewLine[], pos: number, maxBack = 6): number {
  for (let i = pos - 1; i >= 0 && i >= pos - maxBack; i--) {
    let depth = 0;
    for (let k = i; k < pos; k++) depth += parenDepth(view[k].text);
    if (depth > 0) return i;
    if (/[;{}]\s*$/.test(stripComments(view[i].text).trim())) break;
  }
  return pos;
}

/** Function name in a hunk header's funcname text ("int arch_vcpu_create(struct vcpu *v)" -> "arch_vcpu_create"). */
export function functionNameOf(text: string | null | undefined): string | null {
  if (!text) return null;
  const m = /([A-Za-z_]\w*)\s*\(/.exec(text);
  if (m && !NOT_CALLS.has(m[1])) return m[1];
  const id = /^([A-Za-z_]\w*)$/.exec(text.trim());
  return id ? id[1] : null;
}

/**
 * The function a diff line sits in, as the diff stage worked it out (DiffLine.fn; null at
 * file scope). The hunk header's function is not a fallback: it names the definition
 * *before* the hunk, which is wrong for lines after a new definition.
 */
export function functionOfLine(line: DiffLine, _hunk?: Hunk): string | null {
  return functionNameOf(line.fn);
}
