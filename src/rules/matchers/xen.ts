// Matchers of the Xen rule pack (rules/xen/*.yml). Pure functions of the
// MatchContext: they read the diff, the knowledge base (rules/xen/kb.yml) and,
// when given, the tree view; they never do I/O.
//
// Every matcher errs on the side of silence: a finding needs the code it is
// about to be visible in the hunk (or in the tree), and moved, re-indented or
// renamed code is never treated as new.
import type { Diff, DiffLine, FileDiff, Hunk, Severity } from '../../model.js';
import type { FunctionFacts, KnowledgeBase, LineContext, Match, MatchContext, Matcher } from '../types.js';
import {
  allocation,
  assignment,
  baseVar,
  callTo,
  calledNames,
  conditionOf,
  declarations,
  findCalls,
  functionOfLine,
  identifiers,
  indentWidth,
  isCode,
  isCommentLine,
  isPreprocessor,
  labelOf,
  lastMember,
  literalBool,
  memsetCall,
  mentions,
  newSide,
  normalizeCode,
  normalizeExpr,
  oldSide,
  parameters,
  positionIn,
  sameBlockBefore,
  sizeofOperand,
  statementAt,
  statementStart,
  stripComments,
  tokenize,
  zeroingTwin,
  type ViewLine,
} from './c.js';

// ================================================================ knowledge base access

function kbList(kb: KnowledgeBase, name: string): string[] {
  return kb.lists?.[name] ?? [];
}

/** True when `ident` is in the kb list (plain names, or "re:<regex>" entries). */
export function inKbList(kb: KnowledgeBase, name: string, ident: string | null | undefined): boolean {
  if (!ident) return false;
  for (const entry of kbList(kb, name)) {
    if (entry.startsWith('re:')) {
      if (cachedRegex(entry.slice(3)).test(ident)) return true;
    } else if (entry === ident) return true;
  }
  return false;
}

const regexCache = new Map<string, RegExp>();
function cachedRegex(src: string): RegExp {
  let re = regexCache.get(src);
  if (!re) {
    re = new RegExp(src);
    regexCache.set(src, re);
  }
  return re;
}

/** "a=b" entries of a kb list as a map a -> b. */
function kbPairs(kb: KnowledgeBase, name: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const e of kbList(kb, name)) {
    const i = e.indexOf('=');
    if (i > 0) out.set(e.slice(0, i).trim(), e.slice(i + 1).trim());
  }
  return out;
}

function facts(kb: KnowledgeBase, fn: string | null | undefined): FunctionFacts | undefined {
  return fn ? kb.functions?.[fn] : undefined;
}

/** "field=VALUE" entries of FunctionFacts.resets as a map. */
function resetValues(f: FunctionFacts | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const r of f?.resets ?? []) {
    const i = r.indexOf('=');
    if (i > 0) out.set(r.slice(0, i), r.slice(i + 1));
  }
  return out;
}

/** States (not "field=value" entries) a function resets. */
function resetStates(f: FunctionFacts | undefined): string[] {
  return (f?.resets ?? []).filter((r) => !r.includes('='));
}

// ================================================================ diff index

interface Loc {
  file: FileDiff;
  hunk: Hunk;
  index: number;
  line: DiffLine;
  fn: string | null;
}

interface DiffIndex {
  /** Normalised texts of every removed / added line of the diff. */
  removedNorm: Set<string>;
  addedNorm: Set<string>;
  removed: string[];
  added: string[];
  /** Functions with added or removed lines. */
  changedFns: Set<string>;
  /** Every line of the diff by the function it sits in. */
  byFn: Map<string, Loc[]>;
  all: Loc[];
}

const indexCache = new WeakMap<Diff, DiffIndex>();

function indexDiff(diff: Diff): DiffIndex {
  const cached = indexCache.get(diff);
  if (cached) return cached;
  const idx: DiffIndex = {
    removedNorm: new Set(),
    addedNorm: new Set(),
    removed: [],
    added: [],
    changedFns: new Set(),
    byFn: new Map(),
    all: [],
  };
  for (const file of diff.files) {
    for (const hunk of file.hunks) {
      hunk.lines.forEach((line, index) => {
        const fn = functionOfLine(line, hunk);
        const loc: Loc = { file, hunk, index, line, fn };
        idx.all.push(loc);
        if (fn) {
          const list = idx.byFn.get(fn) ?? [];
          list.push(loc);
          idx.byFn.set(fn, list);
        }
        if (line.kind === 'ctx') return;
        const n = normalizeCode(line.text);
        if (line.kind === 'del') {
          idx.removed.push(line.text);
          if (n) idx.removedNorm.add(n);
        } else {
          idx.added.push(line.text);
          if (n) idx.addedNorm.add(n);
        }
        if (fn && isCode(line.text)) idx.changedFns.add(fn);
      });
    }
  }
  indexCache.set(diff, idx);
  return idx;
}

/**
 * True when the line is new behaviour: an added line that is not a moved or
 * re-indented copy of a removed line and not a pure rename (engine's edited /
 * renameOnly, checked again here against the whole diff).
 */
function isNewCode(lc: LineContext, idx: DiffIndex): boolean {
  if (lc.line.kind !== 'add') return false;
  // `edited` only says a similar line was removed (an edit may well change behaviour);
  // a pure rename or a moved/re-indented line does not.
  if (lc.renameOnly) return false;
  if (!isCode(lc.line.text) || isCommentLine(lc.line.text)) return false;
  const n = normalizeCode(lc.line.text);
  if (n === '' || n === '{' || n === '}' || n === '} else {' || n === 'else') return false;
  return !idx.removedNorm.has(n) && !renamedTwin(lc.line.text, idx.removed);
}

/** Same for a removed line: gone for good (not moved, not re-indented, not renamed). */
function isGoneCode(lc: LineContext, idx: DiffIndex): boolean {
  if (lc.line.kind !== 'del') return false;
  if (lc.renameOnly) return false;
  if (!isCode(lc.line.text) || isCommentLine(lc.line.text)) return false;
  const n = normalizeCode(lc.line.text);
  if (n === '') return false;
  return !idx.addedNorm.has(n) && !renamedTwin(lc.line.text, idx.added);
}

/** A line on the other side that differs only by consistently renamed identifiers. */
function renamedTwin(text: string, others: string[]): boolean {
  const a = tokenize(text);
  if (a.length === 0) return false;
  for (const o of others) {
    const b = tokenize(o);
    if (b.length !== a.length) continue;
    let ok = true;
    let diffs = 0;
    const map = new Map<string, string>();
    for (let i = 0; i < a.length && ok; i++) {
      if (a[i].text === b[i].text) continue;
      if (a[i].kind !== 'id' || b[i].kind !== 'id') ok = false;
      else {
        const prev = map.get(a[i].text);
        if (prev !== undefined && prev !== b[i].text) ok = false;
        map.set(a[i].text, b[i].text);
        diffs++;
      }
    }
    if (ok && diffs > 0 && map.size <= 2) return true;
  }
  return false;
}

// ================================================================ match building

function lineNo(line: DiffLine): number | null {
  return line.kind === 'del' ? line.oldLine : line.newLine;
}

function matchAt(file: FileDiff, hunk: Hunk, index: number, message: string, severity?: Severity, vars?: Record<string, string>): Match {
  const line = hunk.lines[index];
  const m: Match = {
    file: file.path,
    line: lineNo(line),
    side: line.kind === 'del' ? 'old' : 'new',
    function: functionOfLine(line, hunk),
    code: line.text,
    message,
  };
  if (severity) m.severity = severity;
  if (vars) m.vars = vars;
  return m;
}

function matchLc(lc: LineContext, message: string, severity?: Severity, vars?: Record<string, string>): Match {
  return matchAt(lc.file, lc.hunk, lc.index, message, severity, vars);
}

