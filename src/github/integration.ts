// The GitHub side of `patchvet serve`: the Probot app on the service's HTTP server (POST
// /api/github/webhooks), the job worker, and the bridge the mail side calls for every processed
// message (index patches, link them to PR commits seen earlier, queue mirror jobs for replies on
// linked PRs). The bridge's reads and pure steps run before the service's transaction; its writes
// join it (applyPlan), so a mirror job exists exactly when its mail is marked processed.
import type { LlmReviewer } from '../llm/review.js';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createNodeMiddleware, Probot } from 'probot';
import type { Logger } from 'pino';
import type { MessageRecord, Thread } from '../model.js';
import type { KnowledgeBase, RuleSpec } from '../rules/types.js';
import type { EmailDeliveryConfig, ListConfig } from '../serve/config.js';
import type { GithubJobInput, GithubLink, PatchIndexEntry, Store } from '../store/store.js';
import { assembleThread } from '../thread/assemble.js';
import { buildThreads } from '../thread/jwz.js';
import { patchvetApp } from './app.js';
import { senderAllowed, type GithubAppEnv, type GithubSettings } from './config.js';
import { subjectKey } from './link.js';
import { mirrorPayload } from './mirror.js';
import { cappedOctokit, type Octokit, type OctokitClass } from './octokit.js';
import { patchIdOfDiff } from './patch-id.js';
import { GithubWorker, mirrorJobKey, type MirrorJobPayload } from './worker.js';

export const WEBHOOK_PATH = '/api/github/webhooks';
/** GitHub sends at most 25 MB per delivery. */
export const MAX_WEBHOOK_BYTES = 25 * 1024 * 1024;

export interface IntegrationOptions {
  settings: GithubSettings;
  app: GithubAppEnv;
  store: Store;
  rules: RuleSpec[];
  kb: KnowledgeBase;
  lists: readonly ListConfig[];
  email: EmailDeliveryConfig;
  log: Logger;
  /** Lease owner name for jobs. */
  worker: string;
  /** Default: ProbotOctokit with capped retries. Tests pass one with throttling off. */
  Octokit?: OctokitClass;
  onReplyQueued?: () => void;
  onJobQueued?: () => void;
  now?: () => Date;
  /** The LLM pass (null/absent: off): PR commits get the same second opinion as list patches. */
  llm?: LlmReviewer | null;
}

/** What processing one mail adds on the GitHub side (see the top of this file). */
export interface MessagePlan {
  index: PatchIndexEntry | null;
  links: GithubLink[];
  jobs: GithubJobInput[];
}

/** Nearest ancestor patch (with a diff) of a thread message. */
function anchorPatch(thread: Thread, id: string): string | null {
  const byId = new Map(thread.messages.map((m) => [m.messageId, m]));
  const seen = new Set<string>();
  let p = byId.get(id)?.parent ? byId.get(byId.get(id)!.parent!) : undefined;
  while (p && !seen.has(p.messageId)) {
    seen.add(p.messageId);
    if (p.record?.kind === 'patch' && p.record.diff) return p.messageId;
    p = p.parent ? byId.get(p.parent) : undefined;
  }
  return null;
}

/** The patch-index entry of a patch mail (null for other mail). */
export function indexEntry(rec: MessageRecord): PatchIndexEntry | null {
  if (rec.kind !== 'patch' || !rec.diff) return null;
  return {
    messageId: rec.messageId,
    patchId: patchIdOfDiff(rec.diff),
    subjectKey: subjectKey(rec.parsedSubject.clean, rec.author.address),
    date: rec.date,
  };
}

export class GithubIntegration {
  readonly worker: GithubWorker;
  readonly probot: Probot;
  private middleware: ((req: IncomingMessage, res: ServerResponse, next?: () => void) => Promise<boolean>) | null = null;
  private readonly log: Logger;

  private constructor(private readonly o: IntegrationOptions) {
    this.log = o.log;
    const Octokit = o.Octokit ?? cappedOctokit(o.settings.retry);
    this.probot = new Probot({
      appId: o.app.appId,
      privateKey: o.app.privateKey,
      secret: o.app.webhookSecret,
      baseUrl: o.app.baseUrl,
      Octokit,
      log: o.log.child({ component: 'probot' }),
    });
    this.worker = new GithubWorker({
      settings: o.settings,
      store: o.store,
      rules: o.rules,
      kb: o.kb,
      log: o.log,
      worker: o.worker,
      auth: (id) => this.probot.auth(id) as Promise<Octokit>,
      now: o.now,
      llm: o.llm ?? null,
      onLinked: async (links) => {
        if ((await this.backfill(links)) > 0) o.onJobQueued?.();
      },
    });
  }

  static async create(o: IntegrationOptions): Promise<GithubIntegration> {
    const g = new GithubIntegration(o);
    const app = patchvetApp({
      settings: o.settings,
      store: o.store,
      worker: g.worker,
      lists: o.lists,
      email: o.email,
      log: o.log,
      onReplyQueued: o.onReplyQueued,
      onJobQueued: o.onJobQueued,
    });
    g.middleware = (await createNodeMiddleware(app, { probot: g.probot, webhooksPath: WEBHOOK_PATH })) as typeof g.middleware;
    o.log.info(
      { baseUrl: o.app.baseUrl, appId: o.app.appId, dryRun: o.settings.dryRun, mirror: o.settings.mirror, forward: o.settings.forward.map((f) => f.repo) },
      `github: app ready at POST ${WEBHOOK_PATH}`,
    );
    return g;
  }

