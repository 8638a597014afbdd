// GitHub settings, from two places:
//   - the operator's patchvet.yml, `github:` (read by src/serve/config.ts into GithubSettings),
//     plus Probot's environment variables for the App itself (APP_ID, PRIVATE_KEY or
//     PRIVATE_KEY_PATH, WEBHOOK_SECRET, GHE_HOST, GHE_PROTOCOL);
//   - each repository's `.github/patchvet.yml` (read through Probot's context.config), which
//     chooses packs, severity, ignored paths and mutes for its own pull requests.
// Pure: parsing and checking only.
import type { Severity } from '../model.js';
import { matchAnyGlob } from '../rules/glob.js';

/** The App's credentials and GitHub host (from the environment). */
export interface GithubAppEnv {
  appId: string;
  privateKey: string;
  webhookSecret: string;
  /** "github.example.org" or "127.0.0.1:8080" (GHE_HOST); null for github.com. */
  host: string | null;
  /** GHE_PROTOCOL: https (default) or http (a local fake GitHub in tests). */
  protocol: 'https' | 'http';
  /** REST base URL: https://api.github.com, or <protocol>://<host>/api/v3. */
  baseUrl: string;
}

export interface ForwardRule {
  /** "owner/name" (lower case). */
  repo: string;
  /** GitHub logins allowed to have their PR comments forwarded (lower case). */
  users: string[];
}

/** The operator's `github:` settings (patchvet.yml). */
export interface GithubSettings {
  /** null: the App is not configured (no APP_ID/PRIVATE_KEY/WEBHOOK_SECRET): nothing is posted. */
  app: GithubAppEnv | null;
  /** Read GitHub and log what would be posted, post nothing. */
  dryRun: boolean;
  /**
   * Also resolve (collapse) the review conversation of a finding that is gone, and unresolve
   * it when the finding returns. GitHub allows this only with the Contents: write permission,
   * which app.yml does not ask for: off unless the operator granted it.
   */
  resolveThreads: boolean;
  /** Also append what would be posted to this file (JSON lines). */
  dryRunFile: string | null;
  /** Archive URL of a list mail: "{messageId}" (no angle brackets, URL-encoded) and "{rawMessageId}". */
  archive: string;
  /** Mirror list replies to linked PRs. */
  mirror: boolean;
  /** Senders whose list replies are mirrored (address globs); ["*"]: everyone but the bot. */
  mirrorFrom: string[];
  checkName: string;
  /** Review at most this many commits of one PR (the rest is said in the check run). */
  maxCommits: number;
  /** At most this many inline comments in one review; the rest go in the review body. */
  maxInline: number;
  /** Lists PR commits count as sent to (for list-scoped rules); empty: none. */
  lists: string[];
  /** Rule packs when a repository names none; null: every loaded pack. */
  rules: string[] | null;
  /** Repositories the App acts on ("owner/name", lower case); empty: every installation. */
  repos: string[];
  forward: ForwardRule[];
  retry: {
    /** Retries after a primary rate limit (HTTP 403/429 with x-ratelimit-remaining: 0). */
    rateLimit: number;
    /** Retries after a secondary rate limit. */
    secondaryRateLimit: number;
    /** Retries after a 5xx / network error. */
    serverErrors: number;
    /** Never wait longer than this for a limit to reset (seconds): the job is retried later instead. */
    maxWaitSeconds: number;
  };
}

export const DEFAULT_ARCHIVE = 'https://lore.kernel.org/all/{messageId}/';

export const GITHUB_DEFAULTS: Omit<GithubSettings, 'app'> = {
  dryRun: false,
  resolveThreads: false,
  dryRunFile: null,
  archive: DEFAULT_ARCHIVE,
  mirror: true,
  mirrorFrom: ['*'],
  checkName: 'patchvet',
  maxCommits: 100,
  maxInline: 50,
  lists: [],
  rules: null,
  repos: [],
  forward: [],
  retry: { rateLimit: 2, secondaryRateLimit: 1, serverErrors: 2, maxWaitSeconds: 60 },
};

