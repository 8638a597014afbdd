// The durable store, against both backends with real connections: a SQLite file in a temp dir,
// and a fresh PostgreSQL database per test (created and dropped here). The PostgreSQL half
// fails (it does not skip) when the server is unreachable, and says how to start it.
//
// Crash safety is tested with real `kill -9`: a child process (the store code transpiled by swc)
// is killed inside a transaction, or between claiming a reply and marking it sent.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import pg from 'pg';
import { transformFileSync } from '@swc/core';
import { recordFromRaw } from '../../src/mail/record.js';
import type { Finding, MessageRecord, Series } from '../../src/model.js';
import { splitMboxBuffer } from '../../src/sources/mbox.js';
import { MIGRATIONS, migratePostgres, migrateSqlite } from '../../src/store/migrations.js';
import { openStore, type ReplyInput, type Store } from '../../src/store/store.js';
import { sqliteHarness as sqliteAt, pgHarness as pgAt, type StoreHarness } from '../helpers/stores.js';

const FIXTURES = join(process.cwd(), '../shared/fixtures');
const REPO = resolve(process.cwd());

// ---------------------------------------------------------------- fixtures

interface Mail {
  rec: MessageRecord;
  raw: Buffer;
}

const mboxCache = new Map<string, Promise<Mail[]>>();
function mbox(name: string): Promise<Mail[]> {
  let p = mboxCache.get(name);
  if (!p) {
    const buf = readFileSync(join(FIXTURES, name));
    p = Promise.all(splitMboxBuffer(buf, name).map(async (m) => ({ rec: await recordFromRaw(m), raw: m.raw })));
    mboxCache.set(name, p);
  }
  return p;
}

function findingOf(m: MessageRecord, rule: string, code: string, line: number): Finding {
  const file = m.files[0] ?? null;
  return {
    rule,
    severity: 'warning',
    title: `${rule} title`,
    message: `${rule} says something about ${code}`,
    messageId: m.messageId,
    subject: m.subject,
    series: m.parsedSubject.series
      ? { version: m.parsedSubject.series.version, index: m.parsedSubject.series.index, total: m.parsedSubject.series.total }
      : null,
    file,
    line,
    side: 'new',
    function: 'arch_vcpu_create',
    code,
    fingerprint: `${rule.replace(/\W/g, '')}-${code.length}-${line}`,
    source: 'rule',
  };
}

function reply(key: string, inReplyTo: string, n = 0): ReplyInput {
  const messageId = `<patchvet.${key.replace(/[^\w.-]/g, '_')}@bot.example.org>`;
  const eml = Buffer.from(
    `From: patchvet <bot@example.org>\r\nTo: xen-devel@lists.xenproject.org\r\nMessage-ID: ${messageId}\r\n` +
      `In-Reply-To: ${inReplyTo}\r\nSubject: Re: [PATCH v2 1/9] x86/domain: Ensure a vCPU's FPU is reset early\r\n\r\n` +
      `Finding ${n}: \u00e9t\u00e9 \x00 bytes kept\r\n`,
    'utf8',
  );
  return {
    key,
    messageId,
    inReplyTo,
    to: ['xen-devel@lists.xenproject.org'],
    cc: ['ross.lagerwall@citrix.com'],
    eml,
    channel: 'smtp',
  };
}

// ---------------------------------------------------------------- backends

type Harness = StoreHarness;
const sqliteHarness = () => sqliteAt('patchvet-store-test-');
const pgHarness = () => pgAt('patchvet_test');

// ---------------------------------------------------------------- kill -9 support

/**
 * The store compiled to plain ESM for child processes (jest transpiles in memory only). Written
 * under node_modules/.cache so that the children resolve better-sqlite3 and pg from this repo.
 */
function buildChild(): { dir: string; script: string } {
  const dir = join(REPO, 'node_modules', '.cache', `patchvet-store-test-${process.pid}-${randomBytes(3).toString('hex')}`);
  mkdirSync(dir, { recursive: true });
  for (const f of ['store.ts', 'sql.ts', 'sqlite.ts', 'postgres.ts', 'migrations.ts']) {
    const out = transformFileSync(join(REPO, 'src/store', f), {
      jsc: { target: 'es2022', parser: { syntax: 'typescript' } },
      module: { type: 'es6' },
      sourceMaps: false,
    });
    writeFileSync(join(dir, f.replace(/\.ts$/, '.js')), out.code);
  }
  const script = join(dir, 'child.mjs');
  writeFileSync(
    script,
    `import { readFileSync } from 'node:fs';
import { openStore } from './store.js';
const [url, mode, dataFile] = process.argv.slice(2);
const data = JSON.parse(readFileSync(dataFile, 'utf8'));
setInterval(() => {}, 1000); // stay alive until killed
const hang = () => new Promise(() => {});
const say = (s) => process.stdout.write(s + '\\n');
const mails = data.mails.map((m) => ({ rec: m.rec, raw: Buffer.from(m.raw, 'base64') }));
const reply = data.reply && { ...data.reply, eml: Buffer.from(data.reply.eml, 'base64') };
const store = await openStore(url);
const intake = (tx) => (async () => {
  for (const [i, m] of mails.entries()) await tx.putMessage(m.rec, m.raw, { key: 'inbox', position: String(i + 1) });
  await tx.setPosition('inbox', String(mails.length));
})();
const review = async (tx) => {
  if (!(await tx.markProcessed(mails[0].rec.messageId))) throw new Error('already processed');
  await tx.enqueueReply(reply);
};
switch (mode) {
  case 'intake-hang':
    await store.transaction(async (tx) => { await intake(tx); say('ready'); await hang(); });
    break;
  case 'intake-commit':
    await store.transaction(intake);
    say('ready');
    break;
  case 'review-hang':
    await store.transaction(async (tx) => { await review(tx); say('ready'); await hang(); });
    break;
  case 'review-commit':
    await store.transaction(review);
    say('ready');
    break;
  case 'send-hang': {
    // Claimed, handed to SMTP, accepted... and killed before markSent.
    const items = await store.claimReplies(1, data.leaseSeconds, 'child-' + process.pid);
    say('ready ' + items.map((i) => i.key).join(','));
    break;
  }
  case 'claim-loop': {
    const mine = [];
    for (;;) {
      const items = await store.claimReplies(2, 60, 'child-' + process.pid);
      if (!items.length) break;
      for (const it of items) { mine.push(it.key); await store.markSent(it.key, { response: '250 2.0.0 Ok' }); }
    }
    say('ready ' + JSON.stringify(mine));
    await store.close();
    process.exit(0);
  }
  default:
    throw new Error('unknown mode ' + mode);
}
await hang();
`,
  );
  return { dir, script };
}

interface ChildData {
  mails: Mail[];
  reply?: ReplyInput;
  leaseSeconds?: number;
}

function writeChildData(dir: string, data: ChildData): string {
  const file = join(dir, `data-${randomBytes(4).toString('hex')}.json`);
  writeFileSync(
    file,
    JSON.stringify({
      mails: data.mails.map((m) => ({ rec: m.rec, raw: m.raw.toString('base64') })),
      reply: data.reply && { ...data.reply, eml: data.reply.eml.toString('base64') },
      leaseSeconds: data.leaseSeconds,
    }),
  );
  return file;
}

