// The rule engine: MessageRecord + rules -> Findings. Pure (no I/O); rules come from load.ts.
//
// API (stable; other packs and the review stage rely on it):
//
//   runRules(record, rules, opts): Finding[]
//     opts.kb        KnowledgeBase (merged, from loadPacks) for "kb:<list>" references
//     opts.tree      optional TreeView handed to matchers
//     opts.lists     list identifiers the mail is known to have come through (e.g. the list a
//                    serve source is configured for); they count like its List-Id headers
//     opts.matchers  matcher registry (default MATCHERS from ./matchers/index.js)
//     opts.onError   called when a matcher throws; without it the error propagates
//                    (wrapped with the rule id)
//
//   Only records of kind 'patch' are looked at. Per rule:
//   1. scope.lists: kept when the mail's List-Id/To/Cc/opts.lists match one entry (substring,
//      case-insensitive; "xen-devel@lists.xenproject.org" also matches the List-Id form
//      "xen-devel.lists.xenproject.org"); skipped when the mail names other lists only; kept
//      when it names no list at all.
//   2. scope.paths / scope.excludePaths (globs, see glob.ts) select files.
//   3. trigger.added / trigger.removed regexes select added / removed lines (either may match).
//   4. condition (inFunction, notInFunction with "kb:<list>", insideBlock, notInsideBlock on
//      LineContext.blocks) filters them. With opts.tree, blocks also see the pre-image from the
//      start of the function down to the hunk (context.ts).
//   5. The matcher named by `matcher` gets MatchContext.lines = the passing lines and returns
//      Matches; without a matcher each passing line is a Match on itself.
//      A rule with a matcher and no trigger runs once per patch even when nothing passed (and
//      even without a diff, unless it has scope.paths): that is how commit-message rules work;
//      its MatchContext.lines (every changed line in scope) is computed only when read.
//      Such matchers return Matches with `file: ''` for the mail itself (subject, commit
//      message, trailers): the Finding then has file/line/side null.
//   6. Matches become Findings: message template {function} {file} {line} {symbol} and
//      Match.vars substituted (unknown placeholders are left as written), severity from the
//      Match or the rule, one Finding per (rule, file, function): the lowest line wins, the
//      other matches' distinct messages go to `notes`. Fingerprint: see fingerprint.ts.
//   Findings are sorted by file (mail-level first), line, rule.
//
//   For matchers (context.ts): lineContext(file, hunk, index, tree?) -> LineContext,
//   matchAt(lineContext, overrides) -> Match, functionName(DiffLine.fn) -> bare name.
//   Also exported here: listsAllow, pathInScope, renderMessage, mergeFindings, compareFindings,
//   compileRule, EMPTY_KB.
//
//   triggeredRules(record, rules, opts?): TriggeredRule[]
//     the rules whose list/path scope and trigger regexes (or scope.symbols) a patch meets,
//     conditions and matchers aside, with the lines that triggered them: the LLM pass shows
//     the model these rules' guides. Does not change what runRules does.
import type { Diff, Finding, MessageRecord, Severity } from '../model.js';
import type { KnowledgeBase, LineContext, Match, MatchContext, Matcher, RuleSpec, TreeView } from './types.js';
import { functionName, lineContext, matchAt } from './context.js';
import { fingerprint, normaliseCode } from './fingerprint.js';
import { matchAnyGlob } from './glob.js';
import { MATCHERS } from './matchers/index.js';

export interface RunOptions {
  kb: KnowledgeBase;
  tree?: TreeView;
  lists?: string[];
  matchers?: Record<string, Matcher>;
  onError?: (rule: RuleSpec, error: unknown) => void;
}

export const EMPTY_KB: KnowledgeBase = { lists: {}, functions: {} };

// ---------------------------------------------------------------- compiled rule parts

interface Compiled {
  added: RegExp[];
  removed: RegExp[];
  insideBlock: RegExp | null;
  notInsideBlock: RegExp | null;
}

const compiledRules = new WeakMap<RuleSpec, Compiled>();

function regex(rule: RuleSpec, field: string, source: string): RegExp {
  try {
    return new RegExp(source);
  } catch (e) {
    throw new Error(`rule ${rule.id}: ${field}: invalid regular expression: ${(e as Error).message}`);
  }
}

