// Live source: a maildir that an MDA (procmail, fetchmail, dovecot-lda...) delivers into.
//
// Watches new/ and cur/ with fs.watch and rescans every `every` anyway (fs.watch misses events on
// network file systems, after inotify limits, when the folder is replaced...). tmp/ holds deliveries
// in progress and is never read; a file that vanishes between listing and reading (a mail client
// moving it to cur/) is skipped silently and picked up under its new name.
//
// A message is known by its unique name: the file name up to ":" (the part after it carries flags
// that mail clients change, and moving new/ -> cur/ keeps the unique part). Within a run, a file is
// delivered when its name was not in the previous listing. Across restarts the position says what
// was delivered: {"mtimeMs": T, "names": [...]} = every file with mtime < T, plus the named files
// (those with mtime >= T). T trails the newest delivered mtime by `mtimeSlackMs` (default 60 s) so a
// slow MDA that renames a file into new/ a little after writing it is not taken as delivered; the
// store ignores messages it already has, so an occasional repeat is harmless.
//
// The source never moves, renames or deletes mail, unless `markSeen: true`: then each delivered
// message in new/ is moved to cur/ with the Seen flag (":2,S") once its batch is stored.
import { watch, type FSWatcher } from 'node:fs';
import { readdir, readFile, rename, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Logger } from 'pino';
import { log as rootLog } from '../../log.js';
import type { RawMessage } from '../../model.js';
import { DEFAULT_MAX_MESSAGE_BYTES } from '../../sources/mbox.js';
import type { LiveSource, SourceHealth } from '../types.js';
import { checkCount, checkStart, expandHome, parseInterval, type StartAt } from './options.js';
import { PollLoop } from './poll-loop.js';

export interface MaildirWatchOptions {
  /** The maildir (holding new/, cur/, tmp/). "~/" is expanded. */
  path: string;
  /** Rescan interval besides fs.watch: "30s", "5m", or seconds. Default 30 s. */
  every?: string | number;
  /** What a first start (no stored position) does with the mail already there. Default 'now': skip it. */
  start?: StartAt;
  /** Move delivered messages from new/ to cur/ with the Seen flag. Default false (mail is never touched). */
  markSeen?: boolean;
  /** Most messages per delivered batch. Default 100. */
  batchSize?: number;
  /** Bigger files are reported through onError and skipped. Default 64 MiB. */
  maxMessageBytes?: number;
  /** How far the stored position's mtime trails the newest delivered mail. Default 60 000 ms. */
  mtimeSlackMs?: number;
  /** Use fs.watch (besides rescans). Default true. */
  watch?: boolean;
  /** Failed scans in a row after which health() is not ok. Default 3. */
  failureThreshold?: number;
  /** Default: the patchvet logger. */
  logger?: Logger;
}

/** The stored position: every file with mtime < mtimeMs, plus the named ones, has been delivered. */
export interface MaildirPosition {
  mtimeMs: number;
  /** Unique names (file name up to ":"), sorted. */
  names: string[];
}

type RunOptions = Parameters<LiveSource['run']>[0];

interface Entry {
  sub: 'new' | 'cur';
  name: string;
  key: string;
  mtimeMs: number;
  size: number;
}

const SUBDIRS = ['new', 'cur'] as const;

/** The unique part of a maildir file name (flags after ":" change when the mail is read). */
export function uniqueName(name: string): string {
  const i = name.indexOf(':');
  return i < 0 ? name : name.slice(0, i);
}

/** new/ name -> cur/ name with the Seen flag added (flags kept sorted, as the maildir spec asks). */
export function seenName(name: string): string {
  const i = name.indexOf(':2,');
  if (i < 0) return `${uniqueName(name)}:2,S`;
  const flags = new Set(name.slice(i + 3));
  flags.add('S');
  return `${name.slice(0, i)}:2,${[...flags].sort().join('')}`;
}

function parsePosition(from: string): MaildirPosition {
  const v = JSON.parse(from) as unknown;
  if (typeof v !== 'object' || v === null) throw new Error('not an object');
  const o = v as Record<string, unknown>;
  if (typeof o.mtimeMs !== 'number' || !Number.isFinite(o.mtimeMs)) throw new Error('bad "mtimeMs"');
  if (!Array.isArray(o.names) || !o.names.every((n) => typeof n === 'string')) throw new Error('bad "names"');
  return { mtimeMs: o.mtimeMs, names: o.names as string[] };
}

/** markSeen: yes in YAML is true; a string "false" must not turn moving mail on. */
function checkFlag(name: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined || value === null) return fallback;
  if (typeof value !== 'boolean') throw new Error(`bad ${name} ${JSON.stringify(value)}: write true or false`);
  return value;
}

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code;
}

export class MaildirWatchSource implements LiveSource {
  readonly key: string;
  readonly path: string;
  private readonly start: StartAt;
  private readonly markSeen: boolean;
  private readonly batchSize: number;
  private readonly maxBytes: number;
  private readonly slackMs: number;
  private readonly useWatch: boolean;
  private readonly log: Logger;
  private readonly loop: PollLoop;

