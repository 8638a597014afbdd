// The GitHub App in Probot's test style: signed webhook deliveries POSTed to the real HTTP
// endpoint of `serve` (src/serve/http.ts), the GitHub API faked at HTTP level with nock, and the
// exact requests asserted: the review body, each inline comment's path/line/side/body, the check
// run and its annotations, the edits that mark findings resolved. Throttling and retries are off
// (ProbotOctokit.defaults, function form); the App key is generated here.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import nock from 'nock';
import { parse as parseYaml } from 'yaml';
import { EVENTS, HANDLED, PERMISSIONS } from '../../src/github/app.js';
import { resolvedBody } from '../../src/github/markers.js';
import { cappedOctokit } from '../../src/github/octokit.js';
import { RepoApi, ThreadResolver } from '../../src/github/worker.js';
import { recordFromRaw } from '../../src/mail/record.js';
import type { Finding } from '../../src/model.js';
import { reviewRecord } from '../../src/review/review.js';
import {
  API,
  FILE,
  FULL,
  INSTALLATION_ID,
  OWNER,
  PR,
  REPO,
  appTestKit,
  delivery,
  installationToken,
  noRepoConfig,
  postWebhook,
  SECRET,
  pullRequestPayload,
  sendWebhook as send,
  xenMails,
  TestOctokit,
  type AppHarness,
  type FakeCommit,
} from '../helpers/fake-github.js';
import { pino } from 'pino';
import { llmConfigFromEnv } from '../../src/llm/config.js';
import { LlmReviewer } from '../../src/llm/review.js';
import { FakeOpenAI, answer, GOOD_FINDING } from '../helpers/fake-openai.js';

const BASE = 'b'.repeat(40);
const FPS = { alloc: 'aea885b86bdad191', order: '2d5a14dc2de5ff3f', idle: 'f9d80aceeb9eacb7' };

const kit = appTestKit('patchvet-github-app-');
const harness = kit.harness;
let commit: FakeCommit;
let listFindings: Finding[];
let dir: string;

beforeAll(async () => {
  ({ commit, dir } = kit);
  expect(kit.packErrors).toEqual([]);
  // What the list review says about the same patch: the PR must get the same findings.
  listFindings = reviewRecord(await recordFromRaw(xenMails()[0]!), { rules: kit.rules.rules, kb: kit.rules.kb });
  expect(listFindings.map((f) => f.fingerprint)).toEqual([FPS.alloc, FPS.order, FPS.idle]);
});

const pr = (head: string) => ({ owner: OWNER, repo: REPO, number: PR, head, base: BASE, author: 'rosslagerwall' });

/** The requests every review makes before it writes: token, config (repo, then owner's .github), commits, diffs, files, what is there. */
function readsFor(c: FakeCommit, existing: { comments?: unknown[]; reviews?: unknown[]; token?: boolean; config?: string | null } = {}) {
  const scope = nock(API);
  if (existing.token !== false) installationToken(scope);
  if (existing.config) {
    scope.get(`/repos/${FULL}/contents/.github%2Fpatchvet.yml`).reply(200, existing.config, { 'content-type': 'text/plain; charset=utf-8' });
  } else {
    noRepoConfig(scope);
  }
  scope
    .get(`/repos/${FULL}/pulls/${PR}/commits`)
    .query({ per_page: 100 })
    .reply(200, [{ sha: c.sha, commit: { message: c.message, author: c.author } }])
    .get(`/repos/${FULL}/commits/${c.sha}`)
    .matchHeader('accept', /application\/vnd\.github\.v3\.diff/)
    .reply(200, c.diff)
    .get(`/repos/${FULL}/pulls/${PR}/files`)
    .query({ per_page: 100 })
    .reply(200, c.files.map((f) => ({ ...f, sha: 'f'.repeat(40) })))
    .get(`/repos/${FULL}/pulls/${PR}/comments`)
    .query({ per_page: 100 })
    .reply(200, existing.comments ?? [])
    .get(`/repos/${FULL}/pulls/${PR}/reviews`)
    .query({ per_page: 100 })
    .reply(200, existing.reviews ?? []);
  return scope;
}

function expectedInline(fp: string, rule: string, title: string, message: string): string {
  return [
    `**warning** · \`${rule}\` · ${title}`,
    '',
    message.replace(/>/g, '&gt;'),
    '',
    `<sub>patchvet, commit ${commit.sha.slice(0, 12)} “x86/domain: Ensure a vCPU's FPU is reset early” (in \`arch_vcpu_create()\`)</sub>`,
    `<!-- patchvet:finding=${fp} -->`,
  ].join('\n');
}

/** The commit as its v2: the reset moved into the allocator, nothing left for the Xen rules to say. */
function fixedCommit(sha = 'c'.repeat(40)): FakeCommit {
  const fixed: FakeCommit = {
    ...commit,
    sha,
    diff: commit.diff.replace('+        vcpu_reset_fpu(v);\n+\n', '+        /* FPU state is reset in xstate_alloc_save_area(). */\n'),
  };
  fixed.diff = fixed.diff.replace('@@ -522,6 +522,8 @@', '@@ -522,6 +522,7 @@');
  fixed.files = [{ filename: FILE, status: 'modified', patch: fixed.diff.slice(fixed.diff.indexOf('@@ ')).replace(/\n$/, '') }];
  return fixed;
}

/** patchvet's three inline comments as GitHub shows them after the first push (9001..9003, markers kept). */
function postedComments(text = 'text'): Array<{ id: number; body: string; user: { login: string } }> {
  return Object.values(FPS).map((fp, i) => ({ id: 9001 + i, body: `${text} <!-- patchvet:finding=${fp} -->`, user: { login: 'patchvet[bot]' } }));
}

/** The bodies of those comments as first written, in FPS order (text, then the finding's marker). */
const originalBodies = () => Object.values(FPS).map((fp) => `original text of ${fp}\n<!-- patchvet:finding=${fp} -->`);

/** The review of the first push, as GitHub lists it. */
const FIRST_REVIEW = () => [{ id: 501, body: `<!-- patchvet:review=${commit.sha} -->` }];

