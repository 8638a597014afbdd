// End to end with the real HTTP stack: `serve` (the Service with its HTTP server, its maildir
// source and its store, on SQLite and on PostgreSQL) configured through the environment as an
// operator would (APP_ID, PRIVATE_KEY, WEBHOOK_SECRET, GHE_HOST=127.0.0.1:<port>,
// GHE_PROTOCOL=http), a fake GitHub server on loopback (test/helpers/fake-github.ts) that keeps
// state and refuses comments outside the diff, signed webhooks POSTed to serve's port, and the
// reference xen-devel thread delivered into the maildir serve follows. The Octokit is the real
// one, throttling and capped retries included.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pino } from 'pino';
import { loadPacks } from '../../src/rules/load.js';
import type { KnowledgeBase, RuleSpec } from '../../src/rules/types.js';
import { buildConfig } from '../../src/serve/config.js';
import { Service } from '../../src/serve/service.js';
import {
  FakeGithub,
  delivery,
  postWebhook,
  pullRequestPayload,
  testPrivateKey,
  xenCommit,
  xenMails,
  type FakeCommit,
} from '../helpers/fake-github.js';
import { PATCH_ID, REVIEW_ID, ANSWER_ID, XEN_RULES, pgHarness, sqliteHarness, until, type StoreHarness } from '../helpers/serve.js';

const SECRET = 'e2e-webhook-secret';
const REPO = 'xen-project/xen';
const PR = 7;
const BASE = 'a'.repeat(40);
const FILE = 'xen/arch/x86/domain.c';
const LIST = 'xen-devel@lists.xenproject.org';
const ARCHIVE = 'https://lore.kernel.org/xen-devel/{messageId}/';
const archived = (id: string) => `https://lore.kernel.org/xen-devel/${id.slice(1, -1)}/`;

let rules: { rules: RuleSpec[]; kb: KnowledgeBase };
let commit: FakeCommit;
let dir: string;

