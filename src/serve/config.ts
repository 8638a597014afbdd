// `patchvet serve` configuration: patchvet.yml (CONTRACT.md, "serve"), checked with ajv, with
// errors that name the key and say what to write instead. Secrets come from the environment
// (PATCHVET_IMAP_PASSWORD, PATCHVET_SMTP_PASSWORD; PostgreSQL reads PGPASSWORD itself), never
// from the file, so the file can be committed.
//
// Relative paths (store, outbox, source paths) are taken from the working directory, like the
// default `sqlite:./patchvet.db`; `~/` is the home directory.
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { resolve } from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import { parseDocument } from 'yaml';
import { didYouMean, fieldPath } from '../rules/schema.js';
import { appFromEnv, GITHUB_DEFAULTS, type GithubSettings } from '../github/config.js';

export type ReplyMode = 'off' | 'author' | 'list';

export interface ListConfig {
  /** The list's posting address, lower case ("xen-devel@lists.xenproject.org"). */
  address: string;
  /** List-Id to match besides the address (default: the address with "@" read as "."). */
  listId: string | null;
  /** Rule packs to run (pack names, e.g. ["xen", "common"]); null: every loaded pack. */
  rules: string[] | null;
  /** off: review and write the would-be reply to the outbox dir only; author: to the author only; list: to the author, Cc the list. */
  reply: ReplyMode;
  /** Senders never answered: addresses or globs ("*@bots.example.org", "syzbot*"). */
  mute: string[];
  /** Hold a reply until this many hours after the patch's Date (0: none). */
  embargoHours: number;
  /** At most this many replies to this list per rolling hour; the rest wait (null: no limit). */
  rateLimit: { perHour: number } | null;
  /** Override of the top-level maxAge for this list (seconds; null: no limit; undefined: the global one). */
  maxAgeSeconds?: number | null;
  /** false: never send this list's patches to the LLM, even when the LLM pass is on (default true). */
  llm?: boolean;
}

interface SourceCommon {
  /** The entry as written in the file (plus resolved paths and secrets): source constructors take it. */
  [key: string]: unknown;
}
export interface PublicInboxSourceConfig extends SourceCommon {
  type: 'public-inbox';
  path: string;
  /** Poll interval in seconds, when `every` is given. */
  everySeconds?: number;
}
export interface ImapSourceConfig extends SourceCommon {
  type: 'imap';
  url: string;
  /** From PATCHVET_IMAP_PASSWORD (or the URL); never logged. */
  password?: string;
  everySeconds?: number;
}
export interface MaildirSourceConfig extends SourceCommon {
  type: 'maildir';
  path: string;
  everySeconds?: number;
}
export interface LmtpSourceConfig extends SourceCommon {
  type: 'lmtp';
  listen: string;
  host: string;
  port: number;
}
export type SourceConfig = PublicInboxSourceConfig | ImapSourceConfig | MaildirSourceConfig | LmtpSourceConfig;

export interface EmailDeliveryConfig {
  mode: 'outbox' | 'smtp';
  /** Directory for .eml files (mode outbox, and reply: off previews in every mode). */
  outbox: string;
  /** smtp://[user@]host:port or smtps://...; null unless mode is smtp. */
  smtp: string | null;
  /** Password for the SMTP user, from PATCHVET_SMTP_PASSWORD (or the URL). */
  smtpPassword?: string;
  /** The From: header, e.g. "patchvet <bot@example.org>". */
  from: string;
  /** The bare address of `from`, lower case: mail from it is the bot's own. */
  fromAddress: string;
  /** Domain for the replies' Message-IDs (default: the domain of `from`). */
  domain: string;
  retry: {
    /** First retry delay after a temporary failure (4xx, network), doubled each time up to maxDelay. */
    initialDelaySeconds: number;
    maxDelaySeconds: number;
    /** A permanent failure (5xx) is retried this many times in all, then the reply is given up. */
    maxPermanentFailures: number;
  };
  /** How long a claimed reply is leased to one sender before another may take it over. */
  leaseSeconds: number;
  /** A reply that may already have gone out (lease lost mid-send) waits this long for its copy to show up on the list before it is re-sent. */
  confirmWaitSeconds: number;
}

