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
import type { Finding, MessageRecord, Severity } from './model.js';
import { loadPacks, defaultRulesDir, formatLoadErrors } from './rules/load.js';
import { runExamples, formatExampleResults } from './rules/examples.js';
import { recordFromText } from './mail/record.js';
import { reviewThread } from './review/review.js';
import { TreeReader } from './review/tree.js';
import { atOrAbove, reviewJson, reviewSarif, reviewText, type ReviewResult } from './sinks/findings.js';
import { composeReply, replyToEml } from './sinks/email.js';

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

async function reviewCommand(inputs: string[], opts: ReviewOpts, io: Io): Promise<number> {
  const packs = loadRules(opts.rules, opts.defaultRules);
  const tree = opts.tree ? new TreeReader(opts.tree) : undefined;
  if (opts.llm) log.warn('--llm: the LLM pass is not built yet; running the rules only');
  const progress = progressReporter(io.stderr);
  const corpus = await loadCorpus(inputs, { stdin: io.stdin, workers: opts.workers, onProgress: progress.tick });
  progress.stop();
  try {
    const findings: Finding[] = [];
    const patches = new Map<string, MessageRecord>();
    for (const t of corpus.threads) {
      const thread = corpus.thread(t);
      const fs = reviewThread(thread, { rules: packs.rules, kb: packs.kb, treeFor: tree ? (r) => tree.viewFor(r) : undefined }).filter(
        (f) => atOrAbove(f, opts.minSeverity),
      );
      for (const f of fs) {
        const rec = thread.messages.find((m) => m.messageId === f.messageId)?.record;
        if (rec && opts.format === 'email') patches.set(rec.messageId, rec);
      }
      findings.push(...fs);
    }
    const result: ReviewResult = {
      findings,
      errors: corpus.errors,
      stats: { messages: corpus.stats.messages, threads: corpus.stats.threads, series: corpus.stats.series, patches: corpus.stats.patches },
      rules: packs.rules,
      notices: opts.llm ? ['--llm was given but the LLM pass is not available in this version: rule findings only'] : [],
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
    if (opts.failOn && findings.some((f) => atOrAbove(f, opts.failOn!))) return 1;
    return 0;
  } finally {
    corpus.close();
  }
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
    .option('--llm', 'also run the LLM pass (needs OPENAI_API_KEY / OPENAI_BASE_URL / PATCHVET_LLM_MODEL)')
    .addOption(new Option('--workers <n>', 'parser threads (default: one per core)').argParser(parseCount))
    .action(async (inputs: string[], opts) => {
      result.code = await reviewCommand(inputs, opts, io);
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
    .description("per-rule findings, posts, disputes and precision from serve's store")
    .option('--config <file>', 'the serve configuration naming the store (default: patchvet.yml when present)')
    .addOption(new Option('--format <format>', 'output format').choices(['text', 'json']).default('text'))
    .action(async (opts: { config?: string; format: 'text' | 'json' }) => {
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

async function statsCommand(opts: { config?: string; format: 'text' | 'json' }, io: Io): Promise<number> {
  const config = await serveConfig(opts.config);
  const { collectStats, statsJson, statsText, storeExists } = await import('./serve/stats.js');
  const { redactUrl } = await import('./serve/config.js');
  if (!storeExists(config.store)) {
    throw new UsageError(`no store at ${redactUrl(config.store)}: run \`patchvet serve\` first, or point --config at its patchvet.yml`);
  }
  const { openStore } = await import('./store/store.js');
  const store = await openStore(config.store);
  try {
    const report = await collectStats(store, config.store);
    await new Out(io.stdout).write(opts.format === 'json' ? statsJson(report) : statsText(report));
    return 0;
  } finally {
    await store.close();
  }
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
    if (e instanceof InputOpenError || e instanceof UsageError) {
      io.stderr.write(`patchvet: ${e.message}\n`);
      return 2;
    }
    log.error({ err: e }, 'patchvet failed');
    io.stderr.write(`patchvet: internal error: ${(e as Error).stack ?? e}\nPlease report this with the input that caused it.\n`);
    return 2;
  }
}
