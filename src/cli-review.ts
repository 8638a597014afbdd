// The commands that review: `review`, `eval` and `rules`, with the LLM pass they can run.
// Loaded by cli.ts only when one of them runs, so `threads` and `serve` do not carry the
// rule loader, the review stage, the LLM client and their libraries (about 35 MB).
import type { Finding, MessageRecord, Severity, Thread } from './model.js';
import { loadCorpus, type Corpus } from './pipeline.js';
import { progressReporter } from './sinks/progress.js';
import { loadPacks, defaultRulesDir, formatLoadErrors } from './rules/load.js';
import { runExamples, formatExampleResults } from './rules/examples.js';
import { recordFromText } from './mail/record.js';
import { reviewRecord } from './review/review.js';
import type { RuleSpec, TreeView } from './rules/types.js';
import { TreeReader } from './review/tree.js';
import { atOrAbove, reviewJson, reviewSarif, reviewText, type ReviewResult } from './sinks/findings.js';
import { composeReply, replyToEml } from './sinks/email.js';
import { compareFindings } from './rules/engine.js';
import { LLM_ENV_HELP, LlmConfigError, endpointLabel, llmConfigFromEnv } from './llm/config.js';
import { LlmReviewer, type LlmPatchResult } from './llm/review.js';
import { openLlmStore } from './llm/store.js';
import { EarlierVersions, JobPool } from './llm/corpus.js';
import { evaluate, evalJson, evalText, reviewComments, type EvalPatch } from './review/eval.js';
import { Out, UsageError, type Io } from './cli.js';

export interface ReviewOpts {
  format: 'text' | 'json' | 'sarif' | 'email';
  rules?: string[];
  defaultRules: boolean;
  tree?: string;
  failOn?: Severity;
  minSeverity: Severity;
  workers?: number;
  llm?: boolean;
  llmCache?: string;
}

function loadRules(extra: string[] | undefined, withDefault: boolean) {
  const dirs = [...(withDefault ? [defaultRulesDir()] : []), ...(extra ?? [])];
  const packs = loadPacks(dirs);
  if (packs.errors.length) {
    throw new UsageError(
      `rule files have errors:\n${formatLoadErrors(packs.errors)}\n` +
        'Fix them (run `patchvet rules test` to check) and run again.',
    );
  }
  return packs;
}

// ---------------------------------------------------------------- the LLM pass in the CLI

interface LlmRun {
  reviewer: LlmReviewer;
  label: string;
  close(): Promise<void>;
}

/** --llm: the reviewer, or a usage error (exit 2) that says which variables to set. Nothing is sent without them. */
async function setupLlm(cacheUrl: string | undefined): Promise<LlmRun> {
  let config;
  try {
    config = llmConfigFromEnv(process.env);
  } catch (e) {
    if (e instanceof LlmConfigError) throw new UsageError(`--llm: ${e.message}`);
    throw e;
  }
  if (!config) throw new UsageError(`--llm needs a model and an endpoint: ${LLM_ENV_HELP}`);
  const url = cacheUrl ?? process.env.PATCHVET_LLM_CACHE;
  let opened;
  try {
    opened = await openLlmStore(url);
  } catch (e) {
    throw new UsageError(`--llm-cache '${url}': ${(e as Error).message} (use memory, sqlite:PATH or postgres://...)`);
  }
  return { reviewer: new LlmReviewer(config, { store: opened.store }), label: `${config.model} at ${endpointLabel(config)}`, close: opened.close };
}

/** What `review` and `eval` share: the rules, the --tree reader, the LLM pass, the corpus; all closed after `fn`. */
async function withReviewRun<T>(
  inputs: string[],
  opts: { rules?: string[]; defaultRules: boolean; tree?: string; workers?: number; llm?: boolean; llmCache?: string },
  io: Io,
  fn: (run: { packs: ReturnType<typeof loadRules>; tree: TreeReader | undefined; llm: LlmRun | null; corpus: Corpus }) => Promise<T>,
): Promise<T> {
  const packs = loadRules(opts.rules, opts.defaultRules);
  const tree = opts.tree ? new TreeReader(opts.tree) : undefined;
  const llm = opts.llm ? await setupLlm(opts.llmCache) : null;
  try {
    const progress = progressReporter(io.stderr);
    const corpus = await loadCorpus(inputs, { stdin: io.stdin, workers: opts.workers, onProgress: progress.tick });
    progress.stop();
    try {
      return await fn({ packs, tree, llm, corpus });
    } finally {
      corpus.close();
    }
  } finally {
    await llm?.close();
  }
}

/** What the LLM pass did over a run: per-patch results folded into stats, notices and stderr lines. */
class LlmTally {
  patches = 0;
  findings = 0;
  tokens = 0;
  requests = 0;
  cached = 0;
  failed = 0;
  skipped = 0;
  notices: string[] = [];
  private breakerSkips = 0;
  private lastFailure = '';

