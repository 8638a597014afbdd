// Live source: a public-inbox archive on local disk, read with git.
//
// Layouts (public-inbox 1.9, checked against public-inbox-init/-mda):
//   v2: <inbox>/git/<N>.git, one bare repository per epoch, each with refs/heads/master. Every
//       commit's tree holds one file: `m` (the message, raw) for an addition, `d` (the removed
//       message) for a removal. A new epoch starts when the current one is full; the old one then
//       only changes when history is rewritten (public-inbox-purge / -edit).
//   v1: <inbox> is itself one bare repository (refs/heads/master); each message is the file
//       "xx/yyyy..." (SHA-1 of the Message-ID, split 2/38) that its commit adds; removals delete it.
//
// Position (opaque to the core, stored with each batch):
//   v2 {"epoch":N,"commit":"<sha>"}: the last commit read in epoch N; v1 {"commit":"<sha>"}.
//   "commit": null means "before the first commit" (an epoch entered but still empty).
//
// First start (no stored position): `start: 'now'` (the default: a bot started on a 20-year archive
// must not review every old mail) takes the tip of the newest epoch and delivers an empty batch so
// that position is stored at once (a restart then resumes there and misses nothing); `'beginning'`
// reads every epoch from its first commit.
//
// Rewritten history: when the stored commit is gone or no longer an ancestor of the epoch's ref,
// the epoch is re-read from its first commit (with a warning). The store ignores messages it
// already has (keyed by Message-ID), so nothing is processed twice; only rewrites of the epoch the
// position is in are noticed (finished epochs are not watched: a purge there only removes mail).
import { readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Logger } from 'pino';
import { log as rootLog } from '../../log.js';
import type { RawMessage } from '../../model.js';
import { DEFAULT_MAX_MESSAGE_BYTES } from '../../sources/mbox.js';
import type { LiveSource, SourceBatch, SourceHealth } from '../types.js';
import { AbortedError, CatFile, git, gitLines } from './git.js';
import { checkCount, checkStart, expandHome, parseInterval, type StartAt } from './options.js';
import { PollLoop } from './poll-loop.js';

export type { StartAt } from './options.js';

export interface PublicInboxSourceOptions {
  /** The inbox directory (v2: the one holding git/; v1: the bare repository). "~/" is expanded. */
  path: string;
  /** Poll interval: "60s", "5m", "500ms", or seconds. Default 60 s. */
  every?: string | number;
  /** Where a first start (no stored position) begins. Default 'now'. */
  start?: StartAt;
  /** Most commits (so most messages) per delivered batch. Default 100. */
  batchSize?: number;
  /** Bigger messages are reported through onError and skipped. Default 64 MiB. */
  maxMessageBytes?: number;
  /** Failed polls in a row after which health() is not ok. Default 3. */
  failureThreshold?: number;
  /** Default: the patchvet logger. */
  logger?: Logger;
}

/** Where reading stopped. epoch null: v1 layout. commit null: before the first commit. */
interface Cursor {
  epoch: number | null;
  commit: string | null;
}

export type Layout = 'v1' | 'v2';

const REF = 'refs/heads/master';
const SHA = /^[0-9a-f]{40}([0-9a-f]{24})?$/;
/** v1 message paths: SHA-1 of the Message-ID split 2/38. */
const V1_PATH = /^[0-9a-f]{2}\/[0-9a-f]{38}$/;

