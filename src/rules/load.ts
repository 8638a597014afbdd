// Rule loader: rules/<pack>/<name>.yml (one rule per file) and rules/<pack>/kb.yml.
// Reads and validates everything it is given and reports every problem at once (file, field,
// what to do) instead of stopping at the first; a broken file is left out, the rest load.
//
//   loadPacks(dirs = [defaultRulesDir()], opts?) -> { rules, kb, packs, errors }
//     dirs: each is a rules root (its subdirectories are packs) or a single pack directory
//     (it holds *.yml itself). A pack met twice (e.g. the shipped rules/xen and a user's
//     --rules dir/xen) is one pack: rules add up, kb lists merge.
//   kb: every pack's kb.yml merged (lists: union; functions: fields merged); packs[name].kb
//   keeps each pack's own.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, relative, resolve, isAbsolute } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseDocument } from 'yaml';
import type { Matcher, KnowledgeBase, FunctionFacts, RuleSpec } from './types.js';
import { didYouMean, validateKbData, validateRuleData } from './schema.js';
import { MATCHERS } from './matchers/index.js';

export interface LoadError {
  /** The file (or directory) at fault, relative to the working directory when inside it. */
  file: string;
  /** Dotted path of the field ("trigger.added[0]"), null for the whole file. */
  field: string | null;
  /** "<field>: <what is wrong>: <what to do>" (without the file: print `${file}: ${message}`). */
  message: string;
}

export interface Pack {
  name: string;
  dirs: string[];
  rules: RuleSpec[];
  kb: KnowledgeBase;
}

export interface LoadResult {
  rules: RuleSpec[];
  kb: KnowledgeBase;
  packs: Record<string, Pack>;
  errors: LoadError[];
}

export interface LoadOptions {
  /** Matcher registry to check `matcher:` names against (default MATCHERS). */
  matchers?: Record<string, Matcher>;
}

/** The repo's rules/ directory: two levels above this module, both as src/rules/load.ts and dist/rules/load.js. */
export function defaultRulesDir(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'rules');
}

function shown(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : path;
}

function err(file: string, field: string | null, problem: string): LoadError {
  const f = shown(file);
  return { file: f, field, message: `${field ? `${field}: ` : ''}${problem}` };
}

export function formatLoadErrors(errors: LoadError[]): string {
  return errors.map((e) => `${e.file}: ${e.message}`).join('\n');
}

const isYaml = (n: string): boolean => /\.ya?ml$/.test(n);
const isKb = (n: string): boolean => /^kb\.ya?ml$/.test(n);

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** Pack directories under `dir`: the dir itself when it holds YAML files, else its subdirectories that do. */
export function packDirs(dir: string): string[] {
  const entries = readdirSync(dir, { withFileTypes: true });
  if (entries.some((e) => e.isFile() && isYaml(e.name))) return [dir];
  return entries
    .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
    .map((e) => join(dir, e.name))
    .filter((d) => readdirSync(d).some(isYaml))
    .sort();
}

function parseYaml(file: string, text: string, errors: LoadError[]): unknown {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length) {
    for (const e of doc.errors) {
      const pos = e.linePos?.[0];
      const what = e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
      errors.push(err(file, null, `YAML error${pos ? ` at line ${pos.line}, column ${pos.col}` : ''}: ${what} (check the indentation and quoting there)`));
    }
    return undefined;
  }
  return doc.toJS();
}

