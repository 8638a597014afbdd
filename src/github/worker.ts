// GitHub work, done from durable jobs (store.github_jobs): a webhook or a list mail records a job
// first, then it runs (at once, and again after a crash or a retryable failure: an expired
// lease makes it claimable). Network I/O never happens inside a store transaction. Everything
// posted carries a hidden marker, and is recorded after it is posted; a job re-run after a crash
// between the two finds the marker on GitHub and does not post again.
//
//   review  a push to a PR: commits -> rules -> one review + a check run; links to list patches
//   mirror  a list reply on a linked PR: one review with its comments at the quoted lines
import type { LlmReviewer } from '../llm/review.js';
import { compareFindings } from '../rules/engine.js';
import { appendFileSync } from 'node:fs';
import type { Logger } from 'pino';
import type { Finding, MessageRecord } from '../model.js';
import { reviewRecord } from '../review/review.js';
import type { KnowledgeBase, RuleSpec } from '../rules/types.js';
import type { GithubCommentRow, GithubJob, GithubLink, PrCommitEntry, Store } from '../store/store.js';
import {
  authorMuted,
  parseRepoConfig,
  pathIgnored,
  REPO_CONFIG_FILE,
  ruleMuted,
  severityRank,
  type GithubSettings,
  type RepoConfig,
} from './config.js';
import { subjectKey, trailerMessageIds } from './link.js';
import { keysIn, reopenedBody, resolvedBody } from './markers.js';
import { planMirror, type MirrorPayload } from './mirror.js';
import type { Octokit } from './octokit.js';
import { patchIdOfDiff } from './patch-id.js';
import { commitRecord, diffFromFiles, prDiff, splitCommitMessage, type PrCommit, type PrDiff, type PrFile } from './pr.js';
import {
  knownFromGithub,
  knownItems,
  planReview,
  type Annotation,
  type CommitFindings,
  type ExistingComment,
  type ExistingReview,
  type InlineComment,
  type KnownItem,
} from './review-plan.js';

// ---------------------------------------------------------------- job payloads

export interface ReviewPayload {
  owner: string;
  repo: string;
  number: number;
  headSha: string;
  baseSha: string | null;
  author: string | null;
  /** The repository config as read when the webhook came (null: none), when it was read. */
  config?: unknown;
  configRead?: boolean;
  /** Total commits of the PR as the webhook said. */
  commits?: number;
}

export interface MirrorJobPayload extends MirrorPayload {
  owner: string;
  repo: string;
  number: number;
}

export function reviewJobKey(repo: string, pr: number, headSha: string, delivery: string): string {
  return `review:${repo}#${pr}@${headSha}:${delivery}`;
}

export function mirrorJobKey(repo: string, pr: number, messageId: string): string {
  return `mirror:${repo}#${pr}:${messageId}`;
}

// ---------------------------------------------------------------- errors

/** An HTTP status from an Octokit error, when there is one. */
function statusOf(e: unknown): number | null {
  const s = (e as { status?: unknown } | null)?.status;
  return typeof s === 'number' ? s : null;
}

/** Should a failed job be tried again later? Network trouble, 5xx, rate limits: yes; other 4xx: no. */
export function retryable(e: unknown): boolean {
  const s = statusOf(e);
  if (s === null) return true;
  if (s >= 500 || s === 429 || s === 408) return true;
  if (s === 403) {
    const headers = (e as { response?: { headers?: Record<string, string> } }).response?.headers ?? {};
    return headers['x-ratelimit-remaining'] === '0' || /rate limit/i.test((e as Error).message);
  }
  return false;
}

/** When a rate-limited request may be tried again (from the response headers), else null. */
export function retryAt(e: unknown, now: Date): Date | null {
  const headers = (e as { response?: { headers?: Record<string, string> } }).response?.headers ?? {};
  const after = Number(headers['retry-after']);
  if (Number.isFinite(after) && after > 0) return new Date(now.getTime() + after * 1000);
  const reset = Number(headers['x-ratelimit-reset']);
  if (headers['x-ratelimit-remaining'] === '0' && Number.isFinite(reset) && reset > 0) return new Date(reset * 1000 + 1000);
  return null;
}

// ---------------------------------------------------------------- dry run

export interface DryRunEntry {
  repo: string;
  pr: number;
  action: string;
  method: string;
  url: string;
  body: unknown;
}

// ---------------------------------------------------------------- review threads (GraphQL)

/** A review conversation on GitHub: its GraphQL node id and whether it is shown resolved. */
export interface ReviewThread {
  id: string;
  isResolved: boolean;
}

/** Pages of 100 threads; past this many pages (10,000 threads) the rest stay as they are. */
const MAX_THREAD_PAGES = 100;