async function isDir(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

/** v2 if there is a git/ folder, v1 if the folder is a bare repository; throws otherwise. */
export async function detectLayout(path: string): Promise<Layout> {
  if (await isDir(join(path, 'git'))) return 'v2';
  if ((await isDir(join(path, 'objects'))) && (await isDir(join(path, 'refs')))) return 'v1';
  try {
    await stat(path);
  } catch (err) {
    throw new Error(`cannot read the public-inbox archive ${path}: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
  throw new Error(`${path} is not a public-inbox archive: no git/<N>.git epochs (v2) and not a bare git repository (v1)`);
}

/** Epoch numbers of a v2 inbox, ascending. */
export async function listEpochs(path: string): Promise<number[]> {
  const entries = await readdir(join(path, 'git'), { withFileTypes: true });
  const out: number[] = [];
  for (const e of entries) {
    const m = /^(\d+)\.git$/.exec(e.name);
    if (m && (e.isDirectory() || e.isSymbolicLink())) out.push(Number(m[1]));
  }
  return out.sort((a, b) => a - b);
}

function parsePosition(from: string): Cursor {
  const v: unknown = JSON.parse(from);
  if (typeof v !== 'object' || v === null) throw new Error('not an object');
  const o = v as Record<string, unknown>;
  const commit = o.commit;
  if (commit !== null && (typeof commit !== 'string' || !SHA.test(commit))) throw new Error('bad "commit"');
  if (o.epoch === undefined) return { epoch: null, commit };
  if (typeof o.epoch !== 'number' || !Number.isInteger(o.epoch) || o.epoch < 0) throw new Error('bad "epoch"');
  return { epoch: o.epoch, commit };
}

function formatPosition(c: Cursor): string {
  return c.epoch === null ? JSON.stringify({ commit: c.commit }) : JSON.stringify({ epoch: c.epoch, commit: c.commit });
}

function sameCursor(a: Cursor | null, b: Cursor | null): boolean {
  return a !== null && b !== null && a.epoch === b.epoch && a.commit === b.commit;
}

type RunOptions = Parameters<LiveSource['run']>[0];

interface PollContext {
  deliver: RunOptions['deliver'];
  onError: RunOptions['onError'];
  signal: AbortSignal;
}

/** One commit to read: the objects holding its message(s). */
interface PendingCommit {
  commit: string;
  /** v2: ["<commit>:m"]; v1: the blob ids the commit added (several for odd imports). */
  specs: string[];
  /** v1: the commit only removed files (a deletion): nothing to read. */
  removal: boolean;
}

export class PublicInboxSource implements LiveSource {
  readonly key: string;
  readonly path: string;
  private readonly start: StartAt;
  private readonly batchSize: number;
  private readonly maxBytes: number;
  private readonly log: Logger;
  private readonly loop: PollLoop;
  /** The last position the core acknowledged (deliver resolved). */
  private acked: Cursor | null = null;

  constructor(opts: PublicInboxSourceOptions) {
    if (typeof opts.path !== 'string' || !opts.path) throw new Error('path: the public-inbox directory is missing');
    this.path = resolve(expandHome(opts.path));
    this.key = `public-inbox:${this.path}`;
    this.start = checkStart(opts.start, 'now');
    this.batchSize = checkCount('batchSize', opts.batchSize, 100);
    this.maxBytes = checkCount('maxMessageBytes', opts.maxMessageBytes, DEFAULT_MAX_MESSAGE_BYTES);
    this.log = (opts.logger ?? rootLog).child({ source: this.key });
    this.loop = new PollLoop({
      intervalMs: parseInterval(opts.every, 60_000),
      failureThreshold: opts.failureThreshold,
      log: this.log,
    });
  }

  async run(opts: RunOptions): Promise<void> {
    this.acked = null;
    if (opts.from !== null) {
      try {
        this.acked = parsePosition(opts.from);
      } catch (err) {
        this.log.warn(
          { from: opts.from, err: (err as Error).message },
          `stored position is unreadable; starting as on a first start (${this.start})`,
        );
      }
    }
    const ctx: PollContext = { deliver: opts.deliver, onError: opts.onError, signal: opts.signal };
    await this.loop.run(opts.signal, async () => {
      try {
        await this.poll(ctx);
      } catch (err) {
        if (err instanceof AbortedError || opts.signal.aborted) return;
        throw err;
      }
    });
  }

  /** Poll now instead of waiting for the interval; resolves when that poll is over. */
  pollNow(): Promise<void> {
    return this.loop.pollNow();
  }

  health(): SourceHealth {
    return this.loop.health();
  }

  private async poll(ctx: PollContext): Promise<void> {
    const layout = await detectLayout(this.path);
    if (layout === 'v2') await this.pollV2(ctx);
    else await this.pollV1(ctx);
  }

  /** Tip of a repository's refs/heads/master, or null while it has no commit. */
  private async tip(gitDir: string, signal: AbortSignal): Promise<string | null> {
    const r = await git(gitDir, ['rev-parse', '-q', '--verify', `${REF}^{commit}`], signal, [0, 1]);
    return r.code === 0 ? r.stdout.trim() : null;
  }

  /** Is `commit` still on the ref? False when history was rewritten (or the object is gone). */
  private async stillOnRef(gitDir: string, commit: string, tip: string | null, signal: AbortSignal): Promise<boolean> {
    if (tip === null) return false;
    if (commit === tip) return true;
    const exists = await git(gitDir, ['cat-file', '-e', `${commit}^{commit}`], signal, [0, 1, 128]);
    if (exists.code !== 0) return false;
    const r = await git(gitDir, ['merge-base', '--is-ancestor', commit, tip], signal, [0, 1]);
    return r.code === 0;
  }

  private warnRewrite(epoch: number | null, commit: string, tip: string | null): void {
    const where = epoch === null ? 'the archive' : `epoch ${epoch}`;
    this.log.warn(
      { epoch, commit, tip },
      `history of ${where} was rewritten (commit ${commit} is no longer on ${REF}, e.g. after public-inbox-purge or ` +
        `-edit): re-reading ${where} from its first commit; the store ignores messages it already has`,
    );
  }

  /** Persist `cursor` with an empty batch when it differs from the acknowledged position. */
  private async persist(cursor: Cursor, ctx: PollContext): Promise<void> {
    if (sameCursor(cursor, this.acked) || ctx.signal.aborted) return;
    await ctx.deliver({ messages: [], position: formatPosition(cursor) });
    this.acked = cursor;
  }

  private async pollV2(ctx: PollContext): Promise<void> {
    const epochs = await listEpochs(this.path);
    if (epochs.length === 0) return; // just initialised: nothing to read yet
    const gitDir = (e: number): string => join(this.path, 'git', `${e}.git`);
    let cur = this.acked;
    if (cur && cur.epoch === null) {
      this.log.warn({ position: formatPosition(cur) }, `stored position is for a v1 archive but ${this.path} is v2; starting over`);
      cur = null;
    }
    if (cur === null) {
      if (this.start === 'now') {
        let at: Cursor = { epoch: epochs[epochs.length - 1], commit: null };
        for (let i = epochs.length - 1; i >= 0; i--) {
          const t = await this.tip(gitDir(epochs[i]), ctx.signal);
          if (t) {
            at = { epoch: epochs[i], commit: t };
            break;
          }
        }
        await this.persist(at, ctx);
        return;
      }
      cur = { epoch: epochs[0], commit: null };
    }
    const from = cur.epoch as number;
    if (!epochs.includes(from)) {
      if (epochs.some((e) => e > from)) {
        this.log.warn({ epoch: from }, `epoch ${from} is gone; going on with the next one`);
      } else {
        this.log.warn({ epoch: from }, `epoch ${from} is gone and no later epoch exists; re-reading the archive`);
        cur = { epoch: epochs[0], commit: null };
      }
    }
    for (const e of epochs) {
      if (e < (cur.epoch as number)) continue;
      if (e !== cur.epoch) cur = { epoch: e, commit: null };
      const dir = gitDir(e);
      const tip = await this.tip(dir, ctx.signal);
      if (cur.commit !== null && !(await this.stillOnRef(dir, cur.commit, tip, ctx.signal))) {
        this.warnRewrite(e, cur.commit, tip);
        cur = { epoch: e, commit: null };
      }
      if (tip !== null && cur.commit !== tip) {
        cur = await this.readRange(dir, cur, tip, ctx);
        if (ctx.signal.aborted) return;
      }
    }
    await this.persist(cur, ctx);
  }

  private async pollV1(ctx: PollContext): Promise<void> {
    const dir = this.path;
    let cur = this.acked;
    if (cur && cur.epoch !== null) {
      this.log.warn({ position: formatPosition(cur) }, `stored position is for a v2 archive but ${this.path} is v1; starting over`);
      cur = null;
    }
    const tip = await this.tip(dir, ctx.signal);
    if (cur === null) {
      if (this.start === 'now') {
        await this.persist({ epoch: null, commit: tip }, ctx);
        return;
      }
      cur = { epoch: null, commit: null };
    }
    if (cur.commit !== null && !(await this.stillOnRef(dir, cur.commit, tip, ctx.signal))) {
      this.warnRewrite(null, cur.commit, tip);
      cur = { epoch: null, commit: null };
    }
    if (tip !== null && cur.commit !== tip) {
      cur = await this.readRange(dir, cur, tip, ctx);
      if (ctx.signal.aborted) return;
    }
    await this.persist(cur, ctx);
  }

  /** The commits after cur.commit up to tip, oldest first, in batches. Returns the cursor reached. */
  private async readRange(gitDir: string, cur: Cursor, tip: string, ctx: PollContext): Promise<Cursor> {
    const range = cur.commit === null ? [tip] : [`${cur.commit}..${tip}`];
    const cat = new CatFile(gitDir, ctx.signal);
    let reached = cur;
    try {
      let pending: PendingCommit[] = [];
      const flush = async (): Promise<void> => {
        const batch = pending;
        pending = [];
        if (batch.length === 0) return;
        reached = await this.deliverCommits(cat, reached.epoch, batch, ctx);
      };
      if (cur.epoch !== null) {
        // v2: the message is blob `m` of each commit's tree.
        for await (const line of gitLines(gitDir, ['rev-list', '--reverse', ...range], ctx.signal)) {
          const commit = line.trim();
          if (!SHA.test(commit)) continue;
          pending.push({ commit, specs: [`${commit}:m`], removal: false });
          if (pending.length >= this.batchSize) await flush();
          if (ctx.signal.aborted) return reached;
        }
      } else {
        // v1: the files each commit added ("\x01<commit>" then raw diff lines).
        const args = ['log', '--reverse', '--no-color', '--no-renames', '--raw', '--root', '--no-abbrev', '--format=%x01%H', ...range];
        let current: PendingCommit | null = null;
        for await (const line of gitLines(gitDir, args, ctx.signal)) {
          if (line.startsWith('\x01')) {
            if (current) {
              pending.push(current);
              if (pending.length >= this.batchSize) await flush();
              if (ctx.signal.aborted) return reached;
            }
            current = { commit: line.slice(1).trim(), specs: [], removal: false };
            continue;
          }
          const m = /^:\d+ \d+ [0-9a-f]+ ([0-9a-f]+) ([AMD])\S*\t(.*)$/.exec(line);
          if (!current || !m) continue;
          if (m[2] === 'D') current.removal = true;
          else if (V1_PATH.test(m[3])) current.specs.push(m[1]);
        }
        if (current) pending.push(current);
      }
      await flush();
      return reached;
    } finally {
      cat.close();
    }
  }

  /** Read the messages of `commits`, deliver them with the position after the last one. */
  private async deliverCommits(cat: CatFile, epoch: number | null, commits: PendingCommit[], ctx: PollContext): Promise<Cursor> {
    const specs = commits.flatMap((c) => c.specs);
    const found = await cat.get(specs, this.maxBytes);
    const messages: RawMessage[] = [];
    let k = 0;
    for (const c of commits) {
      const source = epoch === null ? `${this.path}#${c.commit}` : `${this.path}#${epoch}:${c.commit}`;
      const where = epoch === null ? `commit ${c.commit}` : `commit ${c.commit} (epoch ${epoch})`;
      if (c.specs.length === 0) {
        if (!c.removal) this.log.debug({ commit: c.commit }, 'commit adds no message file; skipped');
        continue;
      }
      for (const spec of c.specs) {
        const r = found[k++];
        if ('missing' in r) {
          // v2: a removal commit holds `d` instead of `m`; anything else is damage.
          if (epoch !== null && (await this.isRemoval(cat, c.commit))) {
            this.log.debug({ commit: c.commit }, 'removal commit skipped');
            continue;
          }
          const what = epoch === null ? `message blob ${spec}` : "blob 'm'";
          ctx.onError({ source, message: `${where} has no readable ${what} (git: ${r.missing}); skipped` });
          continue;
        }
        if (r.type !== 'blob') {
          ctx.onError({ source, message: `${where}: ${spec} is a ${r.type}, not a message blob; skipped` });
          continue;
        }
        if (r.data === null) {
          ctx.onError({ source, message: `${where}: message is ${r.size} bytes, over the ${this.maxBytes}-byte limit; skipped` });
          continue;
        }
        messages.push({ raw: r.data, ref: { source, file: this.path, offset: 0, length: r.data.length } });
      }
    }
    const reached: Cursor = { epoch, commit: commits[commits.length - 1].commit };
    if (ctx.signal.aborted) return this.acked ?? reached;
    const batch: SourceBatch = { messages, position: formatPosition(reached) };
    await ctx.deliver(batch);
    this.acked = reached;
    return reached;
  }

  private async isRemoval(cat: CatFile, commit: string): Promise<boolean> {
    const [d] = await cat.get([`${commit}:d`], 0);
    return !('missing' in d);
  }
}
