// The Probot app: which webhook events patchvet handles and what it does with each. Handlers are
// short: they read the repository config (context.config), record a durable job or an outbox
// reply in the store, and run the job at once (src/github/worker.ts); a crash loses nothing.
//
//   pull_request.opened/synchronize/reopened   review the push (one review + a check run)
//   check_run.rerequested                      review the PR's head again ("Re-run" in the UI)
//   pull_request_review_comment.created        forward to the list (opt-in), as a reply to the patch
//   issue_comment.created (on a PR)            forward to the list (opt-in), as a reply to the series
import type { ApplicationFunction, Context, Probot } from 'probot';
import type { Logger } from 'pino';
import type { MessageRecord } from '../model.js';
import type { EmailDeliveryConfig, ListConfig } from '../serve/config.js';
import { matchList } from '../serve/policy.js';
import type { Store } from '../store/store.js';
import { authorMuted, parseRepoConfig, REPO_CONFIG_FILE, type GithubSettings, type RepoConfig } from './config.js';
import { choosePatch, composeForward, forwardRefusal, type PrComment } from './forward.js';
import { reviewJobKey, type GithubWorker, type ReviewPayload } from './worker.js';

/** Webhook events the app subscribes to (app.yml's default_events must list exactly these). */
export const EVENTS = ['pull_request', 'pull_request_review_comment', 'issue_comment', 'check_run'] as const;

/** The event actions it acts on. */
export const HANDLED = [
  'pull_request.opened',
  'pull_request.synchronize',
  'pull_request.reopened',
  'check_run.rerequested',
  'pull_request_review_comment.created',
  'issue_comment.created',
] as const;

/** Permissions the handlers need (app.yml's default_permissions must grant exactly these). */
export const PERMISSIONS = {
  pull_requests: 'write', // reviews, review comments, PR files and commits
  checks: 'write', // check runs
  contents: 'read', // commit diffs, .github/patchvet.yml
  issues: 'write', // conversation comments on PRs (issue_comment events)
  metadata: 'read', // always granted
} as const;

export interface AppDeps {
  settings: GithubSettings;
  store: Store;
  worker: GithubWorker;
  lists: readonly ListConfig[];
  email: EmailDeliveryConfig;
  log: Logger;
  /** A forwarded comment was queued in the outbox (wake the delivery loop). */
  onReplyQueued?: () => void;
  /** A job was queued but not run here (wake the GitHub loop). */
  onJobQueued?: () => void;
}

type RepoPayload = { repository: { full_name: string; name: string; owner: { login: string } }; installation?: { id: number } };

function repoAllowed(settings: GithubSettings, full: string): boolean {
  return !settings.repos.length || settings.repos.includes(full.toLowerCase());
}

async function repoConfig(context: Context, log: Logger): Promise<RepoConfig> {
  try {
    return parseRepoConfig(await context.config(REPO_CONFIG_FILE));
  } catch (e) {
    // An unreadable file: say so in the check run, go on with the defaults.
    log.warn({ err: e }, 'github: .github/patchvet.yml could not be read; using the defaults');
    return { ...parseRepoConfig(null), problems: [`.github/${REPO_CONFIG_FILE} could not be read: ${(e as Error).message}`] };
  }
}

/** Queue a review of a PR head and run it now. */
async function queueReview(
  deps: AppDeps,
  context: Context,
  pr: { number: number; head: string; base: string | null; author: string | null; commits?: number },
): Promise<void> {
  const payload = context.payload as unknown as RepoPayload;
  const full = payload.repository.full_name;
  const log = deps.log.child({ pr: `${full}#${pr.number}`, delivery: context.id });
  if (!repoAllowed(deps.settings, full)) {
    log.info('github: repository not in github.repos; ignored');
    return;
  }
  const key = reviewJobKey(full, pr.number, pr.head, context.id);
  if (await deps.store.getGithubJob(key)) {
    log.info('github: this delivery was handled before (a redelivery); nothing to do');
    return;
  }
  let raw: unknown = null;
  let unreadable: string | null = null;
  try {
    raw = await context.config(REPO_CONFIG_FILE);
  } catch (e) {
    // An unreadable file: the job reads it again, and says so in the check run if it still fails.
    unreadable = (e as Error).message;
    log.warn({ error: unreadable }, `github: .github/${REPO_CONFIG_FILE} could not be read`);
  }
  const cfg = parseRepoConfig(unreadable ? null : raw);
  if (!cfg.enabled) {
    log.info('github: disabled by .github/patchvet.yml (enabled: false)');
    return;
  }
  if (authorMuted(cfg, pr.author)) {
    log.info({ author: pr.author }, 'github: PR author muted by .github/patchvet.yml');
    return;
  }
  const review: ReviewPayload = {
    owner: payload.repository.owner.login,
    repo: payload.repository.name,
    number: pr.number,
    headSha: pr.head,
    baseSha: pr.base,
    author: pr.author,
    config: unreadable ? null : raw,
    configRead: unreadable === null,
    ...(pr.commits !== undefined ? { commits: pr.commits } : {}),
  };
  const installationId = payload.installation?.id ?? null;
  await deps.store.putGithubPr({ repo: full, pr: pr.number, installationId, headSha: pr.head, baseSha: pr.base, title: null, author: pr.author, state: 'open' });
  if (!(await deps.store.enqueueGithubJob({ key, kind: 'review', repo: full, pr: pr.number, installationId, payload: review }))) {
    log.info('github: this delivery was handled before; nothing to do');
    return;
  }
  log.info({ head: pr.head }, 'github: review queued');
  if (!(await deps.worker.runNow(key))) deps.onJobQueued?.();
}

