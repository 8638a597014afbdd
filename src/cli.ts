// The command line (CONTRACT.md). stdout carries only the chosen format; logs and
// progress go to stderr. Exit: 0 ran, 1 finding at/above --fail-on, 2 usage/unreadable input.
import { Command, CommanderError, Option } from 'commander';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import type { Writable } from 'node:stream';
import { loadCorpus, type Corpus } from './pipeline.js';
import { InputOpenError } from './sources/index.js';
import { WorkerStartError } from './mail/pool.js';
import { THREADS_SCHEMA, seriesJson } from './sinks/threads.js';
import { log } from './log.js';
import { progressReporter } from './sinks/progress.js';
import type { ReviewOpts, EvalOpts } from './cli-review.js';

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
  const corpus = await loadCorpus(inputs, { stdin: io.stdin, workers: opts.workers, onProgress: progress.tick, renderOnWorkers: true });
  progress.stop();
  try {
    const out = new Out(io.stdout);
    if (opts.format === 'text') {
      for await (const text of corpus.threadTexts('text')) await out.write(text);
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
      for await (const text of corpus.threadTexts('json')) {
        await out.write((first ? '\n' : ',\n') + text);
        first = false;
      }
      // One series at a time too: as one string, the list would be a transient as large as the archive's series.
      await out.write('\n],"series":[');
      first = true;
      for (const s of corpus.series) {
        await out.write((first ? '' : ',') + JSON.stringify(seriesJson(s)));
        first = false;
      }
      await out.write(']');
      await out.write(',"errors":' + JSON.stringify(corpus.errors) + ',"stats":' + JSON.stringify(corpus.stats) + '}\n');
    }
    for (const e of corpus.errors) io.stderr.write(`patchvet: ${e.source}: ${e.message}\n`);
    return 0;
  } finally {
    corpus.close();
  }
}

export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
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
    .addOption(new Option('--workers <n>', 'parser threads (default: one per core; none for inputs under 1 MB)').argParser(parseCount))
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
    .addOption(new Option('--workers <n>', 'parser threads (default: one per core; none for inputs under 1 MB)').argParser(parseCount))
    .action(async (inputs: string[], opts: ReviewOpts) => {
      // Rules, review, the LLM pass and their libraries are loaded only by the commands that use them.
      const { reviewCommand } = await import('./cli-review.js');
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
    .addOption(new Option('--workers <n>', 'parser threads (default: one per core; none for inputs under 1 MB)').argParser(parseCount))
    .action(async (inputs: string[], opts: EvalOpts) => {
      const { evalCommand } = await import('./cli-review.js');
      result.code = await evalCommand(inputs, opts, io);
    });

  program
    .command('rules')
    .description('list the rules, or run their examples (must-flag and must-not-flag patches)')
    .argument('<action>', 'list | test')
    .argument('[dir]', 'a rules directory (default: the bundled rules/)')
    .action(async (action: string, dir: string | undefined) => {
      const { rulesCommand } = await import('./cli-review.js');
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
    if (e instanceof InputOpenError || e instanceof UsageError || e instanceof WorkerStartError) {
      io.stderr.write(`patchvet: ${e.message}\n`);
      return 2;
    }
    log.error({ err: e }, 'patchvet failed');
    io.stderr.write(`patchvet: internal error: ${(e as Error).stack ?? e}\nPlease report this with the input that caused it.\n`);
    return 2;
  }
}