  /** Unique names listed by the previous scan (or delivered since); null before the first scan. */
  private known: Set<string> | null = null;
  /** Delivered (or, on the first scan, already covered) names with mtime >= cutoff. */
  private recent = new Map<string, number>();
  private cutoff = 0;
  /** The position stored at start (used by the first scan only). */
  private initial: MaildirPosition | null = null;
  private acked: string | null = null;
  /** Lowest mtime of a file this scan listed but could not read (it moved): the cutoff stays below it. */
  private skippedMin = Infinity;
  private watchers = new Map<string, FSWatcher>();

  constructor(opts: MaildirWatchOptions) {
    if (typeof opts.path !== 'string' || !opts.path) throw new Error('path: the maildir folder is missing');
    this.path = resolve(expandHome(opts.path));
    this.key = `maildir:${this.path}`;
    this.start = checkStart(opts.start, 'now');
    this.markSeen = checkFlag('markSeen', opts.markSeen, false);
    this.batchSize = checkCount('batchSize', opts.batchSize, 100);
    this.maxBytes = checkCount('maxMessageBytes', opts.maxMessageBytes, DEFAULT_MAX_MESSAGE_BYTES);
    const slack = opts.mtimeSlackMs ?? 60_000;
    if (typeof slack !== 'number' || !Number.isFinite(slack) || slack < 0) throw new Error(`bad mtimeSlackMs ${JSON.stringify(slack)}`);
    this.slackMs = slack;
    this.useWatch = checkFlag('watch', opts.watch, true);
    this.log = (opts.logger ?? rootLog).child({ source: this.key });
    this.loop = new PollLoop({ intervalMs: parseInterval(opts.every, 30_000), failureThreshold: opts.failureThreshold, log: this.log });
  }

  async run(opts: RunOptions): Promise<void> {
    this.known = null;
    this.recent = new Map();
    this.cutoff = 0;
    this.initial = null;
    this.acked = opts.from;
    if (opts.from !== null) {
      try {
        this.initial = parsePosition(opts.from);
        this.cutoff = this.initial.mtimeMs;
      } catch (err) {
        this.acked = null;
        this.log.warn(
          { from: opts.from, err: (err as Error).message },
          `stored position is unreadable; starting as on a first start (${this.start})`,
        );
      }
    }
    try {
      await this.loop.run(opts.signal, () => this.scan(opts));
    } finally {
      for (const w of this.watchers.values()) w.close();
      this.watchers.clear();
    }
  }

  /** Scan now instead of waiting; resolves when that scan is over. */
  pollNow(): Promise<void> {
    return this.loop.pollNow();
  }

  health(): SourceHealth {
    return this.loop.health();
  }

  private ensureWatchers(): void {
    if (!this.useWatch) return;
    for (const sub of SUBDIRS) {
      if (this.watchers.has(sub)) continue;
      try {
        const w = watch(join(this.path, sub), { persistent: false }, () => this.loop.wake(20));
        w.on('error', (err) => {
          // e.g. the folder was removed: fall back on rescans, try again at the next scan
          this.log.debug({ err, sub }, 'fs.watch failed; relying on rescans');
          w.close();
          this.watchers.delete(sub);
        });
        this.watchers.set(sub, w);
      } catch (err) {
        this.log.debug({ err, sub }, 'fs.watch unavailable; relying on rescans');
      }
    }
  }

  /** Names in new/ then cur/ (that order: a file moved new/ -> cur/ meanwhile is seen in one of them). */
  private async list(): Promise<Array<{ sub: 'new' | 'cur'; name: string; key: string }>> {
    const out = new Map<string, { sub: 'new' | 'cur'; name: string; key: string }>();
    let found = 0;
    for (const sub of SUBDIRS) {
      let entries;
      try {
        entries = await readdir(join(this.path, sub), { withFileTypes: true });
      } catch (err) {
        if (errno(err) === 'ENOENT' || errno(err) === 'ENOTDIR') continue;
        throw err;
      }
      found++;
      for (const e of entries) {
        if (e.name.startsWith('.') || e.isDirectory()) continue;
        const key = uniqueName(e.name);
        // the same message in both (a move caught half-way): the cur/ copy is the newer state
        out.set(key, { sub, name: e.name, key });
      }
    }
    if (found === 0) throw new Error(`${this.path} is not a maildir (no new/ or cur/ folder)`);
    return [...out.values()];
  }