export function compileRule(rule: RuleSpec): Compiled {
  let c = compiledRules.get(rule);
  if (c) return c;
  c = {
    added: (rule.trigger?.added ?? []).map((s, k) => regex(rule, `trigger.added[${k}]`, s)),
    removed: (rule.trigger?.removed ?? []).map((s, k) => regex(rule, `trigger.removed[${k}]`, s)),
    insideBlock: rule.condition?.insideBlock ? regex(rule, 'condition.insideBlock', rule.condition.insideBlock) : null,
    notInsideBlock: rule.condition?.notInsideBlock ? regex(rule, 'condition.notInsideBlock', rule.condition.notInsideBlock) : null,
  };
  compiledRules.set(rule, c);
  return c;
}

// ---------------------------------------------------------------- scope

/** "Name <xen-devel.lists.xenproject.org>" -> "xen-devel.lists.xenproject.org"; lower case. */
function listKey(s: string): string {
  const m = /<([^>]*)>/.exec(s);
  return (m ? m[1]! : s).trim().toLowerCase();
}

/** Both spellings of a list: the address and its List-Id form (the '@' made a '.'). */
function listForms(s: string): string[] {
  const k = listKey(s);
  return k.includes('@') ? [k, k.replace('@', '.')] : [k];
}

/** A To/Cc address that is (most likely) a mailing list rather than a person. */
function looksLikeList(address: string): boolean {
  const a = address.toLowerCase();
  return /@(lists?\.|vger\.kernel\.org$|googlegroups\.com$)/.test(a) || /@.*\blists?\b/.test(a);
}

/** True when the rule's `lists` scope lets this mail through. */
export function listsAllow(rule: RuleSpec, record: MessageRecord, extraLists: readonly string[] = []): boolean {
  const wanted = rule.scope.lists;
  if (!wanted || !wanted.length) return true;
  const recipients = [...record.to, ...record.cc].map((a) => a.address).filter(Boolean);
  const mailIds = [...record.listIds, ...extraLists].flatMap(listForms);
  const all = [...mailIds, ...recipients.flatMap(listForms)];
  const wantedForms = wanted.flatMap(listForms);
  if (wantedForms.some((w) => all.some((m) => m.includes(w)))) return true;
  const namesAList = mailIds.length > 0 || recipients.some(looksLikeList);
  return !namesAList;
}

export function pathInScope(rule: RuleSpec, path: string): boolean {
  const { paths, excludePaths } = rule.scope;
  if (paths && paths.length && !matchAnyGlob(path, paths)) return false;
  return !matchAnyGlob(path, excludePaths);
}

// ---------------------------------------------------------------- conditions

function expandNames(names: readonly string[], kb: KnowledgeBase): Set<string> {
  const out = new Set<string>();
  for (const n of names) {
    if (n.startsWith('kb:')) for (const x of kb.lists[n.slice(3)] ?? []) out.add(x);
    else out.add(n);
  }
  return out;
}

function conditionHolds(rule: RuleSpec, c: Compiled, lc: LineContext, kb: KnowledgeBase): boolean {
  const cond = rule.condition;
  if (!cond) return true;
  const fn = functionName(lc.line.fn);
  if (cond.inFunction && (!fn || !expandNames(cond.inFunction, kb).has(fn))) return false;
  if (cond.notInFunction && fn && expandNames(cond.notInFunction, kb).has(fn)) return false;
  if (c.insideBlock && !lc.blocks.some((b) => c.insideBlock!.test(b))) return false;
  if (c.notInsideBlock && lc.blocks.some((b) => c.notInsideBlock!.test(b))) return false;
  return true;
}

// ---------------------------------------------------------------- matches -> findings

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function symbolFor(rule: RuleSpec, m: Match): string | undefined {
  const syms = rule.scope.symbols ?? [];
  const code = m.code ?? '';
  return syms.find((s) => new RegExp(`\\b${escapeRe(s)}\\b`).test(code)) ?? syms[0];
}