/** Forward a PR comment to the list, when the operator and the repository allow it. */
async function forward(deps: AppDeps, context: Context, full: string, prNumber: number, c: PrComment): Promise<void> {
  const log = deps.log.child({ pr: `${full}#${prNumber}`, comment: c.id });
  const rule = deps.settings.forward.find((r) => r.repo === full.toLowerCase());
  if (!rule || !repoAllowed(deps.settings, full)) return;
  const refusal = forwardRefusal(c, rule.users);
  if (refusal) {
    log.debug({ reason: refusal }, 'github: comment not forwarded');
    return;
  }
  if (await deps.store.githubForward(full, c.kind, c.id)) {
    log.info('github: comment forwarded before (a redelivery); nothing to do');
    return;
  }
  const cfg = await repoConfig(context, log);
  if (!cfg.enabled || !cfg.forward) {
    log.info('github: forwarding turned off by .github/patchvet.yml');
    return;
  }
  const links = await deps.store.githubLinks(full, prNumber);
  const patches: MessageRecord[] = [];
  for (const l of links) {
    const r = await deps.store.getMessage(l.messageId);
    if (r && !patches.some((p) => p.messageId === r.messageId)) patches.push(r);
  }
  let cover: MessageRecord | null = null;
  const first = patches[0];
  if (first?.inReplyTo) {
    const parent = await deps.store.getMessage(first.inReplyTo);
    if (parent?.kind === 'cover') cover = parent;
  }
  const patch = choosePatch(c, patches, cover);
  if (!patch) {
    log.info('github: PR not linked to a list patch; comment not forwarded');
    return;
  }
  const email = deps.email;
  const list = matchList(patch, deps.lists)?.address ?? null;
  const reply = composeForward(c, patch, {
    fromAddress: email.fromAddress,
    list,
    domain: email.domain,
    repo: full,
    pr: prNumber,
    channel: email.mode,
  });
  if (deps.settings.dryRun || cfg.dryRun) {
    log.info({ dryRun: { action: 'forward', inReplyTo: patch.messageId, to: reply.to, cc: reply.cc, eml: reply.eml.toString('utf8') } }, 'github dry run: would forward a PR comment to the list');
    return;
  }
  const queued = await deps.store.transaction(async (tx) => {
    if (!(await tx.recordGithubForward({ repo: full, kind: c.kind, commentId: c.id, login: c.login, outboxKey: reply.key, messageId: reply.messageId, inReplyTo: patch.messageId }))) {
      return false;
    }
    return tx.enqueueReply(reply);
  });
  if (queued) {
    log.info({ inReplyTo: patch.messageId, messageId: reply.messageId, list }, 'github: PR comment forwarded to the list (queued)');
    deps.onReplyQueued?.();
  }
}

/** The Probot app function. */
export function patchvetApp(deps: AppDeps): ApplicationFunction {
  return (app: Probot) => {
    app.on(['pull_request.opened', 'pull_request.synchronize', 'pull_request.reopened'], async (context) => {
      const pr = context.payload.pull_request;
      if (pr.state !== 'open') return;
      await queueReview(deps, context as unknown as Context, {
        number: pr.number,
        head: pr.head.sha,
        base: pr.base.sha,
        author: pr.user?.login ?? null,
        commits: pr.commits,
      });
    });

    app.on('check_run.rerequested', async (context) => {
      const run = context.payload.check_run;
      if (run.name !== deps.settings.checkName) return;
      for (const pr of run.pull_requests ?? []) {
        // The check run's PR list is brief: the author is not in it (a muted author is checked by the job).
        await queueReview(deps, context as unknown as Context, { number: pr.number, head: pr.head.sha, base: pr.base.sha, author: null });
      }
    });

    app.on('pull_request_review_comment.created', async (context) => {
      const c = context.payload.comment;
      await forward(deps, context as unknown as Context, context.payload.repository.full_name, context.payload.pull_request.number, {
        kind: 'review-comment',
        id: c.id,
        login: c.user?.login ?? '',
        userType: c.user?.type ?? null,
        htmlUrl: c.html_url,
        body: c.body ?? '',
        path: c.path,
        line: c.line ?? c.original_line ?? null,
        side: (c.side as 'LEFT' | 'RIGHT' | undefined) ?? null,
        diffHunk: c.diff_hunk,
        inReplyTo: c.in_reply_to_id ?? null,
      });
    });

    app.on('issue_comment.created', async (context) => {
      const issue = context.payload.issue;
      if (!issue.pull_request) return; // an issue, not a PR
      const c = context.payload.comment;
      await forward(deps, context as unknown as Context, context.payload.repository.full_name, issue.number, {
        kind: 'issue-comment',
        id: c.id,
        login: c.user?.login ?? '',
        userType: c.user?.type ?? null,
        htmlUrl: c.html_url,
        body: c.body ?? '',
      });
    });

    app.onError((e) => {
      deps.log.error({ err: e }, 'github: webhook handler failed');
    });
  };
}
