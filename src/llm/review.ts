// The LLM pass for one patch: the single entry point for `review --llm`, `eval --llm`, serve
// and the GitHub app.
//
//   const reviewer = new LlmReviewer(config, { store });         // one per process
//   const r = await reviewer.reviewPatch({ record, ruleFindings, rules, thread, ... });
//   r.findings  -> Finding[] (source 'llm', rule 'llm/<category>'), held to the diff
//   r.error     -> set when the pass failed (server down, slow, invalid answers); never throws
//   r.notices   -> what the reader should know (skipped over budget, context trimmed, ...)
//   r.usage     -> tokens spent on this patch (0 when answered from the cache)
//
// Steps: triggered rules -> cache (patch-id) -> budgets -> review call (+1 retry on an invalid
// answer) -> held to the diff -> verification call (PATCHVET_LLM_VERIFY_MODEL) -> cache ->
// repeats of rule findings and reviewers' comments dropped -> cap -> Findings.
import { createHash } from 'node:crypto';
import type { Finding, MessageRecord, Thread } from '../model.js';
import type { RuleSpec, TreeView } from '../rules/types.js';
import { triggeredRules, type TriggeredRule } from '../rules/engine.js';
import { functionName } from '../rules/context.js';
import { log } from '../log.js';
import type { LlmConfig } from './config.js';
import { LlmClient, LlmError, type ClientDeps, type LlmErrorKind } from './client.js';
import { patchId } from './patch-id.js';
import { buildReviewRequest, buildVerifyRequest, estimateTokens, PROMPT_VERSION, RETRY_NOTE, type BuiltRequest, type FunctionContext } from './prompt.js';
import { priorComments } from './thread-context.js';
import { capFindings, dropRepeats, holdToDiff, parseReviewAnswer, parseVerifyAnswer, reanchor, toFindings, type Candidate, type Dropped, type Parsed } from './validate.js';
import { noteList, utcDay, type LlmStore } from './store.js';

export interface LlmPatchInput {
  /** The patch mail (kind 'patch' with a diff; anything else is skipped without a request). */
  record: MessageRecord;
  /** What the rules found on this patch (all severities): not repeated, and shown to the model. */
  ruleFindings: readonly Finding[];
  /** The rules in force for this patch's list: their guides go to the model when the patch triggers them. */
  rules: readonly RuleSpec[];
  /** List identifiers the patch is known to have come through (as for runRules). */
  lists?: string[];
  /** The patch's thread: reviewers' comments on it. */
  thread?: Thread;
  /** Threads holding earlier versions of this patch, and those versions' Message-IDs. */
  earlierThreads?: Thread[];
  earlierPatchIds?: string[];
  /** Mail never taken as review (the bot's own replies). */
  exclude?: (rec: MessageRecord) => boolean;
  /** --tree: enclosing functions (pre-image) become context. */
  tree?: TreeView;
  /** Key of the daily budget (a list address, "github:owner/repo"); default: the patch's list. */
  list?: string | null;
  /** Where the patch was sent, in the model's instructions ("pull requests to owner/repo");
   *  default: the list address. */
  venue?: string;
  signal?: AbortSignal;
}

export interface LlmUsage {
  requests: number;
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
}

export type LlmFailure = LlmErrorKind | 'invalid-answer' | 'refused' | 'budget' | 'internal';

export interface LlmPatchResult {
  messageId: string;
  findings: Finding[];
  usage: LlmUsage;
  /** Answered from the cache (no request). */
  cached: boolean;
  /** No request was made, and why. */
  skipped?: 'not-a-patch' | 'patch-budget' | 'daily-budget';
  notices: string[];
  /** The pass failed for this patch (the rule findings stand alone). */
  error?: string;
  errorKind?: LlmFailure;
  /** What the model said that did not survive validation, and why (for logs and eval). */
  dropped: Dropped[];
}

export interface ReviewerDeps {
  store: LlmStore;
  client?: LlmClient;
  clientDeps?: ClientDeps;
  now?: () => Date;
}

interface CachedAnswer {
  v: 1;
  model: string;
  at: string;
  candidates: Candidate[];
}

const ZERO: LlmUsage = { requests: 0, promptTokens: 0, completionTokens: 0, totalTokens: 0 };

/** The list a patch's budget is counted against: its list address, List-Id, or a list-looking recipient. */
export function budgetList(record: MessageRecord): string {
  const ids = record.listIds ?? [];
  const addr = ids.find((l) => l.includes('@')) ?? ids[0];
  if (addr) return addr.toLowerCase();
  const rcpt = [...record.to, ...record.cc].map((a) => a.address.toLowerCase()).find((a) => /@(lists?\.|.*\blists?\b)/.test(a));
  return rcpt ?? '(no list)';
}