/** Fill {placeholders}: Match.vars first, then function/file/line/symbol. Unknown ones stay as written. */
export function renderMessage(template: string, rule: RuleSpec, m: Match): string {
  return template.replace(/\{(\w+)\}/g, (whole, name: string) => {
    const v = m.vars?.[name];
    if (v !== undefined) return v;
    switch (name) {
      case 'function':
        return m.function ?? 'this code';
      case 'file':
        return m.file || 'the patch';
      case 'line':
        return m.line === null ? '?' : String(m.line);
      case 'symbol':
        return symbolFor(rule, m) ?? whole;
      default:
        return whole;
    }
  });
}

function seriesOf(record: MessageRecord): Finding['series'] {
  const s = record.parsedSubject?.series;
  return s ? { version: s.version, index: s.index, total: s.total } : null;
}

function toFinding(rule: RuleSpec, m: Match, record: MessageRecord): Finding {
  const file = m.file ? m.file : null;
  return {
    rule: rule.id,
    severity: (m.severity ?? rule.severity) as Severity,
    title: rule.title,
    message: renderMessage(m.message ?? rule.message, rule, m),
    messageId: record.messageId,
    subject: record.subject,
    series: seriesOf(record),
    file,
    line: file ? m.line : null,
    side: file ? m.side : null,
    function: m.function,
    code: m.code,
    fingerprint: fingerprint(rule.id, file, m.function, m.key ?? normaliseCode(m.code)),
    source: 'rule',
  };
}

/** One Finding per (rule, file, function): the lowest line is kept, other messages become notes. */
export function mergeFindings(findings: Finding[]): Finding[] {
  const groups = new Map<string, Finding[]>();
  for (const f of findings) {
    const k = `${f.messageId}\u0000${f.rule}\u0000${f.file ?? ''}\u0000${f.function ?? ''}`;
    const g = groups.get(k);
    if (g) g.push(f);
    else groups.set(k, [f]);
  }
  const out: Finding[] = [];
  for (const g of groups.values()) {
    g.sort((a, b) => (a.line ?? -1) - (b.line ?? -1));
    const first = { ...g[0]! };
    const notes: string[] = [...(first.notes ?? [])];
    for (const f of g.slice(1)) {
      for (const msg of [f.message, ...(f.notes ?? [])]) {
        if (msg !== first.message && !notes.includes(msg)) notes.push(msg);
      }
    }
    if (notes.length) first.notes = notes;
    out.push(first);
  }
  return out;
}

export function compareFindings(a: Finding, b: Finding): number {
  const fa = a.file ?? '';
  const fb = b.file ?? '';
  if (fa !== fb) return fa < fb ? -1 : 1;
  return (a.line ?? -1) - (b.line ?? -1) || (a.rule < b.rule ? -1 : a.rule > b.rule ? 1 : 0);
}

// ---------------------------------------------------------------- run

const EMPTY_DIFF: Diff = { files: [], damage: [] };

function runOne(rule: RuleSpec, record: MessageRecord, opts: RunOptions, registry: Record<string, Matcher>): Match[] {
  if (!listsAllow(rule, record, opts.lists)) return [];
  const c = compileRule(rule);
  const hasTrigger = c.added.length > 0 || c.removed.length > 0;
  const diff = record.diff ?? EMPTY_DIFF;
  const files = diff.files.filter((f) => pathInScope(rule, f.path));
  const hasPaths = !!rule.scope.paths?.length;
  if (hasTrigger && !files.length) return [];
  if (!hasTrigger && hasPaths && !files.length) return [];

  const collect = (): LineContext[] => {
    const out: LineContext[] = [];
    for (const file of files) {
      for (const hunk of file.hunks) {
        hunk.lines.forEach((line, index) => {
          if (line.kind === 'ctx') return;
          if (hasTrigger) {
            const res = line.kind === 'add' ? c.added : c.removed;
            if (!res.some((r) => r.test(line.text))) return;
          }
          const lc = lineContext(file, hunk, index, opts.tree);
          if (conditionHolds(rule, c, lc, opts.kb)) out.push(lc);
        });
      }
    }
    return out;
  };

  if (!rule.matcher) return collect().map((lc) => matchAt(lc));
  const matcher = registry[rule.matcher];
  if (!matcher) throw new Error(`rule ${rule.id}: unknown matcher "${rule.matcher}"`);
  // Triggered rules need their lines up front (no line, no call). For the others (commit
  // message checks, mostly) the lines are computed only if the matcher reads them.
  let lines: LineContext[] | undefined = hasTrigger ? collect() : undefined;
  if (lines && !lines.length) return [];
  const ctx = {
    rule,
    record,
    diff,
    kb: opts.kb,
    tree: opts.tree,
    get lines(): LineContext[] {
      return (lines ??= collect());
    },
    contextOf: (f, h, i) => lineContext(f, h, i, opts.tree),
  } satisfies MatchContext;
  return matcher(ctx);
}

