// The command line (CONTRACT.md). stdout carries only the chosen format; logs and
// progress go to stderr. Exit: 0 ran, 1 finding at/above --fail-on, 2 usage/unreadable input.
import { Command, CommanderError, Option } from 'commander';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import type { Writable } from 'node:stream';
import { loadCorpus, type Corpus } from './pipeline.js';
import { InputOpenError } from './sources/index.js';
import { THREADS_SCHEMA, threadJson, threadText, seriesJson } from './sinks/threads.js';
import { log } from './log.js';
import { progressReporter } from './sinks/progress.js';
import type { Finding, MessageRecord, Severity, Thread } from './model.js';
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

export class UsageError extends Error {}

/** Writes to a stream, waiting for 'drain' so large outputs never pile up in memory. */
export class Out {
  constructor(private stream: Writable) {}
  async write(s: string): Promise<void> {
    if (!this.stream.write(s)) await once(this.stream, 'drain');
  }
}

export interface Io {
  stdout: Writable;
  stderr: Writable;
  stdin?: NodeJS.ReadableStream;
}

async function threadsCommand(inputs: string[], opts: { format: string; workers?: number }, io: Io): Promise<number> {
  const progress = progressReporter(io.stderr);
  const corpus = await loadCorpus(inputs, { stdin: io.stdin, workers: opts.workers, onProgress: progress.tick });
  progress.stop();
  try {
    const out = new Out(io.stdout);
    const seriesOf = seriesIndex(corpus);
    if (opts.format === 'text') {
      for (const t of corpus.threads) await out.write(threadText(corpus.thread(t)) + '\n');
      const s = corpus.stats;
      await out.write(
        `${plural(s.messages, 'message')}, ${plural(s.threads, 'thread')}, ${s.series} series, ${plural(s.patches, 'patch', 'patches')}` +
          (s.duplicates ? `, ${s.duplicates} duplicates collapsed` : '') +
          (corpus.errors.length ? `, ${corpus.errors.length} skipped (see stderr)` : '') +
          '\n',
      );
    } else {
      await out.write(`{"schema":${JSON.stringify(THREADS_SCHEMA)},"threads":[`);
      let first = true;
      for (const t of corpus.threads) {
        await out.write((first ? '\n' : ',\n') + JSON.stringify(threadJson(corpus.thread(t), seriesOf)));
        first = false;
      }
      await out.write('\n],"series":' + JSON.stringify(corpus.series.map(seriesJson)));
      await out.write(',"errors":' + JSON.stringify(corpus.errors) + ',"stats":' + JSON.stringify(corpus.stats) + '}\n');
    }
    for (const e of corpus.errors) io.stderr.write(`patchvet: ${e.source}: ${e.message}\n`);
    return 0;
  } finally {
    corpus.close();
  }
}

