// Running git for the public-inbox source: argument arrays (never a shell), an explicit --git-dir
// (which also keeps git's safe.directory ownership check out of the way when the archive belongs to
// another user), child processes killed when the run is aborted.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';

/** A git command failed (non-zero exit, could not start, or died). */
export class GitError extends Error {
  constructor(
    message: string,
    readonly code: number | null,
    readonly stderr: string,
  ) {
    super(message);
    this.name = 'GitError';
  }
}

/** The run was aborted while git was running. */
export class AbortedError extends Error {
  constructor() {
    super('aborted');
    this.name = 'AbortError';
  }
}

/** The caller's environment without variables that would point git at another repository. */
function gitEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, GIT_TERMINAL_PROMPT: '0', LC_ALL: 'C' };
  for (const k of [
    'GIT_DIR', 'GIT_WORK_TREE', 'GIT_INDEX_FILE', 'GIT_OBJECT_DIRECTORY', 'GIT_ALTERNATE_OBJECT_DIRECTORIES',
    'GIT_NAMESPACE', 'GIT_COMMON_DIR', 'GIT_REPLACE_REF_BASE', 'GIT_NO_REPLACE_OBJECTS',
  ]) {
    delete env[k];
  }
  // `git replace` refs would make git show other objects than the ones stored.
  env.GIT_NO_REPLACE_OBJECTS = '1';
  return env;
}

