// `patchvet eval`: how the findings compare with what maintainers actually said. Pure.
//
// For every patch, the reviewers' comments anchored to its diff (the `comments` of `threads`:
// replies whose nearest patch ancestor is this patch; the patch author's own replies, bots,
// and comments that are only trailers or thanks left out) are set against the findings on
// that patch. A finding and a comment match when they are on the same file and their new-side
// lines are at most `window` lines apart (a finding or comment on a removed line counts where
// the line was removed). Reported per source (rules, LLM) and per rule:
//   matched findings    findings near a comment (a maintainer raised something there)
//   unmatched findings  findings near no comment (false positives, or points nobody made)
//   matched comments    comments some finding of that source is near
//   missed comments     comments no finding of that source is near
// Comments on the commit message or prose (no diff line) and findings on the mail itself
// (subject, trailers) have no line to compare: they are counted, not matched.
import type { Finding, MessageRecord, Thread } from '../model.js';
import { anchoredPatch, isAuthorOf, isBot, isReviewText, newSidePosition } from '../llm/thread-context.js';

export const EVAL_SCHEMA = 'patchvet/eval@1';

export interface EvalComment {
  /** The patch it is on. */
  patch: string;
  /** The reply carrying it. */
  reply: string;
  by: string;
  file: string;
  /** New-side position on the patch. */
  line: number;
  text: string;
}

export interface EvalPatch {
  record: MessageRecord;
  comments: EvalComment[];
  /** Reviewers' comments with no diff line (commit message, prose). */
  general: number;
  findings: Finding[];
}

/** The reviewers' comments of a thread, per patch (patches without any are listed too). */
export function reviewComments(thread: Thread, opts: { exclude?: (r: MessageRecord) => boolean } = {}): Map<string, { comments: EvalComment[]; general: number }> {
  const out = new Map<string, { comments: EvalComment[]; general: number }>();
  const records = new Map(thread.messages.filter((m) => m.record).map((m) => [m.messageId, m.record!]));
  for (const m of thread.messages) if (m.record?.kind === 'patch' && m.record.diff) out.set(m.messageId, { comments: [], general: 0 });
  for (const m of thread.messages) {
    const r = m.record;
    if (!r || !m.comments.length || isBot(r) || opts.exclude?.(r)) continue;
    const on = anchoredPatch(thread, m.messageId);
    const patch = on ? records.get(on) : undefined;
    if (!on || !patch || isAuthorOf(r, patch)) continue;
    const slot = out.get(on)!;
    for (const c of m.comments) {
      if (!isReviewText(c.text)) continue;
      const line = c.file && c.line !== null && c.side ? newSidePosition(patch.diff, c.file, c.side, c.line) : null;
      if (!c.file || line === null) {
        slot.general++;
        continue;
      }
      slot.comments.push({ patch: on, reply: m.messageId, by: r.from.name || r.from.address, file: c.file, line, text: c.text.trim() });
    }
  }
  return out;
}

export type Source = 'rule' | 'llm';

export interface RuleRow {
  rule: string;
  findings: number;
  matched: number;
  unmatched: number;
  /** Comments this rule's findings are near. */
  comments: number;
  /** Findings on the mail itself (no line), not compared. */
  mailLevel: number;
}

export interface SourceReport {
  findings: number;
  matchedFindings: number;
  unmatchedFindings: number;
  mailLevel: number;
  comments: number;
  matchedComments: number;
  missedComments: number;
  /** matchedFindings / (findings - mailLevel); null when there is none to compare. */
  precision: number | null;
  /** matchedComments / comments; null without comments. */
  recall: number | null;
  rules: RuleRow[];
}

export interface CommentRow {
  patch: string;
  subject: string;
  reply: string;
  by: string;
  file: string;
  line: number;
  text: string;
  matchedBy: { rule: string[]; llm: string[] };
}

export interface UnmatchedRow {
  source: Source;
  rule: string;
  patch: string;
  subject: string;
  file: string;
  line: number | null;
  message: string;
}

export interface EvalReport {
  schema: typeof EVAL_SCHEMA;
  window: number;
  patches: number;
  patchesWithComments: number;
  comments: number;
  /** Comments with no diff line (commit message, prose): not compared. */
  generalComments: number;
  sources: { rule: SourceReport; llm: SourceReport | null };
  commentRows: CommentRow[];
  unmatched: UnmatchedRow[];
}

function findingLine(f: Finding, patch: MessageRecord): number | null {
  if (!f.file || f.line === null) return null;
  return f.side === 'old' ? newSidePosition(patch.diff, f.file, 'old', f.line) : f.line;
}

function near(f: Finding, fl: number | null, c: EvalComment, window: number): boolean {
  return fl !== null && f.file === c.file && Math.abs(fl - c.line) <= window;
}