interface ReviewOpts {
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

async function reviewCommand(inputs: string[], opts: ReviewOpts, io: Io): Promise<number> {
  return withReviewRun(inputs, opts, io, async ({ packs, tree, llm, corpus }) => {
    // Per patch, in corpus order: rule findings now, LLM findings when their call returns.
    const perPatch: Array<{ record: MessageRecord; rule: Finding[]; llm: Finding[] }> = [];
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
        const slot = { record: rec, rule: all.filter((f) => atOrAbove(f, opts.minSeverity)), llm: [] as Finding[] };
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
      if (fs.length && opts.format === 'email') patches.set(p.record.messageId, p.record);
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

interface EvalOpts {
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
async function evalCommand(inputs: string[], opts: EvalOpts, io: Io): Promise<number> {
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

async function rulesCommand(action: string, dir: string | undefined, io: Io): Promise<number> {
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

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

export function seriesIndex(corpus: Corpus): (id: string) => string | undefined {
  const m = new Map<string, string>();
  for (const s of corpus.series) {
    if (s.cover) m.set(s.cover, s.id);
    for (const p of s.patches) if (p) m.set(p, s.id);
    for (const p of s.extra) m.set(p, s.id);
  }
  return (id) => m.get(id);
}

export function buildProgram(io: Io, result: { code: number }): Command {
  const program = new Command();
  program
    .name('patchvet')
    .description('Review bot for patches sent to mailing lists: threads, series, anchored review comments, findings.')
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) })
    .showHelpAfterError('(run `patchvet --help` for usage)');

  program
    .command('threads')
    .description('rebuild threads, series, diffs and anchored reply comments from mail')
    .argument('<input...>', 'mbox (mboxo/mboxrd, .gz too), maildir folder, .eml file, or - for stdin')
    .addOption(new Option('--format <format>', 'output format').choices(['json', 'text']).default('json'))
    .addOption(new Option('--workers <n>', 'parser threads (default: one per core)').argParser(parseCount))
    .action(async (inputs: string[], opts) => {
      result.code = await threadsCommand(inputs, opts, io);
    });

  program
    .command('review')
    .description('run the rule packs over every patch mail and report findings')
    .argument('<input...>', 'mbox (.gz too), maildir folder, .eml file, or - for stdin')
    .addOption(new Option('--format <format>', 'output format').choices(['text', 'json', 'sarif', 'email']).default('text'))
    .option('--rules <dir>', 'an extra rules directory (repeatable)', (v: string, prev: string[] = []) => [...prev, v])
    .option('--no-default-rules', "don't load the bundled rules/ packs")
    .option('--tree <dir>', 'a checkout of the target tree, for whole functions and callee bodies')
    .addOption(new Option('--fail-on <severity>', 'exit 1 when a finding is at or above this severity').choices(['info', 'warning', 'error']))
    .addOption(new Option('--min-severity <severity>', 'report findings at or above this severity').choices(['info', 'warning', 'error']).default('info'))
    .option('--llm', 'also run the LLM pass (needs PATCHVET_LLM_MODEL and OPENAI_API_KEY or OPENAI_BASE_URL)')
    .option('--llm-cache <url>', 'where LLM answers and token counts are kept: memory (default), sqlite:PATH, postgres://...')
    .addOption(new Option('--workers <n>', 'parser threads (default: one per core)').argParser(parseCount))
    .action(async (inputs: string[], opts) => {
      result.code = await reviewCommand(inputs, opts, io);
    });

  program
    .command('eval')
    .description("compare findings (rules, and the LLM pass with --llm) with the comments maintainers made on the same threads")
    .argument('<input...>', 'mbox (.gz too), maildir folder, .eml file, or - for stdin: threads with patches and their reviews')
    .addOption(new Option('--format <format>', 'output format').choices(['text', 'json']).default('text'))
    .option('--rules <dir>', 'an extra rules directory (repeatable)', (v: string, prev: string[] = []) => [...prev, v])
    .option('--no-default-rules', "don't load the bundled rules/ packs")
    .option('--tree <dir>', 'a checkout of the target tree, for whole functions and callee bodies')
    .addOption(new Option('--window <lines>', 'a finding matches a comment this many lines away or closer').argParser(parseWindow).default(3))
    .option('--llm', 'also run the LLM pass (needs PATCHVET_LLM_MODEL and OPENAI_API_KEY or OPENAI_BASE_URL)')
    .option('--llm-cache <url>', 'where LLM answers and token counts are kept: memory (default), sqlite:PATH, postgres://...')
    .addOption(new Option('--workers <n>', 'parser threads (default: one per core)').argParser(parseCount))
    .action(async (inputs: string[], opts) => {
      result.code = await evalCommand(inputs, opts, io);
    });

  program
    .command('rules')
    .description('list the rules, or run their examples (must-flag and must-not-flag patches)')
    .argument('<action>', 'list | test')
    .argument('[dir]', 'a rules directory (default: the bundled rules/)')
    .action(async (action: string, dir: string | undefined) => {
      result.code = await rulesCommand(action, dir, io);
    });

  program
    .command('serve')
    .description('follow mailing lists, review each new patch once, and answer it (see patchvet.yml in the README)')
    .option('--config <file>', 'the serve configuration', 'patchvet.yml')
    .option('--once', 'read every source once, process, deliver, and exit (for cron and tests)')
    .action(async (opts: { config: string; once?: boolean }) => {
      result.code = await serveCommand(opts);
    });

  program
    .command('stats')
    .description("per-rule findings, posts, disputes and precision, and LLM tokens spent, from serve's store")
    .option('--config <file>', 'the serve configuration naming the store (default: patchvet.yml when present)')
    .addOption(new Option('--format <format>', 'output format').choices(['text', 'json']).default('text'))
    .addOption(new Option('--days <n>', 'LLM token use over this many UTC days, today included').argParser(parseDays).default(30))
    .action(async (opts: { config?: string; format: 'text' | 'json'; days: number }) => {
      result.code = await statsCommand(opts, io);
    });

  return program;
}

/** Load the serve config, turning its problems into a usage error (exit 2) that names the key. */
async function serveConfig(file: string | undefined): Promise<import('./serve/config.js').ServeConfig> {
  const { loadConfig, buildConfig, ConfigError } = await import('./serve/config.js');
  try {
    if (file !== undefined) return loadConfig(file);
    return existsSync('patchvet.yml') ? loadConfig('patchvet.yml') : buildConfig({}, { file: null });
  } catch (e) {
    if (e instanceof ConfigError) throw new UsageError(e.message);
    throw e;
  }
}

async function serveCommand(opts: { config: string; once?: boolean }): Promise<number> {
  const config = await serveConfig(opts.config);
  const { runServe } = await import('./serve/service.js');
  const { ConfigError } = await import('./serve/config.js');
  // A service logs what it does; keep the quieter default of the other commands unless asked.
  const level = log.level;
  if (!process.env.PATCHVET_LOG_LEVEL && !process.env.LOG_LEVEL) log.level = 'info';
  try {
    return await runServe({ config, once: opts.once });
  } catch (e) {
    if (e instanceof ConfigError) throw new UsageError(e.message);
    throw e;
  } finally {
    log.level = level;
  }
}

async function statsCommand(opts: { config?: string; format: 'text' | 'json'; days?: number }, io: Io): Promise<number> {
  const config = await serveConfig(opts.config);
  const { collectStats, statsJson, statsText, storeExists } = await import('./serve/stats.js');
  const { redactUrl } = await import('./serve/config.js');
  if (!storeExists(config.store)) {
    throw new UsageError(`no store at ${redactUrl(config.store)}: run \`patchvet serve\` first, or point --config at its patchvet.yml`);
  }
  const { openStore } = await import('./store/store.js');
  const store = await openStore(config.store);
  try {
    const report = await collectStats(store, config.store, { lists: config.lists.map((l) => l.address), days: opts.days });
    await new Out(io.stdout).write(opts.format === 'json' ? statsJson(report) : statsText(report));
    return 0;
  } finally {
    await store.close();
  }
}

function parseDays(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 3660) throw new UsageError(`--days takes a whole number of days (1 or more), got '${v}'`);
  return n;
}

function parseWindow(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 1000) throw new UsageError(`--window takes a whole number of lines, got '${v}'`);
  return n;
}

function parseCount(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`--workers takes a whole number, got '${v}'`);
  return n;
}

export async function main(argv: string[], io: Io = { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin }): Promise<number> {
  const result = { code: 0 };
  const program = buildProgram(io, result);
  try {
    await program.parseAsync(argv);
    return result.code;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.exitCode === 0) return 0;
      return 2;
    }
    // The reader went away (`patchvet threads ... | head`): not an error of ours.
    if ((e as NodeJS.ErrnoException)?.code === 'EPIPE') return 0;
    if (e instanceof InputOpenError || e instanceof UsageError) {
      io.stderr.write(`patchvet: ${e.message}\n`);
      return 2;
    }
    log.error({ err: e }, 'patchvet failed');
    io.stderr.write(`patchvet: internal error: ${(e as Error).stack ?? e}\nPlease report this with the input that caused it.\n`);
    return 2;
  }
}
