// `patchvet stats [--config patchvet.yml] [--format text|json]`: how each rule is doing on the
// lists serve follows: findings raised, findings posted, disputes (replies to the bot saying
// "Review-Bot-Ignore: <rule>" or "false positive"), and the precision that implies; and the
// tokens the LLM pass spent, per UTC day and list.
import { existsSync } from 'node:fs';
import type { OutboxStats, RuleStats, Store } from '../store/store.js';
import { redactUrl } from './config.js';
import { LISTS_KEY, utcDay, type LlmStore } from '../llm/store.js';

export const STATS_SCHEMA = 'patchvet/stats@1';

export interface StatsReport {
  schema: typeof STATS_SCHEMA;
  store: string;
  rules: RuleStats[];
  totals: { findings: number; posted: number; disputes: number; precision: number | null };
  outbox: Omit<OutboxStats, 'oldestQueuedAt'> & { oldestQueuedAt: string | null };
  /** Tokens the LLM pass spent, per UTC day and list, newest day first (days with none left out). */
  llm: { days: number; tokens: Array<{ day: string; list: string; tokens: number }>; total: number };
}

export interface StatsOptions {
  /** Lists to look up besides those the LLM pass recorded (serve's configured lists). */
  lists?: string[];
  /** How many UTC days back, today included (default 30). */
  days?: number;
  now?: Date;
}

/**
 * Token use per day and list. The store counts tokens by (day, list) but cannot list its
 * counters, so the lists are the configured ones plus those the LLM pass noted (LISTS_KEY).
 */
export async function tokenStats(store: LlmStore & Partial<Pick<Store, 'tokenUsage'>>, opts: StatsOptions = {}): Promise<StatsReport['llm']> {
  const days = opts.days ?? 30;
  const now = opts.now ?? new Date();
  if (store.tokenUsage) {
    // serve's store lists its counters (every list and GitHub repository), newest day first.
    const since = utcDay(new Date(now.getTime() - (days - 1) * 86_400_000));
    const tokens = (await store.tokenUsage(since)).filter((t) => t.tokens > 0).sort((a, b) => b.day.localeCompare(a.day) || a.list.localeCompare(b.list));
    return { days, tokens, total: tokens.reduce((a, t) => a + t.tokens, 0) };
  }
  const lists = [...new Set([...(opts.lists ?? []).map((l) => l.toLowerCase()), ...((await store.cacheGet<string[]>(LISTS_KEY)) ?? [])])].sort();
  const tokens: StatsReport['llm']['tokens'] = [];
  for (let i = 0; i < days; i++) {
    const day = utcDay(new Date(now.getTime() - i * 86_400_000));
    for (const list of lists) {
      const n = await store.tokensFor(day, list);
      if (n > 0) tokens.push({ day, list, tokens: n });
    }
  }
  return { days, tokens, total: tokens.reduce((a, t) => a + t.tokens, 0) };
}

export async function collectStats(store: Store, storeUrl: string, opts: StatsOptions = {}): Promise<StatsReport> {
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
    llm: await tokenStats(store, opts),
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
  out.push('', ...tokensText(r.llm));
  return out.join('\n') + '\n';
}

/** The LLM pass's token use: one line per day and list. */
export function tokensText(t: StatsReport['llm']): string[] {
  if (!t.tokens.length) return [`LLM tokens: none spent in the last ${t.days} days`];
  const w = Math.max(...t.tokens.map((x) => x.list.length));
  const n = (x: number) => x.toLocaleString('en-US');
  const nw = Math.max(...t.tokens.map((x) => n(x.tokens).length), n(t.total).length);
  return [
    `LLM tokens, last ${t.days} days (UTC):`,
    ...t.tokens.map((x) => `  ${x.day}  ${x.list.padEnd(w)}  ${n(x.tokens).padStart(nw)}`),
    `  ${'total'.padEnd(10)}  ${''.padEnd(w)}  ${n(t.total).padStart(nw)}`,
  ];
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