const REVIEW_THREADS_QUERY = `query($owner: String!, $name: String!, $number: Int!, $cursor: String) {
  repository(owner: $owner, name: $name) {
    pullRequest(number: $number) {
      reviewThreads(first: 100, after: $cursor) {
        nodes { id isResolved comments(first: 1) { nodes { databaseId } } }
        pageInfo { hasNextPage endCursor }
      }
    }
  }
}`;

const RESOLVE_THREAD_MUTATION = `mutation($threadId: ID!) {
  resolveReviewThread(input: { threadId: $threadId }) { thread { id isResolved } }
}`;

const UNRESOLVE_THREAD_MUTATION = `mutation($threadId: ID!) {
  unresolveReviewThread(input: { threadId: $threadId }) { thread { id isResolved } }
}`;

interface ThreadsPage {
  repository: {
    pullRequest: {
      reviewThreads: {
        nodes: Array<{ id: string; isResolved: boolean; comments: { nodes: Array<{ databaseId: number | null } | null> | null } | null } | null> | null;
        pageInfo: { hasNextPage: boolean; endCursor: string | null };
      } | null;
    } | null;
  } | null;
}

/** GitHub refused for want of permission (GraphQL FORBIDDEN, or HTTP 403 that is not a rate limit). */
function forbidden(e: unknown): boolean {
  const errors = (e as { errors?: Array<{ type?: string }> } | null)?.errors;
  if (Array.isArray(errors) && errors.some((x) => x?.type === 'FORBIDDEN')) return true;
  return statusOf(e) === 403 && !retryable(e);
}

/**
 * Resolves and unresolves the review threads of patchvet's inline comments during one job. The
 * threads are looked up once (on first need), and a GraphQL failure never fails the job nor
 * stops the REST edits: the edited comment body is what records the state; the thread is how
 * GitHub shows it (a resolved conversation is collapsed). After a refusal for want of
 * permission, the rest of the job does not ask again (every thread would be refused alike).
 */
export class ThreadResolver {
  private threads: Promise<Map<number, ReviewThread> | null> | null = null;
  private refused = false;

  constructor(
    private readonly api: RepoApi,
    private readonly n: number,
    private readonly log: Logger,
  ) {}

  private get pr(): string {
    return `${this.api.full}#${this.n}`;
  }

  /** The threads, read once per job; `commentId` is the comment that first needs them (for the log). */
  private lookup(commentId: number): Promise<Map<number, ReviewThread> | null> {
    this.threads ??= this.api.reviewThreads(this.n).catch((e: unknown) => {
      this.note(e, commentId, 'could not read the review threads; conversations left as they are');
      return null;
    });
    return this.threads;
  }

  private note(e: unknown, comment: number, msg: string): void {
    const no = forbidden(e);
    if (no) this.refused = true;
    this.log.warn(
      { pr: this.pr, comment, error: (e as Error).message, ...(no ? { forbidden: true } : {}) },
      `github: ${msg}${no ? ' (GitHub refused it: resolving conversations needs the Contents: write permission; grant it to the App, or set github.resolveThreads: false)' : ''}`,
    );
  }

  /** Show the thread of inline comment `commentId` resolved (or not). Never throws. */
  async set(commentId: number, resolved: boolean): Promise<void> {
    if (this.refused) return;
    if (this.api.dry) {
      await this.api.setThreadResolved(this.n, commentId, null, resolved);
      return;
    }
    const threads = await this.lookup(commentId);
    if (!threads || this.refused) return;
    const t = threads.get(commentId);
    if (!t) {
      this.log.warn({ pr: this.pr, comment: commentId }, 'github: no review thread starts with this comment; conversation left as it is');
      return;
    }
    if (t.isResolved === resolved) return; // already so (by patchvet earlier, or by a person)
    try {
      await this.api.setThreadResolved(this.n, commentId, t.id, resolved);
      t.isResolved = resolved;
    } catch (e) {
      this.note(e, commentId, `could not ${resolved ? 'resolve' : 'unresolve'} the review thread; the comment edit stands`);
    }
  }
}

// ---------------------------------------------------------------- the API calls

/** The requests patchvet makes for one repository; writes go through `write` (dry-run aware). */
export class RepoApi {
  constructor(
    readonly octokit: Octokit,
    readonly owner: string,
    readonly repo: string,
    private readonly dryRun: ((e: Omit<DryRunEntry, 'repo'>) => void) | null,
  ) {}

  get full(): string {
    return `${this.owner}/${this.repo}`;
  }

  get dry(): boolean {
    return this.dryRun !== null;
  }

