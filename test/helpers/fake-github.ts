// Test kit for the GitHub App: the reference xen-devel patch as a pull request commit, signed
// webhook deliveries, a throwaway App key, and FakeGithub: a small GitHub REST server on
// loopback (served under /api/v3, as GitHub Enterprise is, so `serve` reaches it through
// GHE_HOST and GHE_PROTOCOL=http). It keeps state (reviews, comments, check runs), records every
// request, checks the installation token, and answers 422 to a review whose comment is not on a
// line of the PR's diff, as GitHub does.
import type { LlmReviewer } from '../../src/llm/review.js';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { sign } from '@octokit/webhooks-methods';
import { join } from 'node:path';
import nock from 'nock';
import { pino } from 'pino';
import { ProbotOctokit } from 'probot';
import type { RawMessage } from '../../src/model.js';
import { splitPatchBody } from '../../src/patch/diff.js';
import { recordFromRaw } from '../../src/mail/record.js';
import { prDiff, type PrFile } from '../../src/github/pr.js';
import type { OctokitClass } from '../../src/github/octokit.js';
import { GITHUB_DEFAULTS, type GithubSettings } from '../../src/github/config.js';
import { GithubIntegration } from '../../src/github/integration.js';
import type { LoadError } from '../../src/rules/load.js';
import type { KnowledgeBase, RuleSpec } from '../../src/rules/types.js';
import { buildConfig, type ServeConfig } from '../../src/serve/config.js';
import { startHttp, type HttpHandle } from '../../src/serve/http.js';
import { openStore, type Store } from '../../src/store/store.js';
import { XEN_THREAD, builtinRules, mboxMessages, type Rules } from './serve.js';

/** ProbotOctokit without throttling and retries (the function form keeps Probot's other defaults). */
export const TestOctokit = ProbotOctokit.defaults((instanceOptions: Record<string, unknown>) => ({
  ...instanceOptions,
  retry: { enabled: false },
  throttle: { enabled: false },
})) as unknown as OctokitClass;

let key: string | null = null;
/** A fresh RSA key in PKCS#1 PEM (the form GitHub hands out); generated once per test file, never stored. */
export function testPrivateKey(): string {
  key ??= generateKeyPairSync('rsa', {
    modulusLength: 2048,
    privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  }).privateKey;
  return key;
}

// ---------------------------------------------------------------- the reference patch as a commit

export interface FakeCommit {
  sha: string;
  message: string;
  author: { name: string; email: string; date: string };
  /** As `git show --format=` prints it. */
  diff: string;
  /** GET /pulls/{n}/files entries for a PR made of this commit alone. */
  files: PrFile[];
}

/** The hunks of each file of a git diff, as the files API gives them ("patch"). */
export function filesOf(diff: string): PrFile[] {
  const out: PrFile[] = [];
  for (const part of diff.split(/^(?=diff --git )/m)) {
    if (!part.startsWith('diff --git ')) continue;
    const name = /^\+\+\+ b\/(.*)$/m.exec(part)?.[1] ?? /^diff --git a\/\S+ b\/(\S+)/.exec(part)![1]!;
    const at = part.indexOf('\n@@ ');
    out.push({ filename: name, status: /^new file mode/m.test(part) ? 'added' : 'modified', patch: at >= 0 ? part.slice(at + 1).replace(/\n$/, '') : undefined });
  }
  return out;
}

export const XEN_SHA = '9f1c2e3d4b5a69788796a5b4c3d2e1f0a9b8c7d6';

/** "[PATCH v2 1/9] x86/domain: Ensure a vCPU's FPU is reset early" as the commit a mirror PR would carry. */
export async function xenCommit(sha = XEN_SHA): Promise<FakeCommit> {
  const [patch] = mboxMessages(XEN_THREAD);
  const rec = await recordFromRaw(patch!);
  const raw = patch!.raw.toString('utf8');
  const parts = splitPatchBody(raw.slice(raw.indexOf('\n\n') + 2));
  const diff = parts.diffText!;
  return {
    sha,
    message: `${rec.parsedSubject.clean}\n\n${rec.commitMessage}\n`,
    author: { name: rec.author.name, email: rec.author.address, date: '2026-03-24T18:19:29Z' },
    diff,
    files: filesOf(diff),
  };
}