  add(r: LlmPatchResult, io: Io): void {
    if (r.skipped === 'not-a-patch') return;
    this.patches++;
    this.findings += r.findings.length;
    this.tokens += r.usage.totalTokens;
    this.requests += r.usage.requests;
    if (r.cached) this.cached++;
    if (r.skipped) this.skipped++;
    this.notices.push(...r.notices);
    for (const n of r.notices) io.stderr.write(`patchvet: ${n}\n`);
    if (r.error) {
      this.failed++;
      // Once the server is known to be down, the patches after it are skipped at once: one line for them all.
      if (r.errorKind === 'circuit-open') this.breakerSkips++;
      else {
        this.notices.push(r.error);
        io.stderr.write(`patchvet: ${r.error}\n`);
        this.lastFailure = r.error;
      }
    }
  }

  finish(label: string, io: Io): void {
    if (this.breakerSkips) {
      const n = `LLM pass skipped for ${this.breakerSkips} more patch${this.breakerSkips === 1 ? '' : 'es'}: the server did not answer earlier in this run`;
      this.notices.push(n);
      io.stderr.write(`patchvet: ${n}\n`);
    }
    const summary =
      `LLM pass (${label}): ${this.patches} patch${this.patches === 1 ? '' : 'es'}, ${this.findings} finding${this.findings === 1 ? '' : 's'}, ` +
      `${this.tokens.toLocaleString('en-US')} tokens in ${this.requests} request${this.requests === 1 ? '' : 's'}` +
      (this.cached ? `, ${this.cached} from the cache` : '') +
      (this.skipped ? `, ${this.skipped} skipped` : '') +
      (this.failed ? `, ${this.failed} failed` : '');
    if (this.failed && this.failed === this.patches) this.notices.push(`LLM pass failed: rule findings only (${this.lastFailure || 'see above'})`);
    io.stderr.write(`patchvet: ${summary}\n`);
  }

  stats(): Record<string, number> {
    return { llmPatches: this.patches, llmFindings: this.findings, llmTokens: this.tokens, llmRequests: this.requests, llmCached: this.cached, llmFailed: this.failed };
  }
}

interface LlmJob {
  record: MessageRecord;
  thread: Thread;
  ruleFindings: Finding[];
  rules: RuleSpec[];
  tree?: TreeView;
  /** eval: review the patch as first posted (no reviewers' comments: they are what it is compared with). */
  withThread: boolean;
}

function llmInput(job: LlmJob, earlier: EarlierVersions | null) {
  const prev = job.withThread && earlier ? earlier.of(job.record, job.thread) : { ids: [], threads: [] };
  return {
    record: job.record,
    ruleFindings: job.ruleFindings,
    rules: job.rules,
    thread: job.withThread ? job.thread : undefined,
    earlierThreads: prev.threads,
    earlierPatchIds: prev.ids,
    tree: job.tree,
  };
}