  private async write<T>(action: string, pr: number, route: string, params: Record<string, unknown>, fake: T): Promise<T> {
    if (this.dryRun) {
      const { owner: _o, repo: _r, ...body } = params;
      void _o;
      void _r;
      const url = route.replace(/\{(\w+)\}/g, (_m, k: string) => String(params[k] ?? (k === 'owner' ? this.owner : k === 'repo' ? this.repo : `{${k}}`)));
      this.dryRun({ pr, action, method: route.split(' ')[0]!, url: url.split(' ')[1]!, body });
      return fake;
    }
    const res = await this.octokit.request(route, { owner: this.owner, repo: this.repo, ...params });
    return res.data as T;
  }

  async repoConfig(): Promise<unknown> {
    const { config, files } = await this.octokit.config.get({
      owner: this.owner,
      repo: this.repo,
      path: `.github/${REPO_CONFIG_FILE}`,
    });
    return files.some((f: { config: unknown }) => f.config !== null) ? config : null;
  }

  async pull(n: number): Promise<{ head: string; base: string; state: string; author: string | null; title: string; commits: number }> {
    const { data } = await this.octokit.request('GET /repos/{owner}/{repo}/pulls/{pull_number}', { owner: this.owner, repo: this.repo, pull_number: n });
    return { head: data.head.sha, base: data.base.sha, state: data.state, author: data.user?.login ?? null, title: data.title, commits: data.commits };
  }

  async commits(n: number, max: number): Promise<Array<{ sha: string; message: string; author: { name: string; email: string; date: string | null } }>> {
    const out: Array<{ sha: string; message: string; author: { name: string; email: string; date: string | null } }> = [];
    for await (const page of this.octokit.paginate.iterator('GET /repos/{owner}/{repo}/pulls/{pull_number}/commits', {
      owner: this.owner,
      repo: this.repo,
      pull_number: n,
      per_page: 100,
    })) {
      for (const c of page.data) {
        out.push({
          sha: c.sha,
          message: c.commit.message,
          author: { name: c.commit.author?.name ?? '', email: c.commit.author?.email ?? '', date: c.commit.author?.date ?? null },
        });
      }
      if (out.length >= max) break;
    }
    return out;
  }

  /** A commit's diff as git prints it; for a commit too large for the diff format, rebuilt from its files. */
  async commitDiff(sha: string): Promise<string | null> {
    try {
      const res = await this.octokit.request('GET /repos/{owner}/{repo}/commits/{ref}', {
        owner: this.owner,
        repo: this.repo,
        ref: sha,
        mediaType: { format: 'diff' },
      });
      const data = res.data as unknown;
      // Octokit hands over bodies of unknown media types as bytes.
      return data instanceof ArrayBuffer ? Buffer.from(data).toString('utf8') : String(data);
    } catch (e) {
      const s = statusOf(e);
      if (s !== 406 && s !== 422) throw e;
    }
    const files: PrFile[] = [];
    for await (const page of this.octokit.paginate.iterator('GET /repos/{owner}/{repo}/commits/{ref}', {
      owner: this.owner,
      repo: this.repo,
      ref: sha,
      per_page: 100,
    })) {
      const data = page.data as unknown as { files?: PrFile[] } | Array<{ files?: PrFile[] }>;
      for (const d of Array.isArray(data) ? data : [data]) files.push(...(d.files ?? []));
    }
    return diffFromFiles(files) || null;
  }

  async files(n: number): Promise<PrFile[]> {
    const out: PrFile[] = [];
    for await (const page of this.octokit.paginate.iterator('GET /repos/{owner}/{repo}/pulls/{pull_number}/files', {
      owner: this.owner,
      repo: this.repo,
      pull_number: n,
      per_page: 100,
    })) {
      for (const f of page.data) out.push({ filename: f.filename, previous_filename: f.previous_filename, status: f.status, patch: f.patch });
    }
    return out;
  }

  async reviewComments(n: number): Promise<ExistingComment[]> {
    const out: ExistingComment[] = [];
    for await (const page of this.octokit.paginate.iterator('GET /repos/{owner}/{repo}/pulls/{pull_number}/comments', {
      owner: this.owner,
      repo: this.repo,
      pull_number: n,
      per_page: 100,
    })) {
      for (const c of page.data) out.push({ id: c.id, body: c.body ?? '', inReplyTo: c.in_reply_to_id ?? null, login: c.user?.login ?? null });
    }
    return out;
  }

  async reviews(n: number): Promise<ExistingReview[]> {
    const out: ExistingReview[] = [];
    for await (const page of this.octokit.paginate.iterator('GET /repos/{owner}/{repo}/pulls/{pull_number}/reviews', {
      owner: this.owner,
      repo: this.repo,
      pull_number: n,
      per_page: 100,
    })) {
      for (const r of page.data) out.push({ id: r.id, body: r.body ?? '' });
    }
    return out;
  }

