// Where the LLM pass keeps its budget counters and cached answers. serve's Store (SQLite or
// PostgreSQL) satisfies this interface as is; the CLI uses an in-memory one unless given
// --llm-cache sqlite:PATH (or postgres://...), so repeated runs share answers and budgets.
import type { Store } from '../store/store.js';

export type LlmStore = Pick<Store, 'addTokens' | 'tokensFor' | 'cacheGet' | 'cachePut'>;

/** Key of the list names that have spent tokens (for `patchvet stats`, which cannot enumerate the counters). */
export const LISTS_KEY = 'llm:lists';

export class MemoryLlmStore implements LlmStore {
  private tokens = new Map<string, number>();
  private cache = new Map<string, { value: unknown; expires: number | null }>();
  constructor(private now: () => number = Date.now) {}

  async addTokens(day: string, list: string, tokens: number): Promise<number> {
    if (!Number.isSafeInteger(tokens) || tokens < 0) throw new RangeError('tokens must be a non-negative integer');
    const k = `${day}\u0000${list}`;
    const n = (this.tokens.get(k) ?? 0) + tokens;
    this.tokens.set(k, n);
    return n;
  }
  async tokensFor(day: string, list: string): Promise<number> {
    return this.tokens.get(`${day}\u0000${list}`) ?? 0;
  }
  async cacheGet<T = unknown>(key: string): Promise<T | undefined> {
    const e = this.cache.get(key);
    if (!e) return undefined;
    if (e.expires !== null && e.expires <= this.now()) {
      this.cache.delete(key);
      return undefined;
    }
    // A copy, as a database would give: callers may not change what is stored.
    return structuredClone(e.value) as T;
  }
  async cachePut(key: string, value: unknown, ttlSeconds?: number): Promise<void> {
    if (value === undefined) throw new TypeError('cachePut needs a JSON value (not undefined)');
    this.cache.set(key, { value: structuredClone(value), expires: ttlSeconds ? this.now() + ttlSeconds * 1000 : null });
  }
}

/** Open the store named by --llm-cache: `memory` (default), `sqlite:PATH`, `postgres://...`. */
export async function openLlmStore(url: string | undefined): Promise<{ store: LlmStore; close: () => Promise<void> }> {
  if (!url || url === 'memory') return { store: new MemoryLlmStore(), close: async () => {} };
  const { openStore } = await import('../store/store.js');
  const s = await openStore(url);
  return { store: s, close: () => s.close() };
}

/** Remember that `list` spent tokens (best effort: a lost update only hides a list from stats). */
export async function noteList(store: LlmStore, list: string): Promise<void> {
  const known = (await store.cacheGet<string[]>(LISTS_KEY)) ?? [];
  if (!known.includes(list)) await store.cachePut(LISTS_KEY, [...known, list].slice(-500));
}

/** UTC day, YYYY-MM-DD: the unit of the daily budget. */
export function utcDay(d: Date): string {
  return d.toISOString().slice(0, 10);
}
