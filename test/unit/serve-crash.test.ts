// `patchvet serve` as a real CHILD PROCESS (node bin/patchvet serve --config ..., the built dist/),
// killed with SIGKILL again and again while mail keeps arriving in the maildir it follows:
// once deterministically inside the SMTP window (the receiver has the whole message and the bot
// is killed before it sees the 250), and at random moments otherwise. The SMTP receiver plays the
// list: everything it accepts is delivered back into the maildir, as a list would. In the end
// every patch has exactly one reply at the receiver (counted raw, de-duplicated by nothing),
// nothing is missed, hostile mail is logged and skipped with /healthz still 200, and SIGTERM
// exits 0. Every wait is bounded.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { RawMessage } from '../../src/model.js';
import {
  COVER_ID,
  XEN_THREAD,
  header,
  mboxMessages,
  pgHarness,
  rawMail,
  sqliteHarness,
  startSmtpReceiver,
  until,
  variantOfPatch,
  type SmtpReceiver,
  type StoreHarness,
} from '../helpers/serve.js';

const REPO = resolve(process.cwd());
const BIN = join(REPO, 'bin', 'patchvet');
const LIST = 'xen-devel@lists.xenproject.org';
const BOT = 'bot@patchvet.example';

/** A small seeded PRNG (mulberry32), so a failing run can be replayed with its seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** A deadline for a race: its timer never keeps the test process alive. */
const deadline = (ms: number) => new Promise((r) => setTimeout(r, ms).unref());

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

class Maildir {
  private n = 0;
  constructor(readonly path: string) {
    for (const d of ['new', 'cur', 'tmp']) mkdirSync(join(path, d), { recursive: true });
  }
  /** Deliver like an MDA: write into tmp/, then rename into new/. */
  deliver(raw: Buffer | string): void {
    const name = `${Date.now()}.${process.pid}_${++this.n}.test`;
    writeFileSync(join(this.path, 'tmp', name), raw);
    renameSync(join(this.path, 'tmp', name), join(this.path, 'new', name));
  }
}

interface Child {
  proc: ChildProcess;
  exited: Promise<number | null>;
}