export interface ServeConfig {
  /** The file read, or null for the defaults. */
  file: string | null;
  store: string;
  sources: SourceConfig[];
  lists: ListConfig[];
  /** Extra rule directories (like `review --rules`), besides the bundled rules/ unless defaultRules is false. */
  rulesDirs: string[];
  defaultRules: boolean;
  /** Never answer a patch dated more than this many seconds ago (null: no limit). Default 7 days. */
  maxAgeSeconds: number | null;
  delivery: { email: EmailDeliveryConfig };
  /** null: no HTTP server. */
  http: { host: string; port: number } | null;
  /** How often the loops look for work when nothing woke them (seconds). */
  pollSeconds: number;
  /**
   * The LLM pass (src/llm/): 'auto' (the default) runs it when the environment configures it
   * (PATCHVET_LLM_MODEL plus OPENAI_API_KEY or OPENAI_BASE_URL), 'on' requires that, 'off' never.
   */
  llm: 'auto' | 'on' | 'off';
  /** The GitHub App (`github:` plus Probot's APP_ID, PRIVATE_KEY, WEBHOOK_SECRET, GHE_HOST, GHE_PROTOCOL); app null: off. */
  github: GithubSettings;
}

export class ConfigError extends Error {
  constructor(
    readonly file: string | null,
    readonly problems: string[],
  ) {
    super(`${file ?? 'patchvet.yml'}: ${problems.length === 1 ? problems[0] : `\n  ${problems.join('\n  ')}`}`);
    this.name = 'ConfigError';
  }
}

export const DEFAULT_CONFIG_TEXT = '{}';
const DEFAULT_FROM = 'patchvet <patchvet@localhost>';

// ---------------------------------------------------------------- durations

const DURATION_RE = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$/;
const UNIT: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400, w: 604800 };

/** "60s", "5m", "1.5h", "7d", "500ms" or a number of seconds -> seconds; null when unreadable. */
export function parseDuration(v: unknown): number | null {
  if (typeof v === 'number') return Number.isFinite(v) && v >= 0 ? v : null;
  if (typeof v !== 'string') return null;
  const m = DURATION_RE.exec(v);
  if (!m) return null;
  return Number(m[1]) * UNIT[m[2] ?? 's']!;
}

/** "host:port", ":port", "port" or "[::1]:port" -> parts; null when unreadable. */
export function parseListen(v: string): { host: string; port: number } | null {
  const m = /^(?:(?:\[([^\]]+)\]|([^:]*)):)?(\d{1,5})$/.exec(v.trim());
  if (!m) return null;
  const port = Number(m[3]);
  if (port > 65535) return null;
  const host = m[1] ?? (m[2] || '127.0.0.1');
  return { host, port };
}

// ---------------------------------------------------------------- schema

const duration = { anyOf: [{ type: 'string' }, { type: 'number', minimum: 0 }] } as const;
const stringList = { type: 'array', items: { type: 'string', minLength: 1 } } as const;

const SOURCE_TYPES = ['public-inbox', 'imap', 'maildir', 'lmtp'] as const;
/** What each source type needs, checked by hand (sources may take further options of their own). */
const SOURCE_REQUIRED: Record<(typeof SOURCE_TYPES)[number], { key: string; example: string }> = {
  'public-inbox': { key: 'path', example: '{type: public-inbox, path: /srv/inbox/xen-devel, every: 60s}' },
  imap: { key: 'url', example: '{type: imap, url: imaps://user@host/INBOX}' },
  maildir: { key: 'path', example: '{type: maildir, path: ~/Maildir/xen-devel}' },
  lmtp: { key: 'listen', example: '{type: lmtp, listen: 127.0.0.1:2424}' },
};

const SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    store: { type: 'string', minLength: 1 },
    sources: { type: 'array', items: { type: 'object', required: ['type'], properties: { type: { enum: [...SOURCE_TYPES] } } } },
    lists: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['address'],
        properties: {
          address: { type: 'string', minLength: 3 },
          listId: { type: 'string', minLength: 1 },
          rules: stringList,
          reply: { enum: ['off', 'author', 'list', false] },
          mute: stringList,
          embargoHours: { type: 'number', minimum: 0 },
          rateLimit: {
            type: 'object',
            additionalProperties: false,
            required: ['perHour'],
            properties: { perHour: { type: 'integer', minimum: 1 } },
          },
          maxAge: { anyOf: [duration, { enum: ['off', false, null] }] },
          llm: { type: 'boolean' },
        },
      },
    },
    llm: { enum: ['auto', 'on', 'off', true, false] },
    rulesDirs: stringList,
    defaultRules: { type: 'boolean' },
    maxAge: { anyOf: [duration, { enum: ['off', false, null] }] },
    pollInterval: duration,
    delivery: {
      type: 'object',
      additionalProperties: false,
      properties: {
        email: {
          type: 'object',
          additionalProperties: false,
          properties: {
            mode: { enum: ['outbox', 'smtp'] },
            outbox: { type: 'string', minLength: 1 },
            smtp: { type: 'string', minLength: 1 },
            from: { type: 'string', minLength: 3 },
            domain: { type: 'string', minLength: 1 },
            lease: duration,
            confirmWait: duration,
            retry: {
              type: 'object',
              additionalProperties: false,
              properties: {
                initialDelay: duration,
                maxDelay: duration,
                maxPermanentFailures: { type: 'integer', minimum: 1 },
              },
            },
          },
        },
      },
    },
    github: {
      type: 'object',
      additionalProperties: false,
      properties: {
        dryRun: { type: 'boolean' },
        resolveThreads: { type: 'boolean' },
        dryRunFile: { type: 'string', minLength: 1 },
        archive: { type: 'string', minLength: 1 },
        mirror: { type: 'boolean' },
        mirrorFrom: stringList,
        checkName: { type: 'string', minLength: 1, maxLength: 100 },
        maxCommits: { type: 'integer', minimum: 1 },
        maxInline: { type: 'integer', minimum: 0 },
        lists: stringList,
        rules: stringList,
        repos: stringList,
        forward: {
          type: 'array',
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['repo', 'users'],
            properties: { repo: { type: 'string', minLength: 3 }, users: stringList },
          },
        },
        retry: {
          type: 'object',
          additionalProperties: false,
          properties: {
            rateLimit: { type: 'integer', minimum: 0 },
            secondaryRateLimit: { type: 'integer', minimum: 0 },
            serverErrors: { type: 'integer', minimum: 0 },
            maxWait: duration,
          },
        },
      },
    },
    http: {
      anyOf: [
        { enum: ['off', false, null] },
        {
          type: 'object',
          additionalProperties: false,
          properties: { listen: { anyOf: [{ type: 'string' }, { type: 'integer' }, { enum: ['off', false] }] } },
        },
      ],
    },
  },
} as const;

