// The one place the LLM pass does network I/O: Chat Completions through the `openai` client,
// against OpenAI or any compatible server (vLLM, llama.cpp, Ollama, ...).
//
// - Timeouts per request (the client's `timeout`); the client's own retries are off so that
//   this module decides: 408/409/429/5xx and network errors are retried with exponential
//   backoff (0.5 s, 1 s, 2 s, ... capped at 8 s, with jitter), honouring Retry-After /
//   retry-after-ms; a Retry-After longer than maxRetryAfterMs fails the call instead (a quota
//   that resets tomorrow is not worth a wait). A timed-out request is retried once at most:
//   a slow server stays slow. 400/401/403/404 fail at once.
// - A concurrency limit across every call made through one LlmClient.
// - A circuit breaker: after a call fails because the server is unreachable or too slow, the
//   calls that follow within `cooldownMs` fail at once instead of each waiting for timeouts.
// - The API key is only handed to the client; it is never logged (pino redacts apiKey too).
import OpenAI from 'openai';
import type { ChatCompletionCreateParamsNonStreaming } from 'openai/resources/chat/completions';
import { log } from '../log.js';
import { endpointLabel, NO_KEY, type LlmConfig } from './config.js';

export type LlmErrorKind = 'unreachable' | 'timeout' | 'rate-limited' | 'server' | 'auth' | 'http' | 'circuit-open' | 'aborted';

export class LlmError extends Error {
  constructor(
    readonly kind: LlmErrorKind,
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'LlmError';
  }
}

export interface ChatResult {
  content: string | null;
  refusal: string | null;
  finishReason: string | null;
  usage: { prompt: number; completion: number; total: number } | null;
}

export interface ClientDeps {
  /** Injected in tests to observe backoff without waiting. */
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
  random?: () => number;
  /** A ready client (tests); otherwise built from the config. */
  openai?: OpenAI;
  cooldownMs?: number;
}

class Semaphore {
  private waiting: Array<() => void> = [];
  private busy = 0;
  constructor(private limit: number) {}
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.busy >= this.limit) await new Promise<void>((r) => this.waiting.push(r));
    else this.busy++;
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.busy--;
    }
  }
}

const defaultSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref?.());

/** Milliseconds the server asks us to wait, from retry-after-ms or Retry-After (seconds or an HTTP date). */
export function retryAfterMs(headers: Headers | undefined, now: number): number | null {
  if (!headers) return null;
  const ms = headers.get('retry-after-ms');
  if (ms && Number.isFinite(parseFloat(ms))) return Math.max(0, parseFloat(ms));
  const ra = headers.get('retry-after');
  if (!ra) return null;
  if (/^\s*\d+(\.\d+)?\s*$/.test(ra)) return Math.max(0, parseFloat(ra) * 1000);
  const t = Date.parse(ra);
  return Number.isFinite(t) ? Math.max(0, t - now) : null;
}

export class LlmClient {
  readonly endpoint: string;
  private openai: OpenAI;
  private sem: Semaphore;
  private sleep: (ms: number) => Promise<void>;
  private now: () => number;
  private random: () => number;
  private cooldownMs: number;
  private openUntil = 0;
  private lastFailure = '';

  constructor(
    readonly config: LlmConfig,
    deps: ClientDeps = {},
  ) {
    this.endpoint = endpointLabel(config);
    this.openai =
      deps.openai ??
      new OpenAI({
        apiKey: config.apiKey,
        baseURL: config.baseURL,
        timeout: config.timeoutMs,
        maxRetries: 0,
        logLevel: 'off',
      });
    if (config.baseURL && config.apiKey !== NO_KEY) {
      const u = new URL(config.baseURL);
      if (u.protocol === 'http:' && !/^(localhost|127\.\d+\.\d+\.\d+|\[::1\])$/.test(u.hostname)) {
        log.warn({ endpoint: this.endpoint }, 'llm: OPENAI_BASE_URL is plain http to another host: the API key travels unencrypted');
      }
    }
    this.sem = new Semaphore(config.concurrency);
    this.sleep = deps.sleep ?? defaultSleep;
    this.now = deps.now ?? Date.now;
    this.random = deps.random ?? Math.random;
    this.cooldownMs = deps.cooldownMs ?? 60_000;
  }

  private backoff(attempt: number): number {
    return Math.min(500 * 2 ** attempt, 8000) * (1 - this.random() * 0.25);
  }