/** Bodies (pre-image) of the functions the patch changes, from --tree; capped so one huge function cannot crowd out the patch. */
export function enclosingFunctions(record: MessageRecord, tree: TreeView | undefined, maxLines = 150, maxChars = 16_000): FunctionContext[] {
  if (!tree || !record.diff) return [];
  const names: string[] = [];
  for (const f of record.diff.files)
    for (const h of f.hunks)
      for (const l of h.lines) {
        if (l.kind === 'ctx') continue;
        const n = functionName(l.fn);
        if (n && /^[A-Za-z_]\w*$/.test(n) && !names.includes(n)) names.push(n);
      }
  const out: FunctionContext[] = [];
  let total = 0;
  for (const name of names) {
    const body = tree.functionBody(name);
    if (!body) continue;
    const lines = body.split('\n');
    const text = lines.length > maxLines ? [...lines.slice(0, maxLines), `/* ... ${lines.length - maxLines} more lines */`].join('\n') : body;
    if (total + text.length > maxChars) break;
    total += text.length;
    out.push({ name, body: text });
  }
  return out;
}

function fmt(n: number): string {
  return n.toLocaleString('en-US');
}

function subjectOf(r: MessageRecord): string {
  return r.subject || r.messageId;
}

export class LlmReviewer {
  readonly client: LlmClient;
  private store: LlmStore;
  private now: () => Date;

  constructor(
    readonly config: LlmConfig,
    deps: ReviewerDeps,
  ) {
    this.store = deps.store;
    this.client = deps.client ?? new LlmClient(config, deps.clientDeps);
    this.now = deps.now ?? (() => new Date());
  }

  /** Cache key: patch-id (stable over rebases and re-sends), models, prompt version, the guides shown, the threshold. */
  cacheKey(record: MessageRecord, guides: readonly TriggeredRule[]): string {
    const h = createHash('sha256')
      .update(
        [
          PROMPT_VERSION,
          this.config.model,
          this.config.verifyModel ?? '',
          String(this.config.minConfidence),
          ...guides.map((g) => `${g.rule.id}\u0001${g.rule.guide}`),
        ].join('\u0000'),
      )
      .digest('hex')
      .slice(0, 16);
    return `llm:review:${h}:${patchId(record.diff!)}`;
  }

  /** Review one patch. Never throws: failures come back as `error`. */
  async reviewPatch(input: LlmPatchInput): Promise<LlmPatchResult> {
    const res: LlmPatchResult = { messageId: input.record.messageId, findings: [], usage: { ...ZERO }, cached: false, notices: [], dropped: [] };
    try {
      await this.run(input, res);
    } catch (e) {
      const kind: LlmFailure = e instanceof LlmError ? e.kind : e instanceof AnswerError ? e.kind : 'internal';
      res.error = `LLM pass failed for ${subjectOf(input.record)}: ${(e as Error).message}`;
      res.errorKind = kind;
      res.findings = [];
      if (kind === 'internal') log.error({ err: e, messageId: input.record.messageId }, 'llm: internal error');
      else log.info({ messageId: input.record.messageId, kind }, res.error); // the caller reports it
    }
    return res;
  }

  private async run(input: LlmPatchInput, res: LlmPatchResult): Promise<void> {
    const { record } = input;
    const cfg = this.config;
    if (record.kind !== 'patch' || !record.diff || !record.diff.files.some((f) => f.hunks.length)) {
      res.skipped = 'not-a-patch';
      return;
    }
    const guides = triggeredRules(record, input.rules, { lists: input.lists });
    const prior = priorComments(record, input.thread, { earlierThreads: input.earlierThreads, earlierPatchIds: input.earlierPatchIds, exclude: input.exclude });
    const key = this.cacheKey(record, guides);

    let candidates: Candidate[];
    const hit = await this.store.cacheGet<CachedAnswer>(key);
    if (hit && hit.v === 1 && Array.isArray(hit.candidates)) {
      res.cached = true;
      candidates = hit.candidates.map((c) => reanchor(c, record.diff!)).filter((c): c is Candidate => c !== null);
      log.debug({ messageId: record.messageId, key }, 'llm: answered from the cache');
    } else {
      candidates = await this.ask(input, guides, prior, res);
      if (res.skipped || res.error) return;
      await this.store.cachePut(key, { v: 1, model: cfg.model, at: this.now().toISOString(), candidates } satisfies CachedAnswer, cfg.cacheTtlSeconds);
    }

    const rep = dropRepeats(candidates, input.ruleFindings, prior);
    const cap = capFindings(rep.kept, cfg.maxFindings);
    res.dropped.push(...rep.dropped, ...cap.dropped);
    res.findings = toFindings(cap.kept, record);
    for (const d of res.dropped) log.debug({ messageId: record.messageId, ...d }, 'llm: finding dropped');
    log.info({ messageId: record.messageId, findings: res.findings.length, dropped: res.dropped.length, cached: res.cached, tokens: res.usage.totalTokens }, 'llm: patch reviewed');
  }

