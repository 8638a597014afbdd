// Contracts between `patchvet serve`'s live sources (I/O edge) and its core loop.
// Every source delivers raw mail in batches with the position they reach; the core stores
// the messages AND the new position in one store transaction and only then resolves the
// promise, so a crash at any moment loses nothing (the source resumes from the stored
// position and the store ignores messages it already has).
import type { RawMessage } from '../model.js';

export interface SourceBatch {
  messages: RawMessage[];
  /** Opaque position after these messages (e.g. public-inbox epoch+commit, IMAP UIDVALIDITY:UID). null: push sources with no position (LMTP). */
  position: string | null;
}

export interface SourceHealth {
  ok: boolean;
  /** Seconds between now and the newest message seen at the source but not yet delivered (or since the last successful poll). */
  lagSeconds?: number;
  detail?: string;
}

export interface SourceRunOptions {
  /** The stored position to start after (null on first start). */
  from: string | null;
  /** Store a batch (messages and position in one transaction); resolves once durable. */
  deliver: (batch: SourceBatch) => Promise<void>;
  /** A message that could not be read: reported, skipped. */
  onError: (e: { source: string; message: string }) => void;
  signal: AbortSignal;
}

/** Resolve after `ms`, or at once when `signal` aborts (sources sleep between retries this way). */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

export interface LiveSource {
  /** Stable key for the store's position table, e.g. "public-inbox:/srv/inbox/xen-devel". */
  readonly key: string;
  /**
   * Run until `signal` aborts: deliver batches through `deliver` (await it before acknowledging or
   * moving on), starting after `from` (the stored position, null on first start). Recoverable
   * errors (network, server restart) are retried with backoff and logged, never thrown; a bad
   * message is reported through `onError` and skipped.
   */
  run(opts: SourceRunOptions): Promise<void>;
  health(): SourceHealth;
}
