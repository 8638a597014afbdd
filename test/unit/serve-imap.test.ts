// ImapSource against a real Dovecot started by the test (test/helpers/dovecot.ts). Without Dovecot
// these tests FAIL (with the apt-get line to fix it): they are never skipped silently.
import { chmodSync, readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { RawMessage } from '../../src/model.js';
import {
  ImapSource,
  backoffDelay,
  formatImapPosition,
  parseImapPosition,
  parseImapUrl,
  type ImapSourceOptions,
} from '../../src/serve/sources/imap.js';
import type { SourceBatch } from '../../src/serve/types.js';
import { readInputs } from '../../src/sources/index.js';
import { startDovecot, type Dovecot } from '../helpers/dovecot.js';

const REF = resolve(process.cwd(), '../shared/fixtures/xen-fpu-reset-v2-1of9.mbox');

async function fixtureMails(): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for await (const m of readInputs([REF])) out.push(m.raw);
  return out;
}

/** What an IMAP server hands back for stored bytes: the same message with CRLF line ends. */
const crlf = (b: Buffer) => b.toString('latin1').replace(/\r?\n/g, '\r\n');

function messageId(raw: Buffer): string {
  return /^Message-ID:\s*(<[^>]+>)/im.exec(raw.toString('latin1'))?.[1] ?? '?';
}

function simpleMail(id: string, body = 'hello\n'): Buffer {
  return Buffer.from(
    `From: Tester <t@example.org>\nTo: xen-devel@lists.xenproject.org\nSubject: test ${id}\n` +
      `Message-ID: <${id}@patchvet.test>\nDate: Tue, 24 Mar 2026 18:19:48 +0000\n\n${body}`,
  );
}

/** Log lines captured from a debug-level pino logger. */
function captureLog() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      lines.push(...String(chunk).split('\n').filter(Boolean));
      cb();
    },
  });
  return { logger: pino({ level: 'trace' }, stream), lines, text: () => lines.join('\n') };
}

/** Sources still running when a test ends (it failed half-way): stopped in afterEach. */
const running = new Set<AbortController>();
afterEach(() => {
  running.forEach((ac) => ac.abort());
  running.clear();
});

/** Run a source in the background and wait for what it does, always with a deadline. */
function runSource(src: ImapSource, from: string | null) {
  const batches: SourceBatch[] = [];
  const errors: Array<{ source: string; message: string }> = [];
  const ac = new AbortController();
  running.add(ac);
  const waiters = new Set<() => void>();
  const ping = () => waiters.forEach((w) => w());
  let runError: unknown = null;
  const done = src
    .run({
      from,
      deliver: async (b) => {
        batches.push(b);
        ping();
      },
      onError: (e) => {
        errors.push(e);
        ping();
      },
      signal: ac.signal,
    })
    .catch((err) => {
      runError = err;
    });
  const messages = () => batches.flatMap((b) => b.messages);
  return {
    batches,
    errors,
    messages,
    lastPosition: () => batches.at(-1)?.position ?? null,
    async waitFor(what: string, pred: () => boolean, ms = 10_000): Promise<number> {
      const t0 = Date.now();
      while (!pred()) {
        if (runError) throw new Error(`run() threw while waiting for ${what}: ${String(runError)}`);
        if (Date.now() - t0 > ms) {
          throw new Error(
            `timed out after ${ms} ms waiting for ${what}; health ${JSON.stringify(src.health())}, ` +
              `${messages().length} messages, errors ${JSON.stringify(errors)}`,
          );
        }
        await new Promise<void>((r) => {
          const w = () => {
            waiters.delete(w);
            clearTimeout(t);
            r();
          };
          const t = setTimeout(w, 25);
          waiters.add(w);
        });
      }
      return Date.now() - t0;
    },
    /** Abort and wait for run() to return; resolves with how long that took. */
    async stop(): Promise<number> {
      const t0 = Date.now();
      ac.abort();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        done,
        new Promise((_r, rej) => (timer = setTimeout(() => rej(new Error('run() did not return within 5 s of abort')), 5000))),
      ]);
      clearTimeout(timer);
      if (runError) throw runError;
      return Date.now() - t0;
    },
  };
}

/** A source that has finished at least one sync since `since` (health's lag says when the last one was). */
function syncedSince(src: ImapSource, since: number): boolean {
  const h = src.health();
  return h.ok && h.lagSeconds !== undefined && Date.now() - h.lagSeconds * 1000 >= since;
}