describe.each<[string, () => StoreHarness]>([
  ['sqlite', sqliteHarness],
  ...(process.env.PATCHVET_CRASH_ONLY === 'sqlite' ? [] : ([['postgres', pgHarness]] as Array<[string, () => StoreHarness]>)),
])('serve killed with -9 over and over (%s)', (_name, make) => {
  const h = make();
  let dir: string;
  let rx: SmtpReceiver;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    if (!existsSync(join(REPO, 'dist', 'serve', 'service.js'))) {
      throw new Error('dist/ has no serve build: run `npm run build` first (npm test does it before jest)');
    }
    await h.setup();
    dir = mkdtempSync(join(tmpdir(), 'patchvet-crash-'));
    rx = await startSmtpReceiver();
  });
  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await rx?.close();
    await h.teardown();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('every patch answered exactly once, nothing missed; hostile mail skipped; SIGTERM exits 0', async () => {
    const seed = Number(process.env.PATCHVET_CRASH_SEED ?? Date.now() % 1_000_000);
    const rand = prng(seed);
    const between = (lo: number, hi: number) => Math.floor(lo + rand() * (hi - lo));
    const logFile = join(dir, 'serve.log');
    const tail = () => (existsSync(logFile) ? readFileSync(logFile, 'utf8').split('\n').slice(-25).join('\n') : '(no log)');
    const note = {
      toString: () => `(seed ${seed}: replay with PATCHVET_CRASH_SEED=${seed}); the service's log ends with:\n${tail()}`,
    };

    const maildir = new Maildir(join(dir, 'maildir'));
    const httpPort = await freePort();
    const cfgFile = join(dir, 'patchvet.yml');
    writeFileSync(
      cfgFile,
      `store: ${await h.freshUrl()}
sources:
  - {type: maildir, path: ${maildir.path}, every: 200ms, start: beginning}
lists:
  - {address: ${LIST}, rules: [xen, common], reply: list}
maxAge: off
delivery:
  email:
    mode: smtp
    smtp: smtp://127.0.0.1:${rx.port}
    from: "patchvet <${BOT}>"
    lease: 2s
    confirmWait: 3s
    retry: {initialDelay: 200ms, maxDelay: 1s}
http: {listen: 127.0.0.1:${httpPort}}
pollInterval: 200ms
`,
    );

    // The mail that arrives: 14 patches (distinct titles: each is answered), replies, noise.
    const base = mboxMessages(XEN_THREAD);
    const patches: string[] = [];
    const mails: RawMessage[] = [];
    for (let i = 1; i <= 14; i++) {
      const id = `<crash-${i}@citrix.com>`;
      patches.push(id);
      mails.push(variantOfPatch(base[0]!, { messageId: id, subject: `[PATCH v2 ${i}/14] x86/domain: Ensure vCPU ${i}'s FPU is reset early` }));
      if (i % 3 === 0) {
        mails.push(
          rawMail(
            `From: Andrew Cooper <andrew.cooper3@citrix.com>\nTo: ${LIST}\nSubject: Re: patch ${i}\nDate: Tue, 24 Mar 2026 23:02:34 +0000\n` +
              `Message-ID: <crash-reply-${i}@citrix.com>\nIn-Reply-To: ${id}\nReferences: ${COVER_ID} ${id}\n` +
              `List-Id: Xen developer discussion <xen-devel.lists.xenproject.org>\n\nLooks fine to me.\n`,
          ),
        );
      }
    }

    // The receiver is the list: what it accepts comes back through the maildir.
    let killInsideData: Child | null = null;
    let killedInsideData = false;
    rx.respond = async (_n, raw) => {
      maildir.deliver(raw.replace(/\r\n/g, '\n'));
      if (killInsideData) {
        const c = killInsideData;
        killInsideData = null;
        c.proc.kill('SIGKILL');
        await c.exited;
        killedInsideData = true;
      }
      return null;
    };

    const starts: Child[] = [];
    const start = (): Child => {
      const fd = openSync(logFile, 'a');
      const proc = spawn(process.execPath, [BIN, 'serve', '--config', cfgFile], {
        cwd: dir,
        env: { ...process.env, PATCHVET_LOG_LEVEL: 'info', NODE_OPTIONS: '' },
        stdio: ['ignore', fd, fd],
      });
      closeSync(fd);
      const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
      const c = { proc, exited };
      starts.push(c);
      children.push(proc);
      return c;
    };
    const killNow = async (c: Child) => {
      if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGKILL');
      await Promise.race([c.exited, deadline(10_000).then(() => Promise.reject(new Error('child did not die')))]);
    };

    let next = 0;
    const feed = (k: number) => {
      for (let j = 0; j < k && next < mails.length; j++) maildir.deliver(mails[next++]!.raw);
    };

    // Rounds of: start, mail arrives, kill -9 at a random moment.
    for (let round = 0; round < 7; round++) {
      const c = start();
      if (round === 2) {
        // Deterministic: killed while the receiver holds a complete message (before the 250).
        const sentBefore = rx.messages.length;
        killInsideData = c;
        feed(2);
        await until(() => killedInsideData || c.proc.exitCode !== null, 60_000, () => `a kill inside DATA ${note}`);
        expect(killedInsideData).toBe(true);
        expect(rx.messages.length).toBe(sentBefore + 1);
        continue;
      }
      for (let k = 0; k < 2; k++) {
        feed(between(1, 3));
        await sleep(between(20, 400));
      }
      await sleep(between(0, 1500));
      await killNow(c);
    }

    // Last start: the rest of the mail, plus hostile mail; then it must settle.
    const last = start();
    feed(mails.length);
    maildir.deliver(Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 7919 + 13) % 256)));
    maildir.deliver(`X-Junk: ${'a'.repeat(70)}\n${' b'.repeat(35).concat('\n').repeat(30_000)}Subject: big\n\nbody\n`);
    expect(next).toBe(mails.length);

    const metric = async (name: string, state: string): Promise<number> => {
      try {
        const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
        const m = new RegExp(`^${name}\\{state="${state}"\\} (\\d+)$`, 'm').exec(text);
        return m ? Number(m[1]) : -1;
      } catch {
        return -1;
      }
    };
    await until(
      async () =>
        patches.every((id) => rx.messages.some((m) => header(m.raw, 'In-Reply-To') === id)) &&
        (await metric('patchvet_outbox_items', 'queued')) === 0 &&
        (await metric('patchvet_outbox_items', 'sending')) === 0,
      120_000,
      () => `every patch answered and the outbox empty ${note}`,
      200,
    );
    expect(await metric('patchvet_outbox_items', 'sent')).toBe(patches.length);
    expect(await metric('patchvet_outbox_items', 'failed')).toBe(0);

    const health = await fetch(`http://127.0.0.1:${httpPort}/healthz`);
    expect(health.status).toBe(200);

    // SIGTERM: graceful, exit 0.
    last.proc.kill('SIGTERM');
    const code = await Promise.race([last.exited, deadline(20_000).then(() => 'timeout')]);
    expect(code).toBe(0);

    // Exactly once, counted raw at the receiver.
    const perPatch = patches.map((id) => rx.messages.filter((m) => header(m.raw, 'In-Reply-To') === id).length);
    expect({ perPatch, seed }).toEqual({ perPatch: patches.map(() => 1), seed });
    expect(rx.messages).toHaveLength(patches.length);
    for (const m of rx.messages) expect(header(m.raw, 'Message-ID')).toMatch(/^<patchvet\.[0-9a-f]+@patchvet\.example>$/);

    const log = readFileSync(logFile, 'utf8');
    expect(log).toMatch(/"msg":"message skipped: not a mail: no header block"/);
    expect(log).toMatch(/"msg":"serve: stopped"/);
    // The reply sent in the SMTP window was recognised when it came back, not sent again.
    expect(log).toMatch(/reply found on the list; not sending it again|came back through the list before it was marked sent/);
    expect(starts.length).toBe(8);
  }, 240_000);
});
