// sinks for `patchvet review`: one Finding type, four renderings.
//   text  - compiler style, grouped per patch, with the code line
//   json  - patchvet/review@1 (CONTRACT.md)
//   sarif - SARIF 2.1.0 for code-scanning UIs
//   email - the list reply(ies) patchvet would send (see email.ts)
import type { Finding, InputError, Severity } from '../model.js';
import type { RuleSpec } from '../rules/types.js';

export const REVIEW_SCHEMA = 'patchvet/review@1';
export const VERSION = '0.1.0';

export interface ReviewStats {
  messages: number;
  threads: number;
  series: number;
  patches: number;
  findings?: number;
  [k: string]: number | undefined;
}

export interface ReviewResult {
  findings: Finding[];
  errors: InputError[];
  stats: ReviewStats;
  /** Rules that ran, for SARIF's rule table. */
  rules: RuleSpec[];
  /** Notes about the run itself (e.g. an LLM pass that failed). */
  notices?: string[];
}

export function findingJson(f: Finding): Record<string, unknown> {
  return {
    rule: f.rule,
    severity: f.severity,
    title: f.title,
    message: f.message,
    messageId: f.messageId,
    subject: f.subject,
    series: f.series,
    file: f.file,
    line: f.line,
    side: f.side,
    function: f.function,
    code: f.code,
    fingerprint: f.fingerprint,
    source: f.source,
    ...(f.notes?.length ? { notes: f.notes } : {}),
  };
}

export function reviewJson(r: ReviewResult): string {
  return (
    JSON.stringify(
      {
        schema: REVIEW_SCHEMA,
        findings: r.findings.map(findingJson),
        errors: r.errors,
        stats: { ...r.stats, findings: r.findings.length },
        ...(r.notices?.length ? { notices: r.notices } : {}),
      },
      null,
      2,
    ) + '\n'
  );
}

export function reviewText(r: ReviewResult): string {
  const out: string[] = [];
  const byMsg = new Map<string, Finding[]>();
  for (const f of r.findings) byMsg.set(f.messageId, [...(byMsg.get(f.messageId) ?? []), f]);
  for (const [id, fs] of byMsg) {
    out.push(`${fs[0].subject}`);
    out.push(`  ${id}`);
    for (const f of fs) {
      const where = f.file ? `${f.file}${f.line !== null ? `:${f.line}` : ''}` : '(patch)';
      out.push(`${where}: ${f.severity}: [${f.rule}] ${f.message}`);
      for (const n of f.notes ?? []) out.push(`    also: ${n}`);
      if (f.code !== null && f.line !== null) {
        out.push(`  ${String(f.line).padStart(5)} | ${f.side === 'old' ? '-' : '+'}${f.code}`);
        if (f.function) out.push(`        | in ${f.function}()`);
      }
    }
    out.push('');
  }
  const count = (s: Severity) => r.findings.filter((f) => f.severity === s).length;
  out.push(
    `${r.findings.length} finding${r.findings.length === 1 ? '' : 's'} ` +
      `(${count('error')} error, ${count('warning')} warning, ${count('info')} info) ` +
      `in ${r.stats.patches} patch${r.stats.patches === 1 ? '' : 'es'} of ${r.stats.messages} messages` +
      (r.errors.length ? `; ${r.errors.length} message(s) skipped, see stderr` : ''),
  );
  for (const n of r.notices ?? []) out.push(`note: ${n}`);
  return out.join('\n') + '\n';
}

const LEVEL: Record<Severity, 'error' | 'warning' | 'note'> = { error: 'error', warning: 'warning', info: 'note' };

export function reviewSarif(r: ReviewResult): string {
  const ruleIds = [...new Set([...r.rules.map((x) => x.id), ...r.findings.map((f) => f.rule)])];
  const specs = new Map(r.rules.map((x) => [x.id, x]));
  const rules = ruleIds.map((id) => {
    const s = specs.get(id);
    return {
      id,
      name: id.replace(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ? c.toUpperCase() : '')),
      shortDescription: { text: s?.title ?? id },
      ...(s ? { fullDescription: { text: s.guide.trim().split('\n\n')[0] }, help: { text: s.guide.trim() } } : {}),
      defaultConfiguration: { level: LEVEL[s?.severity ?? 'warning'] },
    };
  });
  const results = r.findings.map((f) => ({
    ruleId: f.rule,
    ruleIndex: ruleIds.indexOf(f.rule),
    level: LEVEL[f.severity],
    message: { text: f.message + (f.notes?.length ? ' ' + f.notes.join(' ') : '') },
    locations: f.file
      ? [
          {
            physicalLocation: {
              artifactLocation: { uri: f.file, uriBaseId: 'SRCROOT' },
              ...(f.line !== null ? { region: { startLine: f.line, ...(f.code !== null ? { snippet: { text: f.code } } : {}) } } : {}),
            },
            ...(f.function ? { logicalLocations: [{ name: f.function, kind: 'function' }] } : {}),
          },
        ]
      : [],
    partialFingerprints: { 'patchvet/v1': f.fingerprint },
    properties: { messageId: f.messageId, subject: f.subject, side: f.side, source: f.source },
  }));
  const log = {
    $schema: 'https://json.schemastore.org/sarif-2.1.0.json',
    version: '2.1.0',
    runs: [
      {
        tool: { driver: { name: 'patchvet', version: VERSION, informationUri: 'https://example.org/patchvet', rules } },
        originalUriBaseIds: { SRCROOT: { description: { text: 'The root of the patched tree' } } },
        results,
        ...(r.errors.length
          ? {
              invocations: [
                {
                  executionSuccessful: true,
                  toolExecutionNotifications: r.errors.map((e) => ({ level: 'warning', message: { text: `${e.source}: ${e.message}` } })),
                },
              ],
            }
          : {}),
      },
    ],
  };
  return JSON.stringify(log, null, 2) + '\n';
}

const ORDER: Record<Severity, number> = { info: 0, warning: 1, error: 2 };

export function atOrAbove(f: Finding, min: Severity): boolean {
  return ORDER[f.severity] >= ORDER[min];
}
