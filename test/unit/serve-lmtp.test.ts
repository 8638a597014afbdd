// LmtpSource with real LMTP clients: nodemailer (lmtp: true), and a raw socket for what a polite
// client never sends (no SIZE declared, garbage, smuggling attempts).
import { connect, createServer, type Socket } from 'node:net';
import { resolve } from 'node:path';
import { Writable } from 'node:stream';
import nodemailer from 'nodemailer';
import { pino } from 'pino';
import type { RawMessage } from '../../src/model.js';
import { LmtpSource, parseListen, queueIdOf, type LmtpSourceOptions } from '../../src/serve/sources/lmtp.js';
import type { SourceBatch } from '../../src/serve/types.js';
import { readInputs } from '../../src/sources/index.js';

const REF = resolve(process.cwd(), '../shared/fixtures/xen-fpu-reset-v2-1of9.mbox');

async function fixtureMails(): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for await (const m of readInputs([REF])) out.push(m.raw);
  return out;
}

/** SMTP/LMTP carry lines ending in CRLF: what arrives for a message stored with LF ends. */
const crlf = (b: Buffer) => Buffer.from(b.toString('latin1').replace(/\r?\n/g, '\r\n'), 'latin1');

function messageId(raw: Buffer): string {
  return /^Message-ID:\s*(<[^>]+>)/im.exec(raw.toString('latin1'))?.[1] ?? '?';
}

function quietLogger() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      lines.push(...String(chunk).split('\n').filter(Boolean));
      cb();
    },
  });
  return { logger: pino({ level: 'debug' }, stream), lines };
}

async function waitFor(what: string, pred: () => boolean, ms = 5000): Promise<void> {
  const t0 = Date.now();
  while (!pred()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const running = new Set<AbortController>();
afterEach(() => {
  running.forEach((ac) => ac.abort());
  running.clear();
});

/** Start an LmtpSource on a free loopback port; deliver is replaceable per test. */
async function startLmtp(o: Partial<LmtpSourceOptions> = {}) {
  const log = quietLogger();
  const src = new LmtpSource({ listen: '127.0.0.1:0', logger: log.logger, ...o });
  const batches: SourceBatch[] = [];
  const errors: Array<{ source: string; message: string }> = [];
  const ac = new AbortController();
  running.add(ac);
  const ctl = {
    deliver: async (b: SourceBatch): Promise<void> => {
      batches.push(b);
    },
  };
  const done = src.run({ from: null, deliver: (b) => ctl.deliver(b), onError: (e) => errors.push(e), signal: ac.signal });
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    src.whenListening(),
    done.then(() => {
      throw new Error('run() returned before listening');
    }),
    new Promise((_r, rej) => (timer = setTimeout(() => rej(new Error(`not listening after 5 s: ${JSON.stringify(errors)}`)), 5000))),
  ]);
  clearTimeout(timer);
  const port = src.port();
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port, lmtp: true, secure: false, ignoreTLS: true });
  return {
    src,
    port,
    log,
    ctl,
    batches,
    errors,
    messages: (): RawMessage[] => batches.flatMap((b) => b.messages),
    send: (raw: Buffer, to: string[] = ['xen-devel@lists.xenproject.org']) =>
      transport.sendMail({ envelope: { from: 'xen-devel-bounces@lists.xenproject.org', to }, raw }),
    async stop(): Promise<number> {
      const t0 = Date.now();
      ac.abort();
      transport.close();
      let t: NodeJS.Timeout | undefined;
      await Promise.race([done, new Promise((_r, rej) => (t = setTimeout(() => rej(new Error('run() did not return within 5 s')), 5000)))]);
      clearTimeout(t);
      return Date.now() - t0;
    },
  };
}

/** A raw LMTP conversation: write lines/bytes, read whole replies (multi-line replies end with "NNN "). */
async function rawClient(port: number) {
  const sock: Socket = connect({ host: '127.0.0.1', port });
  let buf = '';
  let closed = false;
  const wake = new Set<() => void>();
  sock.on('data', (d) => {
    buf += d.toString('latin1');
    wake.forEach((w) => w());
  });
  sock.on('close', () => {
    closed = true;
    wake.forEach((w) => w());
  });
  sock.on('error', () => undefined);
  const read = async (ms = 5000): Promise<string> => {
    const t0 = Date.now();
    for (;;) {
      const m = /^(?:\d{3}-[^\n]*\n)*\d{3}(?: [^\n]*)?\r?\n/.exec(buf);
      if (m) {
        buf = buf.slice(m[0].length);
        return m[0];
      }
      if (closed) return buf ? buf : '(closed)';
      if (Date.now() - t0 > ms) throw new Error(`no reply within ${ms} ms; got so far: ${JSON.stringify(buf)}`);
      await new Promise<void>((r) => {
        const w = () => {
          wake.delete(w);
          clearTimeout(t);
          r();
        };
        const t = setTimeout(w, 50);
        wake.add(w);
      });
    }
  };
  const write = (s: string | Buffer) => sock.write(typeof s === 'string' ? Buffer.from(s, 'latin1') : s);
  const cmd = async (line: string) => {
    write(`${line}\r\n`);
    return read();
  };
  const greeting = await read();
  return { greeting, read, write, cmd, close: () => sock.destroy(), closed: () => closed };
}