/** The reference thread's mails: [patch, maintainer's review, author's answer]. */
export function xenMails(): RawMessage[] {
  return mboxMessages(XEN_THREAD);
}

// ---------------------------------------------------------------- webhooks

export const INSTALLATION_ID = 4242;

export interface PrInfo {
  owner: string;
  repo: string;
  number: number;
  head: string;
  base: string;
  author?: string;
  commits?: number;
}

export function pullRequestPayload(action: 'opened' | 'synchronize' | 'reopened', p: PrInfo): Record<string, unknown> {
  return {
    action,
    number: p.number,
    pull_request: {
      number: p.number,
      state: 'open',
      title: 'x86/domain: Ensure a vCPU\'s FPU is reset early',
      user: { login: p.author ?? 'rosslagerwall', type: 'User' },
      head: { sha: p.head, ref: 'fpu-reset' },
      base: { sha: p.base, ref: 'staging' },
      commits: p.commits ?? 1,
      html_url: `https://github.com/${p.owner}/${p.repo}/pull/${p.number}`,
    },
    repository: { id: 1, name: p.repo, full_name: `${p.owner}/${p.repo}`, owner: { login: p.owner } },
    installation: { id: INSTALLATION_ID },
    sender: { login: p.author ?? 'rosslagerwall', type: 'User' },
  };
}

export function reviewCommentPayload(
  p: PrInfo,
  c: { id: number; login: string; body: string; path: string; line: number; diffHunk: string; type?: string },
): Record<string, unknown> {
  return {
    action: 'created',
    comment: {
      id: c.id,
      body: c.body,
      path: c.path,
      line: c.line,
      original_line: c.line,
      side: 'RIGHT',
      diff_hunk: c.diffHunk,
      commit_id: p.head,
      original_commit_id: p.head,
      html_url: `https://github.com/${p.owner}/${p.repo}/pull/${p.number}#discussion_r${c.id}`,
      user: { login: c.login, type: c.type ?? 'User' },
    },
    pull_request: { number: p.number, head: { sha: p.head }, base: { sha: p.base } },
    repository: { id: 1, name: p.repo, full_name: `${p.owner}/${p.repo}`, owner: { login: p.owner } },
    installation: { id: INSTALLATION_ID },
    sender: { login: c.login, type: c.type ?? 'User' },
  };
}

let deliveries = 0;
/** Headers and body of a webhook delivery signed with `secret` (null: no signature header; a string: that header). */
export async function delivery(
  secret: string,
  event: string,
  payload: unknown,
  signature?: string | null,
): Promise<{ headers: Record<string, string>; body: string; id: string }> {
  const body = JSON.stringify(payload);
  const id = `delivery-${process.pid}-${++deliveries}`;
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'x-github-event': event,
    'x-github-delivery': id,
    'user-agent': 'GitHub-Hookshot/test',
  };
  const sig = signature === undefined ? await sign(secret, body) : signature;
  if (sig !== null) headers['x-hub-signature-256'] = sig;
  return { headers, body, id };
}

/** POST a delivery to a running server; resolves with the status and body. */
export async function postWebhook(port: number, d: { headers: Record<string, string>; body: string }): Promise<{ status: number; text: string }> {
  const res = await fetch(`http://127.0.0.1:${port}/api/github/webhooks`, { method: 'POST', headers: d.headers, body: d.body });
  return { status: res.status, text: await res.text() };
}

// ---------------------------------------------------------------- the App on a real HTTP server, GitHub faked by nock

export const API = 'https://api.github.com';
export const SECRET = 'webhook-secret-for-tests';

export interface AppHarness {
  store: Store;
  github: GithubIntegration;
  http: HttpHandle;
  config: ServeConfig;
  /** Requests nock had no answer for (besides our own server on loopback). */
  unmatched: string[];
  close(): Promise<void>;
}