function spawnGit(gitDir: string, args: string[]): ChildProcessWithoutNullStreams {
  return spawn('git', ['--git-dir', gitDir, ...args], { env: gitEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
}

function describe(args: string[]): string {
  return `git ${args.join(' ')}`;
}

/** Kill `child` when `signal` aborts; returns the function that stops watching. */
function killOnAbort(child: ChildProcessWithoutNullStreams, signal: AbortSignal): () => void {
  const onAbort = (): void => {
    child.kill('SIGKILL');
  };
  if (signal.aborted) onAbort();
  else signal.addEventListener('abort', onAbort, { once: true });
  return () => signal.removeEventListener('abort', onAbort);
}

export interface GitResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Run one git command to completion. Exit codes in `okCodes` (default [0]) resolve; others reject
 * with GitError carrying git's stderr.
 */
export function git(gitDir: string, args: string[], signal: AbortSignal, okCodes: number[] = [0]): Promise<GitResult> {
  return new Promise<GitResult>((resolve, reject) => {
    if (signal.aborted) return reject(new AbortedError());
    const child = spawnGit(gitDir, args);
    const unwatch = killOnAbort(child, signal);
    child.stdin.end();
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    let failed: Error | null = null;
    child.on('error', (e) => (failed = e));
    child.on('close', (code) => {
      unwatch();
      const stderr = Buffer.concat(err).toString('utf8').trim();
      if (signal.aborted) return reject(new AbortedError());
      if (failed) return reject(new GitError(`${describe(args)} in ${gitDir}: ${failed.message}`, null, stderr));
      if (code === null || !okCodes.includes(code)) {
        return reject(
          new GitError(`${describe(args)} in ${gitDir} exited with ${code ?? 'a signal'}${stderr ? `: ${stderr}` : ''}`, code, stderr),
        );
      }
      resolve({ code, stdout: Buffer.concat(out).toString('utf8'), stderr });
    });
  });
}

/**
 * The output lines of a git command, streamed (a first run over a big archive lists hundreds of
 * thousands of commits). Throws GitError after the last line if git failed; stopping early kills git.
 */
export async function* gitLines(gitDir: string, args: string[], signal: AbortSignal): AsyncGenerator<string> {
  if (signal.aborted) throw new AbortedError();
  const child = spawnGit(gitDir, args);
  const unwatch = killOnAbort(child, signal);
  child.stdin.end();
  const err: Buffer[] = [];
  child.stderr.on('data', (d: Buffer) => err.push(d));
  let failed: Error | null = null;
  child.on('error', (e) => (failed = e));
  const closed = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  let finished = false;
  try {
    const rl = createInterface({ input: child.stdout, crlfDelay: Infinity });
    for await (const line of rl) yield line;
    const code = await closed;
    finished = true;
    if (signal.aborted) throw new AbortedError();
    const stderr = Buffer.concat(err).toString('utf8').trim();
    if (failed) throw new GitError(`${describe(args)} in ${gitDir}: ${(failed as Error).message}`, null, stderr);
    if (code !== 0) {
      throw new GitError(`${describe(args)} in ${gitDir} exited with ${code ?? 'a signal'}${stderr ? `: ${stderr}` : ''}`, code, stderr);
    }
  } finally {
    unwatch();
    if (!finished) child.kill('SIGKILL');
  }
}

export type CatFileResult = { oid: string; type: string; size: number; data: Buffer | null } | { missing: string };

/**
 * One long-lived `git cat-file --batch`: many objects per process instead of one process per
 * message. Requests are written all at once and the answers read in order.
 */
export class CatFile {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly unwatch: () => void;
  private chunks: Buffer[] = [];
  private length = 0;
  private notify: (() => void) | null = null;
  private exited = false;
  private stderr = '';
  private startError: Error | null = null;

  constructor(
    private readonly gitDir: string,
    private readonly signal: AbortSignal,
  ) {
    this.child = spawnGit(gitDir, ['cat-file', '--batch']);
    this.unwatch = killOnAbort(this.child, signal);
    this.child.stdout.on('data', (d: Buffer) => {
      this.chunks.push(d);
      this.length += d.length;
      this.wakeReader();
    });
    this.child.stderr.on('data', (d: Buffer) => {
      if (this.stderr.length < 10_000) this.stderr += d.toString('utf8');
    });
    // EPIPE when git died: the read side reports it.
    this.child.stdin.on('error', () => {});
    this.child.on('error', (e) => {
      this.startError = e;
    });
    this.child.on('close', () => {
      this.exited = true;
      this.wakeReader();
    });
  }

  /**
   * Objects named by `specs` ("<commit>:m", a blob id...), in order. Objects larger than `maxBytes`
   * come back with data null (their bytes are read and dropped).
   */
  async get(specs: string[], maxBytes: number): Promise<CatFileResult[]> {
    for (const s of specs) {
      if (/[\n]/.test(s)) throw new Error(`bad object name ${JSON.stringify(s)}`);
    }
    if (specs.length === 0) return [];
    this.child.stdin.write(specs.map((s) => `${s}\n`).join(''));
    const out: CatFileResult[] = [];
    for (let i = 0; i < specs.length; i++) out.push(await this.readOne(maxBytes));
    return out;
  }

  close(): void {
    this.unwatch();
    this.child.stdin.end();
    if (!this.exited) this.child.kill('SIGKILL');
  }

  private wakeReader(): void {
    const n = this.notify;
    this.notify = null;
    n?.();
  }

  private async more(): Promise<void> {
    if (this.signal.aborted) throw new AbortedError();
    if (this.exited) {
      if (this.startError) throw new GitError(`git cat-file --batch in ${this.gitDir}: ${this.startError.message}`, null, this.stderr);
      throw new GitError(
        `git cat-file --batch in ${this.gitDir} ended early${this.stderr ? `: ${this.stderr.trim()}` : ''}`,
        null,
        this.stderr,
      );
    }
    await new Promise<void>((resolve) => (this.notify = resolve));
  }

  private newlineIndex(): number {
    let base = 0;
    for (const c of this.chunks) {
      const i = c.indexOf(10);
      if (i >= 0) return base + i;
      base += c.length;
    }
    return -1;
  }

  /** Remove and return the first n buffered bytes (copied only when they span several chunks). */
  private take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    let out: Buffer;
    const first = this.chunks[0];
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      const all = Buffer.concat(this.chunks, this.length);
      out = all.subarray(0, n);
      this.chunks = all.length > n ? [all.subarray(n)] : [];
    }
    this.length -= n;
    return out;
  }

  private async readOne(maxBytes: number): Promise<CatFileResult> {
    let nl: number;
    while ((nl = this.newlineIndex()) < 0) await this.more();
    const header = this.take(nl + 1).toString('utf8').trimEnd();
    const m = /^([0-9a-f]{40,64}) (\S+) (\d+)$/.exec(header);
    if (!m) {
      // "<name> missing", "<name> ambiguous", "<name> dangling"...
      return { missing: header };
    }
    const size = Number(m[3]);
    while (this.length < size + 1) await this.more();
    const body = this.take(size);
    this.take(1); // the newline git writes after the object
    // Copy so the message does not pin a big shared chunk.
    const data = size > maxBytes ? null : Buffer.from(body);
    return { oid: m[1], type: m[2], size, data };
  }
}