  private classify(e: unknown): { err: LlmError; retry: boolean; wait: number | null } {
    if (e instanceof OpenAI.APIUserAbortError) return { err: new LlmError('aborted', 'request aborted'), retry: false, wait: null };
    if (e instanceof OpenAI.APIConnectionTimeoutError) {
      return { err: new LlmError('timeout', `no answer from ${this.endpoint} within ${this.config.timeoutMs / 1000}s`), retry: true, wait: null };
    }
    if (e instanceof OpenAI.APIConnectionError) {
      const cause = (e as { cause?: { message?: string; cause?: { code?: string } } }).cause;
      const why = cause?.cause?.code ?? cause?.message ?? e.message;
      return { err: new LlmError('unreachable', `cannot reach ${this.endpoint} (${why})`), retry: true, wait: null };
    }
    if (e instanceof OpenAI.APIError && typeof e.status === 'number') {
      const s = e.status;
      const msg = (e.message || '').replace(/\s+/g, ' ').slice(0, 200);
      const wait = retryAfterMs(e.headers as Headers | undefined, this.now());
      if (s === 429) return { err: new LlmError('rate-limited', `${this.endpoint} is rate limiting (429): ${msg}`, s), retry: true, wait };
      if (s === 408 || s === 409 || s >= 500) return { err: new LlmError('server', `${this.endpoint} answered ${s}: ${msg}`, s), retry: true, wait };
      if (s === 401 || s === 403) return { err: new LlmError('auth', `${this.endpoint} refused the credentials (${s}): check OPENAI_API_KEY`, s), retry: false, wait: null };
      return { err: new LlmError('http', `${this.endpoint} answered ${s}: ${msg}`, s), retry: false, wait: null };
    }
    return { err: new LlmError('http', `request failed: ${(e as Error)?.message ?? String(e)}`), retry: false, wait: null };
  }

  /** One Chat Completions call, with the retries, limits and breaker above. Throws LlmError. */
  async chat(body: ChatCompletionCreateParamsNonStreaming, opts: { signal?: AbortSignal } = {}): Promise<ChatResult> {
    if (this.now() < this.openUntil) {
      throw new LlmError('circuit-open', `skipped: ${this.lastFailure} a moment ago; not trying again until ${new Date(this.openUntil).toISOString()}`);
    }
    let timeouts = 0;
    for (let attempt = 0; ; attempt++) {
      // Our own timer rather than the client's timeout: an abort we caused is told apart from a
      // caller's abort and from a refused connection whatever the runtime's error classes are.
      const ctl = new AbortController();
      let timedOut = false;
      const onAbort = () => ctl.abort();
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      try {
        const res = await this.sem.run(() => {
          const timer = setTimeout(() => {
            timedOut = true;
            ctl.abort();
          }, this.config.timeoutMs);
          return this.openai.chat.completions
            .create(body, { signal: ctl.signal, timeout: this.config.timeoutMs + 5000, maxRetries: 0 })
            .finally(() => clearTimeout(timer));
        });
        const choice = res.choices?.[0];
        const u = res.usage;
        return {
          content: choice?.message?.content ?? null,
          refusal: (choice?.message as { refusal?: string | null } | undefined)?.refusal ?? null,
          finishReason: choice?.finish_reason ?? null,
          usage: u ? { prompt: u.prompt_tokens ?? 0, completion: u.completion_tokens ?? 0, total: u.total_tokens ?? (u.prompt_tokens ?? 0) + (u.completion_tokens ?? 0) } : null,
        };
      } catch (e) {
        const { err, retry, wait } = timedOut
          ? { err: new LlmError('timeout', `no answer from ${this.endpoint} within ${this.config.timeoutMs / 1000}s`), retry: true, wait: null }
          : opts.signal?.aborted
            ? { err: new LlmError('aborted', 'request aborted'), retry: false, wait: null }
            : this.classify(e);
        if (err.kind === 'timeout') timeouts++;
        const more = retry && attempt < this.config.maxRetries && !(err.kind === 'timeout' && timeouts > 1);
        if (more && wait !== null && wait > this.config.maxRetryAfterMs) {
          throw new LlmError(err.kind, `${err.message} (asks to wait ${Math.round(wait / 1000)}s, more than ${this.config.maxRetryAfterMs / 1000}s)`, err.status);
        }
        if (!more) {
          if (err.kind === 'unreachable' || err.kind === 'timeout') {
            this.openUntil = this.now() + this.cooldownMs;
            this.lastFailure = err.message;
          }
          throw err;
        }
        const delay = wait ?? this.backoff(attempt);
        log.info({ endpoint: this.endpoint, attempt: attempt + 1, status: err.status, delayMs: Math.round(delay), kind: err.kind }, 'llm: retrying');
        await this.sleep(delay);
      } finally {
        opts.signal?.removeEventListener('abort', onAbort);
      }
    }
  }
}