const HINTS: Record<string, string> = {
  store: 'write sqlite:./patchvet.db (one instance) or postgres://user@host/db (several)',
  sources: 'a list of {type: public-inbox|imap|maildir|lmtp, ...} entries',
  lists: 'a list of {address: list@example.org, rules: [xen, common], reply: off|author|list}',
  address: "the list's posting address, e.g. xen-devel@lists.xenproject.org",
  reply: 'one of off (outbox files only), author (mail the author only), list (mail the author, Cc the list)',
  rules: 'a list of rule pack names, e.g. [xen, common]',
  mute: 'a list of sender addresses or globs, e.g. ["*@bots.example.org"]',
  embargoHours: 'a number of hours, e.g. 24',
  perHour: 'a whole number of replies per hour, e.g. 20',
  mode: 'one of outbox (write .eml files) or smtp (send them)',
  from: 'e.g. "patchvet <bot@example.org>"',
  listen: 'host:port, e.g. 127.0.0.1:3000, or off',
  maxAge: 'a duration such as 7d or 36h, or off',
  maxPermanentFailures: 'a whole number, e.g. 3',
  archive: 'a URL with {messageId}, e.g. https://lore.kernel.org/xen-devel/{messageId}/',
  forward: 'a list of {repo: owner/name, users: [login, ...]}',
  users: 'a list of GitHub logins, e.g. [andyhhp, jbeulich]',
  repos: 'a list of owner/name repositories, e.g. [xen-project/xen]',
  maxCommits: 'a whole number, e.g. 100',
};

const ajv = new Ajv({ allErrors: true, strict: false, verbose: true });
const validate = ajv.compile(SCHEMA);

function lastKey(path: string): string {
  const m = /([A-Za-z]+)(?:\[\d+\])?$/.exec(path);
  return m ? m[1]! : path;
}

function describeErrors(errors: ErrorObject[]): string[] {
  const out = new Set<string>();
  // anyOf reports each branch; the branch errors say more than "must match a schema in anyOf".
  const anyOfPaths = new Set(errors.filter((e) => e.keyword === 'anyOf').map((e) => e.instancePath));
  for (const e of errors) {
    const field = fieldPath(e.instancePath);
    const hint = HINTS[lastKey(field)];
    switch (e.keyword) {
      case 'additionalProperties': {
        const key = (e.params as { additionalProperty: string }).additionalProperty;
        const allowed = Object.keys((e.parentSchema as { properties?: object }).properties ?? {});
        const dym = didYouMean(key, allowed);
        const where = field === '(top level)' ? '' : `${field}: `;
        out.add(
          `${where}unknown key "${key}": ${dym ? `did you mean "${dym}"?` : `allowed keys are ${allowed.join(', ')}`}`,
        );
        break;
      }
      case 'required': {
        const key = (e.params as { missingProperty: string }).missingProperty;
        out.add(`${fieldPath(e.instancePath, key)}: missing: ${HINTS[key] ?? 'add it'}`);
        break;
      }
      case 'enum': {
        if (anyOfPaths.has(e.instancePath)) continue;
        const allowed = ((e.params as { allowedValues: unknown[] }).allowedValues ?? []).filter((v) => v !== false && v !== null);
        out.add(`${field}: ${JSON.stringify(e.data)} is not allowed: use one of ${allowed.join(', ')}`);
        break;
      }
      case 'anyOf':
        out.add(`${field}: ${JSON.stringify(e.data)} is not valid: ${hint ?? 'see the README for its form'}`);
        break;
      case 'type':
        if (anyOfPaths.has(e.instancePath)) continue;
        out.add(`${field}: must be ${(e.params as { type: string }).type}${hint ? `: ${hint}` : ''}`);
        break;
      default:
        if (anyOfPaths.has(e.instancePath)) continue;
        out.add(`${field}: ${e.message ?? 'is not valid'}${hint ? `: ${hint}` : ''}`);
    }
  }
  return [...out];
}

// ---------------------------------------------------------------- building

function expandPath(p: string): string {
  if (p === '~') return homedir();
  if (p.startsWith('~/')) return resolve(homedir(), p.slice(2));
  return resolve(p);
}

/** The bare address of "Name <addr>" or "addr", lower case; null when there is none. */
export function bareAddress(s: string): string | null {
  const m = /<([^<>\s]+@[^<>\s]+)>\s*$/.exec(s) ?? /^\s*([^<>\s"]+@[^<>\s"]+)\s*$/.exec(s);
  return m ? m[1]!.toLowerCase() : null;
}

