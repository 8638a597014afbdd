// Rule examples as tests (ESLint's RuleTester valid/invalid, semgrep's ruleid:/ok:): every
// `examples.flag` patch must give at least one finding of its rule (matching `expect` when
// given), every `examples.ok` patch none. Used by `patchvet rules test [DIR]` and by jest.
//
//   runExamples(rules, kb, makeRecord, opts?) -> ExampleResult[]
//     makeRecord(mailText) -> MessageRecord (src/mail/record.ts recordFromText in the CLI).
//     Examples that are just a diff are wrapped into a minimal patch mail first (exampleToMail).
//   formatExampleResults(results) -> text, ending with "N passed, M failed".
import type { Finding, MessageRecord } from '../model.js';
import type { KnowledgeBase, Matcher, RuleExample, RuleSpec } from './types.js';
import { compileRule, listsAllow, pathInScope, runRules } from './engine.js';
import { lineContext } from './context.js';

export type MakeRecord = (text: string) => Promise<MessageRecord>;

export interface ExampleResult {
  rule: string;
  /** The rule's YAML file, when loaded from one. */
  source?: string;
  kind: 'flag' | 'ok';
  name: string;
  passed: boolean;
  /** Why it failed, one sentence each; empty when passed. */
  problems: string[];
  /** Findings of this rule on the example. */
  findings: Finding[];
}

export interface ExampleOptions {
  matchers?: Record<string, Matcher>;
}

const MAIL_START = /^(?:From \S|(?:From|Subject|Date|To|Cc|Message-I[dD]|In-Reply-To|References|MIME-Version|Content-Type|Return-Path|Received):)/;

/**
 * An example as a mail: a whole mail is kept; a bare diff (or "commit message\n---\ndiff") gets
 * minimal headers, a commit message and a Signed-off-by, so only what the example shows can trip a rule.
 */
export function exampleToMail(text: string, id = 'example'): string {
  const body = text.replace(/^\s*\n/, '');
  if (MAIL_START.test(body)) return body;
  const headers =
    'From: Example Author <author@example.org>\n' +
    'Subject: [PATCH] example: change\n' +
    `Message-ID: <${id.replace(/[^A-Za-z0-9.-]+/g, '-')}@patchvet.invalid>\n` +
    'Date: Tue, 24 Mar 2026 18:19:29 +0000\n\n';
  if (/^(?:diff --git |--- |Index: )/.test(body)) {
    return `${headers}Example change.\n\nSigned-off-by: Example Author <author@example.org>\n---\n${body}`;
  }
  return headers + body;
}

function describeFinding(f: Finding): string {
  const where = f.file ? `${f.file}:${f.line ?? '?'}` : '(mail)';
  return `${where} ${f.severity}: ${f.message}${f.notes?.length ? ` [+${f.notes.length} note(s)]` : ''}`;
}

/** Why a rule found nothing on a record: the first gate that stopped it. */
export function explainSilence(rule: RuleSpec, record: MessageRecord, kb: KnowledgeBase): string {
  if (record.kind !== 'patch') return `the example reads as a ${record.kind} mail, not a patch: give a unified diff or a whole patch mail`;
  if (!listsAllow(rule, record)) return `the mail names other lists than scope.lists (${(rule.scope.lists ?? []).join(', ')})`;
  const files = (record.diff?.files ?? []).filter((f) => pathInScope(rule, f.path));
  if (rule.scope.paths?.length && !files.length) {
    return `no file of the diff (${record.files.join(', ') || 'none'}) is inside scope.paths (${rule.scope.paths.join(', ')})`;
  }
  const c = compileRule(rule);
  if (c.added.length || c.removed.length) {
    const triggered = files.flatMap((f) =>
      f.hunks.flatMap((h) =>
        h.lines
          .map((l, i) => ({ l, i }))
          .filter(({ l }) => (l.kind === 'add' ? c.added : l.kind === 'del' ? c.removed : []).some((r) => r.test(l.text)))
          .map(({ i }) => lineContext(f, h, i)),
      ),
    );
    if (!triggered.length) return 'no added/removed line matches the trigger regexes';
    if (rule.condition) {
      const blocks = triggered.map((lc) => `line "${lc.line.text.trim()}" in ${lc.line.fn ?? '?'} blocks [${lc.blocks.join(' | ')}]`);
      return `${triggered.length} line(s) matched the trigger; the condition or the matcher turned them down (${blocks.slice(0, 3).join('; ')})`;
    }
  }
  void kb;
  return rule.matcher ? `the matcher ${rule.matcher} returned nothing` : 'nothing matched';
}