  /** Comment ids of a review, by the keys of their markers. */
  async reviewCommentIds(n: number, reviewId: number): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for await (const page of this.octokit.paginate.iterator('GET /repos/{owner}/{repo}/pulls/{pull_number}/reviews/{review_id}/comments', {
      owner: this.owner,
      repo: this.repo,
      pull_number: n,
      review_id: reviewId,
      per_page: 100,
    })) {
      for (const c of page.data) for (const k of keysIn(c.body)) if (!out.has(k)) out.set(k, c.id);
    }
    return out;
  }

  createReview(n: number, review: { commit_id: string; event: 'COMMENT'; body: string; comments: InlineComment[] }, action = 'review'): Promise<{ id: number }> {
    return this.write(action, n, 'POST /repos/{owner}/{repo}/pulls/{pull_number}/reviews', { pull_number: n, ...review }, { id: 0 });
  }

  updateComment(n: number, id: number, body: string, action: string): Promise<unknown> {
    return this.write(action, n, 'PATCH /repos/{owner}/{repo}/pulls/comments/{comment_id}', { comment_id: id, body }, {});
  }

  updateReview(n: number, id: number, body: string, action: string): Promise<unknown> {
    return this.write(action, n, 'PUT /repos/{owner}/{repo}/pulls/{pull_number}/reviews/{review_id}', { pull_number: n, review_id: id, body }, {});
  }

  /**
   * The review threads of a PR by the REST id of their first comment (patchvet's inline comments
   * start their threads). Threads exist only in GraphQL; one query, 100 threads a page.
   */
  async reviewThreads(n: number): Promise<Map<number, ReviewThread>> {
    const out = new Map<number, ReviewThread>();
    let cursor: string | null = null;
    for (let page = 0; page < MAX_THREAD_PAGES; page++) {
      const data: ThreadsPage = await this.octokit.graphql<ThreadsPage>(REVIEW_THREADS_QUERY, { owner: this.owner, name: this.repo, number: n, cursor });
      const threads = data.repository?.pullRequest?.reviewThreads;
      if (!threads) break;
      for (const t of threads.nodes ?? []) {
        const first = t?.comments?.nodes?.[0]?.databaseId;
        if (t && typeof first === 'number') out.set(first, { id: t.id, isResolved: t.isResolved });
      }
      if (!threads.pageInfo.hasNextPage || !threads.pageInfo.endCursor) break;
      cursor = threads.pageInfo.endCursor;
    }
    return out;
  }

  /**
   * Resolve (or unresolve) a review thread: GraphQL, dry-run aware like `write`. In a dry run the
   * threads are not looked up (that is a request too), so the entry names the comment instead.
   */
  async setThreadResolved(n: number, commentId: number, threadId: string | null, resolved: boolean): Promise<void> {
    const query = resolved ? RESOLVE_THREAD_MUTATION : UNRESOLVE_THREAD_MUTATION;
    const action = resolved ? 'resolve-thread' : 'unresolve-thread';
    if (this.dryRun) {
      this.dryRun({ pr: n, action, method: 'POST', url: '/graphql', body: { query, variables: { threadId }, commentId } });
      return;
    }
    if (threadId === null) throw new Error(`no review thread id for comment ${commentId}`);
    await this.octokit.graphql(query, { threadId });
  }

  async reviewBody(n: number, id: number): Promise<string | null> {
    try {
      const { data } = await this.octokit.request('GET /repos/{owner}/{repo}/pulls/{pull_number}/reviews/{review_id}', {
        owner: this.owner,
        repo: this.repo,
        pull_number: n,
        review_id: id,
      });
      return data.body ?? '';
    } catch (e) {
      if (statusOf(e) === 404) return null;
      throw e;
    }
  }

  /** A completed check run; annotations go 50 per request (GitHub's limit), the rest by updates. */
  async checkRun(
    pr: number,
    o: { name: string; headSha: string; conclusion: string; title: string; summary: string; annotations: Annotation[] },
  ): Promise<number> {
    const first = o.annotations.slice(0, 50);
    const created = await this.write<{ id: number }>(
      'check-run',
      pr,
      'POST /repos/{owner}/{repo}/check-runs',
      {
        name: o.name,
        head_sha: o.headSha,
        status: 'completed',
        conclusion: o.conclusion,
        output: { title: o.title, summary: o.summary, annotations: first },
      },
      { id: 0 },
    );
    for (let i = 50; i < o.annotations.length; i += 50) {
      await this.write(
        'check-run-annotations',
        pr,
        'PATCH /repos/{owner}/{repo}/check-runs/{check_run_id}',
        { check_run_id: created.id, output: { title: o.title, summary: o.summary, annotations: o.annotations.slice(i, i + 50) } },
        {},
      );
    }
    return created.id;
  }
}

