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

export interface LiveSource {
  /** Stable key for the store's position table, e.g. "public-inbox:/srv/inbox/xen-devel". */
  readonly key: string;
  /**
   * Run until `signal` aborts: deliver batches through `deliver` (await it before acknowledging or
   * moving on), starting after `from` (the stored position, null on first start). Recoverable
   * errors (network, server restart) are retried with backoff and logged, never thrown; a bad
   * message is reported through `onError` and skipped.
   */
  run(opts: {
    from: string | null;
    deliver: (batch: SourceBatch) => Promise<void>;
    onError: (e: { source: string; message: string }) => void;
    signal: AbortSignal;
  }): Promise<void>;
  health(): SourceHealth;
}