export async function reviewCommand(inputs: string[], opts: ReviewOpts, io: Io): Promise<number> {
  return withReviewRun(inputs, opts, io, async ({ packs, tree, llm, corpus }) => {
    // Per patch, in corpus order: rule findings now, LLM findings when their call returns.
    // Per patch, only what the output needs: a whole archive's records (diffs and all) would
    // otherwise stay in memory to the end. The email output keeps the records it may answer.
    const perPatch: Array<{ record: MessageRecord | null; rule: Finding[]; llm: Finding[] }> = [];
    const tally = new LlmTally();
    const pool = new JobPool(Math.max(2, (llm?.reviewer.config.concurrency ?? 1) * 2));
    const earlier = llm ? new EarlierVersions(corpus) : null;
    for (const t of corpus.threads) {
      const thread = corpus.thread(t);
      for (const m of thread.messages) {
        const rec = m.record;
        if (!rec || rec.kind !== 'patch') continue;
        const view = tree?.viewFor(rec);
        const all = reviewRecord(rec, { rules: packs.rules, kb: packs.kb, treeFor: () => view });
        const rule = all.filter((f) => atOrAbove(f, opts.minSeverity));
        const slot = { record: opts.format === 'email' && (rule.length || llm) ? rec : null, rule, llm: [] as Finding[] };
        perPatch.push(slot);
        if (llm && rec.diff) {
          const job: LlmJob = { record: rec, thread, ruleFindings: all, rules: packs.rules, tree: view, withThread: true };
          await pool.add(async () => {
            const r = await llm.reviewer.reviewPatch(llmInput(job, earlier));
            slot.llm = r.findings.filter((f) => atOrAbove(f, opts.minSeverity));
            tally.add(r, io);
          });
        }
      }
    }
    await pool.drain();
    if (llm) tally.finish(llm.label, io);

    const findings: Finding[] = [];
    const patches = new Map<string, MessageRecord>();
    for (const p of perPatch) {
      const fs = [...p.rule, ...p.llm].sort(compareFindings);
      if (fs.length && p.record) patches.set(p.record.messageId, p.record);
      findings.push(...fs);
    }
    const result: ReviewResult = {
      findings,
      errors: corpus.errors,
      stats: {
        messages: corpus.stats.messages,
        threads: corpus.stats.threads,
        series: corpus.stats.series,
        patches: corpus.stats.patches,
        ...(llm ? tally.stats() : {}),
      },
      rules: packs.rules,
      notices: tally.notices,
    };
    const out = new Out(io.stdout);
    if (opts.format === 'json') await out.write(reviewJson(result));
    else if (opts.format === 'sarif') await out.write(reviewSarif(result));
    else if (opts.format === 'text') await out.write(reviewText(result));
    else {
      // An mbox of the replies patchvet would send (dry run: nothing is sent).
      for (const [id, rec] of patches) {
        const fs = findings.filter((f) => f.messageId === id);
        const reply = composeReply(rec, fs, { from: process.env.PATCHVET_FROM ?? 'patchvet <patchvet@localhost>', list: rec.listIds.find((l) => l.includes('@')) ?? null });
        await out.write(`From patchvet ${new Date(0).toUTCString()}\n${replyToEml(reply).replace(/^(>*From )/gm, '>$1')}\n`);
      }
      if (!patches.size) io.stderr.write('patchvet: no findings: no reply would be sent\n');
    }
    for (const e of corpus.errors) io.stderr.write(`patchvet: ${e.source}: ${e.message}\n`);
    // Only rule findings decide the exit status: an LLM's second opinion never gates CI.
    if (opts.failOn && findings.some((f) => f.source === 'rule' && atOrAbove(f, opts.failOn!))) return 1;
    return 0;
  });
}

export interface EvalOpts {
  format: 'text' | 'json';
  rules?: string[];
  defaultRules: boolean;
  tree?: string;
  window: number;
  workers?: number;
  llm?: boolean;
  llmCache?: string;
}

/** `patchvet eval`: findings (rules, and the LLM with --llm) against the comments maintainers made on the same threads. */
export async function evalCommand(inputs: string[], opts: EvalOpts, io: Io): Promise<number> {
  return withReviewRun(inputs, opts, io, async ({ packs, tree, llm, corpus }) => {
    const patches: EvalPatch[] = [];
    const tally = new LlmTally();
    const pool = new JobPool(Math.max(2, (llm?.reviewer.config.concurrency ?? 1) * 2));
    for (const t of corpus.threads) {
      const thread = corpus.thread(t);
      const comments = reviewComments(thread);
      for (const m of thread.messages) {
        const rec = m.record;
        if (!rec || rec.kind !== 'patch' || !rec.diff) continue;
        const view = tree?.viewFor(rec);
        const ruleFindings = reviewRecord(rec, { rules: packs.rules, kb: packs.kb, treeFor: () => view });
        const c = comments.get(rec.messageId) ?? { comments: [], general: 0 };
        const p: EvalPatch = { record: rec, comments: c.comments, general: c.general, findings: ruleFindings };
        patches.push(p);
        if (llm) {
          const job: LlmJob = { record: rec, thread, ruleFindings, rules: packs.rules, tree: view, withThread: false };
          await pool.add(async () => {
            const r = await llm.reviewer.reviewPatch(llmInput(job, null));
            p.findings = [...p.findings, ...r.findings];
            tally.add(r, io);
          });
        }
      }
    }
    await pool.drain();
    if (llm) tally.finish(llm.label, io);
    const report = evaluate(patches, { window: opts.window, llm: !!llm });
    await new Out(io.stdout).write(opts.format === 'json' ? evalJson(report) : evalText(report));
    for (const e of corpus.errors) io.stderr.write(`patchvet: ${e.source}: ${e.message}\n`);
    return 0;
  });
}

export async function rulesCommand(action: string, dir: string | undefined, io: Io): Promise<number> {
  if (action === 'list') {
    const packs = loadRules(dir ? [dir] : undefined, !dir);
    const out = new Out(io.stdout);
    for (const r of packs.rules) await out.write(`${r.id.padEnd(32)} ${r.severity.padEnd(8)} ${r.title}\n`);
    return 0;
  }
  if (action === 'test') {
    const packs = loadRules(dir ? [dir] : undefined, !dir);
    const results = await runExamples(packs.rules, packs.kb, (text: string) => recordFromText(text));
    io.stdout.write(formatExampleResults(results));
    return results.some((r) => !r.passed) ? 1 : 0;
  }
  throw new UsageError(`unknown rules action '${action}': use 'patchvet rules list' or 'patchvet rules test [DIR]'`);
}