let harnesses = 0;
/**
 * The GitHub integration of `serve` (a fresh SQLite store in `dir`), its webhook endpoint on the
 * real HTTP server of src/serve/http.ts, GitHub at https://api.github.com (nock it). The list is
 * xen-devel; the bot mails as bot@patchvet.example.
 */
export async function appHarness(o: {
  dir: string;
  rules: { rules: RuleSpec[]; kb: KnowledgeBase };
  settings?: Partial<GithubSettings>;
  /** The LLM pass, when the test wants one (built on the harness's store). */
  llm?: (store: Store) => LlmReviewer;
}): Promise<AppHarness> {
  const n = ++harnesses;
  const config = buildConfig(
    {
      store: `sqlite:${join(o.dir, `store-${process.pid}-${n}.db`)}`,
      lists: [{ address: 'xen-devel@lists.xenproject.org', rules: ['xen', 'common'] }],
      delivery: { email: { from: 'patchvet <bot@patchvet.example>', outbox: join(o.dir, `outbox-${n}`) } },
    },
    { env: {} },
  );
  const store = await openStore(config.store);
  const log = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
  const github = await GithubIntegration.create({
    settings: { ...GITHUB_DEFAULTS, archive: 'https://lore.kernel.org/xen-devel/{messageId}/', ...o.settings, app: null },
    app: { appId: '123456', privateKey: testPrivateKey(), webhookSecret: SECRET, host: null, protocol: 'https', baseUrl: API },
    store,
    rules: o.rules.rules,
    kb: o.rules.kb,
    lists: config.lists,
    email: config.delivery.email,
    log,
    worker: `test-${n}`,
    Octokit: TestOctokit,
    llm: o.llm ? o.llm(store) : null,
  });
  const http = await startHttp({ host: '127.0.0.1', port: 0 }, { health: async () => ({ ok: true }), metrics: async () => [] }, log, {
    webhook: (req, res) => github.handle(req, res),
  });
  const unmatched: string[] = [];
  // Requests to our own server on loopback pass through nock; anything else it did not expect is listed.
  const onNoMatch = (req: { method?: string; path?: string; href?: string; hostname?: string }) => {
    const where = req.href ?? `${req.hostname ?? ''}${req.path ?? ''}`;
    if (!where.includes('127.0.0.1')) unmatched.push(`${req.method} ${where}`);
  };
  nock.emitter.on('no match', onNoMatch);
  return {
    store,
    github,
    http,
    config,
    unmatched,
    async close() {
      nock.emitter.removeListener('no match', onNoMatch);
      nock.cleanAll();
      await http.close();
      await store.close();
    },
  };
}

// ---------------------------------------------------------------- a test file's set-up for the App, GitHub nocked

/** The mirror pull request of these tests: xen-project/xen#12, which changes FILE. */
export const OWNER = 'xen-project';
export const REPO = 'xen';
export const FULL = `${OWNER}/${REPO}`;
export const PR = 12;
export const FILE = 'xen/arch/x86/domain.c';

export interface AppTestKit {
  rules: Rules;
  /** What loading the rules reported. */
  packErrors: LoadError[];
  /** The reference patch as a commit (xenCommit()). */
  commit: FakeCommit;
  /** A temp folder for the harnesses' stores and outboxes, removed after the file. */
  dir: string;
  /** appHarness() in `dir` with these rules. */
  harness(settings?: Partial<GithubSettings>, llm?: (store: Store) => LlmReviewer): Promise<AppHarness>;
}

/**
 * The set-up of a test file that drives the App with GitHub nocked: in beforeAll the rules, the
 * commit and the temp folder (the kit's fields are filled then), and no network but loopback; in
 * afterAll the network back and the folder gone. Call it before the file's own hooks.
 */