function maxAge(v: unknown, field: string, problems: string[]): number | null | undefined {
  if (v === undefined) return undefined;
  if (v === 'off' || v === false || v === null || v === 0) return null;
  const s = parseDuration(v);
  if (s === null) problems.push(`${field}: ${JSON.stringify(v)} is not a duration: ${HINTS.maxAge}`);
  return s;
}

function durationOr(v: unknown, dflt: number, field: string, problems: string[], min = 0): number {
  if (v === undefined) return dflt;
  const s = parseDuration(v);
  if (s === null || s < min) {
    problems.push(`${field}: ${JSON.stringify(v)} is not a duration: write e.g. 30s, 5m, 1h${min ? ` (at least ${min}s)` : ''}`);
    return dflt;
  }
  return s;
}

function urlProblem(url: string, schemes: string[]): string | null {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return `"${redactUrl(url)}" is not a URL`;
  }
  const scheme = u.protocol.replace(/:$/, '');
  if (!schemes.includes(scheme)) return `scheme "${scheme}" is not supported: use ${schemes.map((s) => `${s}://`).join(' or ')}`;
  if (!u.hostname) return 'the URL has no host';
  return null;
}

/** A URL with its password (if any) masked, for logs and errors. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^/@:]*:)[^/@]*@/i, '$1[redacted]@');
}

type Env = Record<string, string | undefined>;

/** Check and complete a parsed YAML document. Throws ConfigError listing every problem. */
export function buildConfig(
  data: unknown,
  opts: { file?: string | null; env?: Env; readFile?: (path: string) => string } = {},
): ServeConfig {
  const file = opts.file ?? null;
  const env = opts.env ?? process.env;
  if (data === null || data === undefined) data = {};
  if (typeof data !== 'object' || Array.isArray(data)) {
    throw new ConfigError(file, ['the file must be a YAML mapping (store:, sources:, lists:, delivery:, http:)']);
  }
  if (!validate(data)) throw new ConfigError(file, describeErrors(validate.errors ?? []));
  const d = data as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  const problems: string[] = [];

  // store
  const store: string = d.store ?? 'sqlite:./patchvet.db';
  let storeUrl = store;
  if (store.startsWith('sqlite:')) {
    const p = store.slice('sqlite:'.length);
    if (!p) problems.push('store: "sqlite:" needs a file: write sqlite:./patchvet.db');
    else if (p !== ':memory:') storeUrl = `sqlite:${expandPath(p)}`;
  } else if (!/^postgres(ql)?:\/\//.test(store)) {
    problems.push(`store: "${redactUrl(store)}" is not a store URL: ${HINTS.store}`);
  }

  // sources
  const sources: SourceConfig[] = [];
  (d.sources ?? []).forEach((s: Record<string, unknown>, i: number) => {
    const type = s.type as SourceConfig['type'];
    const need = SOURCE_REQUIRED[type];
    const v = s[need.key];
    if (typeof v !== 'string' || !v) {
      problems.push(`sources[${i}].${need.key}: missing for a ${type} source: write ${need.example}`);
      return;
    }
    const every = s.every === undefined ? undefined : parseDuration(s.every);
    if (s.every !== undefined && (every === null || every === undefined || every <= 0)) {
      problems.push(`sources[${i}].every: ${JSON.stringify(s.every)} is not a duration: write e.g. 60s or 5m`);
      return;
    }
    if (type === 'public-inbox' || type === 'maildir') {
      sources.push({ ...s, type, path: expandPath(v), ...(every !== undefined ? { everySeconds: every } : {}) } as SourceConfig);
    } else if (type === 'imap') {
      const p = urlProblem(v, ['imap', 'imaps']);
      if (p) {
        problems.push(`sources[${i}].url: ${p}: write ${need.example}`);
        return;
      }
      const u = new URL(v);
      const password = env.PATCHVET_IMAP_PASSWORD ?? (u.password ? decodeURIComponent(u.password) : undefined);
      const entry: ImapSourceConfig = { ...s, type, url: v, everySeconds: every ?? undefined };
      if (password !== undefined) entry.password = password;
      sources.push(entry);
    } else {
      const l = parseListen(v);
      if (!l) {
        problems.push(`sources[${i}].listen: "${v}" is not host:port: write e.g. 127.0.0.1:2424`);
        return;
      }
      sources.push({ ...s, type: 'lmtp', listen: v, host: l.host, port: l.port });
    }
  });

  // global max age
  const globalMaxAge = maxAge(d.maxAge, 'maxAge', problems);

  // lists
  const lists: ListConfig[] = [];
  const seenLists = new Set<string>();
  (d.lists ?? []).forEach((l: Record<string, any>, i: number) => {
    const address = String(l.address).trim().toLowerCase();
    if (!/^[^@\s<>]+@[^@\s<>]+$/.test(address)) {
      problems.push(`lists[${i}].address: "${l.address}" is not a mail address: ${HINTS.address}`);
      return;
    }
    if (seenLists.has(address)) problems.push(`lists[${i}].address: ${address} is listed twice: keep one entry`);
    seenLists.add(address);
    const entry: ListConfig = {
      address,
      listId: l.listId ? String(l.listId).replace(/^.*<([^>]+)>.*$/, '$1').trim().toLowerCase() : null,
      rules: l.rules ?? null,
      reply: l.reply === false || l.reply === undefined ? 'off' : l.reply,
      mute: (l.mute ?? []).map((m: string) => m.trim().toLowerCase()),
      embargoHours: l.embargoHours ?? 0,
      rateLimit: l.rateLimit ? { perHour: l.rateLimit.perHour } : null,
      llm: l.llm ?? true,
    };
    const ma = maxAge(l.maxAge, `lists[${i}].maxAge`, problems);
    if (ma !== undefined) entry.maxAgeSeconds = ma;
    lists.push(entry);
  });

  // delivery
  const e = (d.delivery?.email ?? {}) as Record<string, any>;
  const mode: 'outbox' | 'smtp' = e.mode ?? 'outbox';
  const from: string = e.from ?? DEFAULT_FROM;
  const fromAddress = bareAddress(from);
  if (!fromAddress) problems.push(`delivery.email.from: "${from}" has no mail address: ${HINTS.from}`);
  if (/[\r\n]/.test(from)) problems.push('delivery.email.from: must be one line');
  if (e.from === undefined && lists.some((l) => l.reply !== 'off')) {
    problems.push(
      `delivery.email.from: missing: lists[${lists.findIndex((l) => l.reply !== 'off')}] replies by mail, so say who sends: ${HINTS.from}`,
    );
  }
  let smtp: string | null = null;
  let smtpPassword: string | undefined;
  if (mode === 'smtp') {
    if (!e.smtp) problems.push('delivery.email.smtp: missing for mode smtp: write smtp://127.0.0.1:25 (or smtps://user@host:465)');
    else {
      const p = urlProblem(e.smtp, ['smtp', 'smtps']);
      if (p) problems.push(`delivery.email.smtp: ${p}: write smtp://127.0.0.1:25 (or smtps://user@host:465)`);
      else {
        smtp = e.smtp;
        const u = new URL(e.smtp);
        smtpPassword = env.PATCHVET_SMTP_PASSWORD ?? (u.password ? decodeURIComponent(u.password) : undefined);
        if (u.username && smtpPassword === undefined) {
          problems.push(`delivery.email.smtp: user "${decodeURIComponent(u.username)}" needs a password: set PATCHVET_SMTP_PASSWORD`);
        }
      }
    }
  }
  const r = (e.retry ?? {}) as Record<string, unknown>;
  const email: EmailDeliveryConfig = {
    mode,
    outbox: expandPath(e.outbox ?? './outbox'),
    smtp,
    from,
    fromAddress: fromAddress ?? 'patchvet@localhost',
    domain: e.domain ?? (fromAddress ? fromAddress.split('@')[1]! : 'patchvet.invalid'),
    retry: {
      initialDelaySeconds: durationOr(r.initialDelay, 30, 'delivery.email.retry.initialDelay', problems),
      maxDelaySeconds: durationOr(r.maxDelay, 3600, 'delivery.email.retry.maxDelay', problems),
      maxPermanentFailures: (r.maxPermanentFailures as number | undefined) ?? 3,
    },
    leaseSeconds: durationOr(e.lease, 120, 'delivery.email.lease', problems, 1),
    confirmWaitSeconds: durationOr(e.confirmWait, 300, 'delivery.email.confirmWait', problems),
  };
  if (smtpPassword !== undefined) email.smtpPassword = smtpPassword;
  if (!/^[A-Za-z0-9.-]+$/.test(email.domain)) problems.push(`delivery.email.domain: "${email.domain}" is not a domain name`);

  // http
  let http: ServeConfig['http'] = { host: '127.0.0.1', port: 3000 };
  if (d.http === 'off' || d.http === false || d.http === null) http = null;
  else if (d.http && d.http.listen !== undefined) {
    const v = d.http.listen;
    if (v === 'off' || v === false) http = null;
    else {
      const l = parseListen(String(v));
      if (!l) problems.push(`http.listen: "${v}" is not host:port: ${HINTS.listen}`);
      else http = l;
    }
  }

  const pollSeconds = durationOr(d.pollInterval, 5, 'pollInterval', problems);
  const github = githubSettings(d.github ?? {}, env, lists, problems, opts.readFile ?? ((p) => readFileSync(p, 'utf8')));
  if (problems.length) throw new ConfigError(file, problems);
  return {
    file,
    store: storeUrl,
    sources,
    lists,
    rulesDirs: (d.rulesDirs ?? []).map(expandPath),
    defaultRules: d.defaultRules ?? true,
    maxAgeSeconds: globalMaxAge === undefined ? 7 * 86400 : globalMaxAge,
    delivery: { email },
    http,
    pollSeconds: pollSeconds > 0 ? pollSeconds : 5,
    llm: d.llm === true ? 'on' : d.llm === false ? 'off' : (d.llm ?? 'auto'),
    github,
  };
}