describe('IMAP url, position and backoff', () => {
  test('parses the serve config url; the key never holds the password', () => {
    const u = parseImapUrl('imaps://bot%40example.org:hunter2@imap.example.org/lists%2Fxen-devel');
    expect(u).toMatchObject({ secure: true, host: 'imap.example.org', port: 993, user: 'bot@example.org', mailbox: 'lists/xen-devel' });
    expect(u.key).toBe('imap://bot%40example.org@imap.example.org/lists/xen-devel');
    expect(u.key).not.toContain('hunter2');
    expect(parseImapUrl('imap://u@127.0.0.1:1430/').mailbox).toBe('INBOX');
    expect(parseImapUrl('imap://u@127.0.0.1:1430/INBOX').key).toBe('imap://u@127.0.0.1:1430/INBOX');
    // same mailbox over imap:// or imaps:// keeps its stored position
    expect(parseImapUrl('imap://u@h/INBOX').key).toBe(parseImapUrl('imaps://u@h/INBOX').key);
    expect(() => parseImapUrl('http://u@h/INBOX')).toThrow(/imaps:\/\/user@host\/INBOX/);
    expect(() => parseImapUrl('imaps://h/INBOX')).toThrow(/user and host are required/);
    expect(() => parseImapUrl('imaps://u:secret@/INBOX')).toThrow(/^(?!.*secret)/);
  });

  test('positions round-trip; malformed ones are rejected', () => {
    expect(parseImapPosition('1795548694:3')).toEqual({ uidValidity: '1795548694', uid: 3 });
    expect(formatImapPosition({ uidValidity: '1795548694', uid: 3 })).toBe('1795548694:3');
    expect(parseImapPosition(null)).toBeNull();
    expect(parseImapPosition('abc')).toBeNull();
    expect(parseImapPosition('epoch1:deadbeef')).toBeNull();
  });

  test('backoff doubles, is capped, and is jittered', () => {
    expect(backoffDelay(0, 1000, 300_000, () => 1)).toBe(1000);
    expect(backoffDelay(0, 1000, 300_000, () => 0)).toBe(500);
    expect(backoffDelay(3, 1000, 300_000, () => 1)).toBe(8000);
    expect(backoffDelay(40, 1000, 300_000, () => 1)).toBe(300_000);
    expect(backoffDelay(40, 1000, 300_000, () => 0)).toBe(150_000);
  });

  test('the Dovecot helper fails (never skips) with the install command when Dovecot is missing', async () => {
    const saved = process.env.PATCHVET_DOVECOT;
    process.env.PATCHVET_DOVECOT = '/nonexistent/sbin/dovecot';
    try {
      await expect(startDovecot()).rejects.toThrow(/apt-get install dovecot-imapd/);
    } finally {
      if (saved === undefined) delete process.env.PATCHVET_DOVECOT;
      else process.env.PATCHVET_DOVECOT = saved;
    }
  });

  test('a missing password is a startup error that says what to set', () => {
    const saved = process.env.PATCHVET_IMAP_PASSWORD;
    delete process.env.PATCHVET_IMAP_PASSWORD;
    try {
      expect(() => new ImapSource({ url: 'imaps://bot@imap.example.org/INBOX' })).toThrow(
        'no IMAP password for bot@imap.example.org: set PATCHVET_IMAP_PASSWORD',
      );
    } finally {
      if (saved !== undefined) process.env.PATCHVET_IMAP_PASSWORD = saved;
    }
  });
});