export function appTestKit(tmpPrefix: string): AppTestKit {
  const kit: AppTestKit = {
    rules: { rules: [], kb: {} as KnowledgeBase },
    packErrors: [],
    commit: null as unknown as FakeCommit,
    dir: '',
    harness: (settings, llm) => appHarness({ dir: kit.dir, rules: kit.rules, settings, llm }),
  };
  beforeAll(async () => {
    ({ rules: kit.rules, errors: kit.packErrors } = builtinRules());
    kit.commit = await xenCommit();
    kit.dir = mkdtempSync(join(tmpdir(), tmpPrefix));
    nock.disableNetConnect();
    nock.enableNetConnect('127.0.0.1');
  });
  afterAll(() => {
    nock.enableNetConnect();
    nock.restore();
    rmSync(kit.dir, { recursive: true, force: true });
  });
  return kit;
}

/** nock: the App's installation token. */
export function installationToken(scope = nock(API)): nock.Scope {
  return scope.post(`/app/installations/${INSTALLATION_ID}/access_tokens`).reply(201, { token: 'ghs_test', expires_at: new Date(Date.now() + 3600e3).toISOString() });
}

/** nock: no .github/patchvet.yml, neither in the repository nor in the owner's .github repository. */
export function noRepoConfig(scope = nock(API)): nock.Scope {
  return scope
    .get(`/repos/${FULL}/contents/.github%2Fpatchvet.yml`)
    .reply(404, { message: 'Not Found' })
    .get(`/repos/${OWNER}/.github/contents/.github%2Fpatchvet.yml`)
    .reply(404, { message: 'Not Found' });
}

/** Sign a delivery with SECRET and POST it to the harness; the HTTP status. */
export async function sendWebhook(h: AppHarness, event: string, payload: unknown): Promise<number> {
  return (await postWebhook(h.http.port, await delivery(SECRET, event, payload))).status;
}

// ---------------------------------------------------------------- a fake GitHub server

export interface Recorded {
  method: string;
  path: string;
  query: Record<string, string>;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
  status: number;
}

interface FakePull {
  number: number;
  head: string;
  base: string;
  author: string;
  commits: string[];
}

interface FakeReviewComment {
  id: number;
  review_id: number;
  path: string;
  line: number;
  side: string;
  body: string;
  commit_id: string;
  in_reply_to_id?: number;
  user: { login: string; type: string };
}

export class FakeGithub {
  port = 0;
  readonly requests: Recorded[] = [];
  readonly token = 'ghs_fake_installation_token';
  private server: Server | null = null;
  private nextId = 1000;
  readonly commits = new Map<string, FakeCommit>();
  readonly pulls = new Map<string, FakePull>();
  readonly reviews: Array<{ id: number; repo: string; pr: number; body: string; commit_id: string; event: string }> = [];
  readonly comments: Array<FakeReviewComment & { repo: string; pr: number }> = [];
  readonly checkRuns: Array<{ id: number; repo: string; body: Record<string, unknown>; updates: unknown[] }> = [];
  /** Repository config files (".github/patchvet.yml" content) by "owner/name". */
  readonly configs = new Map<string, string>();

  addPull(repo: string, p: FakePull, commits: FakeCommit[]): void {
    for (const c of commits) this.commits.set(c.sha, c);
    this.pulls.set(`${repo}#${p.number}`, p);
  }

