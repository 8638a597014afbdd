// Test kit for `patchvet serve`: a tiny in-test LiveSource, a real SMTP receiver (smtp-server on
// loopback) that records every message it accepts, store harnesses for SQLite and PostgreSQL, the
// real fixtures as raw messages, the service set-up the serve tests share (serveKit), and a live
// source run on its own with its batches collected (runSource).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { SMTPServer } from 'smtp-server';
import type { RawMessage } from '../../src/model.js';
import { loadPacks, type LoadError } from '../../src/rules/load.js';
import type { KnowledgeBase, RuleSpec } from '../../src/rules/types.js';
import { buildConfig, type ServeConfig } from '../../src/serve/config.js';
import { Service } from '../../src/serve/service.js';
import type { LiveSource, SourceBatch, SourceHealth, SourceRunOptions } from '../../src/serve/types.js';
import { readInputs } from '../../src/sources/index.js';
import { splitMboxBuffer } from '../../src/sources/mbox.js';
import { sqliteHarness as sqliteAt, pgHarness as pgAt, type StoreHarness } from './stores.js';

export const FIXTURES = join(process.cwd(), '../shared/fixtures');
export const XEN_THREAD = join(FIXTURES, 'xen-fpu-reset-v2-1of9.mbox');
export const PATCH_ID = '<20260324181937.2465574-2-ross.lagerwall@citrix.com>';
export const COVER_ID = '<20260324181937.2465574-1-ross.lagerwall@citrix.com>';
export const REVIEW_ID = '<0471e754-9ea7-4fb5-b573-b770713b2f53@citrix.com>';
export const ANSWER_ID = '<68469e6b-33c8-4020-bd8b-75afe8f6570a@citrix.com>';
export const XEN_RULES = ['xen/alloc-time-init', 'xen/fpu-init-order', 'xen/idle-vcpu-path'];

export function mboxMessages(path: string): RawMessage[] {
  return splitMboxBuffer(readFileSync(path), path);
}

/** A raw message from text (LF line ends, as in the fixtures). */
export function rawMail(text: string, source = 'test'): RawMessage {
  const raw = Buffer.from(text, 'utf8');
  return { raw, ref: { source: `${source}:0`, file: source, offset: 0, length: raw.length } };
}

/** The fixture patch with a new Message-ID / subject marker (a re-send or a new version). */
export function variantOfPatch(
  patch: RawMessage,
  opts: { messageId: string; subject?: string; date?: string; body?: (b: string) => string },
): RawMessage {
  let text = patch.raw.toString('utf8');
  text = text.replace(/^Message-ID: <[^>]+>/m, `Message-ID: ${opts.messageId}`);
  if (opts.subject) text = text.replace(/^Subject: .*$/m, `Subject: ${opts.subject}`);
  if (opts.date) text = text.replace(/^Date: .*$/m, `Date: ${opts.date}`);
  if (opts.body) {
    const i = text.indexOf('\n\n');
    text = text.slice(0, i) + opts.body(text.slice(i));
  }
  return rawMail(text, `variant-${opts.messageId}`);
}

// ---------------------------------------------------------------- a source fed by the test

/** A LiveSource whose batches the test pushes; it delivers them in order, one at a time. */
export class TestSource implements LiveSource {
  private queue: SourceBatch[] = [];
  private wake: (() => void) | null = null;
  private drained: Array<() => void> = [];
  private running = false;
  /** The `from` each run started with. */
  readonly starts: Array<string | null> = [];
  errors: Array<{ source: string; message: string }> = [];
  ok = true;

  constructor(readonly key: string) {}

  push(messages: RawMessage[], position: string | null): void {
    this.queue.push({ messages, position });
    this.wake?.();
  }

  async run(opts: SourceRunOptions): Promise<void> {
    this.starts.push(opts.from);
    this.running = true;
    try {
      while (!opts.signal.aborted) {
        while (this.queue.length && !opts.signal.aborted) {
          await opts.deliver(this.queue[0]!);
          this.queue.shift();
        }
        for (const d of this.drained.splice(0)) d();
        if (opts.signal.aborted) break;
        await new Promise<void>((resolve) => {
          const done = () => {
            this.wake = null;
            opts.signal.removeEventListener('abort', done);
            resolve();
          };
          this.wake = done;
          opts.signal.addEventListener('abort', done, { once: true });
        });
      }
    } finally {
      this.running = false;
      for (const d of this.drained.splice(0)) d();
    }
  }

  /** Resolves when everything pushed so far has been delivered. */
  pollNow(): Promise<void> {
    if (!this.running) return Promise.reject(new Error('not running'));
    return new Promise((resolve) => {
      this.drained.push(resolve);
      this.wake?.();
    });
  }