/** One match per (file, line, message) — several sub-checks may reach the same line. */
function dedupe(matches: Match[]): Match[] {
  const seen = new Set<string>();
  return matches.filter((m) => {
    const k = `${m.file}:${m.side}:${m.line}:${m.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

function fnOf(lc: LineContext): string | null {
  return functionOfLine(lc.line, lc.hunk);
}

/** The new-side view of the line's hunk and the line's position in it. */
function viewOf(lc: LineContext): { view: ViewLine[]; pos: number } {
  const view = lc.line.kind === 'del' ? oldSide(lc.hunk) : newSide(lc.hunk);
  return { view, pos: positionIn(view, lc.index) };
}

/** Enclosing block conditions, as the engine reads them (src/rules/context.ts; with a tree, from the function start). */
function blocksOf(lc: LineContext): string[] {
  return lc.blocks ?? [];
}

// ================================================================ shared C/Xen reading

const IDLE_PRED = /\bis_idle_(?:vcpu|domain|unit)\s*\(/;

/** A block condition that excludes the idle vCPU: "!is_idle_vcpu(v)", "!(is_idle_domain(d))", "x && !is_idle_vcpu(v)". */
function excludesIdle(cond: string): boolean {
  const c = cond.replace(/\s+/g, ' ').trim();
  if (/^!\s*\(\s*is_idle_\w+\s*\([^()]*\)\s*\)$/.test(c)) return true;
  for (const part of splitConjuncts(c)) {
    if (/^!\s*is_idle_\w+\s*\([^()]*\)$/.test(part.trim())) return true;
    // is_hvm_* / is_pv_* guards don't exclude idle: the idle domain counts as PV.
    if (/^is_hvm_(?:vcpu|domain)\s*\([^()]*\)$/.test(part.trim())) return true;
  }
  return false;
}

/** A block condition that selects the idle vCPU. */
function selectsIdle(cond: string): boolean {
  const c = cond.replace(/\s+/g, ' ').trim();
  return splitConjuncts(c).some((p) => /^is_idle_\w+\s*\([^()]*\)$/.test(p.trim()));
}

function splitConjuncts(cond: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (let i = 0; i < cond.length; i++) {
    const c = cond[i];
    if (c === '(') depth++;
    else if (c === ')') depth--;
    if (depth === 0 && cond.startsWith('&&', i)) {
      out.push(cur);
      cur = '';
      i++;
      continue;
    }
    cur += c;
  }
  out.push(cur);
  return out.map((s) => s.trim().replace(/^\((.*)\)$/, '$1'));
}

/** A visible "if ( is_idle_*(x) ) return ...;" before view[pos] in the same function. */
function idleEarlyReturnBefore(view: ViewLine[], pos: number): boolean {
  for (let i = pos - 1; i >= 0; i--) {
    const t = view[i].text;
    if (/^\S/.test(t) && /\)\s*$|^\{/.test(t.trim()) && indentWidth(t) === 0) break; // function start
    const c = conditionOf(t);
    if (c && c.keyword === 'if' && selectsIdle(c.cond)) {
      const next = statementAt(view, i);
      if (/\breturn\b|\bgoto\b/.test(next) || /\breturn\b|\bgoto\b/.test(view[i + 1]?.text ?? '')) return true;
    }
  }
  return false;
}

/** Effect of a statement on a boolean flag: direct literal write or a kb function that sets/clears it. */
function flagEffect(text: string, flag: string, kb: KnowledgeBase): { value: boolean; via: string } | null {
  const a = assignment(text);
  if (a && a.op === '=' && a.field === flag) {
    const b = literalBool(a.value);
    return b === null ? null : { value: b, via: `${normalizeExpr(a.target)} = ${a.value}` };
  }
  for (const name of calledNames(text)) {
    const f = facts(kb, name);
    if (f?.sets?.includes(flag)) return { value: true, via: `${name}()` };
    if (f?.clears?.includes(flag)) return { value: false, via: `${name}()` };
  }
  return null;
}

/** Words for a piece of state in a message. */
function stateWords(state: string): string {
  if (['xsave_area', 'fpu_sse', 'fpu_ctxt', 'fcw', 'ftw', 'mxcsr', 'xstate_bv', 'xcr0', 'xcr0_accum'].includes(state)) return 'FPU state';
  return `${state}`;
}

/** The commit message acknowledges a visible behaviour / interface change. */
function acknowledgesAbiChange(record: { commitMessage: string | null }): boolean {
  const m = record.commitMessage ?? '';
  return /\b(ABI|API|user[- ]visible|guest[- ]visible|toolstack[- ]visible|visible (?:to|from) (?:the )?(?:toolstack|guest|user)|behaviou?r(?:al)? change|change in behaviou?r|getvcpucontext|VGCF_i387_valid|XEN_X86_FPU_INITIALISED)\b/i.test(
    m,
  );
}

// ================================================================ xen/fpu-init-order

const FPU_IMAGE_TARGET = /\b(xsave_area|fpu_sse|fpu_ctxt)\b/;

export const fpuInitOrder: Matcher = (ctx) => {
  const { kb, diff } = ctx;
  const idx = indexDiff(diff);
  const out: Match[] = [];
  const abiReported = new Set<string>();

  for (const lc of ctx.lines) {
    const fn = fnOf(lc);
    const text = lc.line.text;

    // (A) FPU state reset on a vCPU creation path instead of where it is allocated.
    if (isNewCode(lc, idx) && inKbList(kb, 'vcpuCreatePaths', fn) && !inKbList(kb, 'fpuAllocators', fn)) {
      const resetCall = findCalls(text).find((c) => resetStates(facts(kb, c.name)).some((s) => FPU_IMAGE_TARGET.test(s)));
      const a = assignment(text);
      const writesDefault =
        a !== null && !a.declaration && kbList(kb, 'fpuDefaultFields').includes(a.field ?? '') && FPU_IMAGE_TARGET.test(a.target);
      const ms = memsetCall(text);
      const clearsImage = ms !== null && FPU_IMAGE_TARGET.test(ms.dest);
      if (resetCall || writesDefault || clearsImage) {
        const allocator = kbList(kb, 'fpuAllocators')[0] ?? 'xstate_alloc_save_area';
        const what = resetCall ? `${resetCall.name}()` : writesDefault ? `Writing ${a!.field}` : 'Clearing the save area';
        const parts: string[] = [];
        // (A.c) the reset clears a flag the context-switch path sets unconditionally.
        const callee = resetCall ? facts(kb, resetCall.name) : undefined;
        for (const flag of callee?.clears ?? []) {
          if (!kbList(kb, 'fpuStateFlags').includes(flag)) continue;
          const setter = kbList(kb, 'contextSwitchFpu').find((f) => facts(kb, f)?.sets?.includes(flag));
          if (!setter) continue;
          parts.push(
            `${resetCall!.name}() sets v->${flag} = false; doesn't that defeat the point, given ${setter}() sets it unconditionally on context switch?`,
          );
          break;
        }
        parts.push(
          parts.length > 0
            ? `The reset also belongs where the memory is allocated, in ${allocator}(), so the save area is never in the wrong state.`
            : `${what} in ${fn}() puts the FPU state right only after the fact: this belongs where the memory is allocated, in ${allocator}(), so the save area is never in the wrong state.`,
        );
        out.push(matchLc(lc, parts.join(' '), 'warning', { allocator }));
        continue;
      }
    }

    // (B) A flag write that undoes what the statement just before it did.
    if (isNewCode(lc, idx)) {
      for (const flag of kbList(kb, 'fpuStateFlags')) {
        const eff = flagEffect(text, flag, kb);
        if (!eff) continue;
        const { view, pos } = viewOf(lc);
        for (const i of sameBlockBefore(view, pos).slice(0, 6)) {
          const prev = flagEffect(statementAt(view, i), flag, kb);
          if (!prev) continue;
          if (prev.value !== eff.value && normalizeCode(view[i].text) !== normalizeCode(text)) {
            out.push(
              matchLc(
                lc,
                `${/\(\)$/.test(eff.via) ? `${eff.via} sets` : 'This sets'} v->${flag} = ${eff.value} right after ${prev.via} set it to ${prev.value}. Which one is meant?`,
                'warning',
              ),
            );
          }
          break;
        }
      }
    }

    // (C) New code relying on fpu_initialised, which the context-switch path sets unconditionally.
    if (isNewCode(lc, idx) && !inKbList(kb, 'fpuAbiFunctions', fn) && !inKbList(kb, 'contextSwitchFpu', fn)) {
      const cond = conditionOf(text)?.cond ?? (/\?/.test(text) ? text : null);
      if (cond && mentions(cond, 'fpu_initialised')) {
        const setter = kbList(kb, 'contextSwitchFpu').find((f) => facts(kb, f)?.sets?.includes('fpu_initialised'));
        if (setter) {
          out.push(
            matchLc(
              lc,
              `v->fpu_initialised is set unconditionally by ${setter}() whenever the vCPU is scheduled (eager FPU), so it says little about what the save area holds. Is it the right test here?`,
              'info',
            ),
          );
        }
      }
    }

    // (D) ABI-visible "FPU state valid" reporting changed (get/save side: what the toolstack
    // sees; refactors of the set/load side don't change what is reported).
    if (
      inKbList(kb, 'fpuAbiFunctions', fn) &&
      /(get_info|save)/.test(fn!) &&
      !abiReported.has(fn!) &&
      (isNewCode(lc, idx) || isGoneCode(lc, idx)) &&
      kbList(kb, 'fpuAbiSymbols').some((s) => mentions(text, s)) &&
      !acknowledgesAbiChange(ctx.record)
    ) {
      abiReported.add(fn!);
      const flag = /^hvm_/.test(fn!) ? 'XEN_X86_FPU_INITIALISED in the HVM CPU record' : 'VGCF_i387_valid';
      const dir = 'the toolstack';
      out.push(
        matchLc(
          lc,
          `This changes when ${fn}() reports the FPU state as valid (${flag}) to ${dir}, e.g. for a vCPU queried before it first runs: an API/ABI change. Please call it out in the commit message.`,
          'info',
        ),
      );
    }

    // (E) Default FPU values set in one writer and not the other.
    if (isNewCode(lc, idx) && inKbList(kb, 'fpuDefaultWriters', fn)) {
      const dv = defaultWrite(text, kb);
      // A change of this function's own default: not what it already wrote (kb, tree or the
      // removed lines: moving an initialiser into assignments changes nothing).
      const own = dv ? (ctx.tree?.functionBody(fn!) !== undefined ? partnerDefault(ctx, fn!, dv.field) : resetValues(facts(kb, fn)).get(dv.field)) : undefined;
      const unchanged =
        dv !== null &&
        ((own !== undefined && own !== null && normalizeExpr(own) === normalizeExpr(dv.value)) ||
          idx.removed.some((r) => {
            const old = defaultWrite(r, kb);
            return old !== null && old.field === dv.field && normalizeExpr(old.value) === normalizeExpr(dv.value);
          }));
      if (dv && !unchanged) {
        for (const partner of kbList(kb, 'fpuDefaultWriters')) {
          if (partner === fn || idx.changedFns.has(partner)) continue;
          const theirs = partnerDefault(ctx, partner, dv.field);
          if (theirs !== undefined && normalizeExpr(theirs ?? '') === normalizeExpr(dv.value)) continue;
          const tail =
            theirs === null
              ? `${partner}() doesn't set ${dv.field} at all`
              : `${partner}() uses ${theirs}`;
          out.push(
            matchLc(
              lc,
              `${fn}() now sets ${dv.field} = ${dv.value}, but ${tail}. Should the two agree, or is the difference deliberate (worth a comment)?`,
              'info',
            ),
          );
        }
      }
    }

    // (E') A default dropped from one writer while the other keeps it.
    if (isGoneCode(lc, idx) && inKbList(kb, 'fpuDefaultWriters', fn)) {
      const dv = defaultWrite(text, kb);
      const rewritten = dv !== null && idx.added.some((a) => defaultWrite(a, kb)?.field === dv.field);
      if (dv && !rewritten) {
        for (const partner of kbList(kb, 'fpuDefaultWriters')) {
          if (partner === fn || idx.changedFns.has(partner)) continue;
          const theirs = partnerDefault(ctx, partner, dv.field);
          if (!theirs) continue;
          out.push(
            matchLc(
              lc,
              `${fn}() stops setting ${dv.field}, which ${partner}() still sets (${theirs}): the FPU image is then no longer in its reset state from the start. Intended?`,
              'warning',
            ),
          );
        }
      }
    }

    // (F) Save/restore record changed on one side only.
    if (isNewCode(lc, idx)) {
      const pairs = kbPairs(kb, 'saveRestorePairs');
      const restoreOf = fn ? pairs.get(fn) : undefined;
      const saveOf = fn ? [...pairs].find(([, r]) => r === fn)?.[0] : undefined;
      const field = recordField(text, restoreOf !== undefined);
      // Only a field the function did not handle before (not a changed right-hand side).
      const known =
        field !== null &&
        (idx.removed.some((r) => r.includes(field)) ||
          (idx.byFn.get(fn!) ?? []).some((l) => l.line.kind === 'ctx' && l.line.text.includes(field)));
      if (field && !known && (restoreOf || saveOf)) {
        const partner = (restoreOf ?? saveOf)!;
        if (!partnerMentions(ctx, idx, partner, field)) {
          const msg = restoreOf
            ? `${fn}() now saves ${field}; doesn't ${partner}() need to restore it (and cope with records that lack it)?`
            : `${fn}() now consumes ${field}; does ${partner}() save it?`;
          out.push(matchLc(lc, msg, 'info'));
        }
      }
    }
  }
  return dedupe(out);
};

