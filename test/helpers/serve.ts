// Test kit for `patchvet serve`: a tiny in-test LiveSource, a real SMTP receiver (smtp-server on
// loopback) that records every message it accepts, store harnesses for SQLite and PostgreSQL, and
// the real fixtures as raw messages.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SMTPServer } from 'smtp-server';
import type { RawMessage } from '../../src/model.js';
import type { LiveSource, SourceBatch, SourceHealth, SourceRunOptions } from '../../src/serve/types.js';
import { splitMboxBuffer } from '../../src/sources/mbox.js';
import { sqliteHarness as sqliteAt, pgHarness as pgAt } from './stores.js';

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
