// The polling loop shared by the live sources that look at something on disk (public-inbox,
// maildir): poll, sleep, poll again; failures are logged and retried with backoff, never thrown;
// an abort ends the loop at once; `pollNow()` lets tests (and file-system watchers) cut the sleep.
import type { Logger } from 'pino';
import type { SourceHealth } from '../types.js';

export interface PollLoopOptions {
  intervalMs: number;
  /** Consecutive failed polls after which health() says ok: false. Default 3. */
  failureThreshold?: number;
  /** Longest wait after repeated failures (never shorter than intervalMs). Default 5 minutes. */
  maxBackoffMs?: number;
  log: Logger;
}

interface Waiter {
  /** Resolved by the first poll that starts after this waiter was registered. */
  after: number;
  resolve: () => void;
}

export class PollLoop {
  private readonly intervalMs: number;
  private readonly failureThreshold: number;
  private readonly maxBackoffMs: number;
  private readonly log: Logger;
  private running = false;
  private started = 0;
  private waiters: Waiter[] = [];
  private wakeRequested = false;
  private cutSleep: (() => void) | null = null;
  private debounce: NodeJS.Timeout | null = null;
  private failures = 0;
  private lastError: string | null = null;
  private lastSuccess: number | null = null;
  private startedAt: number | null = null;

  constructor(opts: PollLoopOptions) {
    this.intervalMs = opts.intervalMs;
    this.failureThreshold = opts.failureThreshold ?? 3;
    this.maxBackoffMs = Math.max(opts.intervalMs, opts.maxBackoffMs ?? 300_000);
    this.log = opts.log;
  }

  /** Poll until `signal` aborts. `poll` throws on failure; the loop logs it and retries later. */
  async run(signal: AbortSignal, poll: () => Promise<void>): Promise<void> {
    if (this.running) throw new Error('this source is already running');
    this.running = true;
    this.startedAt = Date.now();
    try {
      while (!signal.aborted) {
        // A wake that arrives while this poll runs asks for one more poll right after it.
        this.wakeRequested = false;
        const seq = ++this.started;
        try {
          await poll();
          if (!signal.aborted) {
            this.failures = 0;
            this.lastError = null;
            this.lastSuccess = Date.now();
          }
        } catch (err) {
          if (signal.aborted) break;
          this.failures++;
          this.lastError = err instanceof Error ? err.message : String(err);
          this.log.warn(
            { err, failures: this.failures },
            `poll failed (${this.failures} in a row), retrying in ${Math.round(this.delay() / 1000)} s`,
          );
        } finally {
          this.settle(seq);
        }
        if (signal.aborted) break;
        await this.sleep(this.delay(), signal);
      }
    } finally {
      this.running = false;
      if (this.debounce) clearTimeout(this.debounce);
      this.debounce = null;
      for (const w of this.waiters.splice(0)) w.resolve();
    }
  }

  /**
   * Start a poll now (or right after the one in progress) and resolve when a poll that started after
   * this call has finished, whether it succeeded or not (see health()). Rejects when not running.
   */
  pollNow(): Promise<void> {
    if (!this.running) return Promise.reject(new Error('pollNow(): the source is not running'));
    const p = new Promise<void>((resolve) => this.waiters.push({ after: this.started, resolve }));
    this.wake();
    return p;
  }

  /** Cut the current sleep (after `debounceMs`, so a burst of file events makes one poll). */
  wake(debounceMs = 0): void {
    this.wakeRequested = true;
    if (debounceMs <= 0) {
      this.cutSleep?.();
      return;
    }
    if (this.debounce) return;
    this.debounce = setTimeout(() => {
      this.debounce = null;
      this.cutSleep?.();
    }, debounceMs);
  }

  health(): SourceHealth {
    const since = this.lastSuccess ?? this.startedAt;
    const lagSeconds = since === null ? undefined : Math.max(0, (Date.now() - since) / 1000);
    const ok = this.failures < this.failureThreshold;
    let detail: string;
    if (this.lastError) detail = `${this.failures} failed poll(s) in a row; last error: ${this.lastError}`;
    else if (this.lastSuccess !== null) detail = `last successful poll ${new Date(this.lastSuccess).toISOString()}`;
    else detail = this.running ? 'first poll in progress' : 'not started';
    return { ok, lagSeconds, detail };
  }

  /** Next wait: the interval, doubled per consecutive failure up to maxBackoffMs. */
  private delay(): number {
    if (this.failures === 0) return this.intervalMs;
    return Math.min(this.intervalMs * 2 ** Math.min(this.failures, 20), this.maxBackoffMs);
  }

  private settle(seq: number): void {
    const keep: Waiter[] = [];
    for (const w of this.waiters) (seq > w.after ? w.resolve() : keep.push(w));
    this.waiters = keep;
  }

  private sleep(ms: number, signal: AbortSignal): Promise<void> {
    if (this.wakeRequested || signal.aborted) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        this.cutSleep = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
      this.cutSleep = done;
    });
  }
}