/** The archive URL of a mail (the template's {messageId} without "<>", URL-encoded). */
export function archiveUrl(template: string, messageId: string): string {
  const bare = messageId.replace(/^<|>$/g, '');
  return template.replaceAll('{messageId}', encodeURIComponent(bare).replace(/%40/g, '@')).replaceAll('{rawMessageId}', bare);
}

type Env = Record<string, string | undefined>;

/**
 * The App settings from Probot's environment variables. null when none of APP_ID, PRIVATE_KEY /
 * PRIVATE_KEY_PATH, WEBHOOK_SECRET is set (the App is off); a list of problems when only some are.
 */
export function appFromEnv(env: Env, readFile: (path: string) => string): GithubAppEnv | null | string[] {
  const appId = env.APP_ID?.trim() || '';
  const keyPath = env.PRIVATE_KEY_PATH?.trim() || '';
  let privateKey = env.PRIVATE_KEY ?? '';
  const secret = env.WEBHOOK_SECRET ?? '';
  if (!appId && !privateKey && !keyPath && !secret) return null;
  const problems: string[] = [];
  if (!appId) problems.push('APP_ID is not set: give the GitHub App id');
  else if (!/^\d+$/.test(appId)) problems.push(`APP_ID "${appId}" is not a number`);
  if (!privateKey && keyPath) {
    try {
      privateKey = readFile(keyPath);
    } catch (e) {
      problems.push(`PRIVATE_KEY_PATH ${keyPath}: ${(e as Error).message}`);
    }
  }
  if (!privateKey && !keyPath) problems.push('PRIVATE_KEY (or PRIVATE_KEY_PATH) is not set: give the App private key (PEM)');
  // A key pasted into an environment variable often has its newlines escaped.
  if (privateKey.includes('\\n') && !privateKey.includes('\n')) privateKey = privateKey.replace(/\\n/g, '\n');
  if (privateKey && !/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(privateKey)) problems.push('PRIVATE_KEY is not a PEM private key');
  if (!secret) problems.push('WEBHOOK_SECRET is not set: without it webhooks cannot be verified (the App stays off)');
  const protocol = (env.GHE_PROTOCOL?.trim() || 'https').toLowerCase();
  if (protocol !== 'https' && protocol !== 'http') problems.push(`GHE_PROTOCOL "${protocol}" must be https or http`);
  const host = env.GHE_HOST?.trim() || null;
  if (host && !/^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9a-fA-F:]+\](:\d{1,5})?$/.test(host)) problems.push(`GHE_HOST "${host}" is not a host name (write github.example.org or host:port)`);
  if (problems.length) return problems;
  return {
    appId,
    privateKey,
    webhookSecret: secret,
    host,
    protocol: protocol as 'https' | 'http',
    baseUrl: host ? `${protocol}://${host}/api/v3` : 'https://api.github.com',
  };
}

// ---------------------------------------------------------------- the repository's config

/** `.github/patchvet.yml` in the repository (or its owner's `.github` repository). */
export interface RepoConfig {
  /** false: patchvet leaves this repository alone. */
  enabled: boolean;
  /** Rule packs; null: the operator's default. */
  packs: string[] | null;
  minSeverity: Severity;
  /** Globs of paths whose findings are dropped. */
  ignorePaths: string[];
  /** Rule ids or globs ("xen/style", "common/*"): never reported here. */
  muteRules: string[];
  /** PR authors (logins or globs, e.g. "dependabot[bot]"): their PRs are not reviewed. */
  muteAuthors: string[];
  /** The check run fails at or above this severity; null: it never fails (neutral). */
  failOn: Severity | null;
  checks: boolean;
  dryRun: boolean;
  /** false: never forward this repository's PR comments to the list, whatever the operator allows. */
  forward: boolean;
  /** What was wrong in the file (reported in the check run, never fatal). */
  problems: string[];
}

export const REPO_CONFIG_FILE = 'patchvet.yml';

export const REPO_DEFAULTS: RepoConfig = {
  enabled: true,
  packs: null,
  minSeverity: 'info',
  ignorePaths: [],
  muteRules: [],
  muteAuthors: [],
  failOn: null,
  checks: true,
  dryRun: false,
  forward: true,
  problems: [],
};

const SEVERITIES: readonly Severity[] = ['info', 'warning', 'error'];

