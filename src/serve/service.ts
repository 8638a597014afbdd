// `patchvet serve`: follow the configured sources, review each new patch once, and answer it
// (or write the answer to the outbox) once, surviving kill -9 at any moment.
//
//   sources --deliver(batch)--> intake: parse, then ONE transaction: putMessage each + setPosition
//   processing loop: pendingMessages -> per message ONE transaction:
//       markProcessed (false: someone else did it) + putFindings + enqueueReply + markFindingPosted
//       (+ recordDispute for feedback on our replies, + markSent when our own reply comes back)
//   delivery loop: claimReplies under a lease -> outbox file / SMTP -> markSent / markFailed(retryAt)
//   GitHub (when APP_ID/PRIVATE_KEY/WEBHOOK_SECRET are set, src/github/): webhooks on the HTTP server
//       queue jobs (PR reviews) and run them; the processing transaction also indexes patches,
//       links them to PR commits and queues mirror jobs for replies on linked PRs; the github
//       loop runs due jobs (network I/O outside transactions; see src/github/worker.ts)
//
// Why it is exactly-once: see src/store/store.ts (top). Reviews are deterministic and are done
// before the transaction opens (reads and CPU only); the transaction only writes, so it is short.
import { createHash, randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { log as rootLog } from '../log.js';
import type { Finding, MessageRecord, Thread } from '../model.js';
import { recordFromRaw } from '../mail/record.js';
import { reviewRecord } from '../review/review.js';
import { defaultRulesDir, formatLoadErrors, loadPacks } from '../rules/load.js';
import type { KnowledgeBase, RuleSpec } from '../rules/types.js';
import { composeReply, replyToEml } from '../sinks/email.js';
import { openStore, type DisputeInput, type OutboxItem, type ReplyInput, type Store } from '../store/store.js';
import { assembleThread } from '../thread/assemble.js';
import { buildThreads } from '../thread/jwz.js';
import { GithubIntegration, indexEntry, type MessagePlan } from '../github/integration.js';
import type { OctokitClass } from '../github/octokit.js';
import { ConfigError, redactUrl, type ListConfig, type ServeConfig, type SourceConfig } from './config.js';
import { startHttp, WEBHOOK_PATH, type HealthReport, type HttpHandle, type MetricFamily } from './http.js';
import { Delivery, type DeliveryEvent, type SendTransport } from './outbox.js';
import {
  decide,
  envelope,
  feedbackOf,
  ignoredRules,
  lineageKey,
  matchList,
  rulesMentioned,
  selectFindings,
  spotsOf,
  versionOf,
  type ReplyDecision,
  type Spot,
} from './policy.js';
import type { LiveSource, SourceBatch } from './types.js';
import { endpointLabel, LLM_ENV_HELP, LlmConfigError, llmConfigFromEnv } from '../llm/config.js';
import { LlmReviewer, type LlmPatchResult } from '../llm/review.js';
import { compareFindings } from '../rules/engine.js';

// ---------------------------------------------------------------- sources from config

/** A live source that can be asked to poll at once (public-inbox, maildir): used by --once. */
interface Pollable {
  pollNow(): Promise<void>;
}

function isPollable(s: LiveSource): s is LiveSource & Pollable {
  return typeof (s as Partial<Pollable>).pollNow === 'function';
}

/** Build the configured live sources. Their options are the config entries' keys. */
export async function createSources(
  sources: readonly SourceConfig[],
  logger: Logger = rootLog,
  file: string | null = null,
): Promise<LiveSource[]> {
  const out: LiveSource[] = [];
  for (const [i, s] of sources.entries()) {
    try {
      out.push(await createSource(s, logger));
    } catch (e) {
      if (e instanceof ConfigError) throw new ConfigError(file, e.problems.map((p) => p.replace(/^sources:/, `sources[${i}]:`)));
      throw new ConfigError(file, [`sources[${i}] (${s.type}): ${(e as Error).message}`]);
    }
  }
  const keys = new Set<string>();
  for (const s of out) {
    if (keys.has(s.key)) throw new ConfigError(file, [`sources: ${s.key} is listed twice: keep one entry`]);
    keys.add(s.key);
  }
  return out;
}

/** Import a source module that another part of the tree provides (a missing one is a config error). */
async function sourceModule(file: string, type: string): Promise<Record<string, unknown>> {
  try {
    return (await import(`./sources/${file}`)) as Record<string, unknown>;
  } catch (e) {
    throw new ConfigError(null, [`sources: type ${type} is not available in this build (${(e as Error).message})`]);
  }
}

type SourceCtor = new (opts: Record<string, unknown>) => LiveSource;

async function createSource(s: SourceConfig, logger: Logger): Promise<LiveSource> {
  const { type: _type, everySeconds, ...rest } = s as SourceConfig & { everySeconds?: number };
  void _type;
  switch (s.type) {
    case 'public-inbox': {
      const { PublicInboxSource } = await import('./sources/public-inbox.js');
      return new PublicInboxSource({ ...rest, path: s.path, logger } as never);
    }
    case 'imap': {
      const { ImapSource } = await import('./sources/imap.js');
      const pollMs = s.every !== undefined && everySeconds !== undefined ? everySeconds * 1000 : undefined;
      return new ImapSource({ ...rest, url: s.url, password: s.password, ...(pollMs ? { pollMs } : {}), logger } as never);
    }
    case 'maildir': {
      const { MaildirWatchSource } = await import('./sources/maildir-watch.js');
      return new MaildirWatchSource({ ...rest, path: s.path, logger } as never);
    }
    case 'lmtp': {
      const mod = await sourceModule('lmtp.js', 'lmtp');
      const Ctor = mod.LmtpSource as SourceCtor | undefined;
      if (!Ctor) throw new ConfigError(null, ['sources: type lmtp is not available in this build']);
      return new Ctor({ ...rest, listen: s.listen, host: s.host, port: s.port, logger });
    }
  }
}

// ---------------------------------------------------------------- helpers

/** `p`'s value, or undefined when it takes longer than `ms` (the timer never outlives the wait). */
async function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  const ac = new AbortController();
  try {
    return await Promise.race([p, sleep(ms, undefined, { signal: ac.signal }).catch(() => undefined)]);
  } finally {
    ac.abort();
  }
}

