// The command line (CONTRACT.md). stdout carries only the chosen format; logs and
// progress go to stderr. Exit: 0 ran, 1 finding at/above --fail-on, 2 usage/unreadable input.
import { Command, CommanderError, Option } from 'commander';
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import { loadCorpus, type Corpus } from './pipeline.js';
import { InputOpenError } from './sources/index.js';
import { THREADS_SCHEMA, threadJson, threadText, seriesJson } from './sinks/threads.js';
import { log } from './log.js';
import { progressReporter } from './sinks/progress.js';

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
        `${s.messages} messages, ${s.threads} threads, ${s.series} series, ${s.patches} patches` +
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

  return program;
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