/** A review whose inline comments GitHub refused: the same comments, in the body. */
export function inlineToBody(review: { commit_id: string; event: 'COMMENT'; body: string; comments: InlineComment[] }) {
  const parts = [review.body];
  for (const c of review.comments) parts.push('', '---', '', `On \`${c.path}\` line ${c.line}${c.side === 'LEFT' ? ' (old side)' : ''}:`, '', c.body);
  return { commit_id: review.commit_id, event: review.event, body: parts.join('\n'), comments: [] as InlineComment[] };
}

// ---------------------------------------------------------------- body items

/** Strike a review-body item through (resolved), or restore it (reopened), by its marker key. */
export function editBodyItem(body: string, key: string, resolved: boolean, sha: string): string {
  return body
    .split('\n')
    .map((line) => {
      if (!keysIn(line).includes(key)) return line;
      const i = line.indexOf('<!-- patchvet:');
      const text = line.slice(0, i).trimEnd();
      const rest = line.slice(i);
      const m = /^- ~~(.*)~~ \(resolved at [0-9a-f]+\)$/.exec(text);
      if (resolved) return m ? line : `- ~~${text.replace(/^- /, '')}~~ (resolved at ${sha.slice(0, 12)}) ${rest}`;
      return m ? `- ${m[1]} ${rest}` : line;
    })
    .join('\n');
}

// ---------------------------------------------------------------- the worker

export interface WorkerDeps {
  settings: GithubSettings;
  store: Store;
  rules: RuleSpec[];
  kb: KnowledgeBase;
  log: Logger;
  /** Lease owner name. */
  worker: string;
  /** An Octokit authenticated as the installation. */
  auth: (installationId: number) => Promise<Octokit>;
  now?: () => Date;
  /** New links were recorded (the integration queues mirror jobs for replies already stored). */
  onLinked?: (links: GithubLink[]) => Promise<void>;
  /** The LLM pass (null/absent: off). */
  llm?: LlmReviewer | null;
}

export interface ReviewOutcome {
  posted: number;
  resolved: number;
  reopened: number;
  findings: number;
  linked: number;
  check: boolean;
  skipped?: string;
}

const LEASE_SECONDS = 300;
const MAX_ATTEMPTS = 6;

export class GithubWorker {
  private readonly now: () => Date;
  /** Jobs finished by this process (metrics). */
  readonly counts = { done: 0, retried: 0, failed: 0 };

  constructor(private readonly d: WorkerDeps) {
    this.now = d.now ?? (() => new Date());
  }

  private get log(): Logger {
    return this.d.log;
  }

  private dryRunSink(repoConfigDry: boolean, repo: string): ((e: Omit<DryRunEntry, 'repo'>) => void) | null {
    if (!this.d.settings.dryRun && !repoConfigDry) return null;
    return (e) => {
      const entry: DryRunEntry = { repo, ...e };
      this.log.info({ dryRun: entry }, `github dry run: would ${e.method} ${e.url} (${e.action})`);
      if (this.d.settings.dryRunFile) appendFileSync(this.d.settings.dryRunFile, JSON.stringify({ at: this.now().toISOString(), ...entry }) + '\n');
    };
  }

  /** Jobs of one PR run one after the other in this process (two pushes in quick succession must not both post). */
  private readonly perPr = new Map<string, Promise<void>>();

  /** Run one claimed job and record its outcome. */
  async run(job: GithubJob): Promise<void> {
    const k = `${job.repo}#${job.pr}`;
    const before = this.perPr.get(k) ?? Promise.resolve();
    const mine = before.then(() => this.runNowSerial(job));
    const tail = mine.catch(() => undefined);
    this.perPr.set(k, tail);
    try {
      await mine;
    } finally {
      if (this.perPr.get(k) === tail) this.perPr.delete(k);
    }
  }

  private async runNowSerial(job: GithubJob): Promise<void> {
    const { store } = this.d;
    try {
      if (job.installationId === null) throw Object.assign(new Error('no installation id for this repository'), { status: 400 });
      const octokit = await this.d.auth(job.installationId);
      if (job.kind === 'review') await this.review(octokit, job);
      else if (job.kind === 'mirror') await this.mirror(octokit, job);
      else throw Object.assign(new Error(`unknown job kind ${job.kind}`), { status: 400 });
      await store.finishGithubJob(job.key, this.d.worker, { state: 'done' });
      this.counts.done++;
    } catch (e) {
      const err = e as Error;
      const status = statusOf(e);
      const text = `${status ? `HTTP ${status}: ` : ''}${err.message}`.slice(0, 500);
      if (retryable(e) && job.attempts < MAX_ATTEMPTS) {
        const backoff = Math.min(3600, 30 * 2 ** (job.attempts - 1));
        const at = retryAt(e, this.now()) ?? new Date(this.now().getTime() + backoff * 1000);
        await store.finishGithubJob(job.key, this.d.worker, { state: 'retry', at, error: text });
        this.counts.retried++;
        this.log.warn({ job: job.key, attempts: job.attempts, retryAt: at.toISOString(), error: text }, 'github: job failed; retrying later');
      } else {
        await store.finishGithubJob(job.key, this.d.worker, { state: 'failed', error: text });
        this.counts.failed++;
        this.log.error({ job: job.key, attempts: job.attempts, error: text, err: e }, 'github: job failed; given up');
      }
    }
  }

