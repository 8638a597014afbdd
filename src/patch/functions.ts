// Which function (or other definition) each diff line sits in.
//
// git's hunk header names the definition *before* the hunk starts: the nearest earlier
// line that starts with a letter, '_' or '$' (xen.git sets no diff driver, so this
// default funcname is what xen-devel patches carry). That is right for the first lines of
// a hunk only: a hunk can run past the end of that function ("}" in column 0) and into the
// next definition. We follow the hunk line by line, separately on the old side (context
// and removed lines) and the new side (context and added lines), so that a removed
// function and the function added in its place each keep their own name.
//
// Decisions (see functionNameFromHeader):
// - C functions give their identifier: "static void __init noinline foo(void)" -> "foo".
//   Attribute-like macros with arguments before the name (__attribute__((x)),
//   __section("..."), __aligned(n), __printf(a, b), ...) are skipped.
// - SYSCALL_DEFINEn(foo, ...) gives "sys_foo" and COMPAT_SYSCALL_DEFINEn(foo, ...) gives
//   "compat_sys_foo", the names the kernel's own tags script (scripts/tags.sh) uses.
// - struct/union/enum definitions give "struct vcpu" (with the keyword, so a reader can
//   tell a type from a function): lines inside a structure are reported as "in struct vcpu".
// - A variable with an initialiser block ("static const struct hvm_function_table
//   __initconst svm_function_table = {") gives the variable's name.
// - "#define FOO(x)" gives "FOO" (macro). A multi-line macro (trailing "\") is a scope
//   of its own; a one-line #define only names its own line.
// - Declarations and prototypes (ending in ';'), labels, preprocessor lines other than
//   #define, and keywords give null.
// - Python "def foo" -> "foo", "class Foo" -> "class Foo"; shell "foo() {" and
//   "function foo" -> "foo"; assembly FUNC(foo)/ENTRY(foo)/SYM_FUNC_START(foo)/"foo:" ->
//   "foo". For Makefiles, documentation and other files the header text itself is the
//   name, as git shows it.

import type { FileDiff, Hunk } from '../model.js';
import { isBlank } from './lines.js';

export type SourceLanguage = 'c' | 'asm' | 'python' | 'shell' | 'make' | 'other';

export function languageOf(path: string | null | undefined): SourceLanguage {
  if (!path) return 'other';
  const base = path.slice(path.lastIndexOf('/') + 1);
  if (/\.(c|h|cc|cpp|cxx|hh|hpp|hxx|inc|y|l)$/.test(base)) return 'c';
  if (/\.(S|s|asm)$/.test(base)) return 'asm';
  if (/\.py$/.test(base)) return 'python';
  if (/\.(sh|bash|ksh)$/.test(base)) return 'shell';
  if (/^(GNU)?[Mm]akefile$|\.mk$|^Kbuild$/.test(base)) return 'make';
  return 'other';
}

export type DefinitionKind = 'function' | 'type' | 'variable' | 'macro';

export interface CDefinition {
  name: string;
  kind: DefinitionKind;
  /** Index of the '(' opening the parameter list (functions), in the line as given. */
  openParen?: number;
}

/** Replace comments by spaces, keeping every other character at its index. */
function blankComments(s: string): string {
  // Without "/*" or "//" anywhere there is no comment: the line comes back as it is.
  if (!s.includes('/*') && !s.includes('//')) return s;
  let out = '';
  let i = 0;
  while (i < s.length) {
    if (s.startsWith('/*', i)) {
      const close = s.indexOf('*/', i + 2);
      const stop = close < 0 ? s.length : close + 2;
      out += ' '.repeat(stop - i);
      i = stop;
    } else if (s.startsWith('//', i)) {
      out += ' '.repeat(s.length - i);
      i = s.length;
    } else if (s[i] === '"' || s[i] === "'") {
      // Keep string/char literals, so that "/*" inside one is not a comment.
      const q = s[i];
      let j = i + 1;
      while (j < s.length && s[j] !== q) j += s[j] === '\\' ? 2 : 1;
      out += s.slice(i, j + 1);
      i = j + 1;
    } else {
      out += s[i];
      i++;
    }
  }
  return out;
}

const ATTRIBUTE_LIKE = new Set([
  '__attribute__', '__attribute', '__declspec', 'alignas', '_Alignas', '__aligned', '__section',
  '__printf', '__scanf', '__format', '__malloc', '__alloc_size', '__must_hold', '__acquires',
  '__releases', '__cond_acquires', '__cond_releases', '__diagnose_as', '__counted_by', '__guarded_by',
  '__pt_guarded_by', '__cleanup', '__deprecated', '__no_sanitize_address', '__used_section',
  '__nonnull', '__must_check_fn', 'noreturn_fn',
]);