/** "fld = VALUE" / ".fld = VALUE," writing an FPU default field. */
function defaultWrite(text: string, kb: KnowledgeBase): { field: string; value: string } | null {
  const fields = kbList(kb, 'fpuDefaultFields');
  const a = assignment(text);
  if (a && a.op === '=' && a.field && fields.includes(a.field) && !a.declaration) return { field: a.field, value: a.value };
  const m = /^\s*\.\s*(?:fpu_sse\s*\.\s*)?(\w+)\s*=\s*([^,]+?)\s*,?\s*$/.exec(stripComments(text));
  if (m && fields.includes(m[1])) return { field: m[1], value: m[2] };
  return null;
}

/** What the partner writer sets the field to: tree first, then kb; null = known not to set it; undefined = unknown. */
function partnerDefault(ctx: MatchContext, partner: string, field: string): string | null | undefined {
  const body = ctx.tree?.functionBody(partner);
  if (body) {
    for (const l of body.split('\n')) {
      const d = defaultWrite(l, ctx.kb);
      if (d && d.field === field) return d.value;
    }
    return null;
  }
  const f = facts(ctx.kb, partner);
  if (!f) return undefined;
  const v = resetValues(f).get(field);
  return v ?? null;
}

/** A record field written (save side) or read (restore side) on the line: "ctxt.foo = ...", "c(foo = ...)". */
function recordField(text: string, saveSide: boolean): string | null {
  const src = stripComments(text);
  if (saveSide) {
    const a = assignment(src);
    if (a && !a.declaration && /^(ctxt|c\.nat|c\.cmp|hw_cpu|ctx|rec|data)\s*(\.|->)/.test(a.target.replace(/\s+/g, ''))) {
      return normalizeExpr(a.target);
    }
    const m = /^\s*c\(\s*(\w+)\s*=/.exec(src);
    if (m) return m[1];
    return null;
  }
  const m = /\b(ctxt|hw_cpu|ctx|rec|data)\s*(\.|->)\s*(\w+)/.exec(src);
  if (!m) return null;
  const a = assignment(src);
  if (a && normalizeExpr(a.target).startsWith(`${m[1]}${m[2]}`)) return null; // a write, not a read
  return `${m[1]}${m[2]}${m[3]}`;
}

/** Does the partner function mention the field (last member name) anywhere we can see? */
function partnerMentions(ctx: MatchContext, idx: DiffIndex, partner: string, field: string): boolean {
  const name = lastMember(field) ?? field;
  const body = ctx.tree?.functionBody(partner);
  if (body !== undefined) return body.includes(name);
  const locs = idx.byFn.get(partner) ?? [];
  return locs.some((l) => mentions(l.line.text, name));
}

// ================================================================ xen/idle-vcpu-path

export const idleVcpuPath: Matcher = (ctx) => {
  const { kb, diff } = ctx;
  const idx = indexDiff(diff);
  const out: Match[] = [];

  for (const lc of ctx.lines) {
    const fn = fnOf(lc);
    const text = lc.line.text;
    const fnFacts = facts(kb, fn);

    // (A) New initialisation of idle-owned state on a creation path the idle vCPU never takes.
    // (Runtime paths - INIT, set_info, restore - are for guest vCPUs only: no question there.)
    if (isNewCode(lc, idx) && inKbList(kb, 'vcpuCreatePaths', fn)) {
      const state = idleOwnedStateTouched(text, kb);
      if (state) {
        const path = nonIdlePath(lc, kb);
        if (path) {
          const alloc = kbPairs(kb, 'primaryAllocator').get(state.state);
          const allocFacts = facts(kb, alloc);
          const what = stateWords(state.state);
          const where = path === 'function' ? `${fn}()` : `${fn}()'s non-idle path`;
          const verb = state.verb;
          const msg =
            alloc && allocFacts?.idle === 'both' && alloc !== fn
              ? `The idle vCPU never runs ${where}, so its ${what} is not ${verb} here; do it when the save area is allocated, in ${alloc}()?`
              : `The idle vCPU never runs ${where}, so its ${what} is not ${verb} here. Does the idle vCPU need it too?`;
          out.push(matchLc(lc, msg, 'warning', alloc ? { allocator: alloc } : undefined));
          continue;
        }
      }
    }

    // (B1) A new "not idle" assertion in a function the idle vCPU does run.
    if (isNewCode(lc, idx) && /\b(ASSERT|BUG_ON)\s*\(/.test(text) && IDLE_PRED.test(text)) {
      const asserted = /\bASSERT\s*\(\s*!\s*is_idle_/.test(text) || /\bBUG_ON\s*\(\s*is_idle_/.test(text);
      const { view, pos } = viewOf(lc);
      if (
        asserted &&
        (fnFacts?.idle === 'both' || fnFacts?.idle === 'always') &&
        !blocksOf(lc).some(excludesIdle) &&
        !idleEarlyReturnBefore(view, pos)
      ) {
        out.push(
          matchLc(
            lc,
            `The idle vCPU does reach ${fn}(), so this assertion will fire for it. Handle the idle case instead, or what keeps it away?`,
            'warning',
          ),
        );
        continue;
      }
    }

    // (B2) An idle assertion or guard dropped from a function that stays.
    // (A commit message that talks about the idle vCPU has considered it: no question then.)
    if (
      isGoneCode(lc, idx) &&
      IDLE_PRED.test(text) &&
      !functionDeleted(lc) &&
      !idx.added.some((a) => IDLE_PRED.test(a)) &&
      !/\bidle\b/i.test(ctx.record.commitMessage ?? '')
    ) {
      const isAssert = /\b(ASSERT|BUG_ON)\s*\(/.test(text);
      const c = conditionOf(text);
      if (isAssert) {
        out.push(
          matchLc(
            lc,
            `Dropping ${normalizeCode(text).replace(/ /g, '').replace(/;$/, '')} from ${fn}(): can the idle vCPU reach it now, or is that guaranteed by every caller?`,
            'info',
          ),
        );
      } else if (c && (excludesIdle(c.cond) || selectsIdle(c.cond))) {
        out.push(
          matchLc(
            lc,
            `This drops the idle-vCPU check from ${fn}(): the code it guarded now runs for the idle vCPU too. Is its state (no MSR policy, no guest FPU context) fit for that?`,
            'info',
          ),
        );
      }
      continue;
    }

    // (C) New use of per-vCPU state that is poisoned for the idle vCPU, on a path the idle vCPU takes.
    if (isNewCode(lc, idx) && (inKbList(kb, 'idleReachable', fn) || fnFacts?.idle === 'both') && fnFacts?.idle !== 'never') {
      const poisoned = kbList(kb, 'idlePoisoned').find((p) => new RegExp(`(->|\\.)\\s*${p}\\b`).test(stripComments(text)));
      const { view, pos } = viewOf(lc);
      const start = statementStart(view, pos);
      const stmt = view.slice(start, pos + 1).map((v) => v.text).join(' ');
      const guarded = IDLE_PRED.test(stmt) || /\bis_hvm_(vcpu|domain)\s*\(/.test(stmt);
      // Every nesting level must be visible: an opener above the hunk may be the idle check.
      const levels = Math.max(0, Math.round((indentWidth(view[start].text) - 4) / 4));
      const visible = blocksOf(lc).length >= levels;
      if (poisoned && visible && !blocksOf(lc).some(excludesIdle) && !idleEarlyReturnBefore(view, pos) && !guarded) {
        out.push(
          matchLc(
            lc,
            `${fn}() also runs for the idle vCPU, whose v->arch.${poisoned} is ZERO_BLOCK_PTR: guard this with !is_idle_vcpu()?`,
            'warning',
          ),
        );
      }
    }
  }
  return dedupe(out);
};

/** Idle-owned state the line initialises: a call that resets/allocates it, or a write to it. */
function idleOwnedStateTouched(text: string, kb: KnowledgeBase): { state: string; verb: string } | null {
  const owned = kbList(kb, 'idleOwnedState');
  for (const c of findCalls(text)) {
    const f = facts(kb, c.name);
    const r = resetStates(f).find((s) => owned.includes(s));
    if (r) return { state: r, verb: 'reset' };
  }
  const a = assignment(text);
  if (a && !a.declaration) {
    const ids = identifiers(a.target);
    const hit = owned.find((s) => ids.includes(s));
    if (hit) return { state: hit, verb: 'initialised' };
  }
  const ms = memsetCall(text);
  if (ms) {
    const hit = owned.find((s) => identifiers(ms.dest).includes(s));
    if (hit) return { state: hit, verb: 'reset' };
  }
  return null;
}

/**
 * How we know the line only runs for non-idle vCPUs: 'function' (the function
 * itself never runs for idle), 'block' (inside a !is_idle_* block or the else of
 * an is_idle_* test), 'anchor' (after a call only non-idle vCPUs make, in the
 * same block); null when we can't tell.
 */
function nonIdlePath(lc: LineContext, kb: KnowledgeBase): 'function' | 'block' | 'anchor' | null {
  const fn = fnOf(lc);
  if (facts(kb, fn)?.idle === 'never') return 'function';
  if (blocksOf(lc).some(excludesIdle)) return 'block';
  if (facts(kb, fn)?.idle !== 'both') return null; // only reason about functions known to serve both
  const { view, pos } = viewOf(lc);
  for (const i of sameBlockBefore(view, pos)) {
    const stmt = statementAt(view, i);
    const c = conditionOf(view[i].text);
    const calls = c ? calledNames(c.cond) : calledNames(stmt);
    if (calls.some((n) => facts(kb, n)?.idle === 'never')) return 'anchor';
  }
  return null;
}

/** The removed line sits in a function the patch deletes whole (its signature is removed too). */
function functionDeleted(lc: LineContext): boolean {
  const lines = lc.hunk.lines;
  for (let i = lc.index - 1; i >= 0; i--) {
    const l = lines[i];
    if (l.kind !== 'del') {
      if (isCode(l.text) && indentWidth(l.text) > 0) return false;
      if (isCode(l.text) && indentWidth(l.text) === 0) return false;
      continue;
    }
    if (indentWidth(l.text) === 0 && /^[A-Za-z_].*\(/.test(l.text) && !/;\s*$/.test(l.text)) return true;
  }
  return false;
}

// ================================================================ xen/alloc-time-init

export const allocTimeInit: Matcher = (ctx) => {
  const { kb, diff } = ctx;
  const idx = indexDiff(diff);
  const out: Match[] = [];

  for (const lc of ctx.lines) {
    const text = lc.line.text;
    const newCode = isNewCode(lc, idx);
    const { view, pos } = viewOf(lc);

    // (C) A reset called right after the allocation, at the call site.
    if (newCode) {
      for (const call of findCalls(text)) {
        const resets = resetStates(facts(kb, call.name));
        if (resets.length === 0) continue;
        const before = precedingStatements(view, pos, 4);
        let found: string | null = null;
        let state: string | null = null;
        for (const i of before) {
          const c = conditionOf(view[i].text);
          const names = c ? calledNames(c.cond) : calledNames(statementAt(view, i));
          for (const n of names) {
            const alloc = facts(kb, n)?.allocates ?? [];
            const s = resets.find((r) => alloc.includes(r));
            if (s && n !== call.name) {
              found = n;
              state = s;
              break;
            }
          }
          if (found) break;
        }
        if (found && state) {
          const primary = kbPairs(kb, 'primaryAllocator').get(state) ?? found;
          const where = primary === found ? `in ${found}() itself` : `in ${primary}()`;
          out.push(
            matchLc(
              lc,
              `Resetting right after ${found}() allocated the area: the allocator should leave the memory in its reset state: do this ${where}.`,
              'warning',
              { allocator: primary },
            ),
          );
        }
      }
    }

    // (A) allocate-then-zero, (B) memset of sizeof(pointer).
    const ms = memsetCall(text);
    if (ms && lc.line.kind === 'add' && newCode) {
      const dest = normalizeExpr(ms.dest);
      const zero = normalizeExpr(ms.value) === '0';
      // (B) sizeof of the pointer rather than of the object
      const so = sizeofOperand(ms.size);
      const soBare = so === null ? null : so.replace(/\s+/g, '').replace(/^\((.*)\)$/, '$1');
      if (soBare !== null && !soBare.startsWith('*') && !ms.dest.trim().startsWith('&') && soBare === dest && isPointer(dest, lc, view, pos)) {
        out.push(
          matchLc(
            lc,
            `sizeof(${so}) is the size of the pointer, not of what it points to: sizeof(*${so})?`,
            'error',
          ),
        );
      } else if (zero) {
        // (A) allocation of the same object just above
        for (const i of sameBlockBefore(view, pos).slice(0, 4)) {
          const al = allocation(statementAt(view, i));
          if (!al || !al.target || al.zeroed || normalizeExpr(al.target) !== dest) continue;
          const twin = zeroingTwin(al.allocator);
          if (twin && coversAllocation(al, ms.size, dest)) {
            out.push(
              matchLc(lc, `${al.allocator}() then memset() to zero is ${twin}(): use that and drop the memset().`, 'info', {
                allocator: twin,
              }),
            );
          }
          break;
        }
      }
    }

    // (D) Zeroing removed from a buffer that is copied to the guest.
    if (lc.line.kind === 'del' && isGoneCode(lc, idx)) {
      const dropped = droppedZeroing(text, lc, idx);
      if (dropped && !zeroingReplaced(dropped, idx)) {
        const copy = copiedOutBy(ctx, lc, dropped, kb);
        if (copy) {
          out.push(
            matchLc(
              lc,
              `This drops the zeroing of ${dropped}, which ${copy}() copies to the guest: any field or padding not written now leaks hypervisor memory.`,
              'warning',
            ),
          );
        }
      }
    }
  }
  return dedupe(out);
};

/** The memset() size is the whole allocation (so the zeroing allocator is a drop-in). */
function coversAllocation(al: NonNullable<ReturnType<typeof allocation>>, size: string, dest: string): boolean {
  const sz = size.replace(/\s+/g, '');
  const whole = [`sizeof(*${dest})`, `sizeof*${dest}`];
  const [a0, a1] = al.call.args.map((a) => a.replace(/\s+/g, ''));
  if (/^_?xv?malloc$/.test(al.allocator)) return whole.includes(sz) || sz === `sizeof(${a0})`;
  if (/_array$/.test(al.allocator)) {
    const elem = [...whole.map((w) => w.replace(`*${dest}`, `*${dest}`)), `sizeof(${a0})`, `sizeof(${dest}[0])`, `sizeof(*${dest})`];
    return a1 !== undefined && sz.includes(a1) && elem.some((e) => sz.includes(e));
  }
  if (/bytes$|^_x/.test(al.allocator)) return a0 !== undefined && sz === a0;
  return false;
}

/**
 * Up to `n` statements that run just before view[pos], nearest first: earlier statements of
 * its block, then (when the block is the body of an if/else, e.g. "if ( !rc ) reset();") the
 * opener and the statements before it.
 */
function precedingStatements(view: ViewLine[], pos: number, n: number): number[] {
  const out: number[] = [];
  let at = pos;
  for (let hops = 0; hops < 3 && out.length < n; hops++) {
    out.push(...sameBlockBefore(view, at).slice(0, n - out.length));
    // find the opener of at's block
    const indent = indentWidth(view[at].text);
    let opener = -1;
    for (let i = at - 1; i >= 0; i--) {
      const t = view[i].text;
      if (!isCode(t) || stripComments(t).trim() === '{') continue;
      if (indentWidth(t) < indent) {
        opener = i;
        break;
      }
    }
    if (opener < 0 || !conditionOf(view[opener].text) || out.includes(opener)) break;
    out.push(opener);
    at = opener;
  }
  return out.slice(0, n);
}

/** Is `name` a pointer, as far as the visible code says (declaration, parameter, or assigned from an allocator)? */
function isPointer(name: string, lc: LineContext, view: ViewLine[], pos: number): boolean {
  if (!/^[A-Za-z_]\w*$/.test(name)) {
    // a member: "v->arch.foo" is a pointer if it was just assigned from an allocator
    for (let i = pos - 1; i >= 0 && i >= pos - 8; i--) {
      const al = allocation(view[i].text);
      if (al?.target && normalizeExpr(al.target) === name) return al.allocator !== 'alloc_xenheap_pages';
    }
    return false;
  }
  for (let i = pos - 1; i >= 0; i--) {
    for (const d of declarations(view[i].text)) if (d.name === name) return d.pointer && !d.array;
    const al = allocation(view[i].text);
    if (al?.target && normalizeExpr(al.target) === name) return true;
  }
  const sig = /@@[^@]*@@\s*(.*)$/.exec(lc.hunk.header)?.[1] ?? '';
  const fn = functionOfLine(lc.line, lc.hunk);
  if (fn && sig.includes(`${fn}(`)) {
    for (const p of parameters(sig)) if (p.name === name) return p.pointer && !p.array;
  }
  return false;
}

/** What a removed line zeroed: "memset(&x, 0, ...)" -> "x", "struct foo x = {};" -> "x", "p = xzalloc(...)" -> "p". */
function droppedZeroing(text: string, lc: LineContext, idx: DiffIndex): string | null {
  const ms = memsetCall(text);
  if (ms && normalizeExpr(ms.value) === '0') return normalizeExpr(ms.dest);
  for (const d of declarations(text)) {
    if (d.init && /^\{\s*\}$|^\{\s*0\s*\}$/.test(d.init.trim()) && !d.pointer) {
      // re-declared without the initialiser?
      const again = idx.added.some((a) => declarations(a).some((x) => x.name === d.name && !x.init));
      if (again) return d.name;
    }
  }
  const al = allocation(text);
  if (al && al.zeroed && al.target) {
    const target = normalizeExpr(al.target);
    const again = idx.added.some((a) => {
      const x = allocation(a);
      return x !== null && !x.zeroed && x.target !== null && normalizeExpr(x.target) === target;
    });
    if (again) return target;
  }
  void lc;
  return null;
}

/** The patch zeroes `name` some other way: "= {}", memset(), an xzalloc()-family allocator. */
function zeroingReplaced(name: string, idx: DiffIndex): boolean {
  return idx.added.some((a) => {
    if (declarations(a).some((d) => d.name === name && d.init !== null)) return true;
    const ms = memsetCall(a);
    if (ms && normalizeExpr(ms.dest) === name && normalizeExpr(ms.value) === '0') return true;
    const al = allocation(a);
    return al !== null && al.zeroed && al.target !== null && normalizeExpr(al.target) === name;
  });
}

/** The copy-to-guest call that takes `name` as its source, if visible (or in the tree's function body). */
function copiedOutBy(ctx: MatchContext, lc: LineContext, name: string, kb: KnowledgeBase): string | null {
  const fn = functionOfLine(lc.line, lc.hunk);
  const texts: string[] = [];
  for (const l of lc.hunk.lines) if (l.kind !== 'del') texts.push(l.text);
  const body = fn ? ctx.tree?.functionBody(fn) : undefined;
  if (body) texts.push(...body.split('\n'));
  for (const t of texts) {
    for (const c of findCalls(t)) {
      if (!inKbList(kb, 'guestCopyOut', c.name)) continue;
      const src = copySource(c.name, c.args);
      if (src && normalizeExpr(src) === name) return c.name;
    }
  }
  return null;
}

/** The source argument of a copy-to-guest call. */
function copySource(name: string, args: string[]): string | null {
  if (/_offset$/.test(name)) return args[2] ?? null;
  return args[1] ?? null;
}

// ================================================================ xen/create-error-unwind

const UNWIND_LABEL = /^(fail\d*|err\d*|error\d*|undo\d*|unwind|cleanup|free|destroy|bad|out_\w+|fail_\w+|err_\w+|undo_\w+|\w+_fail|\w+_err|\w+_free)$/i;

export const createErrorUnwind: Matcher = (ctx) => {
  const { kb, diff } = ctx;
  const idx = indexDiff(diff);
  const out: Match[] = [];

  for (const lc of ctx.lines) {
    if (!isNewCode(lc, idx)) continue;
    const fn = fnOf(lc);
    const text = lc.line.text;
    if (!inKbList(kb, 'createPaths', fn)) continue;
    const { view, pos } = viewOf(lc);

    // (A) A direct error return after the function has started unwinding through a label.
    const ret = /^\s*return\s+(.+?)\s*;/.exec(stripComments(text));
    if (ret && isErrorValue(ret[1])) {
      const label = gotoBefore(view, pos);
      if (label && UNWIND_LABEL.test(label) && inErrorBranch(view, pos)) {
        out.push(
          matchLc(
            lc,
            `Earlier failures in ${fn}() goto ${label} to undo what was already set up; returning directly here skips that and leaks it. goto ${label}?`,
            'warning',
          ),
        );
        continue;
      }
    }

    // (B) A new allocation kept in a structure, with nothing in the patch freeing it.
    const al = allocation(text);
    if (al && al.target && /->|\./.test(al.target)) {
      const field = lastMember(al.target);
      if (field && !freedInDiff(idx, field, kb) && !allocatedBefore(idx, field)) {
        out.push(
          matchLc(
            lc,
            `${normalizeExpr(al.target)} is allocated in ${fn}(), but nothing in this patch frees it: the error path and the matching destroy function need to free it too.`,
            'warning',
          ),
        );
      }
    }
  }
  return dedupe(out);
};

function isErrorValue(expr: string): boolean {
  const e = normalizeExpr(expr);
  if (e === '0' || e === 'NULL' || e === 'true' || e === 'false' || e === 'v' || e === 'd') return false;
  return /^-E[A-Z0-9]+$/.test(e) || /^(rc|ret|err|error|rv|retval)$/.test(e) || /^ERR_PTR\(/.test(e);
}

/** The label of the nearest "goto label;" above view[pos] in the same function (visible lines). */
function gotoBefore(view: ViewLine[], pos: number): string | null {
  for (let i = pos - 1; i >= 0; i--) {
    const t = stripComments(view[i].text);
    if (labelOf(t)) return null; // we are past a label: in the unwinding itself
    if (indentWidth(view[i].text) === 0 && /^[A-Za-z_{}]/.test(t.trim())) return null;
    const m = /\bgoto\s+(\w+)\s*;/.exec(t);
    if (m) return m[1];
  }
  return null;
}

/** The return sits in an "if ( ... )" error branch (braceless or braced). */
function inErrorBranch(view: ViewLine[], pos: number): boolean {
  const indent = indentWidth(view[pos].text);
  for (let i = pos - 1; i >= 0 && i >= pos - 6; i--) {
    const t = view[i].text;
    if (!isCode(t)) continue;
    const w = indentWidth(t);
    if (w < indent) return conditionOf(t) !== null || /^\s*\{\s*$/.test(t) && i > 0 && conditionOf(view[i - 1].text) !== null;
  }
  return false;
}

function freedInDiff(idx: DiffIndex, field: string, kb: KnowledgeBase): boolean {
  const frees = new Set(kbList(kb, 'freeFunctions'));
  for (const l of idx.all) {
    if (l.line.kind === 'del') continue;
    for (const c of findCalls(l.line.text)) {
      if ((frees.has(c.name) || /free|destroy|release|put/i.test(c.name)) && c.args.some((a) => identifiers(a).includes(field))) return true;
    }
  }
  return false;
}

/** The field was allocated by a line the patch removes (a move, not a new allocation). */
function allocatedBefore(idx: DiffIndex, field: string): boolean {
  return idx.removed.some((r) => {
    const al = allocation(r);
    return al?.target !== null && al?.target !== undefined && lastMember(al.target) === field;
  });
}

// ================================================================ xen/bug-on-guest-state

const INTERNAL_INVARIANT = /\b(is_dying|spin_is_locked|rw_is_locked|rw_is_write_locked|local_irq_is_enabled|in_irq|in_atomic|paging_locked_by_me|p2m_locked_by_me|system_state|smp_processor_id|cpu_online|sizeof|offsetof|current)\b/;

export const bugOnGuestState: Matcher = (ctx) => {
  const { kb, diff } = ctx;
  const idx = indexDiff(diff);
  const out: Match[] = [];

  for (const lc of ctx.lines) {
    if (!isNewCode(lc, idx)) continue;
    const fn = fnOf(lc);
    const text = stripComments(lc.line.text);
    const header = /@@[^@]*@@\s*(.*)$/.exec(lc.hunk.header)?.[1] ?? '';
    if (/\b__init\b/.test(header) && header.includes(`${fn}(`)) continue;
    const guestFn = inKbList(kb, 'guestReachable', fn);
    const guestFile = kbList(kb, 'guestReachableFiles').some((e) => e.startsWith('re:') && cachedRegex(e.slice(3)).test(lc.file.path));
    if (!guestFn && !guestFile) continue;
    const { view, pos } = viewOf(lc);

    const bug = /\b(BUG_ON|BUG)\s*\(/.exec(text);
    if (bug && !/\bBUILD_BUG_ON\b/.test(text) && !isPreprocessor(text)) {
      const call = callTo(text, bug[1]);
      const cond = call?.args[0] ?? '';
      const bare = cond.replace(/"(?:[^"\\]|\\.)*"/g, '');
      // Stubs (BUG_ON("unimplemented")), constants and Xen-internal invariants are not guest state.
      if (bug[1] === 'BUG_ON' && (cond === '' || INTERNAL_INVARIANT.test(cond) || !/[A-Za-z_]/.test(bare))) continue;
      out.push(
        matchLc(
          lc,
          `${fn}() runs on behalf of a guest: ${bug[1]}() here turns a guest-reachable condition into a host crash. If it really can't happen, ASSERT_UNREACHABLE() plus domain_crash() and an error return keeps the host up.`,
          'warning',
        ),
      );
      continue;
    }

    if (/\bASSERT_UNREACHABLE\s*\(\s*\)/.test(text)) {
      // What runs next in a release build: the next few statements, wherever they are.
      const next: string[] = [];
      let fnEnd = false;
      for (let i = pos + 1; i < view.length && next.length < 3; i++) {
        const t = stripComments(view[i].text).trim();
        if (!isCode(view[i].text) || t === '{') continue;
        if (t === '}' || t === '};') {
          if (indentWidth(view[i].text) === 0) {
            fnEnd = true;
            break;
          }
          continue;
        }
        next.push(t);
      }
      if (!fnEnd && next.length === 0) continue; // can't see what follows
      // The statement that runs right after (log messages aside) must get out or crash the guest.
      const first = next.find((t) => !/^(g?d?printk|gprintk|printk_once|dprintk)\s*\(/.test(t));
      const handled =
        (fnEnd && first === undefined) ||
        (first !== undefined &&
          /^(return|goto|break|continue)\b|\b(domain_crash|BUG|panic)\s*\(|^(rc|ret|err|rv)\s*=\s*(-E|X86EMUL_)|^(else|case|default)\b/.test(first));
      if (!handled) {
        out.push(
          matchLc(
            lc,
            `ASSERT_UNREACHABLE() compiles to nothing in release builds: what happens next if a guest does get here? domain_crash() and/or an error return?`,
            'info',
          ),
        );
      }
    }
  }
  return dedupe(out);
};

// ================================================================ xen/uninit-copy-to-guest

export const uninitCopyToGuest: Matcher = (ctx) => {
  const { kb, diff } = ctx;
  const idx = indexDiff(diff);
  const out: Match[] = [];

  for (const lc of ctx.lines) {
    if (lc.line.kind !== 'add') continue;
    const text = lc.line.text;
    const { view, pos } = viewOf(lc);

    // A declaration that lost (or never had) its initialiser, copied out further down.
    for (const d of declarations(text)) {
      if (d.init !== null || d.pointer || !/^(struct|union)\b/.test(d.type) && !d.array) continue;
      if (lc.renameOnly) continue;
      for (let i = pos + 1; i < view.length; i++) {
        if (indentWidth(view[i].text) === 0 && /^\S/.test(view[i].text)) break;
        const copy = findCalls(view[i].text).find((c) => inKbList(kb, 'guestCopyOut', c.name) && normalizeExpr(copySource(c.name, c.args) ?? '') === d.name);
        if (!copy) continue;
        if (view[i].line.kind !== 'add' && !initialisedBetween(view, pos, i, d.name, kb)) {
          out.push(
            matchLc(
              lc,
              `${d.name} is copied to the guest by ${copy.name}() below but is declared without an initialiser: any field or padding not written leaks Xen stack contents. Declare it \`${d.type} ${d.name}${d.array ? '[...]' : ''} = {};\`?`,
              'warning',
            ),
          );
        }
        break;
      }
    }

    for (const call of findCalls(text)) {
      if (!inKbList(kb, 'guestCopyOut', call.name)) continue;
      const src = copySource(call.name, call.args);
      if (!src) continue;
      const name = normalizeExpr(src);
      if (!/^[A-Za-z_]\w*$/.test(name)) continue; // members and expressions: can't tell
      const decl = findDeclaration(view, pos, name);
      if (!decl || decl.decl.init !== null || decl.decl.pointer) continue;
      // Either the copy or the declaration must be new.
      const declNew = view[decl.pos].line.kind === 'add' && !idx.removedNorm.has(normalizeCode(view[decl.pos].text));
      if (!declNew && !isNewCode(lc, idx)) continue;
      if (initialisedBetween(view, decl.pos, pos, name, kb)) continue;
      out.push(
        matchLc(
          lc,
          `${name} is copied to the guest by ${call.name}() but was declared without an initialiser: any field or padding not written leaks Xen stack contents. Declare it \`${decl.decl.type} ${name}${decl.decl.array ? '[...]' : ''} = {};\`?`,
          'warning',
        ),
      );
    }
  }
  return dedupe(out);
};

function findDeclaration(view: ViewLine[], pos: number, name: string): { pos: number; decl: ReturnType<typeof declarations>[number] } | null {
  for (let i = pos - 1; i >= 0; i--) {
    for (const d of declarations(view[i].text)) if (d.name === name) return { pos: i, decl: d };
    if (indentWidth(view[i].text) === 0 && /^[A-Za-z_]/.test(view[i].text) && /\(/.test(view[i].text)) return null;
  }
  return null;
}

/** Something between the declaration and the copy fills the whole object. */
function initialisedBetween(view: ViewLine[], from: number, to: number, name: string, kb: KnowledgeBase): boolean {
  for (let i = from + 1; i < to; i++) {
    const t = stripComments(view[i].text);
    const a = assignment(t);
    if (a && normalizeExpr(a.target) === name) return true; // whole-object assignment
    for (const c of findCalls(t)) {
      if (c.name === 'memset' || c.name === 'memcpy' || inKbList(kb, 'guestCopyIn', c.name)) {
        if (c.args[0] !== undefined && normalizeExpr(c.args[0]) === name) return true;
      }
      // passed by address (or, for an array, at all) to anything else: assume it fills it
      if (c.args.some((x) => x.replace(/\s+/g, '') === `&${name}` || x.replace(/\s+/g, '') === name)) return true;
    }
    // element-wise fill ("buf[i] = ..." in a loop) of an array
    if (a && new RegExp(`^${name}\\s*\\[`).test(a.target) && /\bfor\b|\bwhile\b/.test(view.slice(from, i).map((v) => v.text).join(' '))) return true;
  }
  return false;
}

// ================================================================ xen/hypercall-preemption

const COUNT_FIELD = /^(nr|nr_\w+|count|\w+_count|num|num_\w+|n_\w+|\w+_nr|nr\w*_entries|entries)$/;

export const hypercallPreemption: Matcher = (ctx) => {
  const { kb, diff } = ctx;
  const idx = indexDiff(diff);
  const out: Match[] = [];

  const preempt = new Set(kbList(kb, 'preemptChecks'));
  const addsPreempt = idx.added.some((a) => calledNames(a).some((n) => preempt.has(n)));
  for (const lc of ctx.lines) {
    // A preemption check dropped from a loop (and none added anywhere in the patch).
    if (lc.line.kind === 'del' && isGoneCode(lc, idx) && !addsPreempt && calledNames(lc.line.text).some((n) => preempt.has(n))) {
      const fn = fnOf(lc);
      const { view, pos } = viewOf(lc);
      const inLoop = blocksOf(lc).some((b) => /^(for|while)\b|for_each/.test(b)) || enclosingLoop(view, pos);
      if (inLoop && inKbList(kb, 'guestReachable', fn)) {
        out.push(
          matchLc(
            lc,
            `This drops the preemption check from a loop in ${fn}(): what bounds the time spent in it now? Without hypercall_preempt_check() a guest can keep this CPU in Xen.`,
            'warning',
          ),
        );
      }
      continue;
    }
    if (!isNewCode(lc, idx)) continue;
    const fn = fnOf(lc);
    if (!inKbList(kb, 'guestReachable', fn)) continue;
    const c = conditionOf(lc.line.text);
    if (!c || (c.keyword !== 'for' && c.keyword !== 'while')) continue;
    const clause = c.keyword === 'for' ? splitFor(lc.line.text)[1] : c.cond;
    if (!clause) continue;
    const bound = guestCount(clause);
    if (!bound) continue;
    const { view, pos } = viewOf(lc);
    if (!fromGuest(view, pos, baseVar(bound) ?? '')) continue;
    const body = loopBody(view, pos);
    if (!body.complete) continue;
    if (body.lines.some((t) => calledNames(t).some((n) => preempt.has(n)))) continue;
    if (boundedBefore(view, pos, bound)) continue;
    if (body.lines.length <= 1 && !body.lines.some((t) => findCalls(t).length > 0)) continue; // trivially cheap loop
    out.push(
      matchLc(
        lc,
        `This loops over ${bound}, which comes from the guest: without hypercall_preempt_check() (and a continuation) a guest can keep this CPU in Xen for as long as it likes. Is there an upper bound I'm missing?`,
        'warning',
      ),
    );
  }
  return dedupe(out);
};

function splitFor(text: string): string[] {
  const src = stripComments(text);
  const open = src.indexOf('(');
  if (open < 0) return [];
  let depth = 0;
  const parts: string[] = [];
  let cur = '';
  for (let i = open + 1; i < src.length; i++) {
    const ch = src[i];
    if (ch === '(') depth++;
    if (ch === ')') {
      if (depth === 0) break;
      depth--;
    }
    if (ch === ';' && depth === 0) {
      parts.push(cur.trim());
      cur = '';
      continue;
    }
    cur += ch;
  }
  parts.push(cur.trim());
  return parts;
}

/** A guest-provided count in a loop condition: "i < op.nr_frames", "i < arg->count". */
function guestCount(cond: string): string | null {
  const re = /\b([A-Za-z_]\w*(?:\s*(?:\.|->)\s*[A-Za-z_]\w*)+)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(cond))) {
    const expr = m[1].replace(/\s+/g, '');
    const field = lastMember(expr) ?? '';
    const base = baseVar(expr) ?? '';
    if (COUNT_FIELD.test(field) && !/^(d|v|curr|current|p2m|cpu|info|s|this)$/.test(base)) return expr;
  }
  return null;
}

/** A less-indented for/while header above view[pos] (the loop the line sits in), as far as the hunk shows. */
function enclosingLoop(view: ViewLine[], pos: number): boolean {
  let indent = indentWidth(view[pos].text);
  for (let i = pos - 1; i >= 0 && indent > 4; i--) {
    const t = view[i].text;
    if (!isCode(t)) continue;
    const w = indentWidth(t);
    if (w >= indent || stripComments(t).trim() === '{') continue;
    indent = w;
    const c = conditionOf(t);
    if (c && (c.keyword === 'for' || c.keyword === 'while')) return true;
    if (/^\s*\w*for_each\w*\s*\(/.test(t) || /^\s*do\s*$/.test(stripComments(t))) return true;
  }
  return false;
}

/** Names hypercall handlers give the argument structure they copied in from the guest. */
const GUEST_ARG_NAMES = /^(op|arg|args|a|domctl|sysctl|u|xrsp|exch|xatp|xatpb|reservation|xmml|xmr|info|req|cmd|map|unmap|setup|query|batch|nat|cmp)$/;

/** `base` holds guest data: copied in where we can see it, or named as hypercall handlers name it. */
function fromGuest(view: ViewLine[], pos: number, base: string): boolean {
  if (GUEST_ARG_NAMES.test(base)) return true;
  for (let i = pos - 1; i >= 0; i--) {
    for (const c of findCalls(view[i].text)) {
      if (/copy_from_guest|copy_from_user/.test(c.name) && c.args[0] !== undefined && normalizeExpr(c.args[0]) === base) return true;
    }
  }
  return false;
}

/** The loop body's lines (new side), and whether its end is visible. */
function loopBody(view: ViewLine[], pos: number): { lines: string[]; complete: boolean } {
  const indent = indentWidth(view[pos].text);
  const lines: string[] = [];
  let braced = /\{\s*$/.test(stripComments(view[pos].text));
  for (let i = pos + 1; i < view.length; i++) {
    const t = view[i].text;
    if (!isCode(t)) continue;
    const w = indentWidth(t);
    const s = stripComments(t).trim();
    if (!braced && w === indent && s === '{') {
      braced = true;
      continue;
    }
    if (w <= indent) return { lines, complete: true };
    lines.push(t);
    if (!braced && /;\s*$/.test(s) && lines.length === 1 && !conditionOf(t)) return { lines, complete: true };
  }
  return { lines, complete: false };
}

/** A visible check bounding the count before the loop: "if ( op.nr > MAX ) return -E...", "min(...)". */
function boundedBefore(view: ViewLine[], pos: number, bound: string): boolean {
  const field = lastMember(bound) ?? bound;
  for (let i = pos - 1; i >= 0; i--) {
    const t = stripComments(view[i].text);
    if (indentWidth(view[i].text) === 0 && /^[A-Za-z_]/.test(t) && /\(/.test(t)) break;
    if (!t.includes(field)) continue;
    // any comparison of the count (against a limit, or against a Xen-owned size), or a clamp
    if (/[<>!=]=|[<>]|\bmin\s*\(|\bmin_t\s*\(|ARRAY_SIZE|array_access_nospec|array_index_nospec/.test(t.replace(/->/g, ''))) return true;
  }
  return false;
}

// ================================================================ xen/style

export const xenStyle: Matcher = (ctx) => {
  const out: Match[] = [];
  const idx = indexDiff(ctx.diff);
  const perFile = new Map<string, number>();
  const styleOf = new Map<FileDiff, { xen: boolean; tabs: boolean }>();

  for (const lc of ctx.lines) {
    if (lc.line.kind !== 'add') continue;
    if (!/\.[ch]$/.test(lc.file.path)) continue;
    let style = styleOf.get(lc.file);
    if (!style) {
      style = fileStyle(lc.file);
      styleOf.set(lc.file, style);
    }
    if (!style.xen) continue;
    const text = lc.line.text;
    if (isPreprocessor(text) || /\\\s*$/.test(text) || isCommentLine(text) || lc.edited || lc.renameOnly) continue;
    if (idx.removedNorm.has(normalizeCode(text)) && /^\s*\t/.test(text) === false) continue;
    const count = perFile.get(lc.file.path) ?? 0;
    if (count >= 2) continue;
    let msg: string | null = null;
    if (/^ *\t/.test(text) && !style.tabs) {
      msg = 'Xen style indents with spaces (4 per level), not hard tabs.';
    } else {
      const src = stripComments(text);
      const m = /\b(if|while|for|switch)\s*\((.*)$/.exec(src);
      if (m && !/^\s*;\s*;\s*\)/.test(m[2])) {
        const kwNoSpace = new RegExp(`\\b${m[1]}\\(`).test(src);
        const innerOpen = /^\S/.test(m[2]);
        if (innerOpen || kwNoSpace) msg = `Xen style puts spaces inside the parentheses of ${m[1]}: "${m[1]} ( cond )".`;
      }
    }
    if (msg) {
      perFile.set(lc.file.path, count + 1);
      out.push(matchLc(lc, msg, 'info'));
    }
  }
  return out;
};

/** Judge a file's style from its visible context lines: Xen style (if ( x ), spaces) or Linux style. */
function fileStyle(file: FileDiff): { xen: boolean; tabs: boolean } {
  let xenIf = 0;
  let linuxIf = 0;
  let tabs = 0;
  let spaces = 0;
  for (const h of file.hunks) {
    for (const l of h.lines) {
      if (l.kind !== 'ctx') continue;
      const t = stripComments(l.text);
      if (/^\t/.test(l.text)) tabs++;
      else if (/^ {4}/.test(l.text)) spaces++;
      if (/\b(if|while|for|switch) \( /.test(t)) xenIf++;
      else if (/\b(if|while|for|switch) ?\(\S/.test(t)) linuxIf++;
    }
  }
  return { xen: xenIf > 0 && linuxIf === 0 && tabs === 0 && spaces > 0, tabs: tabs > 0 };
}

// ================================================================ registry

/** Matchers of the Xen pack, by the name rules use in `matcher:`. */
export const xenMatchers: Record<string, Matcher> = {
  'xen.fpuInitOrder': fpuInitOrder,
  'xen.idleVcpuPath': idleVcpuPath,
  'xen.allocTimeInit': allocTimeInit,
  'xen.createErrorUnwind': createErrorUnwind,
  'xen.bugOnGuestState': bugOnGuestState,
  'xen.uninitCopyToGuest': uninitCopyToGuest,
  'xen.hypercallPreemption': hypercallPreemption,
  'xen.style': xenStyle,
};

// Exported for unit tests of the pieces that carry the most judgement.
export const _internal = { excludesIdle, selectsIdle, renamedTwin, recordField, defaultWrite, guestCount, isErrorValue };