  /** Claim and run this job now (the webhook that queued it waits for it). False if someone else has it. */
  async runNow(key: string): Promise<boolean> {
    const [job] = await this.d.store.claimGithubJobs(1, LEASE_SECONDS, this.d.worker, key);
    if (!job) return false;
    await this.run(job);
    return true;
  }

  /** One round of due jobs. Returns how many were claimed. */
  async round(limit = 8): Promise<number> {
    const jobs = await this.d.store.claimGithubJobs(limit, LEASE_SECONDS, this.d.worker);
    for (const job of jobs) await this.run(job);
    return jobs.length;
  }

  // ------------------------------------------------------------ review

  /** The rules a repository asked for (packs), or the operator's default. */
  private rulesFor(cfg: RepoConfig): { rules: RuleSpec[]; problems: string[] } {
    const packs = cfg.packs ?? this.d.settings.rules;
    if (!packs) return { rules: this.d.rules, problems: [] };
    const loaded = new Set(this.d.rules.map((r) => r.id.split('/')[0]!));
    const unknown = packs.filter((p) => !loaded.has(p));
    return {
      rules: this.d.rules.filter((r) => packs.includes(r.id.split('/')[0]!)),
      problems: unknown.length ? [`packs: no rule pack named ${unknown.join(', ')} (loaded: ${[...loaded].sort().join(', ')})`] : [],
    };
  }

  /** The findings a repository wants to see. */
  static keep(f: Finding, cfg: RepoConfig): boolean {
    return severityRank(f.severity) >= severityRank(cfg.minSeverity) && !ruleMuted(cfg, f.rule) && !pathIgnored(cfg, f.file);
  }