const NOT_A_NAME = new Set([
  'if', 'else', 'for', 'while', 'do', 'switch', 'return', 'case', 'default', 'goto', 'break',
  'continue', 'sizeof', 'typeof', '__typeof__', 'alignof', '_Alignof', 'void', 'int', 'char', 'short',
  'long', 'unsigned', 'signed', 'float', 'double', 'bool', '_Bool', 'const', 'volatile', 'static',
  'inline', 'extern', 'register', 'struct', 'union', 'enum', 'typedef', 'asm', '__asm__', 'defined',
]);

const IDENT_BEFORE = /((?:[A-Za-z_$][\w$]*::)*~?[A-Za-z_$][\w$]*)\s*$/;

/** [A-Za-z0-9_$:~]: what IDENT_BEFORE's match is made of, before its trailing white space. */
function isIdentTailChar(c: number): boolean {
  return (
    (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x3a) || c === 0x5f || c === 0x24 || c === 0x7e
  );
}

/**
 * IDENT_BEFORE.exec(s)?.[1]: the identifier (or C++ qualified name) ending s, before white
 * space. The pattern is tried from every start, so it runs on the tail that can hold the
 * match: back over white space (every \s is a control, a space or non-ASCII), then over
 * identifier characters. Any match starts inside that tail, so the leftmost one is the same.
 */
function identBefore(s: string): string | undefined {
  let p = s.length;
  while (p > 0) {
    const c = s.charCodeAt(p - 1);
    if (c > 0x20 && c < 0x7f) break;
    p--;
  }
  while (p > 0 && isIdentTailChar(s.charCodeAt(p - 1))) p--;
  return IDENT_BEFORE.exec(p === 0 ? s : s.slice(p))?.[1];
}

/** s with a trailing "\" (line continuation) and the white space around it cut: s.replace(/\\\s*$/, '').replace(/\s+$/, ''). */
function withoutContinuation(s: string): string {
  const t = s.trimEnd();
  return t.charCodeAt(t.length - 1) === 0x5c ? t.slice(0, -1).trimEnd() : t;
}

/**
 * Read a C definition's name from its first line (a hunk header or a line of code).
 * Returns null for lines that do not open a definition (declarations, statements,
 * labels, preprocessor lines other than #define).
 */