beforeAll(async () => {
  const packs = loadPacks();
  rules = { rules: packs.rules, kb: packs.kb };
  commit = await xenCommit();
  dir = mkdtempSync(join(tmpdir(), 'patchvet-github-e2e-'));
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

class Maildir {
  private n = 0;
  constructor(readonly path: string) {
    for (const d of ['new', 'cur', 'tmp']) mkdirSync(join(path, d), { recursive: true });
  }
  deliver(raw: Buffer): void {
    const name = `${Date.now()}.${process.pid}_${++this.n}.test`;
    writeFileSync(join(this.path, 'tmp', name), raw);
    renameSync(join(this.path, 'tmp', name), join(this.path, 'new', name));
  }
}

let n = 0;
function setup(storeUrl: string, fake: FakeGithub) {
  const base = join(dir, `run-${++n}`);
  const maildir = new Maildir(join(base, 'Maildir'));
  const env = {
    APP_ID: '98765',
    PRIVATE_KEY: testPrivateKey(),
    WEBHOOK_SECRET: SECRET,
    GHE_HOST: `127.0.0.1:${fake.port}`,
    GHE_PROTOCOL: 'http',
  };
  const yaml = {
    store: storeUrl,
    sources: [{ type: 'maildir', path: maildir.path, every: '200ms', start: 'beginning' }],
    lists: [{ address: LIST, rules: ['xen', 'common'], reply: 'off' }],
    maxAge: 'off',
    delivery: { email: { from: 'patchvet <bot@patchvet.example>', outbox: join(base, 'outbox') } },
    http: { listen: '127.0.0.1:0' },
    pollInterval: '100ms',
    github: { archive: ARCHIVE },
  };
  return { maildir, env, yaml, base };
}

function pr(head: string) {
  return { owner: 'xen-project', repo: 'xen', number: PR, head, base: BASE, author: 'rosslagerwall' };
}

describe.each<[string, () => StoreHarness]>([
  ['sqlite', sqliteHarness],
  ['postgres', pgHarness],
])('GitHub App end to end on %s', (_name, make) => {
  const h = make();
  let fake: FakeGithub;
  beforeAll(async () => {
    await h.setup();
  });
  afterAll(() => h.teardown());
  beforeEach(async () => {
    fake = new FakeGithub();
    await fake.start();
  });
  afterEach(async () => {
    await fake.stop();
  });

  test('a PR of the reference patch: one review with the three Xen findings at vcpu_reset_fpu(v);, nothing new on a re-push, the maintainer\'s list reply at the line it quoted', async () => {
    const { maildir, env, yaml } = setup(await h.freshUrl(), fake);
    fake.addPull(REPO, { number: PR, head: commit.sha, base: BASE, author: 'rosslagerwall', commits: [commit.sha] }, [commit]);
    const config = buildConfig(yaml, { env });
    expect(config.github.app?.baseUrl).toBe(`http://127.0.0.1:${fake.port}/api/v3`);
    const svc = await Service.open({ config, rules, logger: pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }) });
    await svc.start();
    try {
      const port = svc.httpPort!;

      // 1. The PR is opened.
      const opened = await postWebhook(port, await delivery(SECRET, 'pull_request', pullRequestPayload('opened', pr(commit.sha))));
      expect(opened.status).toBe(200);
      expect(fake.reviews).toHaveLength(1);
      const review = fake.reviews[0]!;
      expect(review).toMatchObject({ repo: REPO, pr: PR, commit_id: commit.sha, event: 'COMMENT' });
      const inline = fake.comments.filter((c) => c.review_id === review.id);
      expect(inline.map((c) => [c.path, c.line, c.side])).toEqual([
        [FILE, 525, 'RIGHT'],
        [FILE, 525, 'RIGHT'],
        [FILE, 525, 'RIGHT'],
      ]);
      expect(inline.map((c) => /`(xen\/[a-z-]+)`/.exec(c.body)?.[1])).toEqual(XEN_RULES);
      // The line they sit on is the vcpu_reset_fpu(v); line of the PR's diff.
      expect(commit.files[0]!.patch!.split('\n')[4]).toBe('+        vcpu_reset_fpu(v);');
      expect(fake.checkRuns).toHaveLength(1);
      const check = fake.checkRuns[0]!.body as { head_sha: string; conclusion: string; output: { annotations: Array<{ path: string; start_line: number; annotation_level: string }> } };
      expect(check.head_sha).toBe(commit.sha);
      expect(check.output.annotations.map((a) => [a.path, a.start_line, a.annotation_level])).toEqual([
        [FILE, 525, 'warning'],
        [FILE, 525, 'warning'],
        [FILE, 525, 'warning'],
      ]);
      // The App authenticated as the installation for every repository call.
      expect(fake.requests.filter((r) => r.status === 401)).toEqual([]);

      // 2. The same commit pushed again: nothing new.
      const writesBefore = fake.writes().length;
      expect(writesBefore).toBe(2); // the review and the check run
      const again = await postWebhook(port, await delivery(SECRET, 'pull_request', pullRequestPayload('synchronize', pr(commit.sha))));
      expect(again.status).toBe(200);
      expect(fake.writes()).toHaveLength(writesBefore);
      expect(fake.reviews).toHaveLength(1);

      // 3. The thread arrives on the list: the patch is linked to the PR by patch-id, and the
      //    maintainer's reply appears on the PR at the line it quoted, attributed, with a link.
      const [patch, maintainer] = xenMails();
      maildir.deliver(patch!.raw);
      maildir.deliver(maintainer!.raw);
      await svc.settle();
      await until(async () => fake.reviews.length === 2, 20_000, 'the mirrored review');
      expect(await svc.store.githubLinks(REPO, PR)).toEqual([{ repo: REPO, pr: PR, messageId: PATCH_ID, commitSha: commit.sha, method: 'patch-id' }]);
      const mirrored = fake.reviews[1]!;
      expect(mirrored.body).toContain(`**Andrew Cooper** replied on the list on 2026-03-24 to “Re: [PATCH v2 1/9] x86/domain: Ensure a vCPU's FPU is reset early” ([archived mail](${archived(REVIEW_ID)}))`);
      expect(mirrored.body).toContain('How?'); // prose answering the commit message stays in the body
      const at = fake.comments.filter((c) => c.review_id === mirrored.id);
      expect(at.map((c) => [c.path, c.line, c.side])).toEqual([[FILE, 525, 'RIGHT']]);
      expect(at[0]!.body.startsWith(`**Andrew Cooper** wrote on the list ([archived mail](${archived(REVIEW_ID)})):\n\n... this really should be part of allocating the memory.`)).toBe(true);
      expect(at[0]!.body).toMatch(/vcpu_reset_fpu\(\) sets v-&gt;fpu_initialised = false\.\s+Doesn't this defeat/);

      // 4. Nothing is mirrored twice: the same mail again (another copy), the author's answer once.
      maildir.deliver(maintainer!.raw);
      maildir.deliver(xenMails()[2]!.raw);
      await svc.settle();
      await until(async () => fake.reviews.length === 3, 20_000, "the author's answer");
      expect(fake.reviews[2]!.body).toContain(`([archived mail](${archived(ANSWER_ID)}))`);
      await svc.settle();
      expect(fake.reviews).toHaveLength(3);
      // Every job ends done (the background loop may still be writing the last one's state).
      let jobs = await svc.store.githubJobStats();
      await until(async () => ((jobs = await svc.store.githubJobStats()), jobs.queued + jobs.running === 0), 10_000, () => `jobs to finish: ${JSON.stringify(jobs)}`);
      expect(jobs).toMatchObject({ queued: 0, running: 0, failed: 0 });
      expect((await svc.store.outboxStats()).queued).toBe(0);
      // The operator sees the GitHub side in /metrics and /healthz.
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      expect(metrics).toMatch(/^patchvet_github_jobs\{state="done"\} 4$/m); // 2 pushes, 2 replies mirrored
      expect(metrics).toMatch(/^patchvet_github_jobs\{state="failed"\} 0$/m);
      const health = (await (await fetch(`http://127.0.0.1:${port}/healthz`)).json()) as { github: unknown };
      expect(health.github).toEqual({ configured: true, dryRun: false });
    } finally {
      await svc.stop();
    }
  });

  test('the list thread first, the PR later: the PR is linked when it is reviewed, and the earlier reply is mirrored then', async () => {
    const { maildir, env, yaml } = setup(await h.freshUrl(), fake);
    fake.addPull(REPO, { number: PR, head: commit.sha, base: BASE, author: 'rosslagerwall', commits: [commit.sha] }, [commit]);
    const svc = await Service.open({ config: buildConfig(yaml, { env }), rules, logger: pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }) });
    await svc.start();
    try {
      const [patch, maintainer] = xenMails();
      maildir.deliver(patch!.raw);
      maildir.deliver(maintainer!.raw);
      await svc.settle();
      expect(fake.requests).toEqual([]); // no PR linked yet: GitHub is not contacted
      expect(await postWebhook(svc.httpPort!, await delivery(SECRET, 'pull_request', pullRequestPayload('opened', pr(commit.sha))))).toMatchObject({ status: 200 });
      await svc.settle();
      await until(async () => fake.reviews.length === 2, 20_000, 'the review and the mirrored reply');
      expect(fake.reviews[0]!.body).toContain('3 new points (3 warnings)');
      expect(fake.comments.filter((c) => c.review_id === fake.reviews[1]!.id).map((c) => [c.path, c.line])).toEqual([[FILE, 525]]);
      expect((await svc.store.githubLinks(REPO, PR)).map((l) => l.method)).toEqual(['patch-id']);
    } finally {
      await svc.stop();
    }
  });
});