const PLACEHOLDER = /\{([A-Za-z_]\w*)\}/;

async function runOne(
  rule: RuleSpec,
  kind: 'flag' | 'ok',
  ex: RuleExample,
  index: number,
  kb: KnowledgeBase,
  makeRecord: MakeRecord,
  opts: ExampleOptions,
): Promise<ExampleResult> {
  const base = { rule: rule.id, source: rule.source, kind, name: ex.name };
  let record: MessageRecord;
  try {
    record = await makeRecord(exampleToMail(ex.patch, `${rule.id}-${kind}-${index}`));
  } catch (e) {
    return { ...base, passed: false, problems: [`could not read the example as a mail: ${(e as Error).message}`], findings: [] };
  }
  let findings: Finding[];
  const errors: string[] = [];
  try {
    findings = runRules(record, [rule], {
      kb,
      matchers: opts.matchers,
      onError: (_r, e) => errors.push(`the rule threw: ${(e as Error).message}`),
    }).filter((f) => f.rule === rule.id);
  } catch (e) {
    return { ...base, passed: false, problems: [`the rule threw: ${(e as Error).message}`], findings: [] };
  }
  const problems = [...errors];
  if (kind === 'ok') {
    if (findings.length) problems.push(`expected no finding, got ${findings.length}: ${findings.map(describeFinding).join(' | ')}`);
  } else if (!findings.length) {
    problems.push(`expected a finding, got none: ${explainSilence(rule, record, kb)}`);
  } else {
    for (const f of findings) {
      const ph = PLACEHOLDER.exec(f.message);
      if (ph) problems.push(`the message still has {${ph[1]}}: the matcher gives no value for it ("${f.message}")`);
    }
    (ex.expect ?? []).forEach((x, k) => {
      const hit = findings.some(
        (f) =>
          (x.file === undefined || f.file === x.file) &&
          (x.line === undefined || f.line === x.line) &&
          (x.severity === undefined || f.severity === x.severity) &&
          (x.message === undefined || [f.message, ...(f.notes ?? [])].some((m) => new RegExp(x.message!).test(m))),
      );
      if (!hit) {
        const want = Object.entries(x)
          .map(([key, v]) => `${key}=${JSON.stringify(v)}`)
          .join(' ');
        problems.push(`expect[${k}] (${want}) not met; got: ${findings.map(describeFinding).join(' | ')}`);
      }
    });
  }
  return { ...base, passed: problems.length === 0, problems, findings };
}

export async function runExamples(
  rules: RuleSpec[],
  kb: KnowledgeBase,
  makeRecord: MakeRecord,
  opts: ExampleOptions = {},
): Promise<ExampleResult[]> {
  const out: ExampleResult[] = [];
  for (const rule of rules) {
    for (const kind of ['flag', 'ok'] as const) {
      const list = rule.examples?.[kind] ?? [];
      for (let i = 0; i < list.length; i++) out.push(await runOne(rule, kind, list[i]!, i, kb, makeRecord, opts));
    }
  }
  return out;
}

/** RuleTester-like report: rules, one line per example (✓/✗, flag/ok, name), reasons under failures, then the count. */
export function formatExampleResults(results: ExampleResult[]): string {
  const lines: string[] = [];
  let current: string | null = null;
  for (const r of results) {
    if (r.rule !== current) {
      current = r.rule;
      if (lines.length) lines.push('');
      lines.push(r.source ? `${r.rule} (${r.source})` : r.rule);
    }
    lines.push(`  ${r.passed ? '✓' : '✗'} ${r.kind}: ${r.name}`);
    for (const p of r.problems) lines.push(`      ${p}`);
  }
  const passed = results.filter((r) => r.passed).length;
  if (lines.length) lines.push('');
  lines.push(`${passed} passed, ${results.length - passed} failed`);
  return lines.join('\n') + '\n';
}