describe('LMTP listen address and queue id', () => {
  test('listen values', () => {
    expect(parseListen('127.0.0.1:2424')).toEqual({ host: '127.0.0.1', port: 2424 });
    expect(parseListen('[::1]:2424')).toEqual({ host: '::1', port: 2424 });
    expect(parseListen(':2424')).toEqual({ host: '127.0.0.1', port: 2424 });
    expect(() => parseListen('2424')).toThrow(/use host:port, e.g. 127.0.0.1:2424/);
    expect(() => parseListen('127.0.0.1:99999')).toThrow(/host:port/);
    expect(new LmtpSource({ listen: '127.0.0.1:2424' }).key).toBe('lmtp:127.0.0.1:2424');
  });

  test('the queue id is the one of the topmost Received header only', () => {
    const m = Buffer.from(
      'Return-Path: <a@b>\r\nReceived: from mx.example.org\r\n\tby lists.example.org (Postfix) with ESMTPS id 4CED431AA9F\r\n\tfor <l@x>; Tue, 24 Mar 2026\r\n' +
        'Received: from x by y with SMTP id OLDER123\r\nSubject: s\r\n\r\nReceived: by body id BODY1\r\n',
    );
    expect(queueIdOf(m)).toBe('4CED431AA9F');
    expect(queueIdOf(Buffer.from('Subject: s\r\n\r\nReceived: by z id BODY1\r\n'))).toBeNull();
  });
});

