// The Octokit patchvet talks to GitHub with: Probot's (throttling, retry, pagination, REST
// methods, the config plugin) with limits. Probot's defaults retry rate limits and secondary
// rate limits forever; here a request is retried a few times, and never after a wait longer
// than maxWait: the job is rescheduled for later instead (src/github/worker.ts), so a webhook
// never hangs for an hour. The throttling plugin itself spaces writes (one at a time, 1 s
// apart, per installation), which keeps patchvet under GitHub's secondary limits; patchvet also
// batches: one review per push, annotations 50 per request.
import { ProbotOctokit } from 'probot';
import type { GithubSettings } from './config.js';

export type OctokitClass = typeof ProbotOctokit;
export type Octokit = InstanceType<OctokitClass>;

interface ThrottleRequest {
  method?: string;
  url?: string;
}
interface Logs {
  log: { warn(msg: string): void; info(msg: string): void };
}

/** HTTP statuses the retry plugin leaves alone: client errors, and rate limits (the throttling plugin's business). */
export const DO_NOT_RETRY = [400, 401, 403, 404, 410, 422, 429, 451];

/** ProbotOctokit with capped retries (see the top of this file). */
export function cappedOctokit(limits: GithubSettings['retry']): OctokitClass {
  return ProbotOctokit.defaults((instanceOptions: Record<string, unknown>) => {
    const given = (instanceOptions.throttle ?? {}) as Record<string, unknown>;
    const throttle = {
      ...given,
      enabled: given.enabled !== false,
      onRateLimit: (retryAfter: number, options: ThrottleRequest, octokit: Logs, retryCount: number) => {
        const retry = retryCount < limits.rateLimit && retryAfter <= limits.maxWaitSeconds;
        octokit.log.warn(
          `GitHub rate limit on ${options.method} ${options.url}: ${retry ? `retrying in ${retryAfter} s (retry ${retryCount + 1} of ${limits.rateLimit})` : `giving up (reset in ${retryAfter} s); the work is retried later`}`,
        );
        return retry;
      },
      onSecondaryRateLimit: (retryAfter: number, options: ThrottleRequest, octokit: Logs, retryCount: number) => {
        const retry = retryCount < limits.secondaryRateLimit && retryAfter <= limits.maxWaitSeconds;
        octokit.log.warn(
          `GitHub secondary rate limit on ${options.method} ${options.url}: ${retry ? `retrying in ${retryAfter} s` : 'giving up; the work is retried later'}`,
        );
        return retry;
      },
    };
    return {
      ...instanceOptions,
      throttle,
      retry: { retries: limits.serverErrors, doNotRetry: DO_NOT_RETRY, ...((instanceOptions.retry as object | undefined) ?? {}) },
    };
  }) as unknown as OctokitClass;
}
