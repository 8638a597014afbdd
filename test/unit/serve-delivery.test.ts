// serve's delivery of queued replies against a real SQLite store and a real SMTP receiver:
// atomic outbox files, retries with backoff on 4xx and network errors, giving up after N
// permanent (5xx) failures, and the one window where a duplicate is conceivable (a lease that
// expired mid-send): the reply is looked for on the list first, and re-sent with the same
// Message-ID only when it is not there.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { recordFromRaw } from '../../src/mail/record.js';
import type { MessageRecord } from '../../src/model.js';
import { buildConfig, type EmailDeliveryConfig, type ListConfig } from '../../src/serve/config.js';
import { Delivery, outboxFileName, toCrlf, writeFileAtomic } from '../../src/serve/outbox.js';
import { openStore, type ReplyInput, type Store } from '../../src/store/store.js';
import { header, mboxMessages, startSmtpReceiver, XEN_THREAD, type SmtpReceiver } from '../helpers/serve.js';

let dir: string;
let rx: SmtpReceiver;
let store: Store;
let n = 0;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'patchvet-delivery-'));
  rx = await startSmtpReceiver();
});
afterAll(async () => {
  await rx.close();
  rmSync(dir, { recursive: true, force: true });
});
beforeEach(async () => {
  rx.messages.length = 0;
  rx.respond = null;
  store = await openStore(`sqlite:${join(dir, `d-${++n}.db`)}`);
});
afterEach(async () => {
  await store.close();
});

function email(over: Record<string, unknown> = {}, port = rx.port): EmailDeliveryConfig {
  return buildConfig(
    {
      delivery: {
        email: {
          mode: 'smtp',
          smtp: `smtp://127.0.0.1:${port}`,
          from: 'patchvet <bot@patchvet.example>',
          outbox: join(dir, `outbox-${n}`),
          retry: { initialDelay: '100ms', maxDelay: '400ms', maxPermanentFailures: 2 },
          lease: '1s',
          confirmWait: '300ms',
          ...over,
        },
      },
    },
    { env: {} },
  ).delivery.email;
}

function reply(key: string, channel = 'smtp'): ReplyInput {
  const messageId = `<patchvet.${key}@patchvet.example>`;
  return {
    key,
    messageId,
    inReplyTo: '<patch@example.org>',
    to: ['author@example.org'],
    cc: ['list@example.org'],
    eml: Buffer.from(
      `From: patchvet <bot@patchvet.example>\nTo: author@example.org\nCc: list@example.org\nSubject: Re: [PATCH] x\n` +
        `Message-ID: ${messageId}\nIn-Reply-To: <patch@example.org>\nContent-Type: text/plain; charset=utf-8\n\n` +
        `> +        vcpu_reset_fpu(v);\n\nA point, with \u00e9t\u00e9.\n.\n..leading dots survive\n`,
      'utf8',
    ),
    channel,
  };
}

function memoryLog() {
  const lines: string[] = [];
  const logger = pino(
    { level: 'info' },
    new Writable({
      write(c, _e, cb) {
        lines.push(String(c));
        cb();
      },
    }),
  );
  return { logger, messages: () => lines.map((l) => JSON.parse(l).msg as string) };
}

function delivery(cfg: EmailDeliveryConfig, lists: ListConfig[] = [], log = memoryLog()) {
  return { d: new Delivery({ store, email: cfg, lists, worker: 'test-worker', log: log.logger }), log };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('outbox files: named from the Message-ID, written atomically, no temporary files left', async () => {
  expect(outboxFileName('<patchvet.abc123@example.org>')).toBe('patchvet.abc123@example.org.eml');
  expect(outboxFileName('<../../etc/passwd>')).toBe('__.._etc_passwd.eml');
  expect(outboxFileName('<a/b\r\nc>')).toBe('a_b__c.eml');
  const out = join(dir, 'atomic');
  const p = await writeFileAtomic(out, 'x.eml', Buffer.from('one'));
  await writeFileAtomic(out, 'x.eml', Buffer.from('two'));
  expect(readFileSync(p, 'utf8')).toBe('two');
  expect(readdirSync(out)).toEqual(['x.eml']);
});

test('preview and outbox channels write the stored eml as it is', async () => {
  const cfg = email();
  await store.enqueueReply(reply('p1', 'preview'));
  await store.enqueueReply(reply('o1', 'outbox'));
  const { d } = delivery(cfg);
  await d.drain();
  expect(readdirSync(cfg.outbox).sort()).toEqual(['patchvet.o1@patchvet.example.eml', 'patchvet.p1@patchvet.example.eml']);
  expect(readFileSync(join(cfg.outbox, 'patchvet.p1@patchvet.example.eml'))).toEqual(reply('p1').eml);
  expect((await store.getReply('p1'))!.sentInfo!.response).toMatch(/^written to /);
  expect(rx.messages).toHaveLength(0);
});

test('SMTP: the stored eml goes out byte for byte (CRLF), to the envelope recipients', async () => {
  const cfg = email();
  await store.enqueueReply(reply('s1'));
  const { d } = delivery(cfg);
  await d.drain();
  d.close();
  expect(rx.messages).toHaveLength(1);
  expect(rx.messages[0]).toMatchObject({ from: 'bot@patchvet.example', to: ['author@example.org', 'list@example.org'] });
  expect(rx.messages[0]!.raw).toBe(toCrlf(reply('s1').eml).toString('utf8'));
  const item = await store.getReply('s1');
  expect(item).toMatchObject({ state: 'sent', attempts: 1 });
  expect(item!.sentInfo!.response).toMatch(/^250 /);
});

test('4xx: retried with backoff, then sent once', async () => {
  const cfg = email();
  rx.respond = (k) => (k <= 2 ? [451, 'Try again later'] : null);
  await store.enqueueReply(reply('t1'));
  const { d } = delivery(cfg);
  const t0 = Date.now();
  await d.round();
  let item = (await store.getReply('t1'))!;
  expect(item).toMatchObject({ state: 'queued' });
  expect(item.lastError).toMatch(/temporary failure.*451/);
  const first = item.nextAttemptAt!.getTime() - t0;
  expect(first).toBeGreaterThanOrEqual(90);
  expect(first).toBeLessThan(1000);
  // Not due yet: nothing is claimed.
  expect((await d.round()).claimed).toBe(0);
  await sleep(first + 20);
  const t1 = Date.now();
  await d.round();
  item = (await store.getReply('t1'))!;
  expect(item.state).toBe('queued');
  // The second delay doubles.
  expect(item.nextAttemptAt!.getTime() - t1).toBeGreaterThanOrEqual(190);
  await sleep(item.nextAttemptAt!.getTime() - Date.now() + 20);
  await d.round();
  d.close();
  expect((await store.getReply('t1'))!.state).toBe('sent');
  expect(rx.messages).toHaveLength(1);
});

test('5xx: given up after maxPermanentFailures, logged', async () => {
  const cfg = email();
  rx.respond = () => [550, 'Mailbox unavailable'];
  await store.enqueueReply(reply('f1'));
  const { d, log } = delivery(cfg);
  await d.round();
  expect((await store.getReply('f1'))!.state).toBe('queued');
  await sleep(500);
  await d.round();
  d.close();
  const item = (await store.getReply('f1'))!;
  expect(item.state).toBe('failed');
  expect(item.lastError).toMatch(/permanent failure 2x: .*550/);
  expect(log.messages()).toContain('delivery: permanent SMTP failure; reply given up');
  expect(rx.messages).toHaveLength(0);
});

test('network errors are temporary: nothing is lost while the server is down', async () => {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r())); // nothing listens there now
  const cfg = email({}, port);
  await store.enqueueReply(reply('n1'));
  const { d } = delivery(cfg);
  await d.round();
  d.close();
  const item = (await store.getReply('n1'))!;
  expect(item.state).toBe('queued');
  expect(item.lastError).toMatch(/temporary failure: ECONNECTION|ECONNREFUSED/);
});