const REPO_RE = /^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+$/;

/** The `github:` section and the App's environment variables. */
function githubSettings(
  g: Record<string, any>, // eslint-disable-line @typescript-eslint/no-explicit-any
  env: Env,
  lists: ListConfig[],
  problems: string[],
  readFile: (path: string) => string,
): GithubSettings {
  const app = appFromEnv(env, readFile);
  if (Array.isArray(app)) problems.push(...app.map((p) => `GitHub App environment: ${p}`));
  const repo = (r: string, field: string): string => {
    if (!REPO_RE.test(r.trim())) problems.push(`${field}: "${r}" is not owner/name: ${HINTS.repos}`);
    return r.trim().toLowerCase();
  };
  const archive: string = g.archive ?? GITHUB_DEFAULTS.archive;
  if (!/\{(raw)?messageId\}/.test(archive)) problems.push(`github.archive: "${archive}" has no {messageId}: ${HINTS.archive}`);
  else if (!/^https?:\/\//.test(archive)) problems.push(`github.archive: "${archive}" is not an http(s) URL: ${HINTS.archive}`);
  const r = (g.retry ?? {}) as Record<string, unknown>;
  const maxWait = durationOr(r.maxWait, GITHUB_DEFAULTS.retry.maxWaitSeconds, 'github.retry.maxWait', problems);
  const forward = ((g.forward ?? []) as Array<{ repo: string; users: string[] }>).map((f, i) => ({
    repo: repo(f.repo, `github.forward[${i}].repo`),
    users: f.users.map((u) => u.trim().toLowerCase()),
  }));
  const seen = new Set<string>();
  forward.forEach((f, i) => {
    if (seen.has(f.repo)) problems.push(`github.forward[${i}].repo: ${f.repo} is listed twice: keep one entry`);
    seen.add(f.repo);
  });
  if (forward.length && !lists.length) problems.push('github.forward: forwarding PR comments needs the list in lists: (its address is Cc\'d)');
  return {
    app: Array.isArray(app) ? null : app,
    dryRun: g.dryRun ?? GITHUB_DEFAULTS.dryRun,
    resolveThreads: g.resolveThreads ?? GITHUB_DEFAULTS.resolveThreads,
    dryRunFile: g.dryRunFile ? expandPath(g.dryRunFile) : null,
    archive,
    mirror: g.mirror ?? GITHUB_DEFAULTS.mirror,
    mirrorFrom: ((g.mirrorFrom as string[] | undefined) ?? GITHUB_DEFAULTS.mirrorFrom).map((x) => x.trim().toLowerCase()),
    checkName: g.checkName ?? GITHUB_DEFAULTS.checkName,
    maxCommits: g.maxCommits ?? GITHUB_DEFAULTS.maxCommits,
    maxInline: g.maxInline ?? GITHUB_DEFAULTS.maxInline,
    lists: ((g.lists as string[] | undefined) ?? lists.map((l) => l.address)).map((x) => x.trim().toLowerCase()),
    rules: (g.rules as string[] | undefined) ?? null,
    repos: ((g.repos as string[] | undefined) ?? []).map((x, i) => repo(x, `github.repos[${i}]`)),
    forward,
    retry: {
      rateLimit: (r.rateLimit as number | undefined) ?? GITHUB_DEFAULTS.retry.rateLimit,
      secondaryRateLimit: (r.secondaryRateLimit as number | undefined) ?? GITHUB_DEFAULTS.retry.secondaryRateLimit,
      serverErrors: (r.serverErrors as number | undefined) ?? GITHUB_DEFAULTS.retry.serverErrors,
      maxWaitSeconds: maxWait,
    },
  };
}

/** Parse YAML text into a checked config. */
export function parseConfig(text: string, opts: { file?: string | null; env?: Env } = {}): ServeConfig {
  const doc = parseDocument(text, { prettyErrors: true });
  if (doc.errors.length) {
    throw new ConfigError(
      opts.file ?? null,
      doc.errors.map((e) => `YAML: ${e.message.split('\n')[0]}${e.linePos ? ` (line ${e.linePos[0].line})` : ''}`),
    );
  }
  return buildConfig(doc.toJS(), opts);
}

/** Read and check a config file. A missing file is an error naming it (serve never guesses silently). */
export function loadConfig(file: string, env: Env = process.env): ServeConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ConfigError(file, [
      code === 'ENOENT'
        ? 'no such file: write one (see the README, "serve") or point --config at it'
        : `cannot read it: ${(e as Error).message}`,
    ]);
  }
  return parseConfig(text, { file, env });
}

/** The config as it may be logged: no secrets, URLs with passwords masked. */
export function redactedConfig(c: ServeConfig): unknown {
  return {
    ...c,
    store: redactUrl(c.store),
    sources: c.sources.map((s) => {
      const { password, ...rest } = s as SourceConfig & { password?: string };
      return { ...rest, ...(typeof rest.url === 'string' ? { url: redactUrl(rest.url) } : {}), ...(password ? { password: '[redacted]' } : {}) };
    }),
    delivery: {
      email: {
        ...c.delivery.email,
        smtp: c.delivery.email.smtp ? redactUrl(c.delivery.email.smtp) : null,
        smtpPassword: c.delivery.email.smtpPassword ? '[redacted]' : undefined,
      },
    },
    github: {
      ...c.github,
      app: c.github.app ? { ...c.github.app, privateKey: '[redacted]', webhookSecret: '[redacted]' } : null,
    },
  };
}