  health(): SourceHealth {
    return { ok: this.ok, lagSeconds: this.queue.length ? 1 : 0 };
  }
}

// ---------------------------------------------------------------- SMTP receiver

export interface Received {
  from: string;
  to: string[];
  raw: string;
}

export interface SmtpReceiver {
  port: number;
  messages: Received[];
  /** Called for each DATA before it is accepted: return a [code, text] to refuse it instead. */
  respond: ((n: number, raw: string) => [number, string] | null | Promise<[number, string] | null>) | null;
  close(): Promise<void>;
}

export async function startSmtpReceiver(): Promise<SmtpReceiver> {
  const rx: SmtpReceiver = { port: 0, messages: [], respond: null, close: async () => undefined };
  let n = 0;
  const server = new SMTPServer({
    secure: false,
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    size: 50 * 1024 * 1024,
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', async () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        const answer = rx.respond ? await rx.respond(++n, raw) : null;
        if (answer) {
          const err = new Error(answer[1]) as Error & { responseCode: number };
          err.responseCode = answer[0];
          callback(err);
          return;
        }
        rx.messages.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          raw,
        });
        callback(null);
      });
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  rx.port = (server.server.address() as { port: number }).port;
  rx.close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  return rx;
}

/** Header value of a raw message (unfolded), or null. */
export function header(raw: string, name: string): string | null {
  const head = raw.split(/\r?\n\r?\n/)[0]!.replace(/\r?\n[ \t]+/g, ' ');
  const m = new RegExp(`^${name}:[ \\t]*(.*)$`, 'im').exec(head);
  return m ? m[1]!.trim() : null;
}

export function headerNames(raw: string): string[] {
  const head = raw.split(/\r?\n\r?\n/)[0]!;
  return head
    .split(/\r?\n/)
    .filter((l) => /^[A-Za-z-]+:/.test(l))
    .map((l) => l.slice(0, l.indexOf(':')).toLowerCase());
}

// ---------------------------------------------------------------- stores

export { PG_ADMIN_URL, type StoreHarness } from './stores.js';
export const sqliteHarness = () => sqliteAt('patchvet-serve-test-');
export const pgHarness = () => pgAt('patchvet_serve');

/** Poll `cond` until it holds or `ms` pass (then throw, naming `what`). */
export async function until(
  cond: () => boolean | Promise<boolean>,
  ms: number,
  what: string | (() => string),
  every = 25,
): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${typeof what === 'function' ? what() : what}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

/** Like `until` with a 10 ms step and `what` last (the source tests' order). */
export function waitFor(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  return until(cond, ms, what, 10);
}

// ---------------------------------------------------------------- shared set-up of the test files

/** The raw mails of an mbox, read as `patchvet` reads its inputs (a read problem throws). */
export async function mailsOf(path: string): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for await (const m of readInputs([path], { onError: (e) => { throw new Error(e.message); } })) out.push(m.raw);
  return out;
}

export type Rules = { rules: RuleSpec[]; kb: KnowledgeBase };

/** The built-in rule packs, in the form Service and the GitHub integration take, and their load errors. */
export function builtinRules(): { rules: Rules; errors: LoadError[] } {
  const packs = loadPacks();
  return { rules: { rules: packs.rules, kb: packs.kb }, errors: packs.errors };
}

/** Temp folders named `prefix`..., removed after the file's tests (registers an afterAll). */
export function tempDirs(prefix: string): () => string {
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  return () => {
    const d = mkdtempSync(join(tmpdir(), prefix));
    dirs.push(d);
    return d;
  };
}

/** A logger at debug level whose lines (parsed JSON) the test reads. */
export function memoryLogger(): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n')) if (l.trim()) lines.push(JSON.parse(l));
      cb();
    },
  });
  return { logger: pino({ level: 'debug' }, stream), lines };
}

// ---------------------------------------------------------------- the service on a store, replying by SMTP

export const LIST = 'xen-devel@lists.xenproject.org';
export const BOT = 'bot@patchvet.example';
/** runOnce options: settle quickly, but give a slow shared machine time. */
export const ONCE = { settleMs: 100, deadlineMs: 30_000 };

/** Both store backends, for describe.each. */
export const STORES: Array<[string, () => StoreHarness]> = [
  ['sqlite', sqliteHarness],
  ['postgres', pgHarness],
];

/** `make()`'s store, set up and torn down around the enclosing describe block (registers the hooks). */
export function useStore(make: () => StoreHarness): StoreHarness {
  const h = make();
  beforeAll(() => h.setup());
  afterAll(() => h.teardown());
  return h;
}