/** Run the child until it says "ready ...", then (unless it exits by itself) kill -9 it. Returns what it said. */
function runChild(script: string, url: string, mode: string, dataFile: string, kill = true): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const env = { ...process.env };
    delete env.NODE_OPTIONS;
    const child = spawn(process.execPath, [script, url, mode, dataFile], { stdio: ['ignore', 'pipe', 'pipe'], env });
    let out = '';
    let err = '';
    let said: string | null = null;
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /^ready(.*)$/m.exec(out);
      if (m && said === null) {
        said = m[1]!.trim();
        if (kill) child.kill('SIGKILL');
      }
    });
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('exit', (code, signal) => {
      if (said === null) reject(new Error(`child (${mode}) exited ${code ?? signal} before ready: ${err}`));
      else if (kill && signal !== 'SIGKILL') reject(new Error(`child (${mode}) was not killed (${code}): ${err}`));
      else resolvePromise(said);
    });
  });
}

// ---------------------------------------------------------------- the tests

const harnesses: Array<[string, Harness]> = [
  ['sqlite', sqliteHarness()],
  ['postgres', pgHarness()],
];

describe.each(harnesses)('store on %s', (_name, h) => {
  const open: Store[] = [];
  const openS = async (url: string): Promise<Store> => {
    const s = await openStore(url);
    open.push(s);
    return s;
  };
  const fresh = async (): Promise<{ url: string; s: Store }> => {
    const url = await h.freshUrl();
    return { url, s: await openS(url) };
  };

  beforeAll(() => h.setup());
  afterEach(async () => {
    while (open.length) await open.pop()!.close();
  });
  afterAll(() => h.teardown());

  test('the backend is the one asked for', async () => {
    const { s } = await fresh();
    expect(s.backend).toBe(h.name);
  });

  // -------------------------------------------------------------- messages

  test('putMessage is idempotent by Message-ID: a second source only adds a sighting', async () => {
    const { s } = await fresh();
    const series = await mbox('xen-eager-fpu-v2.mbox'); // 15 mails
    const single = await mbox('xen-fpu-reset-v2-1of9.mbox'); // 3 of them again, from another export
    expect(series).toHaveLength(15);
    for (const [i, m] of series.entries()) {
      expect(await s.putMessage(m.rec, m.raw, { key: 'lore:xen-devel', position: `e0:${i + 1}` })).toEqual({
        inserted: true,
      });
    }
    for (const [i, m] of single.entries()) {
      expect(await s.putMessage(m.rec, m.raw, { key: 'mbox:reference', position: `${i + 1}` })).toEqual({
        inserted: false,
      });
    }
    // The same source delivering again (a re-read after a crash) changes nothing either.
    expect(await s.putMessage(series[0]!.rec, series[0]!.raw, { key: 'lore:xen-devel', position: 'e0:1' })).toEqual({
      inserted: false,
    });

    const patch1 = single[0]!.rec.messageId;
    expect(patch1).toBe('<20260324181937.2465574-2-ross.lagerwall@citrix.com>');
    expect(await s.sightings(patch1)).toEqual([
      { key: 'lore:xen-devel', position: 'e0:2' },
      { key: 'mbox:reference', position: '1' },
    ]);
    expect(await s.hasMessage(patch1)).toBe(true);
    expect(await s.hasMessage('<nobody@example.org>')).toBe(false);
    expect(await s.getMessage('<nobody@example.org>')).toBeNull();
    expect(await s.getRaw('<nobody@example.org>')).toBeNull();

    // Record and bytes come back as stored (the first copy's).
    const stored = await s.getMessage(patch1);
    expect(stored).toEqual(JSON.parse(JSON.stringify(series[1]!.rec)));
    expect(stored!.subject).toBe("[PATCH v2 1/9] x86/domain: Ensure a vCPU's FPU is reset early");
    expect((await s.getRaw(patch1))!.equals(series[1]!.raw)).toBe(true);

    // Pending once each, in arrival order; processing is once.
    const pending = await s.pendingMessages(100);
    expect(pending.map((r) => r.messageId)).toEqual(series.map((m) => m.rec.messageId));
    expect(await s.pendingMessages(2)).toHaveLength(2);
    expect(await s.markProcessed(patch1)).toBe(true);
    expect(await s.markProcessed(patch1)).toBe(false);
    expect(await s.markProcessed('<nobody@example.org>')).toBe(false);
    await s.putMessage(single[0]!.rec, single[0]!.raw, { key: 'imap:INBOX', position: '77:12' });
    expect((await s.pendingMessages(100)).map((r) => r.messageId)).not.toContain(patch1);
    expect(await s.pendingMessages(100)).toHaveLength(14);
  });

  test('a source position moves with its messages or not at all', async () => {
    const { s } = await fresh();
    const mails = await mbox('xen-ftw-alloc.mbox');
    const intake = (upTo: number, failAfter: boolean) =>
      s.transaction(async (tx) => {
        for (const [i, m] of mails.slice(0, upTo).entries()) {
          await tx.putMessage(m.rec, m.raw, { key: 'public-inbox:xen', position: `e1:${i + 1}` });
        }
        await tx.setPosition('public-inbox:xen', `e1:${upTo}`);
        if (failAfter) throw new Error('network went away');
      });

    await expect(intake(3, true)).rejects.toThrow('network went away');
    expect(await s.getPosition('public-inbox:xen')).toBeNull();
    for (const m of mails) expect(await s.hasMessage(m.rec.messageId)).toBe(false);
    expect(await s.pendingMessages(10)).toEqual([]);

    await intake(3, false);
    expect(await s.getPosition('public-inbox:xen')).toBe('e1:3');
    expect((await s.pendingMessages(10)).map((r) => r.messageId)).toEqual(mails.slice(0, 3).map((m) => m.rec.messageId));

    // A database error half-way (a finding for a message never stored: foreign key) undoes the
    // messages and the position written before it in the same transaction.
    await expect(
      s.transaction(async (tx) => {
        await tx.putMessage(mails[3]!.rec, mails[3]!.raw, { key: 'public-inbox:xen', position: 'e1:4' });
        await tx.setPosition('public-inbox:xen', 'e1:4');
        await tx.putFindings('<never-stored@example.org>', [findingOf(mails[3]!.rec, 'common/x', 'x;', 1)]);
      }),
    ).rejects.toThrow();
    expect(await s.getPosition('public-inbox:xen')).toBe('e1:3');
    expect(await s.hasMessage(mails[3]!.rec.messageId)).toBe(false);

    // Catching the error inside the callback does not let the rest commit.
    await expect(
      s.transaction(async (tx) => {
        await tx.putMessage(mails[4]!.rec, mails[4]!.raw, { key: 'public-inbox:xen', position: 'e1:5' });
        await tx.putFindings('<never-stored@example.org>', []).catch(() => undefined); // no error: empty
        await tx
          .putFindings('<never-stored@example.org>', [findingOf(mails[4]!.rec, 'common/x', 'x;', 1)])
          .catch(() => undefined);
        await tx.setPosition('public-inbox:xen', 'e1:5');
      }),
    ).rejects.toThrow(/rolled back|aborted/);
    expect(await s.getPosition('public-inbox:xen')).toBe('e1:3');
    expect(await s.hasMessage(mails[4]!.rec.messageId)).toBe(false);
  });

  test('nested transactions and root-store calls inside a callback join the outer transaction', async () => {
    const { s } = await fresh();
    const [a, b] = await mbox('xen-ftw-alloc.mbox');
    await expect(
      s.transaction(async (tx) => {
        await tx.transaction(async (inner) => {
          await inner.putMessage(a!.rec, a!.raw, { key: 'k', position: '1' });
        });
        await s.putMessage(b!.rec, b!.raw, { key: 'k', position: '2' }); // the root store, inside
        await s.setPosition('k', '2');
        expect(await tx.hasMessage(b!.rec.messageId)).toBe(true);
        throw new Error('abort');
      }),
    ).rejects.toThrow('abort');
    expect(await s.hasMessage(a!.rec.messageId)).toBe(false);
    expect(await s.hasMessage(b!.rec.messageId)).toBe(false);
    expect(await s.getPosition('k')).toBeNull();

    let leaked: Store | null = null;
    const r = await s.transaction(async (tx) => {
      leaked = tx;
      await tx.transaction((inner) => inner.putMessage(a!.rec, a!.raw, { key: 'k', position: '1' }));
      await tx.setPosition('k', '1');
      return 'done';
    });
    expect(r).toBe('done');
    expect(await s.hasMessage(a!.rec.messageId)).toBe(true);
    expect(await s.getPosition('k')).toBe('1');
    await expect(leaked!.getPosition('k')).rejects.toThrow(/after its transaction ended/);
  });

  // -------------------------------------------------------------- threads and series

  test('messagesInThread rebuilds a thread from stored references, from any member or a missing root', async () => {
    const { s } = await fresh();
    const eager = await mbox('xen-eager-fpu-v2.mbox');
    const ftw = await mbox('xen-ftw-alloc.mbox');
    for (const m of [...ftw, ...eager]) await s.putMessage(m.rec, m.raw, { key: 'k', position: '0' });

    const cover = eager.find((m) => m.rec.kind === 'cover')!.rec;
    const eagerIds = eager.map((m) => m.rec.messageId).sort();
    const lastReply = eager[eager.length - 1]!.rec.messageId;
    for (const start of [cover.messageId, lastReply, '<20260324181937.2465574-5-ross.lagerwall@citrix.com>']) {
      const t = await s.messagesInThread(start);
      expect(t.map((r) => r.messageId).sort()).toEqual(eagerIds);
    }
    // Ordered by date: the cover letter (sent first) leads.
    expect((await s.messagesInThread(lastReply))[0]!.messageId).toBe(cover.messageId);

    // The other thread stays apart.
    const ftwThread = await s.messagesInThread(ftw[0]!.rec.messageId);
    expect(ftwThread.map((r) => r.messageId).sort()).toEqual(ftw.map((m) => m.rec.messageId).sort());

    expect(await s.messagesInThread('<unknown@example.org>')).toEqual([]);
  });

  test('without the cover letter, the thread is found through its id (a ghost root)', async () => {
    const { s } = await fresh();
    const single = await mbox('xen-fpu-reset-v2-1of9.mbox');
    for (const m of single) await s.putMessage(m.rec, m.raw, { key: 'k', position: '0' });
    const ghost = single[0]!.rec.inReplyTo!;
    expect(ghost).toBe('<20260324181937.2465574-1-ross.lagerwall@citrix.com>');
    expect(await s.hasMessage(ghost)).toBe(false);
    const t = await s.messagesInThread(ghost);
    expect(t.map((r) => r.messageId)).toEqual(single.map((m) => m.rec.messageId));
  });

  test('series are stored and replaced by id', async () => {
    const { s } = await fresh();
    const series: Series = {
      id: '<20260324181937.2465574-1-ross.lagerwall@citrix.com>',
      version: 2,
      total: 9,
      subject: 'x86: Always use eager-fpu',
      author: { name: 'Ross Lagerwall', address: 'ross.lagerwall@citrix.com' },
      cover: '<20260324181937.2465574-1-ross.lagerwall@citrix.com>',
      patches: Array.from({ length: 9 }, (_, i) => (i === 4 ? null : `<20260324181937.2465574-${i + 2}-ross.lagerwall@citrix.com>`)),
      extra: [],
      complete: false,
      missing: [5],
      rfc: false,
      previousVersion: null,
      nextVersion: null,
    };
    await s.putSeries(series);
    expect(await s.getSeries(series.id)).toEqual(series);
    const completed = { ...series, patches: series.patches.map((p, i) => p ?? `<x-${i}@example.org>`), complete: true, missing: [] };
    await s.putSeries(completed);
    expect(await s.getSeries(series.id)).toEqual(completed);
    expect(await s.getSeries('<none@example.org>')).toBeNull();
  });

  // -------------------------------------------------------------- findings

  test('findings are replaced per message; posted fingerprints are remembered per scope', async () => {
    const { s } = await fresh();
    const [patch] = await mbox('xen-fpu-reset-v2-1of9.mbox');
    const id = patch!.rec.messageId;
    await s.putMessage(patch!.rec, patch!.raw, { key: 'k', position: '1' });
    const f1 = findingOf(patch!.rec, 'xen/fpu-init-order', 'vcpu_reset_fpu(v);', 525);
    const f2 = findingOf(patch!.rec, 'xen/idle-vcpu-path', 'if ( is_idle_vcpu(v) )', 530);
    await s.putFindings(id, [f1, f2]);
    expect(await s.findingsFor(id)).toEqual([f1, f2]);
    await s.putFindings(id, [f2]); // re-review: replaces, not appends
    expect(await s.findingsFor(id)).toEqual([f2]);
    expect(await s.findingsFor('<none@example.org>')).toEqual([]);

    const scope = 'series:<20260324181937.2465574-1-ross.lagerwall@citrix.com>';
    expect(await s.seenFingerprint(f2.fingerprint, scope)).toBe(false);
    expect(await s.markFindingPosted(f2.fingerprint, scope, '<patchvet.1@bot.example.org>')).toBe(true);
    expect(await s.markFindingPosted(f2.fingerprint, scope, '<patchvet.2@bot.example.org>')).toBe(false);
    expect(await s.seenFingerprint(f2.fingerprint, scope)).toBe(true);
    expect(await s.seenFingerprint(f2.fingerprint, 'list:xen-devel@lists.xenproject.org')).toBe(false);
    expect(await s.seenFingerprint(f1.fingerprint, scope)).toBe(false);
  });

  // -------------------------------------------------------------- outbox

  test('enqueueReply is idempotent by key; a claimed reply is sent once', async () => {
    const { s } = await fresh();
    const r = reply('reply:<20260324181937.2465574-2-ross.lagerwall@citrix.com>', '<20260324181937.2465574-2-ross.lagerwall@citrix.com>');
    expect(await s.enqueueReply(r)).toBe(true);
    expect(await s.enqueueReply({ ...r, eml: Buffer.from('a different body') })).toBe(false);
    expect(await s.outboxStats()).toMatchObject({ queued: 1, sending: 0, sent: 0, failed: 0, possiblySent: 0 });

    const stored = (await s.getReply(r.key))!;
    expect(stored).toMatchObject({ key: r.key, messageId: r.messageId, inReplyTo: r.inReplyTo, to: r.to, cc: r.cc });
    expect(stored.eml.equals(r.eml)).toBe(true); // the first copy, byte for byte (NUL and UTF-8 included)
    expect(stored.state).toBe('queued');
    expect((await s.replyByMessageId(r.messageId))!.key).toBe(r.key);
    expect(await s.replyByMessageId('<other@example.org>')).toBeNull();

    const claimed = await s.claimReplies(10, 60, 'w1');
    expect(claimed.map((c) => c.key)).toEqual([r.key]);
    expect(claimed[0]).toMatchObject({ state: 'sending', attempts: 1, leaseOwner: 'w1', possiblySent: false });
    expect(claimed[0]!.leaseUntil!.getTime()).toBeGreaterThan(Date.now() + 50_000);
    expect(await s.claimReplies(10, 60, 'w2')).toEqual([]);

    expect(await s.markSent(r.key, { response: '250 2.0.0 Ok: queued as 4ZxKq' })).toBe(true);
    expect(await s.markSent(r.key, { response: '250 again' })).toBe(false);
    expect(await s.markFailed(r.key, 'late failure report', new Date())).toBe(false);
    const sent = (await s.getReply(r.key))!;
    expect(sent.state).toBe('sent');
    expect(sent.sentInfo).toEqual({ response: '250 2.0.0 Ok: queued as 4ZxKq' });
    expect(sent.sentAt).toBeInstanceOf(Date);
    expect(await s.claimReplies(10, 60, 'w2')).toEqual([]);
    expect(await s.enqueueReply(r)).toBe(false); // even after it went out
    expect(await s.outboxStats()).toMatchObject({ queued: 0, sending: 0, sent: 1, oldestQueuedAt: null });
  });

  test('two stores claiming at once never get the same reply', async () => {
    const { url, s } = await fresh();
    const t = await openS(url);
    const keys: string[] = [];
    for (let i = 0; i < 60; i++) {
      const k = `reply:<${i}@example.org>`;
      keys.push(k);
      expect(await s.enqueueReply(reply(k, `<${i}@example.org>`, i))).toBe(true);
    }
    const got = new Map<string, string>();
    const claimer = async (store: Store, name: string): Promise<void> => {
      for (;;) {
        const items = await store.claimReplies(3, 60, name);
        if (!items.length) return;
        for (const it of items) {
          expect(got.has(it.key) ? `${it.key} claimed by ${got.get(it.key)} and ${name}` : null).toBeNull();
          got.set(it.key, name);
          expect(await store.markSent(it.key, { response: '250 ok' })).toBe(true);
        }
      }
    };
    await Promise.all([claimer(s, 'a1'), claimer(t, 'b1'), claimer(s, 'a2'), claimer(t, 'b2')]);
    expect([...got.keys()].sort()).toEqual([...keys].sort());
    const byWorker = new Set(got.values());
    expect(byWorker.size).toBeGreaterThan(1); // they really competed
    expect(await t.outboxStats()).toMatchObject({ queued: 0, sending: 0, sent: 60 });
  });

  test('writers on another connection wait for a transaction without blocking it (same process)', async () => {
    const { url, s } = await fresh();
    const t = await openS(url);
    const [m] = await mbox('xen-ftw-alloc.mbox');
    const id = m!.rec.messageId;
    await s.putMessage(m!.rec, m!.raw, { key: 'k', position: '1' });
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let holding!: () => void;
    const started = new Promise<void>((r) => (holding = r));
    const a = s.transaction(async (tx) => {
      const won = await tx.markProcessed(id);
      await tx.enqueueReply(reply('reply:a', id));
      holding();
      await held; // the transaction stays open while the others try to write
      return won;
    });
    await started;
    const t0 = Date.now();
    const others = Promise.all([
      t.markProcessed(id), // same row: waits, then finds it done
      t.enqueueReply(reply('reply:b', id)), // single statement, no explicit transaction
      t.setPosition('k', '2'),
      openS(url).then((u) => u.getPosition('k')), // opening (and migrating) a third connection
    ]);
    await sleep(300);
    release();
    const [won, [lost, enqueued, , pos]] = await Promise.all([a, others]);
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(won).toBe(true);
    expect(lost).toBe(false);
    expect(enqueued).toBe(true);
    expect(pos === null || pos === '2').toBe(true);
    expect(await s.outboxStats()).toMatchObject({ queued: 2 });
  });

  test('an expired lease is re-claimable and listed as possibly sent', async () => {
    const { s } = await fresh();
    const r = reply('reply:<lease@example.org>', '<lease@example.org>');
    await s.enqueueReply(r);
    const [first] = await s.claimReplies(1, 1, 'crashed-worker');
    expect(first!.key).toBe(r.key);
    expect(await s.possiblySent()).toEqual([]);
    expect(await s.claimReplies(1, 60, 'w2')).toEqual([]); // lease still running

    await sleep(1300);
    const ps = await s.possiblySent();
    expect(ps.map((p) => p.key)).toEqual([r.key]);
    expect(ps[0]!.state).toBe('sending');
    expect((await s.outboxStats()).possiblySent).toBe(1);

    const [again] = await s.claimReplies(5, 60, 'w2');
    expect(again).toMatchObject({ key: r.key, attempts: 2, leaseOwner: 'w2', possiblySent: true });
    // Still flagged until confirmed sent: the first attempt may have gone out.
    expect((await s.possiblySent()).map((p) => p.key)).toEqual([r.key]);
    // The crashed worker's late report does not disturb the new lease.
    expect(await s.markFailed(r.key, 'connection reset', new Date(Date.now() + 1000), 'crashed-worker')).toBe(false);
    expect((await s.getReply(r.key))!.leaseOwner).toBe('w2');
    // Our own reply seen on the list settles it.
    expect(await s.markSent(r.key, { response: 'seen on the list', via: 'public-inbox' })).toBe(true);
    expect(await s.possiblySent()).toEqual([]);
    expect((await s.getReply(r.key))!.sentInfo).toEqual({ response: 'seen on the list', via: 'public-inbox' });
  });

  test('a failed attempt is retried after retryAt, or given up', async () => {
    const { s } = await fresh();
    await s.enqueueReply(reply('r1', '<a@example.org>'));
    await s.enqueueReply(reply('r2', '<b@example.org>'));
    const items = await s.claimReplies(2, 60, 'w');
    expect(items.map((i) => i.key)).toEqual(['r1', 'r2']);
    expect(await s.markFailed('r1', '451 4.3.0 try later', new Date(Date.now() + 1000), 'w')).toBe(true);
    expect(await s.markFailed('r2', '550 5.1.1 no such user', null)).toBe(true);
    expect(await s.markFailed('r2', 'again', null)).toBe(false); // not 'sending' any more
    expect(await s.outboxStats()).toMatchObject({ queued: 1, failed: 1, sending: 0 });
    expect(await s.claimReplies(5, 60, 'w')).toEqual([]);
    await sleep(1300);
    const retry = await s.claimReplies(5, 60, 'w');
    expect(retry.map((i) => i.key)).toEqual(['r1']);
    expect(retry[0]).toMatchObject({ attempts: 2, lastError: '451 4.3.0 try later', possiblySent: false });
    const dead = (await s.getReply('r2'))!;
    expect(dead).toMatchObject({ state: 'failed', lastError: '550 5.1.1 no such user', nextAttemptAt: null });
  });

  // -------------------------------------------------------------- feedback, budget, cache

  test('ruleStats counts findings, posts and disputes per rule', async () => {
    const { s } = await fresh();
    const eager = await mbox('xen-eager-fpu-v2.mbox');
    const patches = eager.filter((m) => m.rec.kind === 'patch').slice(0, 3);
    for (const m of patches) await s.putMessage(m.rec, m.raw, { key: 'k', position: '1' });
    const fA = patches.map((m, i) => findingOf(m.rec, 'xen/fpu-init-order', `vcpu_reset_fpu(v${i});`, 10 + i));
    const fB = findingOf(patches[0]!.rec, 'xen/idle-vcpu-path', 'is_idle_vcpu(v)', 40);
    await s.putFindings(patches[0]!.rec.messageId, [fA[0]!, fB]);
    await s.putFindings(patches[1]!.rec.messageId, [fA[1]!]);
    await s.putFindings(patches[2]!.rec.messageId, [fA[2]!]);

    for (const f of fA) await s.markFindingPosted(f.fingerprint, 'list:xen-devel', `<bot-${f.line}@x>`); // rule looked up
    await s.markFindingPosted('fp-not-stored', 'list:xen-devel', '<bot@x>', 'common/long-line'); // rule given

    const reviewer = 'jbeulich@suse.com';
    expect(await s.recordDispute({ rule: 'xen/fpu-init-order', fingerprint: fA[0]!.fingerprint, messageId: '<d1@suse.com>', by: reviewer, reason: 'reset happens later anyway' })).toBe(true);
    // The same dispute read again (a re-processed mail) is not counted twice.
    expect(await s.recordDispute({ rule: 'xen/fpu-init-order', fingerprint: fA[0]!.fingerprint, messageId: '<d1@suse.com>', by: reviewer, reason: 'reset happens later anyway' })).toBe(false);
    // A second person disputing the same finding: two disputes, one disputed finding.
    await s.recordDispute({ rule: 'xen/fpu-init-order', fingerprint: fA[0]!.fingerprint, messageId: '<d2@citrix.com>', by: 'andrew.cooper3@citrix.com', reason: 'agreed' });
    // A dispute about the rule on a message, without a fingerprint.
    await s.recordDispute({ rule: 'xen/idle-vcpu-path', messageId: '<d3@suse.com>', by: reviewer, reason: 'idle vCPUs never get here' });

    expect(await s.ruleStats()).toEqual([
      { rule: 'common/long-line', findings: 0, posted: 1, disputes: 0, precision: 1 },
      { rule: 'xen/fpu-init-order', findings: 3, posted: 3, disputes: 2, precision: 2 / 3 },
      { rule: 'xen/idle-vcpu-path', findings: 1, posted: 0, disputes: 1, precision: null },
    ]);
  });

  test('token budget adds up under concurrency; the cache keeps JSON values and expires them', async () => {
    const { url, s } = await fresh();
    const t = await openS(url);
    expect(await s.tokensFor('2026-03-24', 'xen-devel')).toBe(0);
    const adds = Array.from({ length: 20 }, (_, i) => (i % 2 ? s : t).addTokens('2026-03-24', 'xen-devel', 1000 + i));
    const totals = await Promise.all(adds);
    const expected = Array.from({ length: 20 }, (_, i) => 1000 + i).reduce((a, b) => a + b, 0);
    expect(Math.max(...totals)).toBe(expected);
    expect(await s.tokensFor('2026-03-24', 'xen-devel')).toBe(expected);
    expect(await s.tokensFor('2026-03-25', 'xen-devel')).toBe(0);
    expect(await s.tokensFor('2026-03-24', 'linux-hyperv')).toBe(0);
    // Every counter can be listed (stats), from a day on: lists and GitHub repositories alike.
    await s.addTokens('2026-03-23', 'xen-devel', 7);
    await s.addTokens('2026-03-25', 'github:xen-project/xen', 300);
    expect(await s.tokenUsage('2026-03-24')).toEqual([
      { day: '2026-03-24', list: 'xen-devel', tokens: expected },
      { day: '2026-03-25', list: 'github:xen-project/xen', tokens: 300 },
    ]);

    expect(await s.cacheGet('llm:abc')).toBeUndefined();
    await s.cachePut('llm:abc', { answer: 'no finding', tokens: 512 });
    expect(await s.cacheGet('llm:abc')).toEqual({ answer: 'no finding', tokens: 512 });
    await s.cachePut('llm:abc', 'a plain string'); // a JSON string must not be parsed twice
    expect(await s.cacheGet('llm:abc')).toBe('a plain string');
    await s.cachePut('num', 42);
    expect(await s.cacheGet('num')).toBe(42);
    await s.cachePut('short', [1, 2], 1);
    expect(await s.cacheGet('short')).toEqual([1, 2]);
    await sleep(1300);
    expect(await s.cacheGet('short')).toBeUndefined();
  });

  test('odd text in a record (NUL, lone surrogate) is stored, never a poison message', async () => {
    const { s } = await fresh();
    const [m] = await mbox('xen-ftw-alloc.mbox');
    const odd = { ...m!.rec, subject: 'NUL\u0000 and lone \ud800 surrogate \\u0000 literal', warnings: ['\\\u0000'] };
    expect(await s.putMessage(odd, m!.raw, { key: 'k', position: '1' })).toEqual({ inserted: true });
    const back = (await s.getMessage(odd.messageId))!;
    if (h.name === 'sqlite') {
      expect(back.subject).toBe(odd.subject);
    } else {
      // PostgreSQL cannot hold these: they become U+FFFD, the escaped text stays as it was.
      expect(back.subject).toBe('NUL\ufffd and lone \ufffd surrogate \\u0000 literal');
      expect(back.warnings).toEqual(['\\\ufffd']);
    }
    expect((await s.getRaw(odd.messageId))!.equals(m!.raw)).toBe(true);
  });

  // -------------------------------------------------------------- migrations, reopen

  test('migrations: applied once, a second run is a no-op, a newer schema is refused', async () => {
    const url = await h.freshUrl();
    const s = await openS(url);
    await s.close();
    const last = MIGRATIONS[MIGRATIONS.length - 1]!.version;
    if (h.name === 'sqlite') {
      const db = new Database(url.slice('sqlite:'.length));
      try {
        const before = db.prepare('SELECT version, name, applied_at FROM schema_migrations ORDER BY version').all();
        expect(before.map((r) => (r as { version: number }).version)).toEqual(MIGRATIONS.map((m) => m.version));
        expect(migrateSqlite(db)).toEqual({ applied: [], version: last });
        expect(migrateSqlite(db)).toEqual({ applied: [], version: last });
        expect(db.prepare('SELECT version, name, applied_at FROM schema_migrations ORDER BY version').all()).toEqual(before);
        db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(last + 1, 'future', 0);
      } finally {
        db.close();
      }
    } else {
      const pool = new pg.Pool({ connectionString: url });
      try {
        const q = 'SELECT version, name, applied_at FROM schema_migrations ORDER BY version';
        const before = (await pool.query(q)).rows;
        expect(before.map((r) => r.version)).toEqual(MIGRATIONS.map((m) => m.version));
        expect(await migratePostgres(pool)).toEqual({ applied: [], version: last });
        expect((await pool.query(q)).rows).toEqual(before);
        await pool.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [last + 1, 'future', 0]);
      } finally {
        await pool.end();
      }
    }
    await expect(openStore(url)).rejects.toThrow(/newer than this patchvet knows/);
  });

  test('several instances opening a new database at once all succeed and migrate it once', async () => {
    const url = await h.freshUrl();
    const stores = await Promise.all(Array.from({ length: 4 }, () => openS(url)));
    const [a, b] = stores;
    const [m] = await mbox('xen-ftw-alloc.mbox');
    await a!.putMessage(m!.rec, m!.raw, { key: 'k', position: '1' });
    expect(await b!.hasMessage(m!.rec.messageId)).toBe(true);
    for (const st of stores) expect(st.backend).toBe(h.name);
    if (h.name === 'postgres') {
      const pool = new pg.Pool({ connectionString: url });
      try {
        expect((await pool.query('SELECT count(*)::int AS n FROM schema_migrations')).rows[0].n).toBe(MIGRATIONS.length);
      } finally {
        await pool.end();
      }
    } else {
      const db = new Database(url.slice('sqlite:'.length), { readonly: true });
      try {
        expect((db.prepare('SELECT count(*) AS n FROM schema_migrations').get() as { n: number }).n).toBe(MIGRATIONS.length);
        expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
      } finally {
        db.close();
      }
    }
  });

  // -------------------------------------------------------------- GitHub mirror PRs

  test('GitHub: patch index, PR commits and links are found from either side', async () => {
    const { s } = await fresh();
    const series = await mbox('xen-eager-fpu-v2.mbox');
    const patches = series.filter((m) => m.rec.kind === 'patch');
    expect(patches.length).toBeGreaterThanOrEqual(3);
    for (const [i, m] of series.entries()) await s.putMessage(m.rec, m.raw, { key: 'k', position: String(i) });
    const [p1, p2, p3] = patches;
    await s.putPatchIndex({ messageId: p1!.rec.messageId, patchId: 'a'.repeat(40), subjectKey: 'one\nx@example.org', date: '2026-03-24T18:19:29Z' });
    await s.putPatchIndex({ messageId: p2!.rec.messageId, patchId: 'a'.repeat(40), subjectKey: 'two\nx@example.org', date: '2026-03-25T10:00:00Z' });
    await s.putPatchIndex({ messageId: p3!.rec.messageId, patchId: null, subjectKey: 'one\nx@example.org', date: null });
    // Newest first; an undated patch last.
    expect(await s.patchesByPatchId('a'.repeat(40))).toEqual([p2!.rec.messageId, p1!.rec.messageId]);
    expect(await s.patchesBySubjectKey('one\nx@example.org')).toEqual([p1!.rec.messageId, p3!.rec.messageId]);
    // Re-indexing replaces.
    await s.putPatchIndex({ messageId: p2!.rec.messageId, patchId: 'b'.repeat(40), subjectKey: 'two\nx@example.org', date: null });
    expect(await s.patchesByPatchId('a'.repeat(40))).toEqual([p1!.rec.messageId]);

    await s.putGithubPr({ repo: 'xen-project/xen', pr: 7, installationId: 3_000_000_001, headSha: 'h1', baseSha: 'b1', title: 'FPU', author: 'ross', state: 'open' });
    // A later update without an installation id keeps the known one.
    await s.putGithubPr({ repo: 'xen-project/xen', pr: 7, installationId: null, headSha: 'h2', baseSha: null, title: null, author: null, state: null });
    expect(await s.getGithubPr('xen-project/xen', 7)).toEqual({
      repo: 'xen-project/xen', pr: 7, installationId: 3_000_000_001, headSha: 'h2', baseSha: 'b1', title: 'FPU', author: 'ross', state: 'open',
    });
    expect(await s.getGithubPr('xen-project/xen', 8)).toBeNull();

    await s.putPrCommits('xen-project/xen', 7, [
      { sha: 'c1', patchId: 'c'.repeat(40), subjectKey: 's1\nx@example.org', messageIds: [p1!.rec.messageId, p1!.rec.messageId] },
      { sha: 'c2', patchId: 'a'.repeat(40), subjectKey: 's2\nx@example.org', messageIds: [] },
    ]);
    await s.putPrCommits('xen-project/xen', 9, [{ sha: 'c9', patchId: null, subjectKey: 'one\nx@example.org', messageIds: [] }]);
    // Trailer evidence wins over patch-id for the same PR; another PR matches by subject.
    expect(await s.prCommitsMatching({ messageId: p1!.rec.messageId, patchId: 'a'.repeat(40), subjectKey: 'one\nx@example.org' })).toEqual([
      { repo: 'xen-project/xen', pr: 7, sha: 'c1', method: 'trailer' },
      { repo: 'xen-project/xen', pr: 9, sha: 'c9', method: 'subject' },
    ]);
    expect(await s.prCommitsMatching({ messageId: '<other@x>', patchId: 'a'.repeat(40), subjectKey: 'zz' })).toEqual([
      { repo: 'xen-project/xen', pr: 7, sha: 'c2', method: 'patch-id' },
    ]);
    // A push replaces the commit set.
    await s.putPrCommits('xen-project/xen', 7, [{ sha: 'c3', patchId: null, subjectKey: 'zz', messageIds: [] }]);
    expect(await s.prCommitsMatching({ messageId: p1!.rec.messageId, patchId: 'a'.repeat(40), subjectKey: 'zz' })).toEqual([
      { repo: 'xen-project/xen', pr: 7, sha: 'c3', method: 'subject' },
    ]);

    expect(await s.addGithubLink({ repo: 'xen-project/xen', pr: 7, messageId: p2!.rec.messageId, commitSha: 'c3', method: 'patch-id' })).toBe(true);
    expect(await s.addGithubLink({ repo: 'xen-project/xen', pr: 7, messageId: p1!.rec.messageId, commitSha: 'c0', method: 'trailer' })).toBe(true);
    expect(await s.addGithubLink({ repo: 'xen-project/xen', pr: 7, messageId: p1!.rec.messageId, commitSha: 'zz', method: 'subject' })).toBe(false);
    // PR -> patches: in commit order (c3 is recorded; c0 is not, so it comes after).
    expect((await s.githubLinks('xen-project/xen', 7)).map((l) => [l.messageId, l.commitSha, l.method])).toEqual([
      [p2!.rec.messageId, 'c3', 'patch-id'],
      [p1!.rec.messageId, 'c0', 'trailer'],
    ]);
    // Patch -> PRs.
    expect(await s.githubLinksForMessages([p1!.rec.messageId, '<unknown@x>'])).toEqual([
      { repo: 'xen-project/xen', pr: 7, messageId: p1!.rec.messageId, commitSha: 'c0', method: 'trailer' },
    ]);
    expect(await s.githubLinksForMessages([])).toEqual([]);
  });

  test('GitHub: posted comments are recorded once per key and can be resolved and reopened', async () => {
    const { s } = await fresh();
    const row = {
      repo: 'o/r', pr: 1, key: 'finding:aea885b86bdad191', kind: 'finding-inline' as const, rule: 'xen/alloc-time-init',
      fingerprint: 'aea885b86bdad191', commentId: 2_900_000_123, reviewId: 4_000_000_001, path: 'xen/arch/x86/domain.c',
      line: 525, side: 'RIGHT' as const, commitSha: 'abc', state: 'open' as const,
    };
    expect(await s.putGithubComment(row)).toBe(true);
    expect(await s.putGithubComment({ ...row, commentId: 1 })).toBe(false);
    expect(await s.putGithubComment({ repo: 'o/r', pr: 1, key: 'mail:<m@x>#0', kind: 'mirror-body', state: 'open' })).toBe(true);
    expect(await s.githubComments('o/r', 1)).toEqual([
      row,
      { repo: 'o/r', pr: 1, key: 'mail:<m@x>#0', kind: 'mirror-body', rule: null, fingerprint: null, commentId: null, reviewId: null, path: null, line: null, side: null, commitSha: null, state: 'open' },
    ]);
    expect(await s.setGithubCommentState('o/r', 1, row.key, 'resolved')).toBe(true);
    expect(await s.setGithubCommentState('o/r', 1, row.key, 'resolved')).toBe(false);
    expect((await s.githubComments('o/r', 1))[0]!.state).toBe('resolved');
    expect(await s.setGithubCommentState('o/r', 1, row.key, 'open')).toBe(true);
    expect(await s.githubComments('o/r', 2)).toEqual([]);
  });

  test('GitHub: jobs are queued once, leased to one worker, retried, recovered after a lease expires', async () => {
    const { url, s } = await fresh();
    const other = await openS(url);
    const job = { key: 'review:o/r#1@d1', kind: 'review', repo: 'o/r', pr: 1, installationId: 42, payload: { head: 'abc', n: [1, 2] } };
    expect(await s.enqueueGithubJob(job)).toBe(true);
    expect(await s.enqueueGithubJob({ ...job, payload: { other: true } })).toBe(false);
    expect(await s.enqueueGithubJob({ ...job, key: 'mirror:o/r#2:<m@x>', kind: 'mirror', pr: 2 })).toBe(true);
    // Claiming one key only.
    const [a] = await s.claimGithubJobs(5, 30, 'w1', job.key);
    expect(a).toMatchObject({ key: job.key, kind: 'review', state: 'running', attempts: 1, payload: { head: 'abc', n: [1, 2] }, installationId: 42 });
    expect(await other.claimGithubJobs(5, 30, 'w2', job.key)).toEqual([]);
    const rest = await other.claimGithubJobs(5, 30, 'w2');
    expect(rest.map((j) => j.key)).toEqual(['mirror:o/r#2:<m@x>']);
    // Only the lease holder may finish.
    expect(await other.finishGithubJob(job.key, 'w2', { state: 'done' })).toBe(false);
    expect(await s.finishGithubJob(job.key, 'w1', { state: 'retry', at: new Date(Date.now() - 1000), error: 'HTTP 502' })).toBe(true);
    const [again] = await other.claimGithubJobs(5, 0.05, 'w2');
    expect(again).toMatchObject({ key: job.key, attempts: 2, lastError: 'HTTP 502' });
    // w2 dies: its lease expires and another worker recovers the job.
    await sleep(120);
    const [recovered] = await s.claimGithubJobs(5, 30, 'w1');
    expect(recovered).toMatchObject({ key: job.key, attempts: 3 });
    expect(await other.finishGithubJob(job.key, 'w2', { state: 'done' })).toBe(false); // lease taken over
    expect(await s.finishGithubJob(job.key, 'w1', { state: 'done' })).toBe(true);
    expect(await other.finishGithubJob('mirror:o/r#2:<m@x>', 'w2', { state: 'failed', error: 'no such PR' })).toBe(true);
    expect(await s.githubJobStats()).toEqual({ queued: 0, running: 0, done: 1, failed: 1 });
    expect(await s.claimGithubJobs(5, 30, 'w1')).toEqual([]);
    expect((await s.getGithubJob('mirror:o/r#2:<m@x>'))!.lastError).toBe('no such PR');
    expect(await s.getGithubJob('nope')).toBeNull();
  });

  test('GitHub: no two instances run jobs of the same PR at once; other PRs go on', async () => {
    const { url, s } = await fresh();
    const other = await openS(url);
    const job = (key: string, pr: number) => ({ key, kind: 'review', repo: 'o/r', pr, installationId: 42, payload: null });
    await s.enqueueGithubJob(job('review:o/r#7@p1', 7));
    await s.enqueueGithubJob(job('review:o/r#7@p2', 7));
    await s.enqueueGithubJob(job('review:o/r#8@p1', 8));
    // Instance 1 takes the first push of PR 7.
    expect((await s.claimGithubJobs(1, 0.3, 'i1')).map((j) => j.key)).toEqual(['review:o/r#7@p1']);
    // Instance 2 may not start the second push of PR 7 meanwhile, but takes PR 8.
    expect((await other.claimGithubJobs(5, 30, 'i2')).map((j) => j.key)).toEqual(['review:o/r#8@p1']);
    expect(await other.claimGithubJobs(5, 30, 'i2', 'review:o/r#7@p2')).toEqual([]);
    // Instance 1 itself may take it: it runs a PR's jobs one after the other.
    const [mine] = await s.claimGithubJobs(5, 30, 'i1', 'review:o/r#7@p2');
    expect(mine.key).toBe('review:o/r#7@p2');
    expect(await s.finishGithubJob('review:o/r#7@p2', 'i1', { state: 'retry', at: new Date(Date.now() - 1000), error: 'again' })).toBe(true);
    // Once the first is done, the second can go (on either instance).
    expect(await s.finishGithubJob('review:o/r#7@p1', 'i1', { state: 'done' })).toBe(true);
    expect((await other.claimGithubJobs(5, 30, 'i2')).map((j) => j.key)).toEqual(['review:o/r#7@p2']);
    expect(await other.finishGithubJob('review:o/r#7@p2', 'i2', { state: 'done' })).toBe(true);
    // A lease that runs out (a crashed instance) does not block the PR for ever.
    await s.enqueueGithubJob(job('review:o/r#7@p3', 7));
    await s.enqueueGithubJob(job('review:o/r#7@p4', 7));
    expect((await s.claimGithubJobs(1, 0.05, 'i1')).map((j) => j.key)).toEqual(['review:o/r#7@p3']);
    expect(await other.claimGithubJobs(5, 30, 'i2')).toEqual([]);
    await sleep(120);
    expect((await other.claimGithubJobs(5, 30, 'i2')).map((j) => j.key).sort()).toEqual(['review:o/r#7@p3', 'review:o/r#7@p4']);
    // Claims that race from both instances never split one PR's jobs between them.
    await s.enqueueGithubJob(job('review:o/r#9@p1', 9));
    await s.enqueueGithubJob(job('review:o/r#9@p2', 9));
    const [x, y] = await Promise.all([s.claimGithubJobs(1, 30, 'i1'), other.claimGithubJobs(1, 30, 'i2')]);
    expect([...x, ...y].map((j) => j.key)).toEqual(['review:o/r#9@p1']);
  });

  test('GitHub: a forwarded comment is recorded once, and found by its mail', async () => {
    const { s } = await fresh();
    const f = {
      repo: 'o/r', kind: 'review-comment' as const, commentId: 3_100_000_000, login: 'andyhhp', outboxKey: 'github-forward:o/r#3100000000',
      messageId: '<patchvet.gh.1@bot.example.org>', inReplyTo: '<20260324181937.2465574-2-ross.lagerwall@citrix.com>',
    };
    expect(await s.recordGithubForward(f)).toBe(true);
    expect(await s.recordGithubForward({ ...f, login: 'other' })).toBe(false);
    expect(await s.githubForward('o/r', 'review-comment', 3_100_000_000)).toEqual(f);
    expect(await s.githubForward('o/r', 'issue-comment', 3_100_000_000)).toBeNull();
    expect(await s.githubForwardByMessageId(f.messageId)).toEqual(f);
  });

  test('a store reopened after close keeps everything', async () => {
    const { url, s } = await fresh();
    const mails = await mbox('xen-fpu-reset-v2-1of9.mbox');
    const f = findingOf(mails[0]!.rec, 'xen/fpu-init-order', 'vcpu_reset_fpu(v);', 525);
    const r = reply('reply:<reopen>', mails[0]!.rec.messageId);
    await s.transaction(async (tx) => {
      for (const [i, m] of mails.entries()) await tx.putMessage(m.rec, m.raw, { key: 'maildir:~/Maildir/xen', position: `cur/${i}` });
      await tx.setPosition('maildir:~/Maildir/xen', 'cur/2');
    });
    await s.transaction(async (tx) => {
      expect(await tx.markProcessed(mails[0]!.rec.messageId)).toBe(true);
      await tx.putFindings(mails[0]!.rec.messageId, [f]);
      await tx.enqueueReply(r);
      await tx.markFindingPosted(f.fingerprint, 'list:xen-devel', r.messageId);
    });
    await s.addTokens('2026-03-24', 'xen-devel', 1234);
    await s.cachePut('k', { v: 1 });
    await s.recordDispute({ rule: f.rule, fingerprint: f.fingerprint, messageId: mails[1]!.rec.messageId, by: 'andrew.cooper3@citrix.com', reason: 'wrong' });
    const statsBefore = await s.ruleStats();
    await s.close();
    await expect(s.hasMessage(mails[0]!.rec.messageId)).rejects.toThrow(/after close/);

    const again = await openS(url);
    expect(await again.getPosition('maildir:~/Maildir/xen')).toBe('cur/2');
    for (const m of mails) expect((await again.getRaw(m.rec.messageId))!.equals(m.raw)).toBe(true);
    expect((await again.pendingMessages(10)).map((x) => x.messageId)).toEqual(mails.slice(1).map((m) => m.rec.messageId));
    expect(await again.findingsFor(mails[0]!.rec.messageId)).toEqual([f]);
    expect(await again.seenFingerprint(f.fingerprint, 'list:xen-devel')).toBe(true);
    expect((await again.getReply(r.key))!.eml.equals(r.eml)).toBe(true);
    expect(await again.tokensFor('2026-03-24', 'xen-devel')).toBe(1234);
    expect(await again.cacheGet('k')).toEqual({ v: 1 });
    expect(await again.ruleStats()).toEqual(statsBefore);
    expect(statsBefore).toEqual([{ rule: f.rule, findings: 1, posted: 1, disputes: 1, precision: 0 }]);
  });

  // -------------------------------------------------------------- kill -9

  describe('kill -9', () => {
    let child: { dir: string; script: string };
    beforeAll(() => {
      child = buildChild();
    });
    afterAll(() => {
      if (child) rmSync(child.dir, { recursive: true, force: true });
    });

    test('inside the intake transaction: nothing written; after commit: everything kept', async () => {
      const url = await h.freshUrl();
      const mails = await mbox('xen-ftw-alloc.mbox');
      const data = writeChildData(child.dir, { mails });
      await runChild(child.script, url, 'intake-hang', data);
      const s = await openS(url);
      expect(await s.getPosition('inbox')).toBeNull();
      for (const m of mails) expect(await s.hasMessage(m.rec.messageId)).toBe(false);

      await runChild(child.script, url, 'intake-commit', data);
      expect(await s.getPosition('inbox')).toBe(String(mails.length));
      expect((await s.pendingMessages(100)).map((r) => r.messageId)).toEqual(mails.map((m) => m.rec.messageId));
    });

    test('inside the review transaction: still pending, no reply; after commit: one reply, never two', async () => {
      const url = await h.freshUrl();
      const mails = (await mbox('xen-ftw-alloc.mbox')).slice(0, 1);
      const r = reply(`reply:${mails[0]!.rec.messageId}`, mails[0]!.rec.messageId);
      const data = writeChildData(child.dir, { mails, reply: r });
      const s = await openS(url);
      await s.putMessage(mails[0]!.rec, mails[0]!.raw, { key: 'inbox', position: '1' });

      await runChild(child.script, url, 'review-hang', data);
      expect((await s.pendingMessages(10)).map((x) => x.messageId)).toEqual([mails[0]!.rec.messageId]);
      expect(await s.outboxStats()).toMatchObject({ queued: 0, sending: 0, sent: 0 });

      await runChild(child.script, url, 'review-commit', data);
      expect(await s.pendingMessages(10)).toEqual([]);
      // A restarted instance reviewing it again cannot enqueue a second reply.
      await expect(
        s.transaction(async (tx) => {
          if (!(await tx.markProcessed(mails[0]!.rec.messageId))) throw new Error('already processed');
          await tx.enqueueReply(r);
        }),
      ).rejects.toThrow('already processed');
      expect(await s.enqueueReply(r)).toBe(false);
      expect(await s.outboxStats()).toMatchObject({ queued: 1, sending: 0, sent: 0 });
    });

    test('between SMTP acceptance and markSent: the reply shows as possibly sent once the lease expires', async () => {
      const url = await h.freshUrl();
      const s = await openS(url);
      const r = reply('reply:<smtp-window>', '<smtp-window@example.org>');
      await s.enqueueReply(r);
      const said = await runChild(child.script, url, 'send-hang', writeChildData(child.dir, { mails: [], leaseSeconds: 1 }));
      expect(said).toBe(r.key);
      expect((await s.getReply(r.key))!.state).toBe('sending');
      expect(await s.claimReplies(1, 60, 'restarted')).toEqual([]);
      await sleep(1200);
      expect((await s.possiblySent()).map((p) => p.messageId)).toEqual([r.messageId]);
      const [item] = await s.claimReplies(1, 60, 'restarted');
      expect(item).toMatchObject({ key: r.key, possiblySent: true, attempts: 2 });
    });

    test('two processes claiming from one store share the work without overlap', async () => {
      const url = await h.freshUrl();
      const s = await openS(url);
      const keys = Array.from({ length: 40 }, (_, i) => `reply:<p${i}@example.org>`);
      for (const [i, k] of keys.entries()) await s.enqueueReply(reply(k, `<p${i}@example.org>`, i));
      const data = writeChildData(child.dir, { mails: [] });
      const said = await Promise.all([1, 2, 3].map(() => runChild(child.script, url, 'claim-loop', data, false)));
      const lists = said.map((x) => JSON.parse(x) as string[]);
      const all = lists.flat();
      expect(all.length).toBe(keys.length);
      expect(new Set(all).size).toBe(keys.length);
      expect(await s.outboxStats()).toMatchObject({ queued: 0, sending: 0, sent: 40 });
    });
  });
});

// Make sure a relative sqlite: URL lands where the user expects (relative to the working directory).
test('sqlite: URLs name files relative to the working directory, or memory', async () => {
  const { sqlitePath } = await import('../../src/store/sqlite.js');
  expect(sqlitePath('./patchvet.db')).toBe(join(process.cwd(), 'patchvet.db'));
  expect(sqlitePath('///var/lib/patchvet/p.db')).toBe('/var/lib/patchvet/p.db'); // sqlite:///abs
  expect(sqlitePath(':memory:')).toBe(':memory:');
  const mem = await openStore('sqlite::memory:');
  try {
    expect(await mem.tokensFor('d', 'l')).toBe(0);
  } finally {
    await mem.close();
  }
  await expect(openStore('mysql://x')).rejects.toThrow(/unsupported URL/);
  const missing = join(tmpdir(), `patchvet-no-such-dir-${randomBytes(3).toString('hex')}`, 'x.db');
  await expect(openStore(`sqlite:${missing}`)).rejects.toThrow(new RegExp(`cannot open SQLite database ${dirname(missing)}`));
});