  private async scan(opts: RunOptions): Promise<void> {
    this.ensureWatchers();
    this.skippedMin = Infinity;
    const listing = await this.list();
    const first = this.known === null;
    const known = this.known ?? new Set<string>();
    const initialNames = new Set(this.initial?.names ?? []);
    const covered = (e: Entry): boolean => {
      if (!first) return false;
      if (this.initial) return e.mtimeMs < this.initial.mtimeMs || initialNames.has(e.key);
      return this.start === 'now';
    };

    const fresh: Entry[] = [];
    for (const f of listing) {
      if (known.has(f.key)) continue;
      let st;
      try {
        st = await stat(join(this.path, f.sub, f.name));
      } catch (err) {
        if (errno(err) === 'ENOENT') continue; // moved or deleted meanwhile
        throw err;
      }
      if (!st.isFile()) continue;
      const e: Entry = { ...f, mtimeMs: st.mtimeMs, size: st.size };
      if (covered(e)) {
        known.add(e.key);
        if (e.mtimeMs >= this.cutoff) this.recent.set(e.key, e.mtimeMs);
      } else {
        fresh.push(e);
      }
    }
    fresh.sort((a, b) => a.mtimeMs - b.mtimeMs || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));

    // From here on `known` only grows by what is delivered, so a failed batch is retried.
    this.known = known;
    for (let i = 0; i < fresh.length && !opts.signal.aborted; i += this.batchSize) {
      await this.deliverChunk(fresh.slice(i, i + this.batchSize), fresh[i + this.batchSize]?.mtimeMs ?? Infinity, opts);
    }
    if (opts.signal.aborted) return;
    // Forget names that left the folder (keeps memory bounded by the folder's size).
    const present = new Set(listing.map((f) => f.key));
    for (const k of known) if (!present.has(k)) known.delete(k);
    // The first scan stores where it starts (at once, so a restart does not skip mail that came
    // meanwhile: with start 'now' the mail already there counts as delivered).
    if (!first) return;
    const { position, recent, cutoff } = this.nextPosition(this.recent, this.cutoff, this.skippedMin);
    if (position !== this.acked) {
      await opts.deliver({ messages: [], position });
      this.acked = position;
      this.recent = recent;
      this.cutoff = cutoff;
    }
  }

  private async deliverChunk(chunk: Entry[], nextMtime: number, opts: RunOptions): Promise<void> {
    const messages: RawMessage[] = [];
    const done: Entry[] = [];
    let pendingMin = Math.min(nextMtime, this.skippedMin);
    for (const e of chunk) {
      const file = join(this.path, e.sub, e.name);
      if (e.size > this.maxBytes) {
        opts.onError({ source: file, message: `message is ${e.size} bytes, over the ${this.maxBytes}-byte limit; skipped` });
        done.push(e);
        continue;
      }
      let raw: Buffer;
      try {
        raw = await readFile(file);
      } catch (err) {
        if (errno(err) === 'ENOENT') {
          // moved (to cur/, by a mail client) or deleted since the listing: the next scan sees it
          this.skippedMin = Math.min(this.skippedMin, e.mtimeMs);
          pendingMin = Math.min(pendingMin, e.mtimeMs);
          continue;
        }
        opts.onError({ source: file, message: `cannot read this file: ${errno(err) ?? (err as Error).message}; skipped` });
        done.push(e);
        continue;
      }
      messages.push({ raw, ref: { source: file, file, offset: 0, length: raw.length } });
      done.push(e);
    }
    const recentNext = new Map(this.recent);
    for (const e of done) recentNext.set(e.key, e.mtimeMs);
    const { position, recent, cutoff } = this.nextPosition(recentNext, this.cutoff, pendingMin);
    if (opts.signal.aborted) return;
    if (messages.length > 0 || position !== this.acked) {
      await opts.deliver({ messages, position });
      this.acked = position;
    }
    this.recent = recent;
    this.cutoff = cutoff;
    for (const e of done) this.known!.add(e.key);
    if (this.markSeen) await this.moveToCur(done.filter((e) => e.sub === 'new'));
  }

  /**
   * The position after `recent` was delivered. The cutoff trails the newest delivered mtime (never in
   * the future) by the slack, never passes a file still waiting in this scan, never moves back.
   */
  private nextPosition(
    recent: Map<string, number>,
    cutoff: number,
    pendingMin: number,
  ): { position: string; recent: Map<string, number>; cutoff: number } {
    const now = Date.now();
    let hw = -Infinity;
    for (const m of recent.values()) hw = Math.max(hw, Math.min(m, now));
    let c = cutoff;
    if (hw > -Infinity) c = Math.max(cutoff, Math.min(hw - this.slackMs, pendingMin));
    const kept = new Map<string, number>();
    for (const [k, m] of recent) if (m >= c) kept.set(k, m);
    const names = [...kept.keys()].sort();
    const pos: MaildirPosition = { mtimeMs: c, names };
    return { position: JSON.stringify(pos), recent: kept, cutoff: c };
  }

  private async moveToCur(entries: Entry[]): Promise<void> {
    for (const e of entries) {
      const from = join(this.path, 'new', e.name);
      const to = join(this.path, 'cur', seenName(e.name));
      try {
        await rename(from, to);
      } catch (err) {
        if (errno(err) !== 'ENOENT') this.log.warn({ err, from, to }, 'could not mark a delivered message as seen');
      }
    }
  }
}