  /** Handle a webhook delivery (signature checked by Probot: 400 when wrong or missing). */
  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const length = Number(req.headers['content-length'] ?? 0);
    if (length > MAX_WEBHOOK_BYTES) {
      res.writeHead(413, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' }).end('payload too large\n');
      req.destroy();
      return;
    }
    const handled = await this.middleware!(req, res, () => undefined);
    if (!handled && !res.headersSent) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found\n');
    }
  }

  /** Run due jobs (the service's GitHub loop). */
  round(limit?: number): Promise<number> {
    return this.worker.round(limit);
  }

  // ------------------------------------------------------------ the mail side

  /**
   * What a processed mail adds: a patch is indexed and linked to PR commits that mirror it; a
   * reply to a linked patch (not our own mail, from an allowed sender) becomes a mirror job for
   * each linked PR. Reads only; apply the plan inside the processing transaction.
   */
  async planMessage(rec: MessageRecord, own: boolean): Promise<MessagePlan> {
    const { store, settings } = this.o;
    const plan: MessagePlan = { index: indexEntry(rec), links: [], jobs: [] };
    if (plan.index) {
      for (const m of await store.prCommitsMatching({ messageId: rec.messageId, patchId: plan.index.patchId, subjectKey: plan.index.subjectKey })) {
        plan.links.push({ repo: m.repo, pr: m.pr, messageId: rec.messageId, commitSha: m.sha, method: m.method });
      }
      return plan;
    }
    if (!settings.mirror || !(rec.inReplyTo || rec.references.length)) return plan;
    const linked = await store.githubLinksForMessages([...rec.references, ...(rec.inReplyTo ? [rec.inReplyTo] : [])]);
    plan.jobs = await this.mirrorJobs(rec, own, linked);
    return plan;
  }

  /** Is this mail one to mirror at all: not ours, not automated, from an allowed sender. */
  private async mirrorable(rec: MessageRecord, own: boolean): Promise<boolean> {
    if (own || rec.automated || rec.kind === 'patch') return false;
    if (rec.from.address.toLowerCase() === this.o.email.fromAddress) return false;
    if (!senderAllowed(this.o.settings.mirrorFrom, rec.from.address)) return false;
    // A mail answering our forward of a GitHub comment is fine; our forward itself is not.
    return !(await this.o.store.githubForwardByMessageId(rec.messageId));
  }

  /** Mirror jobs for a reply, one per linked PR of the patch it answers. */
  private async mirrorJobs(rec: MessageRecord, own: boolean, linked: readonly GithubLink[], around?: MessageRecord[]): Promise<GithubJobInput[]> {
    const { store } = this.o;
    if (!linked.length || !(await this.mirrorable(rec, own))) return [];
    const records = around ?? (await store.messagesInThread(rec.messageId));
    const { threads } = buildThreads(records);
    const skel = threads.find((t) => t.messages.some((m) => m.messageId === rec.messageId));
    if (!skel) return [];
    const byId = new Map(records.map((r) => [r.messageId, r]));
    const thread = assembleThread(skel, (x) => byId.get(x));
    const me = thread.messages.find((m) => m.messageId === rec.messageId);
    if (!me?.comments.some((c) => c.text.trim())) return [];
    const anchor = anchorPatch(thread, rec.messageId);
    // The reply's patch; or, for a reply to the cover letter, each linked PR once (prose only).
    const targets = anchor
      ? linked.filter((l) => l.messageId === anchor)
      : linked.filter((l, i) => linked.findIndex((x) => x.repo === l.repo && x.pr === l.pr) === i);
    const jobs: GithubJobInput[] = [];
    for (const l of targets) {
      const pr = await store.getGithubPr(l.repo, l.pr);
      const [owner, name] = l.repo.split('/') as [string, string];
      const comments = anchor ? me.comments : me.comments.map((c) => ({ ...c, file: null, line: null, side: null }));
      const payload: MirrorJobPayload = { ...mirrorPayload(rec, comments, l.messageId, l.commitSha), owner, repo: name, number: l.pr };
      jobs.push({ key: mirrorJobKey(l.repo, l.pr, rec.messageId), kind: 'mirror', repo: l.repo, pr: l.pr, installationId: pr?.installationId ?? null, payload });
    }
    return jobs;
  }

  /**
   * A PR was just linked to patches: the replies already stored for them are mirrored too (they
   * came before the link). Queues the jobs; returns how many are new.
   */
  async backfill(links: readonly GithubLink[]): Promise<number> {
    const { store } = this.o;
    if (!this.o.settings.mirror) return 0;
    let queued = 0;
    for (const l of links) {
      const around = await store.messagesInThread(l.messageId);
      for (const r of around) {
        if (r.messageId === l.messageId || !(r.references.includes(l.messageId) || r.inReplyTo === l.messageId)) continue;
        const own = (await store.replyByMessageId(r.messageId)) !== null;
        for (const j of await this.mirrorJobs(r, own, [l], around)) if (await store.enqueueGithubJob(j)) queued++;
      }
    }
    if (queued) this.log.info({ links: links.length, jobs: queued }, 'github: replies sent before the link queued for mirroring');
    return queued;
  }

  /** Write a plan (call inside the processing transaction). Returns how many jobs were queued. */
  static async applyPlan(tx: Store, plan: MessagePlan): Promise<number> {
    if (plan.index) await tx.putPatchIndex(plan.index);
    for (const l of plan.links) await tx.addGithubLink(l);
    let queued = 0;
    for (const j of plan.jobs) if (await tx.enqueueGithubJob(j)) queued++;
    return queued;
  }
}
