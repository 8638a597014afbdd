// Option values shared by the live sources, as users write them in patchvet.yml.
import { homedir } from 'node:os';
import { join } from 'node:path';

/** Where a source starts when no position is stored: the whole archive/folder, or only mail arriving from now on. */
export type StartAt = 'beginning' | 'now';

/** Checks a `start` option (it comes straight from patchvet.yml): a typo must not mean "read everything". */
export function checkStart(value: unknown, fallback: StartAt): StartAt {
  if (value === undefined || value === null) return fallback;
  if (value === 'beginning' || value === 'now') return value;
  throw new Error(`bad start ${JSON.stringify(value)}: write start: now (only mail arriving from now on) or start: beginning`);
}

/** Checks a positive whole-number option such as batchSize. */
export function checkCount(name: string, value: unknown, fallback: number): number {
  if (value === undefined || value === null) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new Error(`bad ${name} ${JSON.stringify(value)}: it must be a whole number of at least 1`);
  }
  return value;
}

/** "~" and "~/..." as the user's home folder (patchvet.yml says `path: ~/Maildir/xen-devel`). */
export function expandHome(path: string): string {
  if (path === '~') return homedir();
  if (path.startsWith('~/')) return join(homedir(), path.slice(2));
  return path;
}

// Poll intervals: "60s", "5m", "1h", "500ms", or a number of seconds.

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * Milliseconds for an interval setting. A bare number (or numeric string) counts seconds, as in
 * `every: 60`. Throws on anything else, and on zero or negative values (a source polling in a busy
 * loop would hammer the archive).
 */
export function parseInterval(value: string | number | undefined, fallbackMs: number): number {
  if (value === undefined) return fallbackMs;
  let ms: number;
  if (typeof value === 'number') {
    ms = value * 1000;
  } else {
    const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/i.exec(value);
    if (!m) throw new Error(`bad interval "${value}": write e.g. "60s", "5m", "1h", "500ms" or a number of seconds`);
    ms = Number(m[1]) * UNIT_MS[(m[2] ?? 's').toLowerCase()];
  }
  if (!Number.isFinite(ms) || ms <= 0) throw new Error(`bad interval "${value}": it must be greater than zero`);
  return Math.round(ms) || 1;
}