/** Ask a source to poll once and wait for that poll (retrying while the source is still starting up). */
async function pollOnce(s: LiveSource & Pollable, deadline: number, cancelled: () => boolean): Promise<void> {
  while (!cancelled() && Date.now() < deadline) {
    let accepted = true;
    const p = s.pollNow().catch(() => {
      accepted = false; // not running yet
    });
    await within(p, Math.max(0, deadline - Date.now()));
    if (accepted) return;
    await sleep(20);
  }
}

/** A Message-ID for naming a message we could not parse (best effort, never throws). */
function sniffMessageId(raw: Buffer): string | null {
  const head = raw.subarray(0, 64 * 1024).toString('latin1');
  const m = /^message-id:[ \t]*(<[^<>\r\n]{1,250}>)/im.exec(head);
  return m ? m[1]! : null;
}

/** Nearest ancestor patch (with a diff) of a thread message: the patch its comments are about. */
function anchorPatchOf(thread: Thread, id: string): string | null {
  const byId = new Map(thread.messages.map((m) => [m.messageId, m]));
  const seen = new Set<string>();
  let p = byId.get(id)?.parent ? byId.get(byId.get(id)!.parent!) : undefined;
  while (p && !seen.has(p.messageId)) {
    seen.add(p.messageId);
    if (p.record && p.record.kind === 'patch' && p.record.diff) return p.messageId;
    p = p.parent ? byId.get(p.parent) : undefined;
  }
  return null;
}

/** The assembled thread holding `id`, from the records the store has around it. */
function threadOf(id: string, records: readonly MessageRecord[]): Thread | null {
  const { threads } = buildThreads(records);
  const skel = threads.find((t) => t.messages.some((m) => m.messageId === id));
  if (!skel) return null;
  const byId = new Map(records.map((r) => [r.messageId, r]));
  return assembleThread(skel, (x) => byId.get(x));
}

/** The pure part of processing failed on this message: retrying cannot help for long. */
class ReviewError extends Error {}

/** Run a pure step of processing; its failure is the message's (ReviewError), not the store's. */
function pure<T>(rec: MessageRecord, f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw new ReviewError(`processing ${rec.messageId} failed: ${(e as Error).message}`, { cause: e });
  }
}

interface Lineage {
  /** Message-ID of the first version seen: posted findings are scoped to "series:<first>". */
  first: string;
  versions: Array<{ id: string; version: number }>;
}

const LINEAGE_KEY = (k: string) => `patchvet:lineage:${createHash('sha256').update(k).digest('hex').slice(0, 32)}`;

// ---------------------------------------------------------------- the service

export interface ServiceOptions {
  config: ServeConfig;
  /** Default: built from config.sources. */
  sources?: LiveSource[];
  /** Default: openStore(config.store). A store given here is closed by stop() too. */
  store?: Store;
  /** SMTP transport (default: nodemailer from delivery.email.smtp). */
  transport?: SendTransport;
  /** Default: the rule packs named by the config. */
  rules?: { rules: RuleSpec[]; kb: KnowledgeBase };
  logger?: Logger;
  now?: () => Date;
  /** The Octokit class for the GitHub App (tests: one with throttling and retries off). */
  githubOctokit?: OctokitClass;
  /**
   * The LLM pass. Default: per config.llm, from the environment (OPENAI_*, PATCHVET_LLM_*), with
   * its cache and token budgets in the store. null: off.
   */
  llm?: LlmReviewer | null;
  /** Environment for the LLM settings (default process.env). */
  env?: Record<string, string | undefined>;
}

export interface ProcessResult {
  messageId: string;
  decision: ReplyDecision;
  findings: number;
  replied: boolean;
  /** Another instance (or an earlier run) processed it first. */
  skipped?: boolean;
  /** It is one of our replies, seen on the list before its delivery was marked done. */
  confirmed?: boolean;
}

const MAX_REVIEW_FAILURES = 3;

/** Every pack a list names must be loaded. */
function checkPacks(config: ServeConfig, rules: readonly RuleSpec[]): void {
  const packs = new Set(rules.map((r) => r.id.split('/')[0]!));
  const problems: string[] = [];
  config.lists.forEach((l, i) => {
    const unknown = (l.rules ?? []).filter((p) => !packs.has(p));
    if (unknown.length) {
      problems.push(`lists[${i}].rules: no rule pack named ${unknown.join(', ')}: loaded packs are ${[...packs].sort().join(', ')}`);
    }
  });
  if (problems.length) throw new ConfigError(config.file, problems);
}