// ---------------------------------------------------------------- the built CLI

const REPO_DIR = resolve(process.cwd());

test('`patchvet serve` as a child process (bin/patchvet, GHE_HOST from its environment) reviews the PR; a bad signature gets 400', async () => {
  if (!existsSync(join(REPO_DIR, 'dist', 'cli.js'))) {
    throw new Error('dist/ has no build: run `npm run build` first (npm test does it before jest)');
  }
  const fake = new FakeGithub();
  await fake.start();
  const h = sqliteHarness();
  await h.setup();
  let child: ChildProcess | null = null;
  try {
    const { env, yaml, base } = setup(await h.freshUrl(), fake);
    fake.addPull(REPO, { number: PR, head: commit.sha, base: BASE, author: 'rosslagerwall', commits: [commit.sha] }, [commit]);
    const cfg = join(base, 'patchvet.yml');
    writeFileSync(cfg, JSON.stringify({ ...yaml, http: { listen: '127.0.0.1:0' } }));
    const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env, PATCHVET_LOG_LEVEL: 'info' };
    delete childEnv.NODE_OPTIONS;
    child = spawn(process.execPath, [join(REPO_DIR, 'bin', 'patchvet'), 'serve', '--config', cfg], { env: childEnv, stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    let port = 0;
    await until(
      () => {
        const m = /"msg":"http: listening"/.test(log) ? /"port":(\d+)[^\n]*"msg":"http: listening"/.exec(log) : null;
        if (m) port = Number(m[1]);
        return port > 0;
      },
      20_000,
      () => `serve to listen (log so far: ${log.slice(-2000)})`,
    );
    expect(log).toContain('github: app ready at POST /api/github/webhooks');
    const bad = await postWebhook(port, await delivery('wrong-secret', 'pull_request', pullRequestPayload('opened', pr(commit.sha))));
    expect(bad.status).toBe(400);
    expect(fake.requests).toEqual([]);
    const good = await postWebhook(port, await delivery(SECRET, 'pull_request', pullRequestPayload('opened', pr(commit.sha))));
    expect(good.status).toBe(200);
    expect(fake.reviews).toHaveLength(1);
    expect(fake.comments.map((c) => [c.path, c.line, c.side])).toEqual([
      [FILE, 525, 'RIGHT'],
      [FILE, 525, 'RIGHT'],
      [FILE, 525, 'RIGHT'],
    ]);
    // Secrets never reach the log.
    expect(log).not.toContain(SECRET);
    expect(log).not.toContain('BEGIN RSA PRIVATE KEY');
    expect(log).not.toContain(fake.token);
    child.kill('SIGTERM');
    const code = await new Promise<number | null>((r) => child!.once('exit', (c) => r(c)));
    expect(code).toBe(0);
    child = null;
  } finally {
    child?.kill('SIGKILL');
    await fake.stop();
    await h.teardown();
  }
});