  /** Requests that changed something (not GETs, not the token). */
  writes(): Recorded[] {
    return this.requests.filter((r) => r.method !== 'GET' && !r.path.includes('/access_tokens'));
  }

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = text;
        try {
          body = text ? JSON.parse(text) : null;
        } catch {
          /* not JSON */
        }
        this.handle(req, res, body);
      });
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', () => r()));
    this.port = (this.server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    if (!this.server) return;
    await new Promise<void>((r) => {
      this.server!.close(() => r());
      this.server!.closeAllConnections();
    });
    this.server = null;
  }

  private handle(req: IncomingMessage, res: ServerResponse, body: unknown): void {
    const url = new URL(req.url ?? '/', 'http://fake');
    const rec: Recorded = { method: req.method ?? 'GET', path: url.pathname, query: Object.fromEntries(url.searchParams), headers: req.headers, body, status: 0 };
    this.requests.push(rec);
    const send = (status: number, data: unknown, type = 'application/json; charset=utf-8', extra: Record<string, string> = {}) => {
      rec.status = status;
      const text = typeof data === 'string' ? data : JSON.stringify(data);
      res.writeHead(status, { 'content-type': type, 'x-ratelimit-remaining': '4999', ...extra });
      res.end(text);
    };
    const p = url.pathname.replace(/^\/api\/v3/, '');
    if (!url.pathname.startsWith('/api/v3/')) return send(404, { message: 'Not Found (fake GitHub serves /api/v3)' });
    let m: RegExpExecArray | null;
    if (req.method === 'POST' && (m = /^\/app\/installations\/(\d+)\/access_tokens$/.exec(p))) {
      // The App's JWT (RS256): three parts, issued by a numeric App id, short-lived.
      const jwt = /^bearer (ey[\w-]+)\.(ey[\w-]+)\.([\w-]+)$/i.exec(String(req.headers.authorization));
      const claims = jwt ? (JSON.parse(Buffer.from(jwt[2]!, 'base64url').toString('utf8')) as { iss?: unknown; exp?: number; iat?: number }) : null;
      if (!claims || !/^\d+$/.test(String(claims.iss)) || !claims.exp || !claims.iat || claims.exp - claims.iat > 660) {
        return send(401, { message: 'A JSON web token could not be decoded' });
      }
      return send(201, { token: this.token, expires_at: new Date(Date.now() + 3600_000).toISOString(), permissions: {}, repository_selection: 'all' });
    }
    if (req.headers.authorization !== `token ${this.token}`) return send(401, { message: 'Bad credentials' });
    if (!(m = /^\/repos\/([^/]+)\/([^/]+)(\/.*)$/.exec(p))) return send(404, { message: 'Not Found' });
    const repo = `${m[1]}/${m[2]}`;
    const rest = m[3]!;
    const page = <T>(items: T[]): T[] => {
      const per = Number(url.searchParams.get('per_page') ?? 30);
      const n = Number(url.searchParams.get('page') ?? 1);
      return items.slice((n - 1) * per, n * per);
    };
    const pullOf = (n: string) => this.pulls.get(`${repo}#${n}`);

    if (req.method === 'GET' && (m = /^\/contents\/(.+)$/.exec(rest))) {
      const cfg = decodeURIComponent(m[1]!) === '.github/patchvet.yml' ? this.configs.get(repo) : undefined;
      return cfg === undefined ? send(404, { message: 'Not Found' }) : send(200, cfg, 'application/vnd.github.raw; charset=utf-8');
    }
    if (req.method === 'GET' && (m = /^\/pulls\/(\d+)$/.exec(rest))) {
      const pr = pullOf(m[1]!);
      if (!pr) return send(404, { message: 'Not Found' });
      return send(200, { number: pr.number, state: 'open', title: 'PR', user: { login: pr.author }, head: { sha: pr.head }, base: { sha: pr.base }, commits: pr.commits.length });
    }
    if (req.method === 'GET' && (m = /^\/pulls\/(\d+)\/commits$/.exec(rest))) {
      const pr = pullOf(m[1]!);
      if (!pr) return send(404, { message: 'Not Found' });
      return send(
        200,
        page(pr.commits.map((sha) => this.commits.get(sha)!)).map((c) => ({ sha: c.sha, commit: { message: c.message, author: c.author } })),
      );
    }
    if (req.method === 'GET' && (m = /^\/commits\/([0-9a-f]+)$/.exec(rest))) {
      const c = this.commits.get(m[1]!);
      if (!c) return send(404, { message: 'No commit found' });
      if (String(req.headers.accept).includes('diff')) return send(200, c.diff, 'application/vnd.github.diff; charset=utf-8');
      return send(200, { sha: c.sha, commit: { message: c.message, author: c.author }, files: c.files });
    }
    if (req.method === 'GET' && (m = /^\/pulls\/(\d+)\/files$/.exec(rest))) {
      const pr = pullOf(m[1]!);
      if (!pr) return send(404, { message: 'Not Found' });
      return send(200, page(this.pullFiles(pr)));
    }
    if (req.method === 'GET' && (m = /^\/pulls\/(\d+)\/comments$/.exec(rest))) {
      return send(200, page(this.comments.filter((c) => c.repo === repo && c.pr === Number(m![1]))));
    }
    if (req.method === 'GET' && (m = /^\/pulls\/(\d+)\/reviews$/.exec(rest))) {
      return send(200, page(this.reviews.filter((r) => r.repo === repo && r.pr === Number(m![1]))));
    }
    if (req.method === 'GET' && (m = /^\/pulls\/(\d+)\/reviews\/(\d+)\/comments$/.exec(rest))) {
      return send(200, page(this.comments.filter((c) => c.review_id === Number(m![2]))));
    }
    if (req.method === 'POST' && (m = /^\/pulls\/(\d+)\/reviews$/.exec(rest))) {
      const pr = pullOf(m[1]!);
      if (!pr) return send(404, { message: 'Not Found' });
      const b = body as { commit_id: string; body?: string; event?: string; comments?: Array<{ path: string; line: number; side?: string; body: string }> };
      const diff = prDiff(this.pullFiles(pr));
      for (const c of b.comments ?? []) {
        const f = diff.files.get(c.path);
        const ok = f?.hunks.some((h) =>
          h.lines.some((l) => ((c.side ?? 'RIGHT') === 'RIGHT' ? l.kind !== 'del' && l.newLine === c.line : l.kind !== 'add' && l.oldLine === c.line)),
        );
        if (!ok) return send(422, { message: 'Unprocessable Entity', errors: ['Line could not be resolved'] });
      }
      const id = this.nextId++;
      this.reviews.push({ id, repo, pr: pr.number, body: b.body ?? '', commit_id: b.commit_id, event: b.event ?? 'PENDING' });
      for (const c of b.comments ?? []) {
        this.comments.push({ id: this.nextId++, review_id: id, repo, pr: pr.number, path: c.path, line: c.line, side: c.side ?? 'RIGHT', body: c.body, commit_id: b.commit_id, user: { login: 'patchvet[bot]', type: 'Bot' } });
      }
      return send(200, { id, body: b.body ?? '', commit_id: b.commit_id, state: 'COMMENTED' });
    }
    if (req.method === 'PATCH' && (m = /^\/pulls\/comments\/(\d+)$/.exec(rest))) {
      const c = this.comments.find((x) => x.id === Number(m![1]));
      if (!c) return send(404, { message: 'Not Found' });
      c.body = (body as { body: string }).body;
      return send(200, c);
    }
    if (req.method === 'PUT' && (m = /^\/pulls\/(\d+)\/reviews\/(\d+)$/.exec(rest))) {
      const r = this.reviews.find((x) => x.id === Number(m![2]));
      if (!r) return send(404, { message: 'Not Found' });
      r.body = (body as { body: string }).body;
      return send(200, r);
    }
    if (req.method === 'POST' && rest === '/check-runs') {
      const id = this.nextId++;
      this.checkRuns.push({ id, repo, body: body as Record<string, unknown>, updates: [] });
      return send(201, { id });
    }
    if (req.method === 'PATCH' && (m = /^\/check-runs\/(\d+)$/.exec(rest))) {
      const r = this.checkRuns.find((x) => x.id === Number(m![1]));
      if (!r) return send(404, { message: 'Not Found' });
      r.updates.push(body);
      return send(200, { id: r.id });
    }
    return send(404, { message: `Not Found (fake GitHub has no ${req.method} ${p})` });
  }

  /** The PR's files: for the one-commit PRs of these tests, the commit's files. */
  private pullFiles(pr: FakePull): PrFile[] {
    return pr.commits.flatMap((sha) => this.commits.get(sha)?.files ?? []);
  }
}