function sourceReport(patches: readonly EvalPatch[], source: Source, window: number): SourceReport {
  const rows = new Map<string, RuleRow>();
  const row = (rule: string) => {
    let r = rows.get(rule);
    if (!r) rows.set(rule, (r = { rule, findings: 0, matched: 0, unmatched: 0, comments: 0, mailLevel: 0 }));
    return r;
  };
  let findings = 0;
  let matchedFindings = 0;
  let mailLevel = 0;
  let comments = 0;
  let matchedComments = 0;
  for (const p of patches) {
    const fs = p.findings.filter((f) => f.source === source);
    const lines = fs.map((f) => findingLine(f, p.record));
    fs.forEach((f, i) => {
      findings++;
      const r = row(f.rule);
      r.findings++;
      if (lines[i] === null) {
        mailLevel++;
        r.mailLevel++;
      } else if (p.comments.some((c) => near(f, lines[i]!, c, window))) {
        matchedFindings++;
        r.matched++;
      } else r.unmatched++;
    });
    for (const c of p.comments) {
      comments++;
      const hit = new Set(fs.filter((f, i) => near(f, lines[i]!, c, window)).map((f) => f.rule));
      if (hit.size) matchedComments++;
      for (const rule of hit) row(rule).comments++;
    }
  }
  const compared = findings - mailLevel;
  return {
    findings,
    matchedFindings,
    unmatchedFindings: compared - matchedFindings,
    mailLevel,
    comments,
    matchedComments,
    missedComments: comments - matchedComments,
    precision: compared ? matchedFindings / compared : null,
    recall: comments ? matchedComments / comments : null,
    rules: [...rows.values()].sort((a, b) => (a.rule < b.rule ? -1 : a.rule > b.rule ? 1 : 0)),
  };
}

/** Compare findings with comments. `llm` says whether the LLM pass ran (else its report is null). */
export function evaluate(patches: readonly EvalPatch[], opts: { window?: number; llm?: boolean } = {}): EvalReport {
  const window = opts.window ?? 3;
  const commentRows: CommentRow[] = [];
  const unmatched: UnmatchedRow[] = [];
  for (const p of patches) {
    const lines = p.findings.map((f) => findingLine(f, p.record));
    for (const c of p.comments) {
      const by = (s: Source) => [...new Set(p.findings.filter((f, i) => f.source === s && near(f, lines[i]!, c, window)).map((f) => f.rule))].sort();
      commentRows.push({ patch: p.record.messageId, subject: p.record.subject, reply: c.reply, by: c.by, file: c.file, line: c.line, text: c.text, matchedBy: { rule: by('rule'), llm: by('llm') } });
    }
    p.findings.forEach((f, i) => {
      if (lines[i] === null || p.comments.some((c) => near(f, lines[i]!, c, window))) return;
      unmatched.push({ source: f.source, rule: f.rule, patch: p.record.messageId, subject: p.record.subject, file: f.file!, line: f.line, message: f.message });
    });
  }
  return {
    schema: EVAL_SCHEMA,
    window,
    patches: patches.length,
    patchesWithComments: patches.filter((p) => p.comments.length).length,
    comments: patches.reduce((a, p) => a + p.comments.length, 0),
    generalComments: patches.reduce((a, p) => a + p.general, 0),
    sources: { rule: sourceReport(patches, 'rule', window), llm: opts.llm ? sourceReport(patches, 'llm', window) : null },
    commentRows,
    unmatched,
  };
}

// ---------------------------------------------------------------- output

function pct(n: number | null): string {
  return n === null ? '-' : `${Math.round(n * 100)}%`;
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

function sourceText(name: string, s: SourceReport | null): string[] {
  if (!s) return [`${name}: not run (add --llm and configure the LLM pass)`];
  const out = [
    `${name}: ${s.matchedComments} of ${plural(s.comments, 'comment')} matched (recall ${pct(s.recall)}), ${s.missedComments} missed; ` +
      `${s.matchedFindings} of ${s.findings - s.mailLevel} line findings near a comment (precision ${pct(s.precision)})` +
      (s.mailLevel ? `; ${s.mailLevel} on the mail itself, not compared` : ''),
  ];
  if (s.rules.length) {
    const head = ['rule', 'findings', 'matched', 'unmatched', 'comments', 'mail'];
    const rows = s.rules.map((r) => [r.rule, String(r.findings), String(r.matched), String(r.unmatched), String(r.comments), String(r.mailLevel)]);
    const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const line = (cells: string[]) => '  ' + cells.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ');
    out.push(line(head), ...rows.map(line));
  }
  return out;
}

function oneLine(s: string, max = 100): string {
  const t = s.replace(/\s+/g, ' ').trim();
  return t.length > max ? t.slice(0, max - 1) + '…' : t;
}

export function evalText(r: EvalReport): string {
  const out = [
    `${plural(r.patches, 'patch', 'patches')}, ${r.patchesWithComments} with reviewers' comments on diff lines: ` +
      `${plural(r.comments, 'comment')} compared (${r.generalComments} on the commit message or prose, not compared); ` +
      `a finding matches a comment on the same file within ${r.window} lines`,
    '',
    ...sourceText('rules', r.sources.rule),
    '',
    ...sourceText('llm', r.sources.llm),
  ];
  if (r.commentRows.length) {
    out.push('', 'comments:');
    let last = '';
    for (const c of r.commentRows) {
      if (c.patch !== last) out.push(`  ${c.subject}`);
      last = c.patch;
      out.push(
        `    ${c.file}:${c.line} (${c.by}): ${oneLine(c.text)}`,
        `      rules: ${c.matchedBy.rule.join(', ') || 'missed'}${r.sources.llm ? `; llm: ${c.matchedBy.llm.join(', ') || 'missed'}` : ''}`,
      );
    }
  }
  if (r.unmatched.length) {
    out.push('', 'findings near no comment:');
    for (const u of r.unmatched) out.push(`  ${u.file}:${u.line ?? '?'}: [${u.rule}] ${oneLine(u.message)}  (${oneLine(u.subject, 60)})`);
  }
  return out.join('\n') + '\n';
}

export function evalJson(r: EvalReport): string {
  return JSON.stringify(r, null, 2) + '\n';
}