/** The first push of `commit`: one review (comments 9001-9003 in FPS order), one check run. */
async function firstPush(h: AppHarness): Promise<void> {
  readsFor(commit)
    .post(`/repos/${FULL}/pulls/${PR}/reviews`)
    .reply(200, { id: 501 })
    .get(`/repos/${FULL}/pulls/${PR}/reviews/501/comments`)
    .query({ per_page: 100 })
    .reply(200, [{ id: 9001, body: `<!-- patchvet:finding=${FPS.alloc} -->` }, { id: 9002, body: `<!-- patchvet:finding=${FPS.order} -->` }, { id: 9003, body: `<!-- patchvet:finding=${FPS.idle} -->` }])
    .post(`/repos/${FULL}/check-runs`)
    .reply(201, { id: 77 });
  expect(await send(h, 'pull_request', pullRequestPayload('opened', pr(commit.sha)))).toBe(200);
  expect(nock.pendingMocks()).toEqual([]);
  nock.cleanAll();
}

interface GraphqlRequest {
  query: string;
  variables: Record<string, unknown>;
}

/** A review thread node as GitHub's GraphQL API gives it. */
const thread = (id: string, firstComment: number, isResolved = false) => ({ id, isResolved, comments: { nodes: [{ databaseId: firstComment }] } });
const threadsPage = (nodes: unknown[], endCursor: string | null) => ({
  data: { repository: { pullRequest: { reviewThreads: { nodes, pageInfo: { hasNextPage: endCursor !== null, endCursor } } } } },
});
const THREADS_QUERY = /reviewThreads\(first: 100, after: \$cursor\)[\s\S]*comments\(first: 1\) \{ nodes \{ databaseId \} \}[\s\S]*pageInfo \{ hasNextPage endCursor \}/;
/** What a request was, for asserting the order: "PATCH 9001", "threads <cursor>", "resolveReviewThread <id>". */
function describeGraphql(b: GraphqlRequest): string {
  if (/reviewThreads/.test(b.query)) return `threads ${String(b.variables.cursor)}`;
  const m = /^mutation[^{]*\{\s*(\w+)\(input: \{ threadId: \$threadId \}\)/.exec(b.query);
  return `${m ? m[1] : 'unknown'} ${String(b.variables.threadId)}`;
}

// ---------------------------------------------------------------- the tests

test('app.yml asks for exactly the events the app handles and least privilege', () => {
  const manifest = parseYaml(readFileSync(join(process.cwd(), 'app.yml'), 'utf8')) as Record<string, unknown>;
  expect([...(manifest.default_events as string[])].sort()).toEqual([...EVENTS].sort());
  expect(manifest.default_permissions).toEqual(PERMISSIONS);
  // Every handled action belongs to a subscribed event, and every event has a handler.
  expect(new Set(HANDLED.map((h) => h.split('.')[0]))).toEqual(new Set(EVENTS));
  expect((manifest.hook_attributes as { url: string }).url).toMatch(/\/api\/github\/webhooks$/);
  expect(manifest.public).toBe(false);
});

test('a push gets ONE review: the three Xen findings inline at the vcpu_reset_fpu(v); line, plus a check run with annotations', async () => {
  const h = await harness();
  try {
    const sent: { review?: Record<string, unknown>; check?: Record<string, unknown> } = {};
    const scope = readsFor(commit)
      .post(`/repos/${FULL}/pulls/${PR}/reviews`, (b) => ((sent.review = b), true))
      .reply(200, { id: 501 })
      .get(`/repos/${FULL}/pulls/${PR}/reviews/501/comments`)
      .query({ per_page: 100 })
      .reply(200, [
        { id: 9001, body: `x <!-- patchvet:finding=${FPS.alloc} -->` },
        { id: 9002, body: `x <!-- patchvet:finding=${FPS.order} -->` },
        { id: 9003, body: `x <!-- patchvet:finding=${FPS.idle} -->` },
      ])
      .post(`/repos/${FULL}/check-runs`, (b) => ((sent.check = b), true))
      .reply(201, { id: 77 });
    const d = await delivery(SECRET, 'pull_request', pullRequestPayload('opened', pr(commit.sha)));
    const res = await postWebhook(h.http.port, d);
    expect(res.status).toBe(200);
    expect(h.unmatched).toEqual([]);
    scope.done();

    const [alloc, order, idle] = listFindings;
    expect(sent.review).toEqual({
      commit_id: commit.sha,
      event: 'COMMENT',
      body: `<!-- patchvet:review=${commit.sha} -->\n**patchvet** reviewed 1 commit at ${commit.sha.slice(0, 12)}: 3 new points (3 warnings).`,
      comments: [
        { path: FILE, line: 525, side: 'RIGHT', body: expectedInline(FPS.alloc, 'xen/alloc-time-init', alloc!.title, alloc!.message) },
        { path: FILE, line: 525, side: 'RIGHT', body: expectedInline(FPS.order, 'xen/fpu-init-order', order!.title, order!.message) },
        { path: FILE, line: 525, side: 'RIGHT', body: expectedInline(FPS.idle, 'xen/idle-vcpu-path', idle!.title, idle!.message) },
      ],
    });
    expect(sent.check).toMatchObject({ name: 'patchvet', head_sha: commit.sha, status: 'completed', conclusion: 'neutral' });
    const output = sent.check!.output as { title: string; summary: string; annotations: unknown[] };
    expect(output.title).toBe('3 findings (3 warnings)');
    expect(output.annotations).toEqual(
      listFindings.map((f) => ({
        path: FILE,
        start_line: 525,
        end_line: 525,
        annotation_level: 'warning',
        title: `${f.rule}: ${f.title}`,
        message: f.message,
      })),
    );
    expect(output.summary).toContain('3 new, 0 already posted, 0 resolved since the last push');
    expect(output.summary).toContain(`| warning | \`xen/idle-vcpu-path\` | \`${FILE}:525\` | ${commit.sha.slice(0, 12)} |`);

    // What was posted is recorded with the GitHub ids.
    const rows = (await h.store.githubComments(FULL, PR)).sort((a, b) => a.key.localeCompare(b.key));
    expect(rows.map((r) => [r.key, r.kind, r.commentId, r.reviewId, r.line, r.side, r.state])).toEqual([
      [`finding:${FPS.alloc}`, 'finding-inline', 9001, 501, 525, 'RIGHT', 'open'],
      [`finding:${FPS.order}`, 'finding-inline', 9002, 501, 525, 'RIGHT', 'open'],
      [`finding:${FPS.idle}`, 'finding-inline', 9003, 501, 525, 'RIGHT', 'open'],
      [`check:${commit.sha}`, 'check', 77, null, null, null, 'open'],
    ].sort((a, b) => String(a[0]).localeCompare(String(b[0]))));
    expect(await h.store.githubJobStats()).toEqual({ queued: 0, running: 0, done: 1, failed: 0 });
  } finally {
    await h.close();
  }
});

test('a second push of the same commit posts nothing; a redelivery of the same webhook is not even read', async () => {
  const h = await harness();
  try {
    // First push.
    readsFor(commit)
      .post(`/repos/${FULL}/pulls/${PR}/reviews`)
      .reply(200, { id: 501 })
      .get(`/repos/${FULL}/pulls/${PR}/reviews/501/comments`)
      .query({ per_page: 100 })
      .reply(200, [{ id: 9001, body: `<!-- patchvet:finding=${FPS.alloc} -->` }, { id: 9002, body: `<!-- patchvet:finding=${FPS.order} -->` }, { id: 9003, body: `<!-- patchvet:finding=${FPS.idle} -->` }])
      .post(`/repos/${FULL}/check-runs`)
      .reply(201, { id: 77 });
    const first = await delivery(SECRET, 'pull_request', pullRequestPayload('opened', pr(commit.sha)));
    expect((await postWebhook(h.http.port, first)).status).toBe(200);
    expect(nock.pendingMocks()).toEqual([]);

    // Same commit pushed again: only reads (the comments now on GitHub carry their markers).
    const scope = readsFor(commit, {
      token: false, // Probot caches the installation token
      comments: [9001, 9002, 9003].map((id, i) => ({ id, body: `text <!-- patchvet:finding=${Object.values(FPS)[i]} -->`, user: { login: 'patchvet[bot]' } })),
      reviews: FIRST_REVIEW(),
    });
    const again = await delivery(SECRET, 'pull_request', pullRequestPayload('synchronize', pr(commit.sha)));
    expect((await postWebhook(h.http.port, again)).status).toBe(200);
    scope.done();
    expect(h.unmatched).toEqual([]);

    // GitHub redelivers the first delivery: the job is known, nothing is requested.
    expect((await postWebhook(h.http.port, first)).status).toBe(200);
    expect(h.unmatched).toEqual([]);
    expect(await h.store.githubJobStats()).toEqual({ queued: 0, running: 0, done: 2, failed: 0 });
  } finally {
    await h.close();
  }
});

test('findings that disappear are marked resolved by editing their comments (answered ones too; nothing is deleted), and their conversations resolved', async () => {
  const h = await harness({ resolveThreads: true });
  try {
    await firstPush(h);

    // v2 of the commit: the reset moved into the allocator, nothing left to say.
    const fixed = fixedCommit();
    const bodies = originalBodies();
    const edits: Array<{ id: number; body: string }> = [];
    const scope = readsFor(fixed, {
      token: false,
      comments: [
        { id: 9001, body: bodies[0], user: { login: 'patchvet[bot]' } },
        { id: 9002, body: bodies[1], user: { login: 'patchvet[bot]' } },
        { id: 9003, body: bodies[2], user: { login: 'patchvet[bot]' } },
        // The author answered the second one.
        { id: 9100, body: 'Fixed in v2.', in_reply_to_id: 9002, user: { login: 'rosslagerwall' } },
      ],
      reviews: FIRST_REVIEW(),
    });
    const order: string[] = [];
    for (const id of [9001, 9002, 9003]) {
      scope.patch(`/repos/${FULL}/pulls/comments/${id}`, (b) => (edits.push({ id, body: b.body }), order.push(`PATCH ${id}`), true)).reply(200, {});
    }
    // The conversations, as GraphQL pages them: someone else's thread, the author already resolved
    // the thread he answered (9002), and 9003's thread on the second page.
    const graphql: GraphqlRequest[] = [];
    scope
      .post('/graphql')
      .times(4)
      .reply((_uri, body) => {
        const b = body as GraphqlRequest;
        graphql.push(b);
        order.push(describeGraphql(b));
        if (/reviewThreads/.test(b.query)) {
          return b.variables.cursor === null
            ? [200, threadsPage([thread('PRRT_other', 8800), thread('PRRT_alloc', 9001), thread('PRRT_order', 9002, true)], 'Y3Vyc29yOjM=')]
            : [200, threadsPage([thread('PRRT_idle', 9003)], null)];
        }
        const resolve = /resolveReviewThread/.test(b.query) && !/unresolve/i.test(b.query);
        return [200, { data: { [resolve ? 'resolveReviewThread' : 'unresolveReviewThread']: { thread: { id: b.variables.threadId, isResolved: resolve } } } }];
      });
    let check: Record<string, unknown> | undefined;
    scope.post(`/repos/${FULL}/check-runs`, (b) => ((check = b), true)).reply(201, { id: 78 });
    expect(await send(h, 'pull_request', pullRequestPayload('synchronize', pr(fixed.sha)))).toBe(200);
    scope.done();
    expect(h.unmatched).toEqual([]); // no review, no DELETE, no more GraphQL
    // Each edit first (it records the state), then its thread; the threads looked up once, page by page.
    expect(order).toEqual(['PATCH 9001', 'threads null', 'threads Y3Vyc29yOjM=', 'resolveReviewThread PRRT_alloc', 'PATCH 9002', 'PATCH 9003', 'resolveReviewThread PRRT_idle']);
    expect(graphql[0]!.query).toMatch(THREADS_QUERY);
    expect(graphql[0]!.variables).toEqual({ owner: OWNER, name: REPO, number: PR, cursor: null });
    expect(graphql[1]!.variables).toEqual({ owner: OWNER, name: REPO, number: PR, cursor: 'Y3Vyc29yOjM=' });
    expect(graphql[2]!.query).toMatch(/^mutation\(\$threadId: ID!\) \{\s*resolveReviewThread\(input: \{ threadId: \$threadId \}\) \{ thread \{ id isResolved \} \}/);
    expect(graphql[2]!.variables).toEqual({ threadId: 'PRRT_alloc' });
    expect(graphql[3]!.variables).toEqual({ threadId: 'PRRT_idle' });
    expect(await h.store.githubJobStats()).toEqual({ queued: 0, running: 0, done: 2, failed: 0 });
    expect(edits.map((e) => e.id)).toEqual([9001, 9002, 9003]);
    expect(edits[1]!.body).toBe(
      [
        `**Resolved**: patchvet no longer finds this at ${fixed.sha.slice(0, 12)}.`,
        '',
        '<details><summary>What it said</summary>',
        '',
        bodies[1],
        '',
        '</details>',
        `<!-- patchvet:resolved=${fixed.sha} -->`,
      ].join('\n'),
    );
    expect(check).toMatchObject({ conclusion: 'success', output: { title: 'No findings', annotations: [] } });
    expect((check!.output as { summary: string }).summary).toBe('patchvet found nothing in 1 commit (3 earlier points resolved).');
    expect((await h.store.githubComments(FULL, PR)).filter((r) => r.key.startsWith('finding:')).map((r) => r.state)).toEqual(['resolved', 'resolved', 'resolved']);
  } finally {
    await h.close();
  }
});

test('without github.resolveThreads (the default: it needs Contents: write) a finding gone is only edited, no GraphQL request', async () => {
  const h = await harness();
  try {
    await firstPush(h);
    const fixed = fixedCommit();
    const edited: number[] = [];
    const scope = readsFor(fixed, {
      token: false,
      comments: postedComments(),
      reviews: FIRST_REVIEW(),
    });
    for (const id of [9001, 9002, 9003]) scope.patch(`/repos/${FULL}/pulls/comments/${id}`, () => (edited.push(id), true)).reply(200, {});
    scope.post(`/repos/${FULL}/check-runs`).reply(201, { id: 79 });
    expect(await send(h, 'pull_request', pullRequestPayload('synchronize', pr(fixed.sha)))).toBe(200);
    scope.done();
    expect(h.unmatched).toEqual([]); // a POST /graphql would be here
    expect(edited).toEqual([9001, 9002, 9003]);
    expect(await h.store.githubJobStats()).toEqual({ queued: 0, running: 0, done: 2, failed: 0 });
  } finally {
    await h.close();
  }
});

test('a finding that comes back is reopened: the comment restored, its conversation unresolved', async () => {
  const h = await harness({ resolveThreads: true });
  try {
    await firstPush(h);
    // On GitHub the three comments were resolved at c…c (an earlier push), and so were their
    // threads; the same commit as at first is pushed again (the v2 was reverted).
    const originals = originalBodies();
    const scope = readsFor(commit, {
      token: false,
      comments: originals.map((b, i) => ({ id: 9001 + i, body: resolvedBody(b, 'c'.repeat(40)), user: { login: 'patchvet[bot]' } })),
      reviews: FIRST_REVIEW(),
    });
    const order: string[] = [];
    const edits = new Map<number, string>();
    for (const id of [9001, 9002, 9003]) {
      scope.patch(`/repos/${FULL}/pulls/comments/${id}`, (b) => (edits.set(id, b.body), order.push(`PATCH ${id}`), true)).reply(200, {});
    }
    const graphql: GraphqlRequest[] = [];
    scope
      .post('/graphql')
      .times(4)
      .reply((_uri, body) => {
        const b = body as GraphqlRequest;
        graphql.push(b);
        order.push(describeGraphql(b));
        if (/reviewThreads/.test(b.query)) return [200, threadsPage([thread('PRRT_alloc', 9001, true), thread('PRRT_order', 9002, true), thread('PRRT_idle', 9003, true)], null)];
        return [200, { data: { unresolveReviewThread: { thread: { id: b.variables.threadId, isResolved: false } } } }];
      });
    expect(await send(h, 'pull_request', pullRequestPayload('synchronize', pr(commit.sha)))).toBe(200);
    scope.done();
    expect(h.unmatched).toEqual([]); // no new review, no second check run for the same head
    expect(order).toEqual([
      'PATCH 9001',
      'threads null',
      'unresolveReviewThread PRRT_alloc',
      'PATCH 9002',
      'unresolveReviewThread PRRT_order',
      'PATCH 9003',
      'unresolveReviewThread PRRT_idle',
    ]);
    expect([...edits.values()]).toEqual(originals);
    expect(graphql[1]!.query).toMatch(/^mutation\(\$threadId: ID!\) \{\s*unresolveReviewThread\(input: \{ threadId: \$threadId \}\)/);
    expect(graphql.slice(1).map((g) => g.variables)).toEqual([{ threadId: 'PRRT_alloc' }, { threadId: 'PRRT_order' }, { threadId: 'PRRT_idle' }]);
    expect((await h.store.githubComments(FULL, PR)).filter((r) => r.key.startsWith('finding:')).map((r) => r.state)).toEqual(['open', 'open', 'open']);
  } finally {
    await h.close();
  }
});

test('GraphQL failures do not fail the job: the comments are still edited, a refused lookup is not retried per comment, a gone thread does not stop the next', async () => {
  const h = await harness({ resolveThreads: true });
  try {
    await firstPush(h);
    const fixed = fixedCommit();
    const comments = postedComments();
    const reviews = FIRST_REVIEW();

    // 1. The lookup is refused (an installation without the permission GitHub wants): one
    // GraphQL request, the three edits all the same, the job done.
    const edited: number[] = [];
    const refused = readsFor(fixed, { token: false, comments, reviews });
    for (const id of [9001, 9002, 9003]) refused.patch(`/repos/${FULL}/pulls/comments/${id}`, () => (edited.push(id), true)).reply(200, {});
    refused
      .post('/graphql', (b: GraphqlRequest) => /reviewThreads/.test(b.query))
      .reply(200, { data: { repository: null }, errors: [{ type: 'FORBIDDEN', path: ['repository'], message: 'Resource not accessible by integration' }] })
      .post(`/repos/${FULL}/check-runs`)
      .reply(201, { id: 78 });
    expect(await send(h, 'pull_request', pullRequestPayload('synchronize', pr(fixed.sha)))).toBe(200);
    refused.done();
    expect(h.unmatched).toEqual([]);
    expect(edited).toEqual([9001, 9002, 9003]);
    expect((await h.store.githubComments(FULL, PR)).filter((r) => r.key.startsWith('finding:')).map((r) => r.state)).toEqual(['resolved', 'resolved', 'resolved']);
    expect(await h.store.githubJobStats()).toEqual({ queued: 0, running: 0, done: 2, failed: 0 });
    nock.cleanAll();

    // 2. The findings come back; the first thread is gone (NOT_FOUND), the next one is a 502:
    // each is tried, the edits all happen, the job is done.
    const resolved = comments.map((c) => ({ ...c, body: resolvedBody(c.body, fixed.sha) }));
    const tried: string[] = [];
    const flaky = readsFor(commit, { token: false, comments: resolved, reviews });
    edited.length = 0;
    for (const id of [9001, 9002, 9003]) flaky.patch(`/repos/${FULL}/pulls/comments/${id}`, () => (edited.push(id), true)).reply(200, {});
    flaky
      .post('/graphql', (b: GraphqlRequest) => /reviewThreads/.test(b.query))
      .reply(200, threadsPage([thread('PRRT_alloc', 9001, true), thread('PRRT_order', 9002, true), thread('PRRT_idle', 9003, true)], null))
      .post('/graphql', (b: GraphqlRequest) => (tried.push(String(b.variables.threadId)), b.variables.threadId === 'PRRT_alloc'))
      .reply(200, { data: { unresolveReviewThread: null }, errors: [{ type: 'NOT_FOUND', path: ['unresolveReviewThread'], message: "Could not resolve to a node with the global id of 'PRRT_alloc'" }] })
      .post('/graphql', (b: GraphqlRequest) => b.variables.threadId === 'PRRT_order')
      .reply(502, 'bad gateway')
      .post('/graphql', (b: GraphqlRequest) => b.variables.threadId === 'PRRT_idle')
      .reply(200, { data: { unresolveReviewThread: { thread: { id: 'PRRT_idle', isResolved: false } } } });
    expect(await send(h, 'pull_request', pullRequestPayload('synchronize', pr(commit.sha)))).toBe(200);
    flaky.done();
    expect(h.unmatched).toEqual([]);
    expect(edited).toEqual([9001, 9002, 9003]);
    expect((await h.store.githubComments(FULL, PR)).filter((r) => r.key.startsWith('finding:')).map((r) => r.state)).toEqual(['open', 'open', 'open']);
    expect(await h.store.githubJobStats()).toEqual({ queued: 0, running: 0, done: 3, failed: 0 });
  } finally {
    await h.close();
  }
});

test('ThreadResolver: a warning names the PR and the comment; after a refusal (FORBIDDEN) the job asks no more', async () => {
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'warn' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
  const octokit = new TestOctokit({ auth: 'ghs_test' });
  const resolver = new ThreadResolver(new RepoApi(octokit, OWNER, REPO, null), PR, log);
  const scope = nock(API)
    .post('/graphql', (b: GraphqlRequest) => /reviewThreads/.test(b.query))
    .reply(200, threadsPage([thread('PRRT_alloc', 9001), thread('PRRT_order', 9002), thread('PRRT_idle', 9003, true)], null))
    .post('/graphql', (b: GraphqlRequest) => b.variables.threadId === 'PRRT_alloc')
    .reply(200, { data: { resolveReviewThread: null }, errors: [{ type: 'FORBIDDEN', path: ['resolveReviewThread'], message: 'Resource not accessible by integration' }] });
  await resolver.set(9003, true); // already resolved: nothing to send
  await resolver.set(9001, true);
  await resolver.set(9002, true); // refused before: not asked
  await resolver.set(4242, true);
  scope.done();
  expect(nock.pendingMocks()).toEqual([]);
  expect(lines.map((l) => [l.level, l.pr, l.comment, l.forbidden])).toEqual([[40, `${FULL}#${PR}`, 9001, true]]);
  expect(lines[0]!.msg).toMatch(/could not resolve the review thread; the comment edit stands/);
  expect(lines[0]!.error).toMatch(/Resource not accessible by integration/);

  // The lookup refused: said once, with the comment that needed it; nothing more is asked.
  lines.length = 0;
  const denied = new ThreadResolver(new RepoApi(octokit, OWNER, REPO, null), PR, log);
  nock(API).post('/graphql').reply(403, { message: 'Resource not accessible by integration' });
  await denied.set(9001, true);
  await denied.set(9002, true);
  expect(nock.pendingMocks()).toEqual([]);
  expect(lines.map((l) => [l.pr, l.comment, l.forbidden])).toEqual([[`${FULL}#${PR}`, 9001, true]]);
  expect(lines[0]!.msg).toMatch(/could not read the review threads/);

  // A comment without a thread (nothing refused): said so, with its id.
  lines.length = 0;
  const other = new ThreadResolver(new RepoApi(octokit, OWNER, REPO, null), PR, log);
  nock(API).post('/graphql').reply(200, threadsPage([thread('PRRT_idle', 9003)], null));
  await other.set(4242, false);
  expect(nock.pendingMocks()).toEqual([]);
  expect(lines.map((l) => [l.pr, l.comment, l.msg])).toEqual([[`${FULL}#${PR}`, 4242, 'github: no review thread starts with this comment; conversation left as it is']]);
});

test('GitHub refuses the inline comments (422): the same review is posted with them in its body', async () => {
  const h = await harness();
  try {
    const posts: Array<Record<string, unknown>> = [];
    const scope = readsFor(commit)
      .post(`/repos/${FULL}/pulls/${PR}/reviews`, (b) => (posts.push(b), true))
      .reply(422, { message: 'Unprocessable Entity', errors: ['Line could not be resolved'] })
      .post(`/repos/${FULL}/pulls/${PR}/reviews`, (b) => (posts.push(b), true))
      .reply(200, { id: 502 })
      .post(`/repos/${FULL}/check-runs`)
      .reply(201, { id: 79 });
    expect(await send(h, 'pull_request', pullRequestPayload('opened', pr(commit.sha)))).toBe(200);
    scope.done();
    expect(h.unmatched).toEqual([]);
    expect(posts).toHaveLength(2);
    const [first, second] = posts as Array<{ body: string; comments: Array<{ body: string }> }>;
    expect(first!.comments).toHaveLength(3);
    expect(second!.comments).toEqual([]);
    expect(second!.body.startsWith(first!.body)).toBe(true);
    for (const c of first!.comments) expect(second!.body).toContain(`On \`${FILE}\` line 525:\n\n${c.body}`);
    // Recorded as body items of review 502: a later push does not post them again.
    expect((await h.store.githubComments(FULL, PR)).filter((r) => r.kind === 'finding-body').map((r) => r.reviewId)).toEqual([502, 502, 502]);
  } finally {
    await h.close();
  }
});

test('a webhook with a wrong or missing signature is refused and changes nothing', async () => {
  const h = await harness();
  try {
    const payload = pullRequestPayload('opened', pr(commit.sha));
    const wrong = await delivery(SECRET, 'pull_request', payload, 'sha256=' + '0'.repeat(64));
    const r1 = await postWebhook(h.http.port, wrong);
    expect(r1.status).toBe(400);
    expect(r1.text).toMatch(/signature does not match/);
    const otherSecret = await delivery('not-the-secret', 'pull_request', payload);
    expect((await postWebhook(h.http.port, { headers: otherSecret.headers, body: otherSecret.body })).status).toBe(400);
    const missing = await delivery(SECRET, 'pull_request', payload, null);
    const r3 = await postWebhook(h.http.port, missing);
    expect(r3.status).toBe(400);
    expect(r3.text).toMatch(/x-hub-signature-256/);
    // A body altered after signing.
    const good = await delivery(SECRET, 'pull_request', payload);
    expect((await postWebhook(h.http.port, { headers: good.headers, body: good.body.replace('"opened"', '"reopened"') })).status).toBe(400);
    expect(h.unmatched).toEqual([]);
    expect(await h.store.githubJobStats()).toEqual({ queued: 0, running: 0, done: 0, failed: 0 });
    expect(await h.store.getGithubPr(FULL, PR)).toBeNull();
    // Other paths and methods are not the webhook.
    expect((await fetch(`http://127.0.0.1:${h.http.port}/api/github/webhooks`)).status).toBe(404);
  } finally {
    await h.close();
  }
});

test('the repository config mutes rules and sets the check run to fail; a muted author gets nothing', async () => {
  const h = await harness();
  try {
    let review: { comments: Array<{ body: string }> } | undefined;
    let check: { conclusion: string; output: { annotations: unknown[] } } | undefined;
    const scope = readsFor(commit, { config: 'mute: [xen/alloc-time-init, "xen/idle-*"]\nfailOn: warning\n' })
      .post(`/repos/${FULL}/pulls/${PR}/reviews`, (b) => ((review = b), true))
      .reply(200, { id: 503 })
      .get(`/repos/${FULL}/pulls/${PR}/reviews/503/comments`)
      .query({ per_page: 100 })
      .reply(200, [])
      .post(`/repos/${FULL}/check-runs`, (b) => ((check = b), true))
      .reply(201, { id: 80 });
    expect(await send(h, 'pull_request', pullRequestPayload('opened', pr(commit.sha)))).toBe(200);
    scope.done();
    expect(review!.comments).toHaveLength(1);
    expect(review!.comments[0]!.body).toContain('`xen/fpu-init-order`');
    expect(check!.conclusion).toBe('failure');
    expect(check!.output.annotations).toHaveLength(1);

    nock.cleanAll();
    const muted = nock(API)
      .get(`/repos/${FULL}/contents/.github%2Fpatchvet.yml`)
      .reply(200, 'mute: [rosslagerwall]\n', { 'content-type': 'text/plain; charset=utf-8' });
    expect(await send(h, 'pull_request', pullRequestPayload('reopened', pr(commit.sha)))).toBe(200);
    muted.done();
    expect(h.unmatched).toEqual([]);
  } finally {
    await h.close();
  }
});

test('with the LLM pass on, its point joins the same review inline (llm/<category>) and never fails the check', async () => {
  const ai = await FakeOpenAI.start();
  ai.push(
    answer({
      findings: [{ ...GOOD_FINDING, file: FILE }],
    }),
  );
  const llmConfig = llmConfigFromEnv({ OPENAI_BASE_URL: ai.url, PATCHVET_LLM_MODEL: 'review-model', PATCHVET_LLM_RETRIES: '0' })!;
  const h = await harness({}, (store) => new LlmReviewer(llmConfig, { store }));
  try {
    let review: { comments: Array<{ path: string; line: number; side: string; body: string }> } | undefined;
    let check: { conclusion: string; output: { annotations: Array<{ start_line: number; title: string }> } } | undefined;
    // The Xen rules muted and failOn: warning: only the LLM's warning is left, and it must not fail the check.
    const scope = readsFor(commit, { config: 'mute: ["xen/*"]\nfailOn: warning\n' })
      .post(`/repos/${FULL}/pulls/${PR}/reviews`, (b) => ((review = b), true))
      .reply(200, { id: 504 })
      .get(`/repos/${FULL}/pulls/${PR}/reviews/504/comments`)
      .query({ per_page: 100 })
      .reply(200, [])
      .post(`/repos/${FULL}/check-runs`, (b) => ((check = b), true))
      .reply(201, { id: 81 });
    expect(await send(h, 'pull_request', pullRequestPayload('opened', pr(commit.sha)))).toBe(200);
    scope.done();
    expect(h.unmatched).toEqual([]);
    // One request, budgeted against the repository, with the PR commit as delimited data.
    expect(ai.chats).toHaveLength(1);
    const user = ai.chats[0]!.body.messages.find((m: { role: string }) => m.role === 'user').content as string;
    expect(user).toContain('+|        vcpu_reset_fpu(v);');
    expect(ai.chats[0]!.body.messages[0].content).toContain(`pull requests to ${FULL}`);
    expect(await h.store.tokensFor(new Date().toISOString().slice(0, 10), `github:${FULL}`)).toBeGreaterThan(0);

    expect(review!.comments.map((c) => [c.path, c.line, c.side])).toEqual([[FILE, 529, 'RIGHT']]);
    expect(review!.comments[0]!.body).toContain('`llm/correctness`');
    expect(review!.comments[0]!.body).toContain('arch_vcpu_regs_init() rewrites the FPU control words');
    expect(check!.conclusion).toBe('neutral');
    expect(check!.output.annotations.map((a) => [a.start_line, a.title.split(':')[0]])).toEqual([[529, 'llm/correctness']]);
  } finally {
    await h.close();
    await ai.close();
  }
});

test('dry run: everything is read, nothing is written, what would be posted is logged and recorded nowhere', async () => {
  const h = await harness({ dryRun: true, dryRunFile: join(dir, 'dry-run.jsonl') });
  try {
    const scope = readsFor(commit);
    expect(await send(h, 'pull_request', pullRequestPayload('opened', pr(commit.sha)))).toBe(200);
    scope.done();
    expect(h.unmatched).toEqual([]);
    const lines = readFileSync(join(dir, 'dry-run.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l) => [l.action, l.method, l.url])).toEqual([
      ['review', 'POST', `/repos/${FULL}/pulls/${PR}/reviews`],
      ['check-run', 'POST', `/repos/${FULL}/check-runs`],
    ]);
    expect(lines[0].body.comments.map((c: { path: string; line: number; side: string }) => [c.path, c.line, c.side])).toEqual([
      [FILE, 525, 'RIGHT'],
      [FILE, 525, 'RIGHT'],
      [FILE, 525, 'RIGHT'],
    ]);
    expect(await h.store.githubComments(FULL, PR)).toEqual([]);
  } finally {
    await h.close();
  }
});

test('dry run: a finding gone is logged as a comment edit and a thread to resolve; no GraphQL request at all', async () => {
  const file = join(dir, 'dry-run-resolve.jsonl');
  const h = await harness({ dryRun: true, dryRunFile: file, resolveThreads: true });
  try {
    const fixed = fixedCommit();
    // What GitHub shows from an earlier (real) run: the comments with their markers.
    const scope = readsFor(fixed, {
      comments: postedComments(),
      reviews: FIRST_REVIEW(),
    });
    let graphql = 0;
    nock(API).post('/graphql').optionally().reply(() => (graphql++, [200, { data: {} }]));
    expect(await send(h, 'pull_request', pullRequestPayload('synchronize', pr(fixed.sha)))).toBe(200);
    scope.done();
    expect(h.unmatched).toEqual([]);
    expect(graphql).toBe(0);
    const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l) => [l.action, l.method, l.url])).toEqual([
      ['resolve', 'PATCH', '/repos/xen-project/xen/pulls/comments/9001'],
      ['resolve-thread', 'POST', '/graphql'],
      ['resolve', 'PATCH', '/repos/xen-project/xen/pulls/comments/9002'],
      ['resolve-thread', 'POST', '/graphql'],
      ['resolve', 'PATCH', '/repos/xen-project/xen/pulls/comments/9003'],
      ['resolve-thread', 'POST', '/graphql'],
      ['check-run', 'POST', `/repos/${FULL}/check-runs`],
    ]);
    expect(lines[1].body).toMatchObject({ commentId: 9001, variables: { threadId: null } });
    expect(lines[1].body.query).toMatch(/resolveReviewThread/);
    expect(await h.store.githubComments(FULL, PR)).toEqual([]);
  } finally {
    await h.close();
  }
});

test('two pushes delivered at once are handled one after the other: one review, one check run', async () => {
  const h = await harness();
  try {
    let reviews = 0;
    let checks = 0;
    const scope = readsFor(commit);
    readsFor(commit, { token: false }); // the second delivery reads the same
    scope
      .post(`/repos/${FULL}/pulls/${PR}/reviews`, () => (reviews++, true))
      .reply(200, { id: 601 })
      .get(`/repos/${FULL}/pulls/${PR}/reviews/601/comments`)
      .query({ per_page: 100 })
      .reply(200, [])
      .post(`/repos/${FULL}/check-runs`, () => (checks++, true))
      .reply(201, { id: 81 });
    const [a, b] = await Promise.all([
      send(h, 'pull_request', pullRequestPayload('opened', pr(commit.sha))),
      send(h, 'pull_request', pullRequestPayload('synchronize', pr(commit.sha))),
    ]);
    expect([a, b]).toEqual([200, 200]);
    expect(h.unmatched).toEqual([]);
    expect([reviews, checks]).toEqual([1, 1]);
    expect(await h.store.githubJobStats()).toEqual({ queued: 0, running: 0, done: 2, failed: 0 });
  } finally {
    await h.close();
  }
});

test('"Re-run" on the check run (check_run.rerequested) reviews the head again; other apps\' check runs are ignored', async () => {
  const h = await harness();
  try {
    let posted = false;
    const scope = readsFor(commit)
      .post(`/repos/${FULL}/pulls/${PR}/reviews`, () => ((posted = true), true))
      .reply(200, { id: 602 })
      .get(`/repos/${FULL}/pulls/${PR}/reviews/602/comments`)
      .query({ per_page: 100 })
      .reply(200, [])
      .post(`/repos/${FULL}/check-runs`)
      .reply(201, { id: 82 });
    const payload = (name: string) => ({
      action: 'rerequested',
      check_run: { id: 5, name, head_sha: commit.sha, pull_requests: [{ number: PR, head: { sha: commit.sha }, base: { sha: BASE } }] },
      repository: { id: 1, name: REPO, full_name: FULL, owner: { login: OWNER } },
      installation: { id: INSTALLATION_ID },
      sender: { login: 'andyhhp', type: 'User' },
    });
    expect(await send(h, 'check_run', payload('some-ci'))).toBe(200);
    expect(posted).toBe(false);
    expect(await send(h, 'check_run', payload('patchvet'))).toBe(200);
    scope.done();
    expect(posted).toBe(true);
    expect(h.unmatched).toEqual([]);
  } finally {
    await h.close();
  }
});

test('a large PR: files are read page by page, commits only up to maxCommits (no more pages, no more diffs), and the check run says what was left out', async () => {
  const h = await harness({ maxCommits: 100 });
  try {
    const many = Array.from({ length: 101 }, (_, i) => {
      const sha = (i + 1).toString(16).padStart(40, '0');
      const file = `tools/misc/file${i}.c`;
      const diff = `diff --git a/${file} b/${file}\nindex 1111111..2222222 100644\n--- a/${file}\n+++ b/${file}\n@@ -1,2 +1,3 @@\n int a;\n+int b${i};\n int c;\n`;
      return { sha, file, diff, message: `tools/misc: add b${i}\n\nWhy it is needed.\n\nSigned-off-by: Dev <dev@example.org>\n` };
    });
    const link = (path: string, page: number, last: number) =>
      `<${API}${path}?per_page=100&page=${page}>; rel="next", <${API}${path}?per_page=100&page=${last}>; rel="last"`;
    const commitsPath = `/repos/${FULL}/pulls/${PR}/commits`;
    const filesPath = `/repos/${FULL}/pulls/${PR}/files`;
    const asCommit = (c: (typeof many)[number]) => ({ sha: c.sha, commit: { message: c.message, author: { name: 'Dev', email: 'dev@example.org', date: '2026-03-24T18:19:29Z' } } });
    const asFile = (c: (typeof many)[number]) => ({ filename: c.file, status: 'modified', patch: c.diff.slice(c.diff.indexOf('@@')).trimEnd() });
    const scope = nock(API)
      .post(`/app/installations/${INSTALLATION_ID}/access_tokens`)
      .reply(201, { token: 'ghs_test', expires_at: new Date(Date.now() + 3600e3).toISOString() })
      .get(`/repos/${FULL}/contents/.github%2Fpatchvet.yml`)
      .reply(404, {})
      .get(`/repos/${OWNER}/.github/contents/.github%2Fpatchvet.yml`)
      .reply(404, {})
      .get(commitsPath)
      .query({ per_page: 100 })
      .reply(200, many.slice(0, 100).map(asCommit), { link: link(commitsPath, 2, 2) })
      .get(filesPath)
      .query({ per_page: 100 })
      .reply(200, many.slice(0, 100).map(asFile), { link: link(filesPath, 2, 2) })
      .get(filesPath)
      .query({ per_page: 100, page: 2 })
      .reply(200, many.slice(100).map(asFile))
      .get(`/repos/${FULL}/pulls/${PR}/comments`)
      .query({ per_page: 100 })
      .reply(200, [])
      .get(`/repos/${FULL}/pulls/${PR}/reviews`)
      .query({ per_page: 100 })
      .reply(200, []);
    for (const c of many.slice(0, 100)) scope.get(`/repos/${FULL}/commits/${c.sha}`).reply(200, c.diff);
    let check: { output: { summary: string } } | undefined;
    scope.post(`/repos/${FULL}/check-runs`, (b) => ((check = b), true)).reply(201, { id: 90 });
    // Anything the rules say about these commits goes in one review (not asserted here).
    scope.post(`/repos/${FULL}/pulls/${PR}/reviews`).optionally().reply(200, { id: 91 });
    scope.get(`/repos/${FULL}/pulls/${PR}/reviews/91/comments`).query({ per_page: 100 }).optionally().reply(200, []);
    expect(await send(h, 'pull_request', { ...pullRequestPayload('opened', pr(many[100]!.sha)), pull_request: { ...(pullRequestPayload('opened', pr(many[100]!.sha)).pull_request as object), commits: 101 } })).toBe(200);
    scope.done();
    expect(h.unmatched).toEqual([]); // the 101st commit's diff was not fetched, page 2 of commits not needed
    expect(check!.output.summary).toContain('in 100 commits');
    expect(check!.output.summary).toContain('1 commit of this pull request was not reviewed (over the per-PR limit).');
  } finally {
    await h.close();
  }
});

test('Octokit limits: rate limits are retried a few times only, never after a long wait, and not by the retry plugin too', async () => {
  const Octokit = cappedOctokit({ rateLimit: 2, secondaryRateLimit: 1, serverErrors: 1, maxWaitSeconds: 60 });
  // Waits in milliseconds instead of seconds, so the test does not sleep.
  const o = new Octokit({ auth: { token: 'ghs_x' }, throttle: { retryAfterBaseValue: 1 }, retry: { retryAfterBaseValue: 1 }, log: { debug() {}, info() {}, warn() {}, error() {} } } as never);
  const soon = String(Math.floor(Date.now() / 1000) + 1);
  const primary = nock(API)
    .get('/rate')
    .times(3)
    .reply(403, { message: 'API rate limit exceeded' }, { 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': soon });
  await expect(o.request('GET /rate')).rejects.toMatchObject({ status: 403 });
  primary.done(); // the first try and 2 retries

  const secondary = nock(API)
    .get('/secondary')
    .times(2)
    .reply(403, { message: 'You have exceeded a secondary rate limit' }, { 'retry-after': '1' });
  await expect(o.request('GET /secondary')).rejects.toMatchObject({ status: 403 });
  secondary.done(); // the first try and 1 retry

  const late = String(Math.floor(Date.now() / 1000) + 3600);
  const far = nock(API).get('/far').reply(403, { message: 'API rate limit exceeded' }, { 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': late });
  await expect(o.request('GET /far')).rejects.toMatchObject({ status: 403 });
  far.done(); // reset in an hour: not retried here (the job is rescheduled)

  const flaky = nock(API).get('/flaky').reply(502, 'bad gateway').get('/flaky').reply(200, { ok: true });
  expect((await o.request('GET /flaky')).data).toEqual({ ok: true });
  flaky.done();
  const always = nock(API).get('/down').times(2).reply(503, 'unavailable');
  await expect(o.request('GET /down')).rejects.toMatchObject({ status: 503 });
  always.done(); // 1 retry for server errors
  expect(nock.pendingMocks()).toEqual([]);
});