describe('LmtpSource', () => {
  let mails: Buffer[];
  beforeAll(async () => {
    mails = await fixtureMails();
  });

  test('three mails over LMTP arrive byte for byte, one batch each, position null; 250 per recipient', async () => {
    const s = await startLmtp({ hostname: 'bot.example.org', banner: 'patchvet test' });
    expect(s.src.health()).toMatchObject({ ok: true, detail: expect.stringContaining(`listening on 127.0.0.1:${s.port}`) });
    const infos = [];
    for (const m of mails) infos.push(await s.send(m, ['xen-devel@lists.xenproject.org', 'other@lists.xenproject.org']));
    for (const info of infos) {
      expect(info.accepted).toEqual(['xen-devel@lists.xenproject.org', 'other@lists.xenproject.org']);
      expect(info.rejected).toEqual([]);
      expect(info.response).toMatch(/^250 2\.0\.0 stored/);
    }
    expect(s.batches.map((b) => [b.messages.length, b.position])).toEqual([
      [1, null],
      [1, null],
      [1, null],
    ]);
    s.messages().forEach((m, i) => {
      expect(m.raw.equals(crlf(mails[i]))).toBe(true);
      expect(m.ref.length).toBe(m.raw.length);
      expect(m.ref.source).toMatch(/^lmtp:127\.0\.0\.1:/);
    });
    expect(s.messages().map((m) => messageId(m.raw))).toEqual(mails.map(messageId));
    // the fixture's topmost Received header: "by lfdr with LMTP id 6PEeJdrVwmllmgQAu9opvQ"
    expect(s.messages()[0].ref.source).toBe('lmtp:127.0.0.1:6PEeJdrVwmllmgQAu9opvQ');

    const c = await rawClient(s.port);
    expect(c.greeting).toMatch(/^220 bot\.example\.org LMTP patchvet test/);
    const lhlo = await c.cmd('LHLO mta.example.org');
    expect(lhlo).toMatch(/^250-bot\.example\.org/);
    expect(lhlo).not.toMatch(/AUTH|STARTTLS/);
    expect(lhlo).toMatch(/SIZE/);
    c.close();
    expect(await s.stop()).toBeLessThan(3000);
    expect(s.src.health().ok).toBe(false);
  });

  test('the 250 goes out only after deliver resolved', async () => {
    const s = await startLmtp();
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    let called = false;
    s.ctl.deliver = async (b) => {
      called = true;
      await gate;
      s.batches.push(b);
    };
    let answered = false;
    const sent = s.send(mails[0]).then((info) => {
      answered = true;
      return info;
    });
    await waitFor('deliver to be called', () => called);
    // the store has not confirmed: the MTA must not have its 250 yet (a window, not a sync point)
    await new Promise((r) => setTimeout(r, 200));
    expect(answered).toBe(false);
    open();
    const info = await sent;
    expect(info.accepted).toEqual(['xen-devel@lists.xenproject.org']);
    expect(s.messages()).toHaveLength(1);
    await s.stop();
  });

  test('deliver throws: the client gets 451 for every recipient (the MTA retries), and the retry is stored', async () => {
    const s = await startLmtp();
    s.ctl.deliver = async () => {
      throw new Error('database is locked');
    };
    // nodemailer's LMTP client reports per-recipient failures in `rejected` (an MTA defers them)
    const failed = await s.send(mails[1], ['a@lists.example.org', 'b@lists.example.org']);
    expect(failed.accepted).toEqual([]);
    expect(failed.rejected).toEqual(['a@lists.example.org', 'b@lists.example.org']);
    expect(failed.response).toBe('451 4.3.0 could not store the message now, try again later');
    expect(s.src.health()).toMatchObject({ ok: true, detail: expect.stringContaining('storing a message failed: database is locked') });
    expect(s.log.lines.join('\n')).toMatch(/answered 451 so the MTA retries/);

    // raw view: one 451 per recipient
    const c = await rawClient(s.port);
    await c.cmd('LHLO mta');
    expect(await c.cmd('MAIL FROM:<bounces@lists.example.org>')).toMatch(/^250/);
    expect(await c.cmd('RCPT TO:<a@lists.example.org>')).toMatch(/^250/);
    expect(await c.cmd('RCPT TO:<b@lists.example.org>')).toMatch(/^250/);
    expect(await c.cmd('DATA')).toMatch(/^354/);
    c.write('Subject: x\r\nMessage-ID: <x@y>\r\n\r\nbody\r\n.\r\n');
    expect(await c.read()).toMatch(/^451 /);
    expect(await c.read()).toMatch(/^451 /);
    c.close();

    s.ctl.deliver = async (b) => {
      s.batches.push(b);
    };
    const info = await s.send(mails[1]);
    expect(info.accepted).toHaveLength(1);
    expect(s.messages().map((m) => messageId(m.raw))).toEqual([messageId(mails[1])]);
    expect(s.src.health().detail).not.toMatch(/failed/);
    await s.stop();
  });

  test('oversized: 552, whether the client declares SIZE or not; nothing delivered', async () => {
    const s = await startLmtp({ maxMessageBytes: 10_000 });
    const big = Buffer.from(`Subject: big\r\nMessage-ID: <big@x>\r\n\r\n${('z'.repeat(70) + '\r\n').repeat(1000)}`);
    const refused = await s.send(big);
    expect(refused.accepted).toEqual([]);
    expect(refused.response).toMatch(/^552 /);

    // a client that declares SIZE is refused before it sends anything
    const c0 = await rawClient(s.port);
    await c0.cmd('LHLO mta');
    expect(await c0.cmd(`MAIL FROM:<b@x> SIZE=${big.length}`)).toMatch(/^552 /);
    c0.close();

    // a client that does not declare SIZE: the limit holds at DATA
    const c = await rawClient(s.port);
    await c.cmd('LHLO mta');
    expect(await c.cmd('MAIL FROM:<b@x>')).toMatch(/^250/);
    expect(await c.cmd('RCPT TO:<l@x>')).toMatch(/^250/);
    expect(await c.cmd('DATA')).toMatch(/^354/);
    c.write(big);
    c.write('.\r\n');
    expect(await c.read()).toMatch(/^552 /);
    // the connection goes on
    expect(await c.cmd('NOOP')).toMatch(/^250/);
    c.close();
    expect(s.batches).toEqual([]);
    // a message of the right size still goes through
    expect((await s.send(Buffer.from('Subject: small\r\nMessage-ID: <s@x>\r\n\r\nok\r\n'))).accepted).toHaveLength(1);
    expect(s.messages().map((m) => messageId(m.raw))).toEqual(['<s@x>']);
    await s.stop();
  });

  test('only configured recipients are accepted when addresses are given', async () => {
    const s = await startLmtp({ addresses: ['Xen-Devel@lists.xenproject.org'] });
    const info = await s.send(mails[0], ['xen-devel@lists.xenproject.org', 'someone@example.org']);
    expect(info.accepted).toEqual(['xen-devel@lists.xenproject.org']);
    expect(info.rejected).toEqual(['someone@example.org']);
    expect(s.messages()).toHaveLength(1);
    const err = await s.send(mails[0], ['someone@example.org']).then(
      () => null,
      (e: Error & { responseCode?: number }) => e,
    );
    // every recipient refused at RCPT: nodemailer fails the whole send
    expect(err?.responseCode).toBe(550);
    expect(String(err?.message)).toMatch(/not a list this bot follows/);
    expect(s.messages()).toHaveLength(1);
    await s.stop();
  });

  test('garbage, NUL bytes and smuggling attempts do not crash the server or forge messages', async () => {
    const s = await startLmtp();
    const c = await rawClient(s.port);
    expect(await c.cmd('\x00\x01\xff garbage')).toMatch(/^5\d\d /);
    expect(await c.cmd('MAIL FROM:<a@b>')).toMatch(/^503 /); // LHLO first
    await c.cmd('LHLO mta');
    expect(await c.cmd('AUTH PLAIN AGFAYg==')).toMatch(/^5\d\d /);
    expect(await c.cmd('STARTTLS')).toMatch(/^5\d\d /);
    expect(await c.cmd('MAIL FROM:<a@b>')).toMatch(/^250/);
    expect(await c.cmd('RCPT TO:<l@x>')).toMatch(/^250/);
    expect(await c.cmd('DATA')).toMatch(/^354/);
    // binary junk, a very long line, and an attempt to end DATA with bare-LF dots and start a second
    // (forged) transaction inside the first message
    const body = Buffer.concat([
      Buffer.from('Subject: junk\r\nX-Injected: a\nBcc: victim@example.org\r\n\r\n', 'latin1'),
      Buffer.from([0, 1, 2, 0xff, 0xfe, 13, 10]),
      Buffer.from('y'.repeat(20_000) + '\r\n'),
      Buffer.from('\n.\nMAIL FROM:<forged@x>\nRCPT TO:<l@x>\nDATA\nSubject: forged\n\n.\n', 'latin1'),
      Buffer.from('..leading dot\r\n', 'latin1'),
    ]);
    c.write(body);
    c.write('.\r\n');
    expect(await c.read()).toMatch(/^250 /);
    expect(await c.cmd('QUIT')).toMatch(/^221/);
    await waitFor('the junk message', () => s.messages().length === 1);
    const raw = s.messages()[0].raw;
    // one message, exactly what was sent (dot-unstuffed: "..leading" -> ".leading")
    const expected = Buffer.concat([body.subarray(0, body.length - '..leading dot\r\n'.length), Buffer.from('.leading dot\r\n')]);
    expect(raw.equals(expected)).toBe(true);

    // a client that disconnects in the middle of DATA
    const d = await rawClient(s.port);
    await d.cmd('LHLO mta');
    await d.cmd('MAIL FROM:<a@b>');
    await d.cmd('RCPT TO:<l@x>');
    await d.cmd('DATA');
    d.write('Subject: cut\r\n\r\nhalf a mess');
    d.close();

    // the server still serves
    const info = await s.send(mails[0]);
    expect(info.accepted).toHaveLength(1);
    expect(s.messages().map((m) => messageId(m.raw))).toEqual(['?', messageId(mails[0])]);
    expect(s.src.health().ok).toBe(true);
    await s.stop();
  });

  test('a port in use: reported with what to do, health not ok, no crash; abort still stops it', async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const port = (blocker.address() as { port: number }).port;
    try {
      const src = new LmtpSource({ listen: `127.0.0.1:${port}`, logger: quietLogger().logger, retry: { initialMs: 20, maxMs: 100 } });
      const errors: Array<{ source: string; message: string }> = [];
      const ac = new AbortController();
      running.add(ac);
      const done = src.run({ from: null, deliver: async () => undefined, onError: (e) => errors.push(e), signal: ac.signal });
      await waitFor('the error', () => errors.length > 0);
      await new Promise((r) => setTimeout(r, 150)); // several retries happen in this window
      expect(errors).toEqual([
        {
          source: `lmtp:127.0.0.1:${port}`,
          message: `cannot listen for LMTP on 127.0.0.1:${port}: the address is in use (another patchvet, or another LMTP server?): stop it or change \`listen\``,
        },
      ]);
      expect(src.health()).toMatchObject({ ok: false, detail: expect.stringContaining('address is in use') });
      // the port frees up: the source gets it
      await new Promise<void>((r) => blocker.close(() => r()));
      await waitFor('the source to listen', () => src.health().ok);
      ac.abort();
      await done;
    } finally {
      blocker.close();
    }
  });
});