  async review(octokit: Octokit, job: GithubJob): Promise<ReviewOutcome> {
    const p = job.payload as ReviewPayload;
    const { store, settings } = this.d;
    const full = `${p.owner}/${p.repo}`;
    const n = p.number;
    const outcome: ReviewOutcome = { posted: 0, resolved: 0, reopened: 0, findings: 0, linked: 0, check: false };
    const readOnly = new RepoApi(octokit, p.owner, p.repo, null);
    const cfg = parseRepoConfig(p.configRead ? p.config : await readOnly.repoConfig());
    if (!cfg.enabled) return { ...outcome, skipped: 'disabled by the repository config' };
    if (authorMuted(cfg, p.author)) return { ...outcome, skipped: `author ${p.author} is muted` };
    const api = new RepoApi(octokit, p.owner, p.repo, this.dryRunSink(cfg.dryRun, full));
    let head = p.headSha;
    if (job.attempts > 1) {
      // Re-run after a crash or a failure: a newer push has its own job.
      const now = await readOnly.pull(n);
      if (now.head !== head) return { ...outcome, skipped: `stale: the PR is now at ${now.head}` };
      head = now.head;
    }

    // Commits: rules per commit, and what links each to a list patch.
    const { rules, problems } = this.rulesFor(cfg);
    const max = settings.maxCommits;
    const commits = await api.commits(n, max);
    const reviewed = commits.slice(0, max);
    const skipped = Math.max(0, (p.commits ?? commits.length) - reviewed.length);
    const perCommit: CommitFindings[] = [];
    const entries: PrCommitEntry[] = [];
    const links: GithubLink[] = [];
    for (const [i, c] of reviewed.entries()) {
      const diff = await api.commitDiff(c.sha);
      const commit: PrCommit = { sha: c.sha, message: c.message, author: c.author, diff };
      const rec: MessageRecord = commitRecord(commit, { repo: full, index: i + 1, total: reviewed.length, lists: settings.lists });
      let found = reviewRecord(rec, { rules, kb: this.d.kb }).filter((f) => GithubWorker.keep(f, cfg));
      if (this.d.llm) {
        // Same second opinion as on the list (never throws; cached by patch-id, so a re-push or
        // the same patch seen on the list costs nothing). Its failure leaves the rule findings.
        const r = await this.d.llm.reviewPatch({ record: rec, ruleFindings: found, rules, list: `github:${full}`, venue: `pull requests to ${full}` });
        if (r.error) this.log.warn({ pr: `${full}#${n}`, commit: c.sha, kind: r.errorKind }, `llm: ${r.error}; rule findings only`);
        const extra = r.findings.filter((f) => GithubWorker.keep(f, cfg));
        if (extra.length) found = [...found, ...extra].sort(compareFindings);
      }
      const { title } = splitCommitMessage(c.message);
      perCommit.push({ sha: c.sha, title, findings: found });
      const entry: PrCommitEntry = {
        sha: c.sha,
        patchId: patchIdOfDiff(rec.diff),
        subjectKey: subjectKey(title, c.author.email),
        messageIds: trailerMessageIds(c.message),
      };
      entries.push(entry);
      const link = await this.linkFor(full, n, entry);
      if (link) links.push(link);
    }
    outcome.findings = new Set(perCommit.flatMap((c) => c.findings.map((f) => f.fingerprint))).size;
    await store.putGithubPr({ repo: full, pr: n, installationId: job.installationId, headSha: head, baseSha: p.baseSha, title: null, author: p.author, state: 'open' });
    await store.putPrCommits(full, n, entries);
    const added: GithubLink[] = [];
    for (const l of links) if (await store.addGithubLink(l)) added.push(l);
    outcome.linked = added.length;
    if (links.length) this.log.info({ pr: `${full}#${n}`, links: links.map((l) => `${l.commitSha.slice(0, 12)} -> ${l.messageId} (${l.method})`) }, 'github: PR linked to list patches');

    // What is there already, and the plan.
    const diff: PrDiff = prDiff(await api.files(n));
    const comments = await api.reviewComments(n);
    const reviews = await api.reviews(n);
    const rows = await store.githubComments(full, n);
    const known = knownItems(rows, knownFromGithub(comments, reviews));
    const plan = planReview(perCommit, diff, known, {
      headSha: head,
      maxInline: settings.maxInline,
      failOn: cfg.failOn,
      skippedCommits: skipped,
      configProblems: [...cfg.problems, ...problems],
    });

    // Record what GitHub already shows but the store missed (a crash after posting).
    if (!api.dry) {
      const stored = new Set(rows.map((r) => r.key));
      for (const k of known.values()) {
        if (k.key.startsWith('finding:') && !stored.has(k.key)) {
          await store.putGithubComment({ repo: full, pr: n, key: k.key, kind: k.kind, fingerprint: k.key.slice('finding:'.length), commentId: k.commentId, reviewId: k.reviewId, state: k.state });
        }
      }
    }

    // One review with everything new.
    if (plan.review) {
      let review = plan.review;
      let created: { id: number };
      try {
        created = await api.createReview(n, review);
      } catch (e) {
        if (statusOf(e) !== 422 || !review.comments.length) throw e;
        // GitHub refused an inline comment (the diff moved under us): everything in the body.
        this.log.warn({ pr: `${full}#${n}`, error: (e as Error).message }, 'github: review refused (422); posting its comments in the review body');
        review = inlineToBody(review);
        created = await api.createReview(n, review, 'review-fallback');
      }
      const ids = !api.dry && review.comments.length ? await api.reviewCommentIds(n, created.id) : new Map<string, number>();
      if (!api.dry) {
        for (const it of plan.items) {
          const inline = review.comments.length > 0 && it.kind === 'finding-inline';
          const row: GithubCommentRow = {
            repo: full,
            pr: n,
            key: it.key,
            kind: inline ? 'finding-inline' : 'finding-body',
            rule: it.finding.rule,
            fingerprint: it.finding.fingerprint,
            commentId: inline ? ids.get(it.key) ?? null : null,
            reviewId: created.id,
            path: it.path,
            line: it.line,
            side: it.side,
            commitSha: it.commitSha,
            state: 'open',
          };
          await store.putGithubComment(row);
        }
      }
      outcome.posted = plan.items.length;
    }

    // Findings gone: resolved (never deleted); findings back: reopened.
    // The comment edit records the state; with github.resolveThreads, its review conversation
    // is resolved (collapsed) or unresolved to match, after the edit, as far as GitHub lets it
    // (ThreadResolver: it needs Contents: write, which app.yml does not ask for).
    const resolveThreads = this.d.settings.resolveThreads;
    const byId = new Map(comments.map((c) => [c.id, c]));
    const threads = new ThreadResolver(api, n, this.log);
    const edit = async (k: KnownItem, resolved: boolean) => {
      if (k.kind === 'finding-inline' && k.commentId !== null) {
        const c = byId.get(k.commentId);
        if (c) {
          const body = resolved ? resolvedBody(c.body, head) : reopenedBody(c.body);
          if (body !== c.body) await api.updateComment(n, c.id, body, resolved ? 'resolve' : 'reopen');
          // Also when the body was already edited (a re-run after a crash): the thread may lag.
          // A dry run cannot tell, so it logs the thread change only with the edit.
          if (resolveThreads && (body !== c.body || !api.dry)) await threads.set(c.id, resolved);
        }
      } else if (k.kind === 'finding-body' && k.reviewId !== null) {
        const cur = reviews.find((r) => r.id === k.reviewId)?.body ?? (await api.reviewBody(n, k.reviewId));
        if (cur !== null) {
          const body = editBodyItem(cur, k.key, resolved, head);
          if (body !== cur) await api.updateReview(n, k.reviewId, body, resolved ? 'resolve' : 'reopen');
        }
      }
      if (!api.dry) await store.setGithubCommentState(full, n, k.key, resolved ? 'resolved' : 'open');
    };
    for (const k of plan.resolve) {
      await edit(k, true);
      outcome.resolved++;
    }
    for (const k of plan.reopen) {
      await edit(k, false);
      outcome.reopened++;
    }

    // The check run, once per head commit.
    const checkKey = `check:${head}`;
    if (cfg.checks && !rows.some((r) => r.key === checkKey)) {
      const id = await api.checkRun(n, { name: settings.checkName, headSha: head, ...plan.check, annotations: plan.annotations });
      if (!api.dry) await store.putGithubComment({ repo: full, pr: n, key: checkKey, kind: 'check', commentId: id, commitSha: head, state: 'open' });
      outcome.check = true;
    }
    this.log.info({ pr: `${full}#${n}`, head, dryRun: api.dry, ...outcome }, 'github: pull request reviewed');
    if (added.length) await this.d.onLinked?.(added);
    return outcome;
  }