/** The LLM reviewer serve's config and environment ask for (null: off). Throws ConfigError. */
export function llmReviewerFor(config: ServeConfig, store: Store, env: Record<string, string | undefined>): LlmReviewer | null {
  if (config.llm === 'off') return null;
  let cfg;
  try {
    cfg = llmConfigFromEnv(env);
  } catch (e) {
    if (e instanceof LlmConfigError) throw new ConfigError(config.file, [`llm: ${e.message}`]);
    throw e;
  }
  if (!cfg) {
    if (config.llm === 'on') throw new ConfigError(config.file, [`llm: on, but the environment does not configure it: ${LLM_ENV_HELP}`]);
    return null;
  }
  rootLog.info({ model: cfg.model, endpoint: endpointLabel(cfg) }, 'serve: the LLM pass is on');
  return new LlmReviewer(cfg, { store });
}

export class Service {
  readonly store: Store;
  readonly sources: LiveSource[];
  readonly config: ServeConfig;
  readonly log: Logger;
  private readonly rules: RuleSpec[];
  private readonly kb: KnowledgeBase;
  private readonly rulesByList = new Map<string, RuleSpec[]>();
  private readonly delivery: Delivery;
  private readonly now: () => Date;
  private readonly worker = `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;

  private stopping = false;
  private readonly abort = new AbortController();
  private http: HttpHandle | null = null;
  private loops: Array<Promise<void>> = [];
  private runs = new Map<string, Promise<void>>();
  private wakeProcessing: (() => void) | null = null;
  private wakeDelivery: (() => void) | null = null;
  private wakeGithub: (() => void) | null = null;
  /** The GitHub App, when APP_ID, PRIVATE_KEY and WEBHOOK_SECRET are set. */
  github: GithubIntegration | null = null;
  private reviewFailures = new Map<string, number>();
  private lastDelivery = new Map<string, number>();
  private loopFailure: string | null = null;

  // metrics (this process)
  private messagesTotal = 0;
  private readonly findingsTotal = new Map<string, number>();
  private readonly repliesTotal = new Map<string, number>();
  private readonly errorsTotal = new Map<string, number>();
  private readonly llmTokensTotal = new Map<string, number>();
  private readonly llmPatchesTotal = new Map<string, number>();
  /** The LLM pass (null: off); one per process: it holds the concurrency limit and the breaker. */
  readonly llm: LlmReviewer | null;

  private constructor(o: ServiceOptions & { store: Store; sources: LiveSource[]; rules: { rules: RuleSpec[]; kb: KnowledgeBase } }) {
    this.config = o.config;
    this.llm = o.llm ?? null;
    this.store = o.store;
    this.sources = o.sources;
    this.log = (o.logger ?? rootLog).child({ component: 'serve' });
    this.rules = o.rules.rules;
    this.kb = o.rules.kb;
    this.now = o.now ?? (() => new Date());
    checkPacks(o.config, this.rules);
    for (const l of o.config.lists) {
      this.rulesByList.set(l.address, l.rules ? this.rules.filter((r) => l.rules!.includes(r.id.split('/')[0]!)) : this.rules);
    }
    this.delivery = new Delivery({
      store: this.store,
      email: o.config.delivery.email,
      lists: o.config.lists,
      worker: this.worker,
      log: this.log,
      transport: o.transport,
      now: this.now,
      onEvent: (e, item) => this.onDeliveryEvent(e, item),
    });
  }

  /** Load rules, open the store, build the sources. Throws ConfigError for what the user must fix. */
  static async open(o: ServiceOptions): Promise<Service> {
    let rules = o.rules;
    if (!rules) {
      const dirs = [...(o.config.defaultRules ? [defaultRulesDir()] : []), ...o.config.rulesDirs];
      const packs = loadPacks(dirs);
      if (packs.errors.length) {
        throw new ConfigError(o.config.file, [`rule files have errors:\n${formatLoadErrors(packs.errors)}`]);
      }
      rules = { rules: packs.rules, kb: packs.kb };
    }
    checkPacks(o.config, rules.rules);
    const sources = o.sources ?? (await createSources(o.config.sources, o.logger ?? rootLog, o.config.file));
    let store: Store;
    try {
      store = o.store ?? (await openStore(o.config.store));
    } catch (e) {
      throw new ConfigError(o.config.file, [
        `store: cannot open ${redactUrl(o.config.store)}: ${(e as Error).message}: check the path or URL, and that the database is running`,
      ]);
    }
    let llm: LlmReviewer | null;
    try {
      llm = o.llm !== undefined ? o.llm : llmReviewerFor(o.config, store, o.env ?? process.env);
    } catch (e) {
      await store.close();
      throw e;
    }
    let service: Service;
    try {
      service = new Service({ ...o, store, sources, rules, llm });
    } catch (e) {
      await store.close();
      throw e;
    }
    const app = o.config.github.app;
    if (app) {
      try {
        service.github = await GithubIntegration.create({
          settings: o.config.github,
          app,
          store,
          rules: rules.rules,
          kb: rules.kb,
          lists: o.config.lists,
          email: o.config.delivery.email,
          log: service.log.child({ component: 'github' }),
          worker: service.worker,
          Octokit: o.githubOctokit,
          onReplyQueued: () => service.wakeDelivery?.(),
          onJobQueued: () => service.wakeGithub?.(),
          now: o.now,
          llm: service.llm,
        });
      } catch (e) {
        await store.close();
        throw new ConfigError(o.config.file, [`GitHub App: cannot start it: ${(e as Error).message}`]);
      }
    }
    return service;
  }

  get httpPort(): number | null {
    return this.http?.port ?? null;
  }

  // ------------------------------------------------------------ intake

  /**
   * Store one batch from a source: parse each message (a bad one is logged with its source and
   * skipped), then put them all and the new position in ONE transaction. Resolves after COMMIT.
   */
  async intake(source: Pick<LiveSource, 'key'>, batch: SourceBatch): Promise<{ stored: number; skipped: number }> {
    const parsed: Array<{ rec: MessageRecord; raw: Buffer }> = [];
    let skipped = 0;
    for (const m of batch.messages) {
      try {
        parsed.push({ rec: await recordFromRaw(m), raw: m.raw });
      } catch (e) {
        skipped++;
        this.countError(source.key);
        const error = (e as Error).message;
        this.log.error(
          { source: source.key, ref: m.ref.source, messageId: sniffMessageId(m.raw), bytes: m.raw.length, error },
          `message skipped: ${error}`,
        );
      }
    }
    let stored = 0;
    await this.store.transaction(async (tx) => {
      for (const { rec, raw } of parsed) {
        const pos = { key: source.key, position: batch.position ?? rec.ref.source ?? '' };
        if ((await tx.putMessage(rec, raw, pos)).inserted) stored++;
      }
      if (batch.position !== null) await tx.setPosition(source.key, batch.position);
    });
    this.messagesTotal += stored;
    this.lastDelivery.set(source.key, Date.now());
    if (stored) {
      this.log.info({ source: source.key, stored, duplicates: parsed.length - stored, skipped }, 'intake: batch stored');
      this.wakeProcessing?.();
    }
    return { stored, skipped };
  }

  private onSourceError(key: string, e: { source: string; message: string }): void {
    this.countError(key);
    this.log.error({ source: key, ref: e.source, error: e.message }, `source: ${e.message}`);
  }

  private countError(key: string): void {
    this.errorsTotal.set(key, (this.errorsTotal.get(key) ?? 0) + 1);
  }

  // ------------------------------------------------------------ processing

  /** Process what is pending (up to `limit` messages). Returns how many were handled. */
  async processPending(limit = 64): Promise<number> {
    const pending = await this.store.pendingMessages(limit);
    let n = 0;
    for (const rec of pending) {
      if (this.stopping) break;
      try {
        await this.processOne(rec);
        this.reviewFailures.delete(rec.messageId);
        n++;
      } catch (e) {
        if (!(e instanceof ReviewError)) throw e; // store trouble: the loop backs off and retries
        this.countError('review');
        const failures = (this.reviewFailures.get(rec.messageId) ?? 0) + 1;
        this.reviewFailures.set(rec.messageId, failures);
        this.log.error({ messageId: rec.messageId, failures, err: e.cause ?? e }, 'processing: review failed');
        if (failures >= MAX_REVIEW_FAILURES) {
          // A message the reviewer cannot handle must not block the queue forever.
          await this.store.markProcessed(rec.messageId);
          this.reviewFailures.delete(rec.messageId);
          this.log.error({ messageId: rec.messageId }, 'processing: giving up on this message (left unreviewed)');
          n++;
        }
      }
    }
    return n;
  }

  /** Review and answer one stored message, in one transaction. */
  async processOne(rec: MessageRecord): Promise<ProcessResult> {
    const { store } = this;
    const email = this.config.delivery.email;
    const decision = pure(rec, () =>
      decide(rec, { lists: this.config.lists, botAddress: email.fromAddress, maxAgeSeconds: this.config.maxAgeSeconds, now: this.now() }),
    );

    let findings: Finding[] = [];
    let reply: ReplyInput | null = null;
    let posted: Finding[] = [];
    let scope: string | null = null;
    let lineage: { key: string; value: Lineage } | null = null;

    // Every patch on a followed list joins its lineage (earlier versions of the same patch: same
    // sender, same title), answered or not, so that a later version knows what was discussed.
    let earlier: Lineage['versions'] = [];
    if (rec.kind === 'patch' && (decision.list || matchList(rec, this.config.lists))) {
      const lk = lineageKey(rec);
      const known = (await store.cacheGet<Lineage>(LINEAGE_KEY(lk))) ?? { first: rec.messageId, versions: [] };
      earlier = known.versions.filter((v) => v.id !== rec.messageId);
      lineage = {
        key: LINEAGE_KEY(lk),
        value: known.versions.some((v) => v.id === rec.messageId)
          ? known
          : { first: known.first, versions: [...known.versions, { id: rec.messageId, version: versionOf(rec) }] },
      };
      scope = `series:${known.first}`;
    }

    if (decision.review && decision.list && scope) {
      const list = decision.list;
      const around = await store.messagesInThread(rec.messageId);
      const current = pure(rec, () => threadOf(rec.messageId, around));
      const me = current?.messages.find((m) => m.messageId === rec.messageId)?.record ?? rec;
      const listRules = this.rulesByList.get(list.address) ?? this.rules;
      findings = pure(rec, () => reviewRecord(me, { rules: listRules, kb: this.kb }));

      // The threads of this patch and of its earlier versions: what reviewers already said.
      const useLlm = this.llm !== null && list.llm !== false && me.kind === 'patch';
      const threads: Thread[] = current ? [current] : [];
      if (findings.length || useLlm) {
        for (const v of earlier) {
          if (current?.messages.some((m) => m.messageId === v.id)) continue;
          const recs = await store.messagesInThread(v.id);
          const t = pure(rec, () => threadOf(v.id, recs));
          if (t) threads.push(t);
        }
      }

      // The LLM's second opinion, before (and outside) the transaction: it never throws, its
      // answers are cached by patch-id, so a crash before COMMIT costs no second request.
      if (useLlm) {
        const r = await this.llm!.reviewPatch({
          record: me,
          ruleFindings: findings,
          rules: listRules,
          lists: [list.address],
          list: list.address,
          thread: current ?? undefined,
          earlierThreads: threads.filter((t) => t !== current),
          earlierPatchIds: earlier.map((v) => v.id),
          exclude: (m) => this.isOwn(m),
        });
        this.noteLlm(list.address, r);
        if (r.findings.length) findings = [...findings, ...r.findings].sort(compareFindings);
      }

      if (findings.length) {
        const answered: Spot[] = [];
        const ignored = new Set<string>();
        const earlierIds = new Set(earlier.map((v) => v.id));
        for (const t of threads) {
          for (const m of t.messages) {
            // The bot's own replies (they quote the diff too) are not someone answering.
            if (!m.record || this.isOwn(m.record)) continue;
            for (const r of ignoredRules(m.record)) ignored.add(r);
            // Comments on an earlier version of this patch: someone already discussed that place.
            // (Comments on the other patches of a series thread are about other code.)
            if (m.comments.length) {
              const on = anchorPatchOf(t, m.messageId);
              if (on && earlierIds.has(on)) answered.push(...spotsOf(m.comments));
            }
          }
        }
        const postedBefore = new Set<string>();
        if (decision.action === 'send') {
          for (const f of findings) if (await store.seenFingerprint(f.fingerprint, scope)) postedBefore.add(f.fingerprint);
        } else {
          // Previews are not posts: what earlier versions' reviews found is what a real run would have said.
          for (const v of earlier) for (const f of await store.findingsFor(v.id)) postedBefore.add(f.fingerprint);
        }
        const sel = pure(rec, () => selectFindings(findings, { posted: postedBefore, answered, ignored }));
        for (const s of sel.skipped) {
          this.log.info({ messageId: rec.messageId, rule: s.finding.rule, reason: s.reason }, 'processing: finding not repeated');
        }
        if (sel.post.length && decision.action !== 'none') {
          reply = this.composeFor(me, sel.post, list, decision);
          posted = reply ? sel.post : [];
        }
      }
    }

    // Feedback on one of our replies, and our own replies coming back through the list.
    const disputes = rec.kind === 'patch' ? [] : await this.disputesIn(rec);
    const own = await store.replyByMessageId(rec.messageId);
    const gh = await this.githubPlan(rec, own !== null);
    let ghJobs = 0;

    const result: ProcessResult = { messageId: rec.messageId, decision, findings: findings.length, replied: false };
    await store.transaction(async (tx) => {
      if (!(await tx.markProcessed(rec.messageId))) {
        result.skipped = true;
        return;
      }
      if (decision.review) await tx.putFindings(rec.messageId, findings);
      if (lineage) await tx.cachePut(lineage.key, lineage.value);
      if (reply && (await tx.enqueueReply(reply))) {
        result.replied = true;
        if (reply.channel !== 'preview' && scope) {
          for (const f of posted) await tx.markFindingPosted(f.fingerprint, scope, reply.messageId, f.rule);
        }
      }
      for (const d of disputes) await tx.recordDispute(d);
      if (own && own.state !== 'sent' && (await tx.markSent(own.key, { response: 'seen on the list' }))) result.confirmed = true;
      if (gh) ghJobs = await GithubIntegration.applyPlan(tx, gh);
    });
    if (ghJobs) this.wakeGithub?.();
    if (result.confirmed) {
      this.log.info({ reply: rec.messageId, state: own?.state }, 'processing: our reply came back through the list before it was marked sent; marked sent');
    }
    if (result.skipped) return result;

    for (const f of findings) {
      const k = `${f.rule}\n${f.severity}`;
      this.findingsTotal.set(k, (this.findingsTotal.get(k) ?? 0) + 1);
    }
    if (result.replied) {
      this.repliesTotal.set('queued', (this.repliesTotal.get('queued') ?? 0) + 1);
      this.wakeDelivery?.();
    }
    if (decision.review || disputes.length) {
      this.log.info(
        {
          messageId: rec.messageId,
          list: decision.list?.address,
          action: decision.action,
          reason: decision.reason,
          findings: findings.length,
          said: result.replied ? posted.length : 0,
          disputes: disputes.length,
        },
        'processing: message reviewed',
      );
    } else {
      this.log.debug({ messageId: rec.messageId, reason: decision.reason }, 'processing: stored, nothing to answer');
    }
    return result;
  }

  /**
   * The GitHub side of a processed mail: patches are always indexed (patch-id, title + author)
   * so a pull request can be linked to them later; with the App configured, links and mirror
   * jobs too. A failure here is logged and costs only the GitHub side, never the mail.
   */
  private async githubPlan(rec: MessageRecord, ownReply: boolean): Promise<MessagePlan | null> {
    try {
      if (!this.github) {
        const index = indexEntry(rec);
        return index ? { index, links: [], jobs: [] } : null;
      }
      return await this.github.planMessage(rec, ownReply || this.isOwn(rec));
    } catch (e) {
      this.countError('github');
      this.log.error({ err: e, messageId: rec.messageId }, 'github: could not plan the GitHub side of this message; skipped');
      return null;
    }
  }

  /** Log and count what the LLM pass did for one patch (the rule findings stand whatever it did). */
  private noteLlm(list: string, r: LlmPatchResult): void {
    const outcome = r.error ? (r.errorKind ?? 'failed') : r.skipped ? r.skipped : r.cached ? 'cached' : 'answered';
    this.llmPatchesTotal.set(outcome, (this.llmPatchesTotal.get(outcome) ?? 0) + 1);
    if (r.usage.totalTokens) this.llmTokensTotal.set(list, (this.llmTokensTotal.get(list) ?? 0) + r.usage.totalTokens);
    if (r.error) {
      this.countError('llm');
      this.log.warn({ messageId: r.messageId, kind: r.errorKind }, `llm: ${r.error}; the rule findings go out alone`);
    } else {
      this.log.info(
        { messageId: r.messageId, outcome, findings: r.findings.length, dropped: r.dropped.length, tokens: r.usage.totalTokens, notices: r.notices },
        'llm: patch reviewed',
      );
    }
  }

  /** Mail the bot sent (its From, or its X-Patchvet stamp, which makes it automated). */
  private isOwn(r: MessageRecord): boolean {
    const bot = this.config.delivery.email.fromAddress;
    return r.from.address.toLowerCase() === bot || r.automated;
  }

  private composeFor(rec: MessageRecord, findings: Finding[], list: ListConfig, decision: ReplyDecision): ReplyInput | null {
    const email = this.config.delivery.email;
    const composed = pure(rec, () =>
      composeReply(rec, findings, { from: email.from, list: list.address, policy: decision.audience, domain: email.domain }),
    );
    const env = envelope(composed.to, composed.cc, email.fromAddress);
    if (!env.to.length && !env.cc.length) {
      this.log.warn({ messageId: rec.messageId }, 'processing: no valid recipient for the reply; not answering');
      return null;
    }
    return {
      key: `reply:${rec.messageId}`,
      messageId: composed.messageId,
      inReplyTo: rec.messageId,
      to: env.to,
      cc: env.cc,
      eml: Buffer.from(replyToEml(composed), 'utf8'),
      channel: decision.action === 'preview' ? 'preview' : email.mode,
    };
  }

  /** Disputes carried by a reply to one of the bot's own replies. */
  private async disputesIn(rec: MessageRecord): Promise<DisputeInput[]> {
    if (!rec.inReplyTo || this.isOwn(rec)) return [];
    const ours = await this.store.replyByMessageId(rec.inReplyTo);
    if (!ours) return [];
    const fb = pure(rec, () => feedbackOf(rec));
    if (!fb.ignore.length && !fb.falsePositive) return [];
    const out: DisputeInput[] = [];
    const findings = ours.inReplyTo ? await this.store.findingsFor(ours.inReplyTo) : [];
    const fingerprintOf = (rule: string): string | null => {
      const fs = findings.filter((f) => f.rule === rule);
      return fs.length === 1 ? fs[0]!.fingerprint : null;
    };
    const by = rec.from.address || rec.author.address || 'unknown';
    for (const rule of fb.ignore) {
      out.push({ rule, fingerprint: fingerprintOf(rule), messageId: rec.messageId, by, reason: `Review-Bot-Ignore: ${rule}` });
    }
    if (fb.falsePositive) {
      const rules = fb.near.length ? fb.near : rulesMentioned(ours.eml.toString('utf8'));
      for (const rule of rules) {
        if (fb.ignore.includes(rule)) continue;
        out.push({ rule, fingerprint: fingerprintOf(rule), messageId: rec.messageId, by, reason: `false positive: ${fb.excerpt ?? ''}`.trim() });
      }
    }
    return out;
  }

  // ------------------------------------------------------------ delivery

  /** Deliver everything due now (held items stay queued). */
  async deliverDue(): Promise<void> {
    await this.delivery.drain();
  }

  private onDeliveryEvent(e: DeliveryEvent, item: OutboxItem): void {
    this.repliesTotal.set(e, (this.repliesTotal.get(e) ?? 0) + 1);
    if (e === 'failed') this.countError('delivery');
    void item;
  }

  // ------------------------------------------------------------ running

  private async runSource(s: LiveSource, signal: AbortSignal): Promise<void> {
    const from = await this.store.getPosition(s.key);
    await s.run({
      from,
      deliver: async (batch) => {
        await this.intake(s, batch);
      },
      onError: (e) => this.onSourceError(s.key, e),
      signal,
    });
  }

  /** A loop that runs `step` until stop(), sleeping `pollSeconds` (or until woken) when it did nothing. */
  private loop(name: string, step: () => Promise<boolean>, setWake: (f: (() => void) | null) => void): Promise<void> {
    const run = async () => {
      let backoff = 1;
      while (!this.stopping) {
        let busy = false;
        try {
          busy = await step();
          backoff = 1;
          if (this.loopFailure?.startsWith(name)) this.loopFailure = null;
        } catch (e) {
          this.countError(name);
          this.loopFailure = `${name}: ${(e as Error).message}`;
          this.log.error({ err: e }, `${name} loop: error; retrying in ${backoff} s`);
          await this.pause(backoff * 1000, setWake);
          backoff = Math.min(backoff * 2, 60);
          continue;
        }
        if (!busy) await this.pause(this.config.pollSeconds * 1000, setWake);
      }
    };
    return run();
  }

  private pause(ms: number, setWake: (f: (() => void) | null) => void): Promise<void> {
    if (this.stopping) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(t);
        setWake(null);
        resolve();
      };
      const t = setTimeout(done, ms);
      setWake(done);
    });
  }

  /** Start everything: HTTP, sources, processing and delivery loops. Resolves once started. */
  async start(): Promise<void> {
    if (this.config.http) {
      const { host, port } = this.config.http;
      try {
        const github = this.github;
        this.http = await startHttp(
          this.config.http,
          { health: () => this.health(), metrics: () => this.metrics() },
          this.log,
          github ? { webhook: (req, res) => github.handle(req, res) } : {},
        );
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        throw new ConfigError(this.config.file, [
          `http.listen: cannot listen on ${host}:${port}: ${code === 'EADDRINUSE' ? 'the address is in use: pick another port, or stop what uses it' : (e as Error).message}`,
        ]);
      }
      this.log.info({ host: this.http.host, port: this.http.port }, 'http: listening');
    }
    if (!this.github) {
      this.log.info(
        `github: App not configured (set APP_ID, PRIVATE_KEY or PRIVATE_KEY_PATH, and WEBHOOK_SECRET): POST ${WEBHOOK_PATH} answers 404, nothing is posted to GitHub`,
      );
    } else if (!this.config.http) {
      this.log.warn(`github: the App is configured but http is off: GitHub cannot deliver webhooks (set http.listen)`);
    }
    for (const s of this.sources) {
      const p = this.runSource(s, this.abort.signal).catch((e) => {
        this.countError(s.key);
        this.loopFailure = `source ${s.key} stopped: ${(e as Error).message}`;
        this.log.error({ err: e, source: s.key }, 'source stopped with an error');
      });
      this.runs.set(s.key, p);
    }
    this.loops.push(
      this.loop('processing', async () => (await this.processPending()) > 0, (f) => (this.wakeProcessing = f)),
      this.loop(
        'delivery',
        async () => (await this.delivery.round()).claimed > 0,
        (f) => (this.wakeDelivery = f),
      ),
    );
    const github = this.github;
    if (github) this.loops.push(this.loop('github', async () => (await github.round()) > 0, (f) => (this.wakeGithub = f)));
    if (!this.sources.length) this.log.warn('serve: no sources configured (sources: in patchvet.yml): nothing will arrive');
    if (!this.config.lists.length) this.log.warn('serve: no lists configured (lists: in patchvet.yml): mail is stored, never reviewed');
    this.log.info(
      { store: redactUrl(this.config.store), sources: this.sources.map((s) => s.key), lists: this.config.lists.map((l) => `${l.address} (${l.reply})`) },
      'serve: started',
    );
  }

  /**
   * --once: read every source until it has caught up, process everything pending, deliver
   * everything due, and return. Sources that can poll on demand are asked to; the others are
   * read until they have been quiet for `settleMs`. Every wait is bounded by `deadlineMs`.
   */
  async runOnce(opts: { settleMs?: number; deadlineMs?: number } = {}): Promise<void> {
    const settle = opts.settleMs ?? 2000;
    const deadline = Date.now() + (opts.deadlineMs ?? 300_000);
    await Promise.all(
      this.sources.map(async (s) => {
        const ac = new AbortController();
        const onStop = () => ac.abort();
        this.abort.signal.addEventListener('abort', onStop, { once: true });
        const started = Date.now();
        const run = this.runSource(s, ac.signal).catch((e) => {
          this.countError(s.key);
          this.log.error({ err: e, source: s.key }, 'source stopped with an error');
        });
        let ended = false;
        void run.then(() => (ended = true));
        if (isPollable(s)) {
          await pollOnce(s, deadline, () => ended || ac.signal.aborted);
        } else {
          while (!ended && Date.now() < deadline && !ac.signal.aborted) {
            // Caught up: quiet for `settle`, and the source has synced once (or is a push source
            // that never reports a lag, given a while to receive what is waiting).
            const last = this.lastDelivery.get(s.key) ?? started;
            const synced = s.health().lagSeconds !== undefined || Date.now() - started >= 15 * settle;
            if (Date.now() - Math.max(last, started) >= settle && synced) break;
            await sleep(50);
          }
        }
        ac.abort();
        this.abort.signal.removeEventListener('abort', onStop);
        await within(run, Math.max(1000, deadline - Date.now()));
      }),
    );
    while (!this.stopping && Date.now() < deadline) {
      if ((await this.processPending()) === 0) break;
    }
    await this.drainGithub(deadline);
    await this.delivery.drain();
  }

  /** Run GitHub jobs until none is due (bounded by `deadline`). */
  private async drainGithub(deadline: number): Promise<void> {
    if (!this.github) return;
    while (!this.stopping && Date.now() < deadline) {
      if ((await this.github.round()) === 0) break;
    }
  }

  /**
   * For a running service (after start()): ask every source that can poll on demand to do so,
   * then process and deliver until nothing is left to do now. Bounded by `deadlineMs`.
   */
  async settle(deadlineMs = 30_000): Promise<void> {
    const deadline = Date.now() + deadlineMs;
    await Promise.all(this.sources.filter(isPollable).map((s) => pollOnce(s, deadline, () => this.stopping)));
    while (!this.stopping && Date.now() < deadline) {
      if ((await this.processPending()) === 0) break;
    }
    await this.drainGithub(deadline);
    await this.delivery.drain();
    // The background loops may hold a reply or a GitHub job they are handling right now.
    while (!this.stopping && Date.now() < deadline && (await this.store.outboxStats()).sending > 0) await sleep(20);
    while (this.github && !this.stopping && Date.now() < deadline && (await this.store.githubJobStats()).running > 0) await sleep(20);
  }

  /** Graceful stop: sources first, then the loops finish what they are doing, then the store closes. */
  async stop(graceMs = 8_000): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.abort.abort();
    this.wakeProcessing?.();
    this.wakeDelivery?.();
    const all = Promise.all([...this.runs.values(), ...this.loops]).then(() => 'done' as const);
    if ((await within(all, graceMs)) !== 'done') {
      this.log.warn('stop: some work did not finish in time; closing anyway (nothing is lost: it resumes on restart)');
    }
    await this.http?.close();
    this.http = null;
    this.delivery.close();
    await this.store.close();
    this.log.info('serve: stopped');
  }

  // ------------------------------------------------------------ health and metrics

  async health(): Promise<HealthReport> {
    let storeOk = true;
    let storeError: string | undefined;
    try {
      await this.store.getPosition('patchvet:healthz');
    } catch (e) {
      storeOk = false;
      storeError = (e as Error).message;
    }
    const sources = this.sources.map((s) => {
      let h;
      try {
        h = s.health();
      } catch (e) {
        h = { ok: false, detail: (e as Error).message };
      }
      return { key: s.key, ...h };
    });
    const ok = storeOk && !this.stopping && sources.every((s) => s.ok);
    return {
      ok,
      store: { backend: this.store.backend, ok: storeOk, ...(storeError ? { error: storeError } : {}) },
      sources,
      github: this.github ? { configured: true, dryRun: this.config.github.dryRun } : { configured: false },
      llm: this.llm ? { on: true, model: this.llm.config.model, endpoint: endpointLabel(this.llm.config) } : { on: false },
      ...(this.loopFailure ? { lastError: this.loopFailure } : {}),
    };
  }

  async metrics(): Promise<MetricFamily[]> {
    const families: MetricFamily[] = [
      {
        name: 'patchvet_messages_total',
        help: 'New messages stored (duplicates from a second source not counted).',
        type: 'counter',
        samples: [{ value: this.messagesTotal }],
      },
      {
        name: 'patchvet_findings_total',
        help: 'Findings raised by reviews, per rule and severity.',
        type: 'counter',
        samples: [...this.findingsTotal].map(([k, value]) => {
          const [rule, severity] = k.split('\n');
          return { labels: { rule: rule!, severity: severity! }, value };
        }),
      },
      {
        name: 'patchvet_replies_total',
        help: 'Reply events: queued, written (outbox file), sent (SMTP), confirmed (seen on the list), held, retry, resent, failed.',
        type: 'counter',
        samples: [...this.repliesTotal].map(([state, value]) => ({ labels: { state }, value })),
      },
      {
        name: 'patchvet_errors_total',
        help: 'Errors per source (a source key, or processing/delivery/review).',
        type: 'counter',
        samples: [...this.errorsTotal].map(([source, value]) => ({ labels: { source }, value })),
      },
      {
        name: 'patchvet_source_lag_seconds',
        help: 'Seconds since the source last caught up (as the source reports it).',
        type: 'gauge',
        samples: this.sources.map((s) => ({ labels: { source: s.key }, value: s.health().lagSeconds ?? NaN })),
      },
    ];
    if (this.llm) {
      families.push(
        {
          name: 'patchvet_llm_tokens_total',
          help: 'Tokens spent by the LLM pass (this process), per list or GitHub repository.',
          type: 'counter',
          samples: [...this.llmTokensTotal].map(([list, value]) => ({ labels: { list }, value })),
        },
        {
          name: 'patchvet_llm_patches_total',
          help: 'Patches given to the LLM pass, by outcome: answered, cached, patch-budget, daily-budget, or the failure kind.',
          type: 'counter',
          samples: [...this.llmPatchesTotal].map(([outcome, value]) => ({ labels: { outcome }, value })),
        },
      );
    }
    try {
      const st = await this.store.outboxStats();
      families.push({
        name: 'patchvet_outbox_items',
        help: 'Replies in the store by state.',
        type: 'gauge',
        samples: (['queued', 'sending', 'sent', 'failed', 'possiblySent'] as const).map((state) => ({
          labels: { state: state === 'possiblySent' ? 'possibly_sent' : state },
          value: st[state],
        })),
      });
    } catch (e) {
      this.log.warn({ err: e }, 'metrics: outbox stats unavailable');
    }
    if (this.github) {
      try {
        const st = await this.store.githubJobStats();
        families.push({
          name: 'patchvet_github_jobs',
          help: 'GitHub jobs (PR reviews, mirrored list replies) in the store by state.',
          type: 'gauge',
          samples: (['queued', 'running', 'done', 'failed'] as const).map((state) => ({ labels: { state }, value: st[state] })),
        });
      } catch (e) {
        this.log.warn({ err: e }, 'metrics: GitHub job stats unavailable');
      }
    }
    return families;
  }
}

// ---------------------------------------------------------------- the command

export interface ServeCommandOptions {
  config: ServeConfig;
  once?: boolean;
  logger?: Logger;
}

/**
 * `patchvet serve`: run until SIGTERM/SIGINT (exit 0 after a graceful stop), or with `once` read,
 * process and deliver once and return. A second signal exits at once.
 */
export async function runServe(o: ServeCommandOptions): Promise<number> {
  const service = await Service.open({ config: o.config, logger: o.logger });
  if (o.once) {
    try {
      await service.runOnce();
    } finally {
      await service.stop();
    }
    return 0;
  }
  let resolveStop!: (code: number) => void;
  const stopped = new Promise<number>((r) => (resolveStop = r));
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      service.log.warn({ signal: sig }, 'serve: second signal; exiting now');
      process.exit(1);
    }
    service.log.info({ signal: sig }, 'serve: stopping');
    service.stop().then(
      () => resolveStop(0),
      (e) => {
        service.log.error({ err: e }, 'serve: error while stopping');
        resolveStop(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  try {
    await service.start();
  } catch (e) {
    await service.stop().catch(() => undefined);
    throw e;
  }
  const code = await stopped;
  process.off('SIGTERM', onSignal);
  process.off('SIGINT', onSignal);
  return code;
}