function compiles(source: string): string | null {
  try {
    new RegExp(source);
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

/**
 * Check a parsed rule: the schema, then id against pack and file name, regexes, matcher name,
 * examples. The checks that make sense on a half-valid file (id, regexes, matcher) run even when
 * the schema fails, so one run reports every problem. Returns the rule (defaults filled in) or
 * null, and the problems.
 */
export function checkRule(
  data: unknown,
  file: string,
  pack: string,
  matchers: Record<string, Matcher> = MATCHERS,
): { rule: RuleSpec | null; errors: LoadError[] } {
  const errors: LoadError[] = validateRuleData(data).map((p) => err(file, p.field, p.problem));
  if (data === null || typeof data !== 'object' || Array.isArray(data)) return { rule: null, errors };
  const schemaOk = errors.length === 0;
  // Read defensively: the schema may have failed.
  const d = data as Record<string, unknown>;
  const obj = (v: unknown): Record<string, unknown> => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {});
  const strings = (v: unknown): [number, string][] =>
    Array.isArray(v) ? v.map((x, k): [number, unknown] => [k, x]).filter((e): e is [number, string] => typeof e[1] === 'string') : [];
  const name = basename(file).replace(/\.ya?ml$/, '');
  const id = typeof d.id === 'string' ? d.id : null;
  if (id !== null && /^[a-z0-9-]+\/[a-z0-9-]+$/.test(id)) {
    if (!id.startsWith(`${pack}/`)) {
      errors.push(err(file, 'id', `"${id}" must start with the pack name "${pack}/" (the file is in the ${pack} pack): write "${pack}/${name}"`));
    } else if (id.slice(pack.length + 1) !== name) {
      errors.push(err(file, 'id', `"${id}" does not match the file name ${basename(file)}: one rule per file, named after the rule (rename the file to ${id.slice(pack.length + 1)}.yml or fix the id)`));
    }
  }
  const trigger = obj(d.trigger);
  const condition = obj(d.condition);
  const regexFields: [string, unknown][] = [
    ...strings(trigger.added).map(([k, v]): [string, string] => [`trigger.added[${k}]`, v]),
    ...strings(trigger.removed).map(([k, v]): [string, string] => [`trigger.removed[${k}]`, v]),
    ['condition.insideBlock', condition.insideBlock],
    ['condition.notInsideBlock', condition.notInsideBlock],
  ];
  for (const [field, source] of regexFields) {
    if (typeof source !== 'string') continue;
    const bad = compiles(source);
    if (bad) {
      errors.push(err(file, field, `invalid regular expression ${JSON.stringify(source)}: ${bad}: fix the pattern (JavaScript RegExp syntax; in YAML prefer single quotes so backslashes stay as written)`));
    }
  }
  if (typeof d.matcher === 'string' && !matchers[d.matcher]) {
    const known = Object.keys(matchers).filter((k) => k.startsWith(`${pack}.`));
    const guess = didYouMean(d.matcher, Object.keys(matchers));
    errors.push(err(file, 'matcher', `no matcher "${d.matcher}" is registered${guess ? `: did you mean "${guess}"?` : ''} (${known.length ? `the ${pack} pack has ${known.join(', ')}` : `the ${pack} pack has none yet`}); a new one goes in src/rules/matchers/${pack}.ts and its table in src/rules/matchers/index.ts`));
  }
  if (!schemaOk) return { rule: null, errors };

  const rule = data as RuleSpec;
  rule.scope ??= {};
  const hasTrigger = !!(rule.trigger?.added?.length || rule.trigger?.removed?.length);
  if (!hasTrigger && !rule.matcher && !rule.condition) {
    errors.push(err(file, 'trigger', 'the rule has no trigger, condition or matcher, so it would flag every changed line: add trigger.added/removed regexes or a matcher'));
  }
  const names = new Set<string>();
  for (const kind of ['flag', 'ok'] as const) {
    rule.examples[kind].forEach((ex, k) => {
      if (names.has(ex.name)) errors.push(err(file, `examples.${kind}[${k}].name`, `"${ex.name}" is used twice: give each example its own name`));
      names.add(ex.name);
      if (kind === 'ok' && ex.expect) errors.push(err(file, `examples.ok[${k}].expect`, 'an ok example expects no finding: remove expect (or move the example to flag)'));
      (ex.expect ?? []).forEach((x, j) => {
        const bad = x.message !== undefined ? compiles(x.message) : null;
        if (bad) errors.push(err(file, `examples.${kind}[${k}].expect[${j}].message`, `invalid regular expression: ${bad}: fix the pattern`));
      });
    });
  }
  return { rule: errors.length ? null : { ...rule, source: shown(file) }, errors };
}

export function checkKb(data: unknown, file: string): { kb: KnowledgeBase | null; errors: LoadError[] } {
  const errors = validateKbData(data).map((p) => err(file, p.field, p.problem));
  if (errors.length) return { kb: null, errors };
  const d = data as Partial<KnowledgeBase>;
  return { kb: { lists: d.lists ?? {}, functions: d.functions ?? {} }, errors };
}

const union = (a: string[] | undefined, b: string[] | undefined): string[] | undefined =>
  a || b ? [...new Set([...(a ?? []), ...(b ?? [])])] : undefined;

/** Merge knowledge bases: lists are unions, per-function facts merge field by field (later notes win). */
export function mergeKb(...kbs: KnowledgeBase[]): KnowledgeBase {
  const out: KnowledgeBase = { lists: {}, functions: {} };
  for (const kb of kbs) {
    for (const [k, v] of Object.entries(kb.lists)) out.lists[k] = union(out.lists[k], v)!;
    for (const [k, v] of Object.entries(kb.functions)) {
      const prev: FunctionFacts = out.functions[k] ?? {};
      const merged: FunctionFacts = { ...prev, ...v };
      for (const f of ['sets', 'clears', 'allocates', 'resets'] as const) {
        const u = union(prev[f], v[f]);
        if (u) merged[f] = u;
      }
      out.functions[k] = merged;
    }
  }
  return out;
}

export function loadPacks(dirs: string[] = [defaultRulesDir()], opts: LoadOptions = {}): LoadResult {
  const matchers = opts.matchers ?? MATCHERS;
  const errors: LoadError[] = [];
  const packs: Record<string, Pack> = {};
  const byId = new Map<string, string>();
  const kbFiles = new Map<string, string>();

  for (const root of dirs) {
    const dir = resolve(root);
    if (!isDir(dir)) {
      errors.push(err(dir, null, 'not a directory: give a rules directory (holding <pack>/ folders) or a pack directory (holding *.yml)'));
      continue;
    }
    const found = packDirs(dir);
    if (!found.length) errors.push(err(dir, null, 'no rule files here: expected <pack>/<name>.yml or <name>.yml'));
    for (const pdir of found) {
      const name = basename(pdir);
      const pack = (packs[name] ??= { name, dirs: [], rules: [], kb: { lists: {}, functions: {} } });
      pack.dirs.push(pdir);
      for (const f of readdirSync(pdir).filter(isYaml).sort()) {
        const file = join(pdir, f);
        const data = parseYaml(file, readFileSync(file, 'utf8'), errors);
        if (data === undefined) continue;
        if (isKb(f)) {
          const r = checkKb(data, file);
          errors.push(...r.errors);
          if (r.kb) {
            pack.kb = mergeKb(pack.kb, r.kb);
            kbFiles.set(name, file);
          }
          continue;
        }
        const r = checkRule(data, file, name, matchers);
        errors.push(...r.errors);
        if (!r.rule) continue;
        const other = byId.get(r.rule.id);
        if (other) {
          errors.push(err(file, 'id', `"${r.rule.id}" is already used by ${shown(other)}: ids are never reused, pick a new one`));
          continue;
        }
        byId.set(r.rule.id, file);
        pack.rules.push(r.rule);
      }
    }
  }

  const kb = mergeKb(...Object.values(packs).map((p) => p.kb));
  // "kb:<list>" references must name a list some pack defines.
  for (const pack of Object.values(packs)) {
    pack.rules = pack.rules.filter((rule) => {
      let ok = true;
      for (const field of ['inFunction', 'notInFunction'] as const) {
        (rule.condition?.[field] ?? []).forEach((n, k) => {
          if (!n.startsWith('kb:') || kb.lists[n.slice(3)]) return;
          ok = false;
          const have = Object.keys(kb.lists);
          const where = kbFiles.get(pack.name) ? shown(kbFiles.get(pack.name)!) : `rules/${pack.name}/kb.yml`;
          errors.push(err(rule.source ?? pack.name, `condition.${field}[${k}]`, `no knowledge-base list "${n.slice(3)}": define it under lists: in ${where}${have.length ? ` (lists defined: ${have.join(', ')})` : ''}`));
        });
      }
      return ok;
    });
  }
  const rules = Object.values(packs)
    .sort((a, b) => (a.name < b.name ? -1 : 1))
    .flatMap((p) => p.rules);
  return { rules, kb, packs, errors };
}