  /** The list patch a PR commit mirrors: Link:/Message-Id: trailers, then patch-id, then title + author. */
  private async linkFor(repo: string, pr: number, e: PrCommitEntry): Promise<GithubLink | null> {
    const { store } = this.d;
    for (const id of e.messageIds) if (await store.hasMessage(id)) return { repo, pr, messageId: id, commitSha: e.sha, method: 'trailer' };
    if (e.patchId) {
      const [id] = await store.patchesByPatchId(e.patchId);
      if (id) return { repo, pr, messageId: id, commitSha: e.sha, method: 'patch-id' };
    }
    const [id] = await store.patchesBySubjectKey(e.subjectKey);
    if (id) return { repo, pr, messageId: id, commitSha: e.sha, method: 'subject' };
    return null;
  }

  // ------------------------------------------------------------ mirror

  async mirror(octokit: Octokit, job: GithubJob): Promise<{ posted: number }> {
    const p = job.payload as MirrorJobPayload;
    const { store, settings } = this.d;
    const full = `${p.owner}/${p.repo}`;
    const n = p.number;
    const readOnly = new RepoApi(octokit, p.owner, p.repo, null);
    const pull = await readOnly.pull(n);
    const api = new RepoApi(octokit, p.owner, p.repo, this.dryRunSink(false, full));
    const already = new Set((await store.githubComments(full, n)).map((r) => r.key));
    if (job.attempts > 1) {
      // A crash may have come between posting and recording: GitHub's markers say what is there.
      for (const k of knownFromGithub(await api.reviewComments(n), await api.reviews(n)).keys()) already.add(k);
    }
    const plan = planMirror(p, prDiff(await api.files(n)), { headSha: pull.head, archive: settings.archive, already });
    if (!plan.review) return { posted: 0 };
    let review = plan.review;
    let created: { id: number };
    try {
      created = await api.createReview(n, review, 'mirror');
    } catch (e) {
      if (statusOf(e) !== 422 || !review.comments.length) throw e;
      this.log.warn({ pr: `${full}#${n}`, mail: p.mail.messageId }, 'github: mirrored review refused (422); posting it in the review body');
      review = inlineToBody(review);
      created = await api.createReview(n, review, 'mirror-fallback');
    }
    if (!api.dry) {
      const ids = review.comments.length ? await api.reviewCommentIds(n, created.id) : new Map<string, number>();
      for (const it of plan.items) {
        const inline = review.comments.length > 0 && it.kind === 'mirror-inline';
        await store.putGithubComment({
          repo: full,
          pr: n,
          key: it.key,
          kind: inline ? 'mirror-inline' : 'mirror-body',
          commentId: inline ? ids.get(it.key) ?? null : null,
          reviewId: created.id,
          path: it.path,
          line: it.line,
          side: it.side,
          commitSha: pull.head,
          state: 'open',
        });
      }
    }
    this.log.info({ pr: `${full}#${n}`, mail: p.mail.messageId, comments: plan.items.length, dryRun: api.dry }, 'github: list reply mirrored');
    return { posted: plan.items.length };
  }
}