describe('ImapSource with a real Dovecot', () => {
  let dv: Dovecot;
  let mails: Buffer[];

  beforeAll(async () => {
    // Throws "Dovecot is not installed ... apt-get install dovecot-imapd" when it is missing: every
    // test below then fails with that message.
    dv = await startDovecot();
    mails = await fixtureMails();
  }, 30_000);

  afterAll(async () => {
    await dv?.destroy();
  }, 15_000);

  // a test that failed while Dovecot was down must not take the others with it
  beforeEach(async () => {
    if (dv && !dv.running) await dv.start();
  }, 20_000);

  const source = (o: Partial<ImapSourceOptions> & { url: string }) =>
    new ImapSource({ password: dv.password, backoff: { initialMs: 50, maxMs: 500 }, ...o });

  describe('INBOX, followed across restarts', () => {
    const log = captureLog();
    let uidValidity: bigint;
    let stored: string | null = null;

    test('reads the mailbox from the start, read-only, in UID order, with position <uidvalidity>:3', async () => {
      expect(mails).toHaveLength(3);
      const appended = await dv.append('INBOX', mails);
      expect(appended.uids).toEqual([1, 2, 3]);
      uidValidity = appended.uidValidity;

      const src = source({ url: dv.url('INBOX'), logger: log.logger, pollMs: 60_000 });
      expect(src.key).toBe(`imap://alice@127.0.0.1:${dv.port}/INBOX`);
      const r = runSource(src, null);
      await r.waitFor('three messages', () => r.messages().length >= 3);
      expect(r.messages()).toHaveLength(3);
      expect(r.lastPosition()).toBe(`${uidValidity}:3`);
      expect(r.messages().map((m) => messageId(m.raw))).toEqual(mails.map(messageId));
      r.messages().forEach((m: RawMessage, i) => {
        expect(m.raw.toString('latin1')).toBe(crlf(mails[i]));
        expect(m.ref.source).toBe(`imap://alice@127.0.0.1:${dv.port}/INBOX#${uidValidity}:${i + 1}`);
        expect(m.ref.length).toBe(m.raw.length);
      });
      expect(r.errors).toEqual([]);
      expect(src.health().ok).toBe(true);

      // read-only: nothing was marked \Seen (or anything else)
      const flags = await dv.flags('INBOX');
      expect([...flags.values()]).toEqual([[], [], []]);

      // new mail while the source IDLEs comes promptly (the poll is 60 s away: this is IDLE at work)
      await r.waitFor('the sync to finish', () => syncedSince(src, 0));
      const t0 = Date.now();
      await dv.append('INBOX', [simpleMail('idle-1')]);
      await r.waitFor('the message appended during IDLE', () => r.messages().length >= 4, 5000);
      expect(Date.now() - t0).toBeLessThan(5000);
      expect(messageId(r.messages()[3].raw)).toBe('<idle-1@patchvet.test>');
      expect(r.lastPosition()).toBe(`${uidValidity}:4`);

      const stopMs = await r.stop();
      expect(stopMs).toBeLessThan(3000);
      expect(src.health().ok).toBe(false);
      stored = r.lastPosition();
      expect([...(await dv.flags('INBOX')).values()].flat()).toEqual([]);
    });

    test('restarting from the stored position delivers nothing old, then only what is new', async () => {
      const src = source({ url: dv.url('INBOX'), logger: log.logger, pollMs: 60_000 });
      const started = Date.now();
      const r = runSource(src, stored);
      await r.waitFor('the first sync', () => syncedSince(src, started));
      expect(r.messages().map((m) => messageId(m.raw))).toEqual([]);
      // UID 4 is the highest: "UID FETCH 5:*" returns it anyway, and it must not come back
      await dv.append('INBOX', [simpleMail('after-restart')]);
      await r.waitFor('the new message', () => r.messages().length >= 1, 5000);
      expect(r.messages().map((m) => messageId(m.raw))).toEqual(['<after-restart@patchvet.test>']);
      expect(r.lastPosition()).toBe(`${uidValidity}:5`);
      await r.stop();
      stored = r.lastPosition();
    });

    test('Dovecot stopped and started again on the same port: the source reconnects and goes on', async () => {
      const src = source({ url: dv.url('INBOX'), logger: log.logger, pollMs: 60_000 });
      const started = Date.now();
      const r = runSource(src, stored);
      await r.waitFor('the first sync', () => syncedSince(src, started));

      await dv.stop();
      await r.waitFor('health to say the connection is gone', () => !src.health().ok);
      expect(src.health().detail).toMatch(/IMAP connection|cannot connect|closed|lost/);

      // the source may reconnect while start() still waits for the greeting: count from before it
      const restarted = Date.now();
      await dv.start();
      await r.waitFor('the reconnect', () => syncedSince(src, restarted), 10_000);
      await dv.append('INBOX', [simpleMail('after-server-restart')]);
      await r.waitFor('the message sent after the restart', () => r.messages().length >= 1, 5000);
      expect(r.messages().map((m) => messageId(m.raw))).toEqual(['<after-server-restart@patchvet.test>']);
      expect(r.lastPosition()).toBe(`${uidValidity}:6`);
      // a server going away is not the user's fault: logged, not reported as a message error
      expect(r.errors).toEqual([]);
      await r.stop();
    });

    test('the password never reaches the log, even at trace level', () => {
      expect(log.lines.length).toBeGreaterThan(10); // imapflow's protocol trace was captured
      expect(log.text()).not.toContain(dv.password);
      expect(log.text()).not.toContain(Buffer.from(`\0${dv.user}\0${dv.password}`).toString('base64'));
    });
  });

  test('UIDVALIDITY changed (mailbox deleted and created again): warns and reads it again from the start', async () => {
    const first = await dv.append('xen-devel', mails);
    const log = captureLog();
    const src = source({ url: dv.url('xen-devel'), logger: log.logger, pollMs: 60_000 });
    let r = runSource(src, null);
    await r.waitFor('three messages', () => r.messages().length >= 3);
    await r.stop();
    const stored = r.lastPosition();
    expect(stored).toBe(`${first.uidValidity}:3`);

    const c = await dv.client();
    await c.mailboxDelete('xen-devel');
    await c.logout();
    const second = await dv.append('xen-devel', [mails[2], simpleMail('recreated')]);
    expect(second.uidValidity).not.toBe(first.uidValidity);
    expect(second.uids).toEqual([1, 2]);

    r = runSource(src, stored);
    await r.waitFor('the re-read', () => r.messages().length >= 2);
    expect(r.messages().map((m) => messageId(m.raw))).toEqual([messageId(mails[2]), '<recreated@patchvet.test>']);
    expect(r.lastPosition()).toBe(`${second.uidValidity}:2`);
    expect(log.text()).toMatch(/UIDVALIDITY changed/);
    expect(log.lines.find((l) => l.includes('UIDVALIDITY changed'))).toMatch(/"level":40/);
    await r.stop();
  });

  test('the mailbox recreated while the source follows it: the next poll notices the new UIDVALIDITY and reads it again', async () => {
    const first = await dv.append('recreated', [mails[0]]);
    const log = captureLog();
    // Dovecot says nothing to a session IDLE in a mailbox that another session deletes: the periodic
    // poll (pollMs) is what finds out
    const src = source({ url: dv.url('recreated'), logger: log.logger, pollMs: 300 });
    const r = runSource(src, null);
    await r.waitFor('the first message', () => r.messages().length >= 1);
    const c = await dv.client();
    await c.mailboxDelete('recreated');
    await c.logout();
    const second = await dv.append('recreated', [mails[0], mails[1]]);
    await r.waitFor('the re-read', () => r.lastPosition() === `${second.uidValidity}:2`);
    expect(second.uidValidity).not.toBe(first.uidValidity);
    // everything of the new mailbox, including the message already delivered (the store dedupes it)
    expect(r.messages().map((m) => messageId(m.raw))).toEqual([mails[0], mails[0], mails[1]].map(messageId));
    expect(log.text()).toMatch(/UIDVALIDITY changed/);
    await r.stop();
  });

  test('wrong password: a clear error through onError and the log, health not ok, no crash', async () => {
    const log = captureLog();
    const src = source({ url: dv.url('INBOX'), password: 'wrong-password-123', logger: log.logger });
    const r = runSource(src, null);
    await r.waitFor('the login error', () => r.errors.length >= 1);
    // it keeps trying (backoff) without reporting the same problem again
    await r.waitFor('a few retries', () => log.lines.filter((l) => l.includes('"msg":"IMAP login failed')).length >= 3);
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0].message).toMatch(/^IMAP login failed for alice@127\.0\.0\.1: check PATCHVET_IMAP_PASSWORD/);
    expect(r.errors[0].source).toBe(src.key);
    const h = src.health();
    expect(h.ok).toBe(false);
    expect(h.detail).toMatch(/IMAP login failed for alice@127\.0\.0\.1: check PATCHVET_IMAP_PASSWORD/);
    expect(log.text()).toMatch(/IMAP login failed/);
    expect(log.text()).not.toContain('wrong-password-123');
    expect(r.messages().map((m) => messageId(m.raw))).toEqual([]);
    expect(await r.stop()).toBeLessThan(3000);
  });

  test('imap:// to a server without STARTTLS, TLS required: refused with what to do, the password never sent', async () => {
    const logins = () => (dv.log().match(/Login: user=<alice>/g) ?? []).length;
    const before = logins();
    const src = source({ url: dv.url('INBOX'), requireTls: true, logger: captureLog().logger });
    const r = runSource(src, null);
    await r.waitFor('the error', () => r.errors.length >= 1);
    expect(r.errors[0].message).toMatch(/^IMAP server 127\.0\.0\.1:\d+ does not offer STARTTLS.*use imaps:\/\//);
    expect(src.health().ok).toBe(false);
    await r.stop();
    expect(logins()).toBe(before);
  });

  test('a missing mailbox is reported with what to check', async () => {
    const src = source({ url: dv.url('no-such-list'), logger: captureLog().logger });
    const r = runSource(src, null);
    await r.waitFor('the error', () => r.errors.length >= 1);
    expect(r.errors[0].message).toMatch(/IMAP mailbox "no-such-list" does not exist for alice@127\.0\.0\.1: check the mailbox in the url/);
    expect(src.health().ok).toBe(false);
    await r.stop();
  });

  test('a message the server cannot read is reported and skipped; the others arrive and the position moves past it', async () => {
    const appended = await dv.append('broken', mails);
    // Make UID 2's file unreadable for Dovecot's mail process (which never runs as root).
    const folder = join(dv.maildir, '.broken');
    const uidlist = readFileSync(join(folder, 'dovecot-uidlist'), 'latin1');
    const base = /^2 .*?:(\S+)$/m.exec(uidlist)?.[1];
    expect(base).toBeDefined();
    let file: string | undefined;
    for (const sub of ['new', 'cur']) {
      const hit = readdirSync(join(folder, sub)).find((n) => n.startsWith(base!.split(':')[0]));
      if (hit) file = join(folder, sub, hit);
    }
    expect(file).toBeDefined();
    chmodSync(file!, 0o000);
    try {
      const src = source({ url: dv.url('broken'), logger: captureLog().logger });
      const r = runSource(src, null);
      await r.waitFor('the batch', () => r.batches.length >= 1);
      expect(r.messages().map((m) => messageId(m.raw))).toEqual([messageId(mails[0]), messageId(mails[2])]);
      expect(r.errors).toHaveLength(1);
      expect(r.errors[0].source).toBe(`${src.key}#${appended.uidValidity}:2`);
      // Dovecot answers the unreadable message with BYE: the source finds the culprit by fetching one
      // at a time after reconnecting, and gives up on it after it killed the connection 3 times
      expect(r.errors[0].message).toMatch(/closed the connection each time this message was fetched \(FETCH failed.*\): skipped/);
      expect(r.lastPosition()).toBe(`${appended.uidValidity}:3`);
      expect(src.health().ok).toBe(true);
      await r.stop();
    } finally {
      chmodSync(file!, 0o644);
    }
  });

  test('an oversized message is reported and skipped without being downloaded', async () => {
    const big = simpleMail('big', ('y'.repeat(76) + '\n').repeat(2000)); // ~154 KB
    const appended = await dv.append('sizes', [big, simpleMail('small')]);
    const src = source({ url: dv.url('sizes'), logger: captureLog().logger, maxMessageBytes: 50_000 });
    const r = runSource(src, null);
    await r.waitFor('the batch', () => r.batches.length >= 1);
    expect(r.messages().map((m) => messageId(m.raw))).toEqual(['<small@patchvet.test>']);
    expect(r.errors).toEqual([
      { source: `${src.key}#${appended.uidValidity}:1`, message: expect.stringMatching(/over the 50000-byte limit: skipped/) },
    ]);
    expect(r.lastPosition()).toBe(`${appended.uidValidity}:2`);
    await r.stop();
  });

  test('batches respect batchSize, each with the position it reaches', async () => {
    const appended = await dv.append('batches', [...mails, simpleMail('b4'), simpleMail('b5')]);
    const src = source({ url: dv.url('batches'), logger: captureLog().logger, batchSize: 2 });
    const r = runSource(src, null);
    await r.waitFor('five messages', () => r.messages().length >= 5);
    expect(r.batches.map((b) => [b.messages.length, b.position])).toEqual([
      [2, `${appended.uidValidity}:2`],
      [2, `${appended.uidValidity}:4`],
      [1, `${appended.uidValidity}:5`],
    ]);
    await r.stop();
  });

  test('markSeen: true marks delivered messages \\Seen (and only then)', async () => {
    await dv.append('seen', [mails[0], mails[1]]);
    const src = source({ url: dv.url('seen'), logger: captureLog().logger, markSeen: true });
    const seenAtDelivery: string[][][] = [];
    const ac = new AbortController();
    let delivered = 0;
    const done = src.run({
      from: null,
      deliver: async (b) => {
        seenAtDelivery.push([...(await dv.flags('seen')).values()]);
        delivered += b.messages.length;
      },
      onError: () => undefined,
      signal: ac.signal,
    });
    const deadline = Date.now() + 10_000;
    let flags = await dv.flags('seen');
    while (!(delivered === 2 && [...flags.values()].every((f) => f.includes('\\Seen'))) && Date.now() < deadline) {
      await new Promise((res) => setTimeout(res, 50));
      flags = await dv.flags('seen');
    }
    ac.abort();
    await done;
    expect(seenAtDelivery).toEqual([[[], []]]);
    expect([...flags.values()]).toEqual([['\\Seen'], ['\\Seen']]);
  });
});