export function severityRank(s: Severity): number {
  return SEVERITIES.indexOf(s);
}

const KNOWN_KEYS = ['enabled', 'packs', 'rules', 'minSeverity', 'ignorePaths', 'mute', 'failOn', 'checks', 'dryRun', 'forward'];

function stringList(v: unknown, key: string, problems: string[]): string[] | null {
  if (v === undefined || v === null) return null;
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list) || !list.every((x) => typeof x === 'string' && x.trim() !== '')) {
    problems.push(`${key}: must be a list of strings`);
    return null;
  }
  return list.map((x) => x.trim());
}

/**
 * Check a repository config (as Probot's context.config returns it: YAML parsed, or null when
 * there is none). Unknown keys and bad values are reported in `problems` and ignored.
 *
 * `mute` takes rule ids (they contain "/", globs allowed) and PR author logins.
 */
export function parseRepoConfig(data: unknown): RepoConfig {
  const c: RepoConfig = { ...REPO_DEFAULTS, problems: [] };
  if (data === null || data === undefined) return c;
  if (typeof data !== 'object' || Array.isArray(data)) {
    c.problems.push('the file must be a YAML mapping (packs:, minSeverity:, ignorePaths:, mute:, ...)');
    return c;
  }
  const d = data as Record<string, unknown>;
  for (const k of Object.keys(d)) if (!KNOWN_KEYS.includes(k)) c.problems.push(`unknown key "${k}": allowed keys are ${KNOWN_KEYS.join(', ')}`);
  const bool = (k: 'enabled' | 'checks' | 'dryRun' | 'forward') => {
    if (d[k] === undefined) return;
    if (typeof d[k] === 'boolean') c[k] = d[k] as boolean;
    else c.problems.push(`${k}: must be true or false`);
  };
  bool('enabled');
  bool('checks');
  bool('dryRun');
  bool('forward');
  const packs = stringList(d.packs ?? d.rules, d.packs !== undefined ? 'packs' : 'rules', c.problems);
  if (packs) c.packs = packs;
  const sev = (k: 'minSeverity' | 'failOn'): Severity | null | undefined => {
    const v = d[k];
    if (v === undefined) return undefined;
    if (k === 'failOn' && (v === null || v === false || v === 'off' || v === 'never')) return null;
    if (typeof v === 'string' && (SEVERITIES as string[]).includes(v)) return v as Severity;
    c.problems.push(`${k}: ${JSON.stringify(v)} is not one of ${SEVERITIES.join(', ')}${k === 'failOn' ? ', off' : ''}`);
    return undefined;
  };
  const min = sev('minSeverity');
  if (min) c.minSeverity = min;
  const failOn = sev('failOn');
  if (failOn !== undefined) c.failOn = failOn;
  const ignore = stringList(d.ignorePaths, 'ignorePaths', c.problems);
  if (ignore) c.ignorePaths = ignore;
  const mute = stringList(d.mute, 'mute', c.problems) ?? [];
  c.muteRules = mute.filter((m) => m.includes('/'));
  c.muteAuthors = mute.filter((m) => !m.includes('/')).map((m) => m.toLowerCase());
  return c;
}

/** Shell-style glob ("*", "?") over a rule id or login, case-insensitive. */
function globMatch(glob: string, s: string): boolean {
  const re = glob
    .toLowerCase()
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${re}$`).test(s.toLowerCase());
}

export function ruleMuted(cfg: Pick<RepoConfig, 'muteRules'>, rule: string): boolean {
  return cfg.muteRules.some((g) => globMatch(g, rule));
}

export function authorMuted(cfg: Pick<RepoConfig, 'muteAuthors'>, login: string | null | undefined): boolean {
  return !!login && cfg.muteAuthors.some((g) => globMatch(g, login));
}

export function pathIgnored(cfg: Pick<RepoConfig, 'ignorePaths'>, path: string | null): boolean {
  return !!path && matchAnyGlob(path, cfg.ignorePaths);
}

/** Address globs ("*@citrix.com", "*") over a sender. */
export function senderAllowed(globs: readonly string[], address: string): boolean {
  return globs.some((g) => globMatch(g, address));
}