export function cDefinition(line: string): CDefinition | null {
  const s = withoutContinuation(blankComments(line));
  const t = s.trimStart();
  const lead = s.length - t.length;
  if (t === '') return null;
  if (t.charCodeAt(0) === 0x23 /* # */) {
    const define = /^#\s*define\s+([A-Za-z_]\w*)/.exec(t);
    return define ? { name: define[1], kind: 'macro' } : null;
  }
  const type = /^(?:typedef\s+)?(struct|union|enum|class|namespace)\s+(?:__\w+\s+)*([A-Za-z_]\w*)\s*(?:\{.*)?$/.exec(t);
  if (type) return { name: `${type[1]} ${type[2]}`, kind: 'type' };
  if (t.endsWith(';')) return null;
  if (/^(if|else|for|while|do|switch|return|case|goto|break|continue|sizeof)\b/.test(t)) return null;
  if (/^[A-Za-z_$][\w$]*\s*:(?!:)/.test(t)) return null; // label, "default:", "public:"
  const syscall = /^(COMPAT_)?SYSCALL_DEFINE\d*\s*\(\s*([A-Za-z_]\w*)/.exec(t);
  if (syscall) {
    return { name: `${syscall[1] ? 'compat_' : ''}sys_${syscall[2]}`, kind: 'function', openParen: lead + t.indexOf('(') };
  }
  // Walk the top level of the line: parenthesised groups and the first '='.
  let depth = 0;
  let eq = -1;
  for (let i = 0; i < t.length; i++) {
    const c = t[i];
    if (c === '"' || c === "'") {
      let j = i + 1;
      while (j < t.length && t[j] !== c) j += t[j] === '\\' ? 2 : 1;
      i = j;
      continue;
    }
    if (c === '(' || c === '[') {
      if (c === '(' && depth === 0) {
        const ident = identBefore(t.slice(0, i));
        if (ident !== undefined && ATTRIBUTE_LIKE.has(ident)) {
          depth++;
          continue;
        }
        if (eq >= 0) break;
        if (ident === undefined || NOT_A_NAME.has(ident)) return null;
        return { name: ident, kind: 'function', openParen: lead + i };
      }
      depth++;
    } else if (c === ')' || c === ']') {
      depth = Math.max(0, depth - 1);
    } else if (c === '=' && depth === 0 && eq < 0) {
      const prev = t[i - 1];
      const next = t[i + 1];
      if (next !== '=' && prev !== '=' && prev !== '!' && prev !== '<' && prev !== '>') eq = i;
    } else if (c === '{' && depth === 0) {
      break;
    }
  }
  if (eq >= 0) {
    const before = t.slice(0, eq).replace(/(\s*\[[^\]]*\])+\s*$/, '').trimEnd();
    const ident = identBefore(before);
    // "int x = ..." needs a type before the name; a bare "x = 1" is a statement.
    if (ident !== undefined && !NOT_A_NAME.has(ident) && /\S\s+\**\s*$/.test(before.slice(0, before.length - ident.length))) {
      return { name: ident, kind: 'variable' };
    }
  }
  return null;
}

function pythonName(line: string): string | null {
  const def = /^\s*(?:async\s+)?def\s+([A-Za-z_]\w*)/.exec(line);
  if (def) return def[1];
  const cls = /^\s*class\s+([A-Za-z_]\w*)/.exec(line);
  return cls ? `class ${cls[1]}` : null;
}

function shellName(line: string): string | null {
  const m = /^\s*function\s+([A-Za-z_][\w.:-]*)/.exec(line) ?? /^\s*([A-Za-z_][\w.:-]*)\s*\(\s*\)/.exec(line);
  return m ? m[1] : null;
}

const ASM_START =
  /^(?:ENTRY|FUNC|FUNC_LOCAL|GLOBAL|LABEL|LABEL_LOCAL|DATA|DATA_LOCAL|SYM_(?:FUNC|CODE|DATA)_START(?:_\w+)?|SYM_INNER_LABEL(?:_ALIGN)?|SYM_TYPED_FUNC_START)\s*\(\s*([A-Za-z_.$][\w.$]*)/;
const ASM_END = /^(?:END|ENDPROC|SYM_FUNC_END|SYM_CODE_END|SYM_DATA_END|SYM_FUNC_END_ALIAS)\s*\(/;

function asmName(line: string): string | null {
  const m = ASM_START.exec(line) ?? /^([A-Za-z_$][\w.$]*):/.exec(line);
  return m ? m[1] : null;
}

/**
 * The name of the function (or other definition) in a hunk header's text, e.g.
 * "int arch_vcpu_create(struct vcpu *v)" -> "arch_vcpu_create". With a path, the file's
 * language decides how to read it (and files without functions fall back to the header
 * text); without one, C, Python and shell forms are tried. See the top of this file for
 * the decisions on structs, macros, SYSCALL_DEFINE and declarations.
 */
export function functionNameFromHeader(header: string, path?: string | null): string | null {
  const text = header.trim();
  if (text === '') return null;
  if (path === undefined || path === null) {
    return pythonName(text) ?? cDefinition(text)?.name ?? shellName(text);
  }
  return nameFromHeaderIn(text, languageOf(path));
}

/** functionNameFromHeader for a file of a known language; `text` is the header text, trimmed and not empty. */
function nameFromHeaderIn(text: string, language: SourceLanguage): string | null {
  switch (language) {
    case 'c':
      return cDefinition(text)?.name ?? null;
    case 'asm':
      return asmName(text) ?? (text.startsWith('#') ? cDefinition(text)?.name ?? null : text);
    case 'python':
      return pythonName(text) ?? text;
    case 'shell':
      return shellName(text) ?? text;
    default:
      return text;
  }
}

// ---------------------------------------------------------------- following a hunk

const COLUMN0_NAME = /^[A-Za-z_$]/;

/** COLUMN0_NAME.test(t), by the first character's code. */
function startsWithName(t: string): boolean {
  const c = t.charCodeAt(0);
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || c === 0x5f || c === 0x24;
}

/**
 * Does a C definition open at texts[j]? The line must start in column 0 (as git's
 * funcname wants) and name something; a function is confirmed by its parameter list being
 * followed by '{' (same line or later), not by ';' (prototype) or ',' (declaration list).
 * When the hunk ends before that can be seen, assume a definition, as git would.
 */
function cDefinitionAt(texts: string[], j: number): CDefinition | null {
  const t = texts[j];
  if (!startsWithName(t)) return null;
  const d = cDefinition(t);
  if (!d || d.kind === 'macro') return null;
  const nextStartsBlock = () => {
    for (let k = j + 1; k < texts.length && k <= j + 2; k++) {
      const u = texts[k].trim();
      if (u === '') continue;
      return u.startsWith('{');
    }
    return false;
  };
  if (d.kind === 'type' || d.kind === 'variable') {
    const code = blankComments(t);
    return code.includes('{') || nextStartsBlock() ? d : null;
  }
  // Function: what follows the parameter list, in a window of this line and the 15 after it
  // (comments blanked). Most definitions show their '{' (or ';') within a line or two, and
  // the reading of a window's start is the reading of the whole window unless it runs to
  // the start's end: read the start first, the whole window only then.
  const last = Math.min(texts.length - 1, j + 15);
  const near = Math.min(last, j + 2);
  let code = blankComments(t);
  for (let k = j + 1; k <= near; k++) code += `\n${blankComments(texts[k])}`;
  let after = afterParameters(code, d.openParen);
  if (after === 'end' && near < last) {
    for (let k = near + 1; k <= last; k++) code += `\n${blankComments(texts[k])}`;
    after = afterParameters(code, d.openParen);
  }
  // 'end': the window ends inside the parameter list or before anything follows it.
  return after === 'other' ? null : d;
}

/**
 * In `joined` (lines joined by "\n"), find the ')' closing the parameter list that opens at
 * openParen, then what follows it past attribute-like words: '{' (a definition), something
 * else (a prototype, a declaration list), or nothing before the text ends.
 */
function afterParameters(joined: string, openParen: number | undefined): 'block' | 'other' | 'end' {
  let depth = 0;
  let i = openParen ?? joined.indexOf('(');
  for (; i < joined.length; i++) {
    if (joined[i] === '(') depth++;
    else if (joined[i] === ')' && --depth === 0) break;
  }
  if (i >= joined.length) return 'end'; // the hunk ends inside the parameter list
  let rest = joined.slice(i + 1);
  // Skip attribute-like words after the parameter list: "__acquires(x)", "noexcept", ...
  for (;;) {
    rest = rest.replace(/^\s+/, '');
    const word = /^[A-Za-z_]\w*\s*/.exec(rest);
    if (!word) break;
    rest = rest.slice(word[0].length);
    if (rest.startsWith('(')) {
      let dd = 0;
      let k = 0;
      for (; k < rest.length; k++) {
        if (rest[k] === '(') dd++;
        else if (rest[k] === ')' && --dd === 0) break;
      }
      rest = rest.slice(k + 1);
    }
  }
  if (rest === '') return 'end';
  return rest.startsWith('{') ? 'block' : 'other';
}

/** "static int" / "struct foo *" alone on a line: the return type of a two-line definition. */
function isReturnTypeLine(t: string): boolean {
  if (!startsWithName(t)) return false;
  const code = blankComments(t).trim();
  if (/[;{}(),=:]/.test(code)) return false;
  return cDefinition(code) === null;
}

/** Blank, a top-level comment, a preprocessor line, or column-0 text: nothing inside a body. */
function isTopLevelish(t: string): boolean {
  return startsWithName(t) || isBlank(t) || /^(\/\*|\/\/|\*| \*|#)/.test(t);
}

const continues = (t: string) => /\\\s*$/.test(t);

const DEFINE_LINE = /^\s*#\s*define\s+([A-Za-z_]\w*)/;

function trackC(texts: string[], start: string | null): Array<string | null> {
  const out: Array<string | null> = [];
  let fn = start;
  let macroSaved: { fn: string | null } | null = null;
  // Lines at the hunk's start that still carry the header's function: if they turn out to
  // be top level (the header's function had ended before the hunk), they are cleared.
  const leading: number[] = [];
  let inLeading = start !== null;
  let leadingTopLevel = true;
  for (let j = 0; j < texts.length; j++) {
    const t = texts[j];
    if (macroSaved) {
      out.push(fn);
      if (!continues(t)) {
        fn = macroSaved.fn;
        macroSaved = null;
      }
      continue;
    }
    // Every out[j] is pushed once, in order; out[j - 1] and leading lines may be rewritten.
    const define = t.includes('#') ? DEFINE_LINE.exec(t) : null;
    if (define) {
      out.push(define[1]);
      if (continues(t)) {
        macroSaved = { fn };
        fn = define[1];
      }
      if (inLeading) leading.push(j);
      continue;
    }
    const c = t.charCodeAt(0);
    if (c === 0x7d /* } */) {
      out.push(fn);
      fn = null;
      inLeading = false;
      continue;
    }
    if (startsWithName(t)) {
      const def = cDefinitionAt(texts, j);
      if (def) {
        if (inLeading && leadingTopLevel) for (const k of leading) out[k] = null;
        inLeading = false;
        fn = def.name;
        out.push(fn);
        if (j > 0 && isReturnTypeLine(texts[j - 1])) out[j - 1] = fn;
        continue;
      }
      if (blankComments(t).trim().endsWith(';') && !/^[A-Za-z_]\w*\s*:(?!:)/.test(t)) {
        // A top-level declaration ("static int opt_foo;", "boolean_param(...);"): we are
        // outside any function.
        if (inLeading && leadingTopLevel) for (const k of leading) out[k] = null;
        inLeading = false;
        fn = null;
        out.push(null);
        continue;
      }
    }
    out.push(fn);
    if (inLeading) {
      leading.push(j);
      if (leadingTopLevel && !isTopLevelish(t)) leadingTopLevel = false;
    }
  }
  return out;
}

function trackPython(texts: string[], start: string | null): Array<string | null> {
  let fn = start;
  return texts.map((t) => {
    const name = pythonName(t);
    if (name) fn = name;
    else if (/^[^\s#@)\]}]/.test(t)) fn = null; // top-level statement
    return fn;
  });
}

function trackShell(texts: string[], start: string | null): Array<string | null> {
  let fn = start;
  return texts.map((t) => {
    if (/^\S/.test(t)) {
      const name = shellName(t);
      if (name) fn = name;
    }
    const here = fn;
    if (t.startsWith('}')) fn = null;
    return here;
  });
}

function trackAsm(texts: string[], start: string | null): Array<string | null> {
  let fn = start;
  return texts.map((t) => {
    const name = COLUMN0_NAME.test(t) ? asmName(t) : null;
    if (name) fn = name;
    const here = fn;
    if (ASM_END.test(t)) fn = null;
    return here;
  });
}

/** git's default funcname: every column-0 line starting with a letter, '_' or '$'. */
function trackGeneric(texts: string[], start: string | null): Array<string | null> {
  let fn = start;
  const out = new Array<string | null>(texts.length);
  for (let k = 0; k < texts.length; k++) {
    if (COLUMN0_NAME.test(texts[k])) fn = texts[k].trim();
    out[k] = fn;
  }
  return out;
}

/** The function of each line of one side of a hunk (texts in order, without prefixes). */
export function trackFunctions(texts: string[], start: string | null, path: string | null): Array<string | null> {
  return trackIn(languageOf(path), texts, start);
}

function trackIn(language: SourceLanguage, texts: string[], start: string | null): Array<string | null> {
  switch (language) {
    case 'c':
      return trackC(texts, start);
    case 'python':
      return trackPython(texts, start);
    case 'shell':
      return trackShell(texts, start);
    case 'asm':
      return trackAsm(texts, start);
    default:
      return trackGeneric(texts, start);
  }
}

/** Set `fn` on every line of one hunk: old side over context and removed lines, new side over context and added lines. */
function assignHunk(hunk: Hunk, path: string | null | undefined, language: SourceLanguage): void {
  const header = hunk.headerFunction?.trim() ?? '';
  let start: string | null = null;
  if (path === null || path === undefined) start = hunk.headerFunction === null ? null : functionNameFromHeader(hunk.headerFunction, path);
  else if (header !== '') start = nameFromHeaderIn(header, language);
  const lines = hunk.lines;
  const oldTexts: string[] = [];
  const newTexts: string[] = [];
  for (const l of lines) {
    if (l.kind !== 'add') oldTexts.push(l.text);
    if (l.kind !== 'del') newTexts.push(l.text);
  }
  const oldFns = trackIn(language, oldTexts, start);
  const newFns = trackIn(language, newTexts, start);
  let o = 0;
  let n = 0;
  for (const l of lines) {
    // Context lines take the new side's view (both sides agree on them in practice).
    if (l.kind === 'del') l.fn = oldFns[o++];
    else if (l.kind === 'add') l.fn = newFns[n++];
    else {
      o++;
      l.fn = newFns[n++];
    }
  }
}

/** Set `fn` on every line of the file's hunks (in place). parseDiff applies it. */
export function assignFunctions(file: FileDiff): void {
  const language = languageOf(file.path);
  for (const hunk of file.hunks) assignHunk(hunk, file.path, language);
}

/** Pure variant of assignFunctions: returns a copy with `fn` set, leaving `file` alone. */
export function withFunctions(file: FileDiff): FileDiff {
  const copy: FileDiff = structuredClone(file);
  assignFunctions(copy);
  return copy;
}