  /** The calls: review (+ retry), hold to the diff, verify. Returns candidates, or sets res.skipped. */
  private async ask(input: LlmPatchInput, guides: TriggeredRule[], prior: ReturnType<typeof priorComments>, res: LlmPatchResult): Promise<Candidate[]> {
    const { record } = input;
    const cfg = this.config;
    const opts = {
      model: cfg.model,
      maxOutputTokens: cfg.maxOutputTokens,
      budgetTokens: cfg.patchTokens,
      maxTokensParam: cfg.baseURL ? ('max_tokens' as const) : ('max_completion_tokens' as const),
      temperature: cfg.temperature,
    };
    const built = buildReviewRequest(
      { record, guides, functions: enclosingFunctions(record, input.tree), prior, ruleFindings: [...input.ruleFindings], maxFindings: cfg.maxFindings, list: input.venue ?? (input.list ?? budgetList(record)).replace(/^\(no list\)$/, '') },
      opts,
    );
    if ('overBudget' in built) {
      res.skipped = 'patch-budget';
      res.notices.push(
        `LLM pass skipped for ${subjectOf(record)}: it needs about ${fmt(built.estimatedTokens)} tokens, over the per-patch budget of ${fmt(cfg.patchTokens)} (PATCHVET_LLM_PATCH_TOKENS)`,
      );
      return [];
    }
    if (built.trimmed.length) {
      res.notices.push(`LLM pass for ${subjectOf(record)}: left out ${built.trimmed.join(', ')} to stay within the per-patch token budget`);
    }
    const list = input.list ?? budgetList(record);
    const day = utcDay(this.now());
    if (cfg.dailyTokens > 0) {
      const spent = await this.store.tokensFor(day, list);
      if (spent + built.estimatedTokens > cfg.dailyTokens) {
        res.skipped = 'daily-budget';
        res.notices.push(
          `LLM pass skipped for ${subjectOf(record)}: the daily budget for ${list} is spent (${fmt(spent)} of ${fmt(cfg.dailyTokens)} tokens today, UTC; PATCHVET_LLM_DAILY_TOKENS)`,
        );
        return [];
      }
    }
    const ruleIds = guides.map((g) => g.rule.id);
    const raw = await this.callParsed(built, (c) => parseReviewAnswer(c, ruleIds), input, res, list, day);
    const held = holdToDiff(raw, record.diff!, { minConfidence: cfg.minConfidence });
    res.dropped.push(...held.dropped);
    if (!cfg.verifyModel || !held.kept.length) return held.kept;

    // Verification: a second (cheaper) model keeps only what holds.
    const vreq = buildVerifyRequest(record, held.kept, guides, { ...opts, model: cfg.verifyModel });
    const left = cfg.patchTokens - res.usage.totalTokens;
    if (vreq.estimatedTokens > left) {
      res.notices.push(`LLM findings for ${subjectOf(record)} withheld: no per-patch budget left to verify them (PATCHVET_LLM_PATCH_TOKENS)`);
      return [];
    }
    const verdicts = await this.callParsed(vreq, parseVerifyAnswer, input, res, list, day);
    const kept: Candidate[] = [];
    held.kept.forEach((c, i) => {
      const v = verdicts.find((x) => x.index === i);
      if (v && v.keep && v.confidence >= cfg.minConfidence) kept.push(c);
      else res.dropped.push({ reason: v ? `verification: not kept (confidence ${v.confidence.toFixed(2)})` : 'verification: no verdict', file: c.file, line: c.line, message: c.message });
    });
    return kept;
  }

  /** One call and, when the answer is not valid for the schema, one retry; tokens counted either way. */
  private async callParsed<T>(
    req: BuiltRequest,
    parse: (content: string | null) => Parsed<T>,
    input: LlmPatchInput,
    res: LlmPatchResult,
    list: string,
    day: string,
  ): Promise<T> {
    let body = req.body;
    let lastError = '';
    for (let attempt = 0; attempt < 2; attempt++) {
      if (attempt > 0) {
        body = { ...body, messages: [...body.messages, { role: 'user', content: RETRY_NOTE }] };
        if (res.usage.totalTokens + req.estimatedTokens > this.config.patchTokens) {
          throw new AnswerError('invalid-answer', `the answer was invalid (${lastError}) and the per-patch budget leaves no room for a retry`);
        }
      }
      const r = await this.client.chat(body, { signal: input.signal });
      const spent = r.usage?.total ?? estimateTokens(JSON.stringify(body.messages)) + estimateTokens(r.content ?? '');
      res.usage.requests++;
      res.usage.promptTokens += r.usage?.prompt ?? 0;
      res.usage.completionTokens += r.usage?.completion ?? 0;
      res.usage.totalTokens += spent;
      await this.store.addTokens(day, list, Math.max(0, Math.round(spent)));
      await noteList(this.store, list);
      if (r.refusal) throw new AnswerError('refused', `the model refused: ${r.refusal.replace(/\s+/g, ' ').slice(0, 120)}`);
      if (r.finishReason === 'length') {
        lastError = 'cut off at the output token limit (PATCHVET_LLM_MAX_OUTPUT_TOKENS)';
        continue;
      }
      const p = parse(r.content);
      if (p.ok) return p.value;
      lastError = p.error;
      log.info({ messageId: input.record.messageId, attempt: attempt + 1, error: p.error }, 'llm: invalid answer');
    }
    throw new AnswerError('invalid-answer', `the model's answer was not valid JSON for the schema, twice (${lastError})`);
  }
}

class AnswerError extends Error {
  constructor(
    readonly kind: LlmFailure,
    message: string,
  ) {
    super(message);
  }
}
