// LLM pass configuration, from the environment (secrets never come from files or flags).
// Off unless configured: without PATCHVET_LLM_MODEL and an endpoint (OPENAI_API_KEY for a
// hosted API, or OPENAI_BASE_URL for any OpenAI-compatible server) nothing is ever sent.
//
//   OPENAI_API_KEY              key for the endpoint (a local server may need none)
//   OPENAI_BASE_URL             e.g. http://127.0.0.1:8000/v1 (vLLM), http://127.0.0.1:11434/v1 (Ollama);
//                               default https://api.openai.com/v1
//   PATCHVET_LLM_MODEL          model for the review call (required)
//   PATCHVET_LLM_VERIFY_MODEL   optional cheaper model for the verification call; without it the
//                               model's own confidence score (PATCHVET_LLM_MIN_CONFIDENCE) decides
//   PATCHVET_LLM_TIMEOUT        seconds per request (default 60)
//   PATCHVET_LLM_RETRIES        retries on 429/5xx/network errors (default 3)
//   PATCHVET_LLM_CONCURRENCY    requests in flight at once (default 2)
//   PATCHVET_LLM_PATCH_TOKENS   token budget per patch, prompt + answer, both calls (default 30000)
//   PATCHVET_LLM_DAILY_TOKENS   token budget per list and UTC day (default 2000000; 0 = none)
//   PATCHVET_LLM_MAX_OUTPUT_TOKENS  answer size limit per call (default 2000)
//   PATCHVET_LLM_MAX_FINDINGS   LLM findings kept per patch (default 3)
//   PATCHVET_LLM_MIN_CONFIDENCE self-check threshold, 0..1 (default 0.7)
//   PATCHVET_LLM_CACHE_DAYS     how long an answer is cached by patch-id (default 30)
//   PATCHVET_LLM_TEMPERATURE    sent only when set (e.g. 0 for a local model; some hosted models take none)

export interface LlmConfig {
  model: string;
  verifyModel: string | null;
  /** undefined: the client's default (https://api.openai.com/v1). */
  baseURL: string | undefined;
  /** The key, or a placeholder for servers that want none (never logged). */
  apiKey: string;
  timeoutMs: number;
  maxRetries: number;
  concurrency: number;
  patchTokens: number;
  /** 0: no daily limit. */
  dailyTokens: number;
  maxOutputTokens: number;
  maxFindings: number;
  minConfidence: number;
  cacheTtlSeconds: number;
  /** Sent only when set (PATCHVET_LLM_TEMPERATURE): some models accept no other value than their default. */
  temperature: number | undefined;
  /** Longest Retry-After we wait for; a longer one fails the call (a daily quota, say). */
  maxRetryAfterMs: number;
}

/** The key sent when none is configured: local servers ignore it, hosted ones answer 401. */
export const NO_KEY = 'patchvet-no-key';

export const LLM_ENV_HELP =
  'set PATCHVET_LLM_MODEL and either OPENAI_API_KEY (hosted API) or OPENAI_BASE_URL ' +
  '(an OpenAI-compatible server such as vLLM, llama.cpp or Ollama, e.g. http://127.0.0.1:11434/v1)';

export class LlmConfigError extends Error {}

type Env = Record<string, string | undefined>;

function num(env: Env, name: string, def: number, check: (n: number) => boolean, what: string): number {
  const v = env[name];
  if (v === undefined || v.trim() === '') return def;
  const n = Number(v.trim().replace(/s$/, ''));
  if (!Number.isFinite(n) || !check(n)) throw new LlmConfigError(`${name}='${v}': expected ${what}`);
  return n;
}

/** Whether the environment configures the LLM pass at all (no error checking). */
export function llmConfigured(env: Env = process.env): boolean {
  return !!env.PATCHVET_LLM_MODEL?.trim() && !!(env.OPENAI_API_KEY?.trim() || env.OPENAI_BASE_URL?.trim());
}

/**
 * The configuration, or null when the environment does not ask for an LLM pass.
 * Throws LlmConfigError for a value that is present but wrong (naming the variable).
 */
export function llmConfigFromEnv(env: Env = process.env): LlmConfig | null {
  if (!llmConfigured(env)) return null;
  const baseURL = env.OPENAI_BASE_URL?.trim() || undefined;
  if (baseURL) {
    let u: URL;
    try {
      u = new URL(baseURL);
    } catch {
      throw new LlmConfigError(`OPENAI_BASE_URL='${baseURL}': expected an http(s) URL such as http://127.0.0.1:8000/v1`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') {
      throw new LlmConfigError(`OPENAI_BASE_URL='${baseURL}': expected an http(s) URL such as http://127.0.0.1:8000/v1`);
    }
  }
  const int = (n: number) => Number.isInteger(n) && n >= 0;
  const pos = (n: number) => Number.isInteger(n) && n > 0;
  return {
    model: env.PATCHVET_LLM_MODEL!.trim(),
    verifyModel: env.PATCHVET_LLM_VERIFY_MODEL?.trim() || null,
    baseURL,
    apiKey: env.OPENAI_API_KEY?.trim() || NO_KEY,
    timeoutMs: Math.round(num(env, 'PATCHVET_LLM_TIMEOUT', 60, (n) => n > 0, 'seconds (e.g. 60 or 0.5)') * 1000),
    maxRetries: num(env, 'PATCHVET_LLM_RETRIES', 3, int, 'a whole number of retries'),
    concurrency: num(env, 'PATCHVET_LLM_CONCURRENCY', 2, pos, 'a whole number of requests, at least 1'),
    patchTokens: num(env, 'PATCHVET_LLM_PATCH_TOKENS', 30_000, pos, 'a whole number of tokens'),
    dailyTokens: num(env, 'PATCHVET_LLM_DAILY_TOKENS', 2_000_000, int, 'a whole number of tokens (0: no limit)'),
    maxOutputTokens: num(env, 'PATCHVET_LLM_MAX_OUTPUT_TOKENS', 2000, pos, 'a whole number of tokens'),
    maxFindings: num(env, 'PATCHVET_LLM_MAX_FINDINGS', 3, int, 'a whole number'),
    minConfidence: num(env, 'PATCHVET_LLM_MIN_CONFIDENCE', 0.7, (n) => n >= 0 && n <= 1, 'a number from 0 to 1'),
    cacheTtlSeconds: Math.round(num(env, 'PATCHVET_LLM_CACHE_DAYS', 30, (n) => n > 0, 'a number of days') * 86400),
    temperature: env.PATCHVET_LLM_TEMPERATURE?.trim() ? num(env, 'PATCHVET_LLM_TEMPERATURE', 0, (n) => n >= 0 && n <= 2, 'a number from 0 to 2') : undefined,
    maxRetryAfterMs: 120_000,
  };
}

/** The endpoint as it may be shown (no credentials, no query). */
export function endpointLabel(c: Pick<LlmConfig, 'baseURL'>): string {
  if (!c.baseURL) return 'https://api.openai.com/v1';
  try {
    const u = new URL(c.baseURL);
    return `${u.protocol}//${u.host}${u.pathname.replace(/\/+$/, '')}`;
  } catch {
    return '(invalid URL)';
  }
}