export function runRules(record: MessageRecord, rules: RuleSpec[], opts: RunOptions = { kb: EMPTY_KB }): Finding[] {
  if (record.kind !== 'patch') return [];
  const registry = opts.matchers ?? MATCHERS;
  const findings: Finding[] = [];
  for (const rule of rules) {
    let matches: Match[];
    try {
      matches = runOne(rule, record, opts, registry);
    } catch (e) {
      if (!opts.onError) {
        const err = new Error(`rule ${rule.id} failed on ${record.messageId}: ${(e as Error).message}`);
        (err as Error & { cause?: unknown }).cause = e;
        throw err;
      }
      opts.onError(rule, e);
      continue;
    }
    for (const m of matches) findings.push(toFinding(rule, m, record));
  }
  return mergeFindings(findings).sort(compareFindings);
}

// ---------------------------------------------------------------- triggered rules (LLM pass)

/** A rule whose scope and trigger (or symbols) a patch meets, and where: its guide is worth showing the LLM pass. */
export interface TriggeredRule {
  rule: RuleSpec;
  /** 'trigger': a trigger regex matched a changed line; 'symbol': a changed line names one of
   *  scope.symbols; 'scope': the rule has paths but no trigger, and the patch touches them. */
  reason: 'trigger' | 'symbol' | 'scope';
  /** Changed lines that triggered it, patch order, at most `maxPlaces`. */
  at: Array<{ file: string; line: number | null; side: 'new' | 'old' }>;
}

/**
 * The rules a patch triggers, regardless of their conditions and matchers (those decide
 * findings; this decides which invariants are worth checking at all). Same list and path
 * scope as runRules. Rules with neither a trigger nor paths (commit-message checks) are
 * left out: they look at the mail, not the code, and never trigger "on" a line.
 * Pure; rule order kept.
 */
export function triggeredRules(
  record: MessageRecord,
  rules: readonly RuleSpec[],
  opts: { lists?: string[]; maxPlaces?: number } = {},
): TriggeredRule[] {
  if (record.kind !== 'patch' || !record.diff) return [];
  const maxPlaces = opts.maxPlaces ?? 5;
  const out: TriggeredRule[] = [];
  for (const rule of rules) {
    if (!listsAllow(rule, record, opts.lists)) continue;
    const files = record.diff.files.filter((f) => pathInScope(rule, f.path));
    if (!files.length) continue;
    const c = compileRule(rule);
    const hasTrigger = c.added.length > 0 || c.removed.length > 0;
    const symbols = (rule.scope.symbols ?? []).map((s) => new RegExp(`\\b${escapeRe(s)}\\b`));
    const byTrigger: TriggeredRule['at'] = [];
    const bySymbol: TriggeredRule['at'] = [];
    for (const file of files) {
      for (const hunk of file.hunks) {
        for (const line of hunk.lines) {
          if (line.kind === 'ctx') continue;
          const place = { file: file.path, line: line.kind === 'add' ? line.newLine : line.oldLine, side: (line.kind === 'add' ? 'new' : 'old') as 'new' | 'old' };
          const res = line.kind === 'add' ? c.added : c.removed;
          if (res.some((r) => r.test(line.text))) {
            if (byTrigger.length < maxPlaces) byTrigger.push(place);
          } else if (bySymbol.length < maxPlaces && symbols.some((r) => r.test(line.text))) {
            bySymbol.push(place);
          }
        }
      }
    }
    if (byTrigger.length) out.push({ rule, reason: 'trigger', at: byTrigger });
    else if (bySymbol.length) out.push({ rule, reason: 'symbol', at: bySymbol });
    else if (!hasTrigger && rule.scope.paths?.length) out.push({ rule, reason: 'scope', at: [] });
  }
  return out;
}