describe('a lease that expired while sending (crash between the SMTP 250 and markSent)', () => {
  async function crashedSend(key: string): Promise<void> {
    await store.enqueueReply(reply(key));
    // A worker claims it, hands it to SMTP, and dies before markSent.
    const [item] = await store.claimReplies(1, 0.2, 'dead-worker');
    expect(item!.key).toBe(key);
    await sleep(300);
  }

  test('found on the list: marked sent, not sent again', async () => {
    await crashedSend('c1');
    // Our reply came back through the list.
    const rec = await recordFromRaw({ raw: reply('c1').eml, ref: { source: 'list:1', file: 'list', offset: 0, length: 1 } });
    await store.putMessage(rec, reply('c1').eml, { key: 'list', position: '1' });
    const { d, log } = delivery(email());
    await d.drain();
    expect(rx.messages).toHaveLength(0);
    expect((await store.getReply('c1'))!).toMatchObject({ state: 'sent', sentInfo: { response: 'seen on the list: sent before an interruption' } });
    expect(log.messages()).toContain('delivery: reply found on the list; not sending it again');
  });

  test('not on the list: waits confirmWait once, then re-sends with the SAME Message-ID, logged', async () => {
    await crashedSend('c2');
    const { d, log } = delivery(email());
    await d.round();
    expect(rx.messages).toHaveLength(0);
    expect((await store.getReply('c2'))!.lastError).toMatch(/^possibly sent before a crash/);
    await sleep(350);
    await d.round();
    d.close();
    expect(rx.messages).toHaveLength(1);
    expect(header(rx.messages[0]!.raw, 'Message-ID')).toBe('<patchvet.c2@patchvet.example>');
    expect(log.messages()).toContain(
      'delivery: re-sending a reply that may already have gone out (same Message-ID: the list and archives drop a second copy)',
    );
  });
});

test('embargo and rate limit use the patch as stored; held replies keep their place', async () => {
  const patch: MessageRecord = await recordFromRaw(mboxMessages(XEN_THREAD)[0]!);
  await store.putMessage(patch, Buffer.from('x'), { key: 'k', position: '1' });
  const list: ListConfig = {
    address: 'xen-devel@lists.xenproject.org',
    listId: null,
    rules: null,
    reply: 'list',
    mute: [],
    embargoHours: 0,
    rateLimit: { perHour: 1 },
  };
  const r1 = { ...reply('r1'), inReplyTo: patch.messageId };
  const r2 = { ...reply('r2'), inReplyTo: patch.messageId };
  await store.enqueueReply(r1);
  await store.enqueueReply(r2);
  const { d } = delivery(email(), [list]);
  await d.drain();
  d.close();
  expect(rx.messages).toHaveLength(1);
  const held = (await store.getReply('r2'))!;
  expect(held.state).toBe('queued');
  expect(held.lastError).toMatch(/^held: rate limit: 1 replies per hour to xen-devel@lists\.xenproject\.org/);
  expect(held.nextAttemptAt!.getTime() - Date.now()).toBeGreaterThan(3590_000);
  // Previews are never held: reply: off shows what would be said at once.
  await store.enqueueReply({ ...reply('r3', 'preview'), inReplyTo: patch.messageId });
  await delivery(email(), [{ ...list, embargoHours: 1e6 }]).d.drain();
  expect((await store.getReply('r3'))!.state).toBe('sent');
});