/** What a test changes in the serve config: the list's reply policy and fields, delivery.email fields, top-level keys. */
export interface ConfigChanges {
  reply?: string;
  list?: Record<string, unknown>;
  email?: Record<string, unknown>;
  top?: Record<string, unknown>;
}

/**
 * The serve config of these tests: one list (xen-devel, the xen and common rules, replies to the
 * list), replies sent by SMTP to `smtpPort` on loopback from BOT without waiting for confirmation,
 * no age limit, no HTTP, a 100 ms poll interval.
 */
export function serveConfig(store: string, smtpPort: number, over: ConfigChanges = {}): ServeConfig {
  return buildConfig(
    {
      store,
      lists: [{ address: LIST, rules: ['xen', 'common'], reply: over.reply ?? 'list', ...over.list }],
      maxAge: 'off',
      delivery: { email: { mode: 'smtp', smtp: `smtp://127.0.0.1:${smtpPort}`, from: `patchvet <${BOT}>`, confirmWait: 0, ...over.email } },
      http: 'off',
      pollInterval: '100ms',
      ...over.top,
    },
    { env: {} },
  );
}

export interface ServeKit {
  /** The built-in rules, and the errors loading them gave. */
  rules: Rules;
  packErrors: LoadError[];
  /** The reference thread: [patch, maintainer's review, author's answer]. */
  thread: RawMessage[];
  /** The SMTP receiver the replies go to (emptied, and set to accept, before each test). */
  rx: SmtpReceiver;
  /** serveConfig() pointed at rx. */
  config(store: string, over?: ConfigChanges): ServeConfig;
  /** Service.open with these rules, a silent logger unless one is given, the environment if one is given. */
  open(config: ServeConfig, sources?: LiveSource[], o?: { env?: Record<string, string>; logger?: Logger }): Promise<Service>;
}

/**
 * The set-up of a serve test file: rules, the reference thread and the SMTP receiver are ready in
 * beforeAll (the kit's fields are filled then), the receiver is closed in afterAll. Call it at the
 * top of the file, before the file's own hooks, so these run first.
 */
export function serveKit(): ServeKit {
  const kit: ServeKit = {
    rules: { rules: [], kb: {} as KnowledgeBase },
    packErrors: [],
    thread: [],
    rx: null as unknown as SmtpReceiver,
    config: (store, over) => serveConfig(store, kit.rx.port, over),
    open: (config, sources, o = {}) =>
      Service.open({ config, sources, rules: kit.rules, env: o.env, logger: o.logger ?? pino({ level: 'silent' }) }),
  };
  beforeAll(async () => {
    ({ rules: kit.rules, errors: kit.packErrors } = builtinRules());
    kit.thread = mboxMessages(XEN_THREAD);
    kit.rx = await startSmtpReceiver();
  });
  afterAll(async () => {
    await kit.rx?.close();
  });
  beforeEach(() => {
    kit.rx.messages.length = 0;
    kit.rx.respond = null;
  });
  return kit;
}

// ---------------------------------------------------------------- a live source run on its own

export interface RunningSource<S extends LiveSource, P = unknown> {
  src: S;
  batches: SourceBatch[];
  errors: Array<{ source: string; message: string }>;
  /** The source's log lines. */
  lines: Array<Record<string, unknown>>;
  messages(): RawMessage[];
  /** The last batch's position, parsed (undefined before the first batch). */
  lastPosition(): P;
  stop(): Promise<void>;
  done: Promise<void>;
  ac: AbortController;
}

/**
 * Run the source `make` builds (given a memory logger) as serve would, from `from`, keeping every
 * batch it delivers; `onBatch` runs inside deliver, so a throw there is a failed delivery.
 */
export function runSource<S extends LiveSource, P = unknown>(
  make: (logger: Logger) => S,
  from: string | null = null,
  onBatch?: (b: SourceBatch, ac: AbortController) => Promise<void> | void,
): RunningSource<S, P> {
  const { logger, lines } = memoryLogger();
  const src = make(logger);
  const batches: SourceBatch[] = [];
  const errors: Array<{ source: string; message: string }> = [];
  const ac = new AbortController();
  const done = src.run({
    from,
    deliver: async (b) => {
      batches.push(b);
      await onBatch?.(b, ac);
    },
    onError: (e) => errors.push(e),
    signal: ac.signal,
  });
  return {
    src,
    batches,
    errors,
    lines,
    ac,
    done,
    messages: () => batches.flatMap((b) => b.messages),
    lastPosition: () => (batches.length ? JSON.parse(batches[batches.length - 1]!.position!) : undefined),
    stop: async () => {
      ac.abort();
      await done;
    },
  };
}
