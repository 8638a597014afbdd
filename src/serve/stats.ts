// `patchvet stats [--config patchvet.yml] [--format text|json]`: how each rule is doing on the
// lists serve follows: findings raised, findings posted, disputes (replies to the bot saying
// "Review-Bot-Ignore: <rule>" or "false positive"), and the precision that implies.
import { existsSync } from 'node:fs';
import type { OutboxStats, RuleStats, Store } from '../store/store.js';
import { redactUrl } from './config.js';

export const STATS_SCHEMA = 'patchvet/stats@1';

export interface StatsReport {
  schema: typeof STATS_SCHEMA;
  store: string;
  rules: RuleStats[];
  totals: { findings: number; posted: number; disputes: number; precision: number | null };
  outbox: Omit<OutboxStats, 'oldestQueuedAt'> & { oldestQueuedAt: string | null };
}

export async function collectStats(store: Store, storeUrl: string): Promise<StatsReport> {
  const rules = await store.ruleStats();
  const ob = await store.outboxStats();
  const findings = rules.reduce((a, r) => a + r.findings, 0);
  const posted = rules.reduce((a, r) => a + r.posted, 0);
  const disputes = rules.reduce((a, r) => a + r.disputes, 0);
  // Overall precision weighs each rule by its posts (the per-rule numbers cap disputes at posts).
  const good = rules.reduce((a, r) => a + (r.precision === null ? 0 : r.precision * r.posted), 0);
  return {
    schema: STATS_SCHEMA,
    store: redactUrl(storeUrl),
    rules,
    totals: { findings, posted, disputes, precision: posted ? good / posted : null },
    outbox: { ...ob, oldestQueuedAt: ob.oldestQueuedAt ? ob.oldestQueuedAt.toISOString() : null },
  };
}

function pct(p: number | null): string {
  return p === null ? '-' : `${(p * 100).toFixed(1)}%`;
}

/** A table, one line per rule, then totals and the outbox. */
export function statsText(r: StatsReport): string {
  const head = ['rule', 'findings', 'posted', 'disputes', 'precision'];
  const rows = r.rules.map((x) => [x.rule, String(x.findings), String(x.posted), String(x.disputes), pct(x.precision)]);
  rows.push(['total', String(r.totals.findings), String(r.totals.posted), String(r.totals.disputes), pct(r.totals.precision)]);
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ');
  const out = [line(head), ...rows.slice(0, -1).map(line), '-'.repeat(w.reduce((a, b) => a + b + 2, -2)), line(rows[rows.length - 1]!)];
  if (!r.rules.length) out.splice(1, 0, '(no findings yet)');
  const o = r.outbox;
  out.push(
    '',
    `replies: ${o.sent} sent, ${o.queued} queued, ${o.sending} sending, ${o.failed} failed` +
      (o.possiblySent ? `, ${o.possiblySent} possibly sent (check the list)` : '') +
      (o.oldestQueuedAt ? `; oldest queued since ${o.oldestQueuedAt}` : ''),
    'precision = (posted - disputed) / posted; few posts give a noisy number.',
  );
  return out.join('\n') + '\n';
}

export function statsJson(r: StatsReport): string {
  return JSON.stringify(r, null, 2) + '\n';
}

/** Whether the store named by `url` exists (a SQLite file); other backends are assumed to. */
export function storeExists(url: string): boolean {
  if (!url.startsWith('sqlite:')) return true;
  const p = url.slice('sqlite:'.length);
  return p === ':memory:' || existsSync(p);
}
