// `patchvet serve` end to end with real components: the store (SQLite in a temp dir AND a fresh
// PostgreSQL database), a real SMTP receiver on loopback (smtp-server), the real rules, and the
// real xen-devel thread fed through an in-test live source.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { RuleSpec } from '../../src/rules/types.js';
import type { ServeConfig } from '../../src/serve/config.js';
import { Service } from '../../src/serve/service.js';
import { collectStats, statsText } from '../../src/serve/stats.js';
import { openStore } from '../../src/store/store.js';
import type { RawMessage } from '../../src/model.js';
import {
  ANSWER_ID,
  BOT,
  COVER_ID,
  LIST,
  ONCE,
  PATCH_ID,
  REVIEW_ID,
  STORES,
  TestSource,
  XEN_RULES,
  header,
  headerNames,
  memoryLogger,
  rawMail,
  serveKit,
  sqliteHarness,
  useStore,
  variantOfPatch,
  type ConfigChanges,
  type Rules,
  type SmtpReceiver,
} from '../helpers/serve.js';
import { TestInboxV2 } from '../helpers/public-inbox.js';

const kit = serveKit();
let rules: Rules;
let thread: RawMessage[];
let rx: SmtpReceiver;
let dir: string;

beforeAll(() => {
  ({ rules, thread, rx } = kit);
  expect(kit.packErrors).toEqual([]);
  expect(thread).toHaveLength(3);
  dir = mkdtempSync(join(tmpdir(), 'patchvet-serve-e2e-'));
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

let n = 0;
/** Replies also go to an outbox of their own, retried quickly, given up after 2 permanent failures. */
function config(store: string, over: ConfigChanges = {}): ServeConfig {
  return kit.config(store, {
    ...over,
    email: {
      outbox: join(dir, `outbox-${++n}`),
      retry: { initialDelay: '50ms', maxDelay: '200ms', maxPermanentFailures: 2 },
      ...over.email,
    },
  });
}

const serve = (cfg: ServeConfig, sources: TestSource[], logger?: Logger) => kit.open(cfg, sources, { logger });

describe.each(STORES)('serve on %s', (_name, make) => {
  const h = useStore(make);

  test('the reference thread: one threaded reply with the three Xen findings; the replies and a second source get nothing', async () => {
    const url = await h.freshUrl();
    const one = new TestSource('test:one');
    const two = new TestSource('test:two');
    let svc = await serve(config(url), [one, two]);
    try {
      one.push(thread, 'one@3');
      await svc.runOnce(ONCE);
      expect(rx.messages).toHaveLength(1);
      const m = rx.messages[0]!;
      expect(header(m.raw, 'In-Reply-To')).toBe(PATCH_ID);
      expect(header(m.raw, 'References')).toBe(`${COVER_ID} ${PATCH_ID}`);
      expect(header(m.raw, 'Subject')).toBe("Re: [PATCH v2 1/9] x86/domain: Ensure a vCPU's FPU is reset early");
      expect(header(m.raw, 'From')).toBe(`patchvet <${BOT}>`);
      expect(header(m.raw, 'To')).toBe('Ross Lagerwall <ross.lagerwall@citrix.com>');
      expect(header(m.raw, 'Cc')).toContain(LIST);
      expect(header(m.raw, 'Cc')).toContain('jbeulich@suse.com');
      expect(header(m.raw, 'Auto-Submitted')).toBe('auto-generated');
      for (const r of XEN_RULES) expect(m.raw).toContain(`(${r}, warning)`);
      // Quotes only the hunk lines, wrapped at 72 columns.
      expect(m.raw).toContain('> +        vcpu_reset_fpu(v);');
      for (const line of m.raw.split('\r\n').slice(m.raw.split('\r\n').indexOf(''))) expect(line.length).toBeLessThanOrEqual(78);
      // The envelope: the author, the list and the original Cc's; the bot never.
      expect(m.from).toBe(BOT);
      expect(m.to[0]).toBe('ross.lagerwall@citrix.com');
      expect(m.to).toContain(LIST);
      expect(m.to).not.toContain(BOT);

      const st = svc.store;
      expect(await st.getPosition('test:one')).toBe('one@3');
      expect((await st.findingsFor(PATCH_ID)).map((f) => f.rule).sort()).toEqual(XEN_RULES);
      expect(await st.findingsFor(REVIEW_ID)).toEqual([]);
      expect(await st.findingsFor(ANSWER_ID)).toEqual([]);
      const item = await st.getReply(`reply:${PATCH_ID}`);
      expect(item).toMatchObject({ state: 'sent', inReplyTo: PATCH_ID, channel: 'smtp' });
      expect(header(m.raw, 'Message-ID')).toBe(item!.messageId);
      expect(await st.pendingMessages(10)).toEqual([]);

      // The same mails again from a second source: recorded as sightings, nothing sent.
      two.push(thread, 'two@3');
      await svc.runOnce(ONCE);
      expect(rx.messages).toHaveLength(1);
      expect((await st.sightings(PATCH_ID)).map((s) => s.key).sort()).toEqual(['test:one', 'test:two']);
      expect(await st.getPosition('test:two')).toBe('two@3');
    } finally {
      await svc.stop();
    }

    // A restart: the sources resume from their stored positions; re-read mail changes nothing.
    const again = new TestSource('test:one');
    svc = await serve(config(url), [again]);
    try {
      again.push(thread, 'one@3');
      await svc.runOnce(ONCE);
      expect(again.starts).toEqual(['one@3']);
      expect(rx.messages).toHaveLength(1);
    } finally {
      await svc.stop();
    }
  });

  test('feedback: our reply comes back through the list, a maintainer disputes one finding; stats report it', async () => {
    const url = await h.freshUrl();
    const src = new TestSource('test:list');
    const svc = await serve(config(url), [src]);
    try {
      src.push([thread[0]!], 'p1');
      await svc.runOnce(ONCE);
      expect(rx.messages).toHaveLength(1);
      const ours = rx.messages[0]!.raw.replace(/\r\n/g, '\n');
      const ourId = header(ours, 'Message-ID')!;
      const dispute = rawMail(
        `From: Jan Beulich <jbeulich@suse.com>
To: ${BOT}, ${LIST}
Subject: Re: [PATCH v2 1/9] x86/domain: Ensure a vCPU's FPU is reset early
Date: Thu, 26 Mar 2026 08:00:00 +0000
Message-ID: <dispute-1@suse.com>
In-Reply-To: ${ourId}
References: ${COVER_ID} ${PATCH_ID} ${ourId}
List-Id: Xen developer discussion <xen-devel.lists.xenproject.org>

On 25.03.2026, patchvet wrote:
> The idle vCPU never runs arch_vcpu_create()'s non-idle path, so its FPU
> state is not reset here; do it when the save area is allocated, in
> xstate_alloc_save_area()?
> (xen/idle-vcpu-path, warning)

That's a false positive as far as I can tell: idle vCPUs never use the FPU.

Jan
`,
        'dispute',
      );
      src.push([rawMail(ours, 'list-copy'), dispute], 'p3');
      await svc.runOnce(ONCE);
      expect(rx.messages).toHaveLength(1); // nothing answers the answers
      expect((await svc.store.getReply(`reply:${PATCH_ID}`))!.state).toBe('sent');
      const stats = await collectStats(svc.store, url);
      const byRule = Object.fromEntries(stats.rules.map((r) => [r.rule, r]));
      expect(byRule['xen/idle-vcpu-path']).toMatchObject({ findings: 1, posted: 1, disputes: 1, precision: 0 });
      expect(byRule['xen/fpu-init-order']).toMatchObject({ findings: 1, posted: 1, disputes: 0, precision: 1 });
      expect(stats.totals).toMatchObject({ findings: 3, posted: 3, disputes: 1 });
      expect(stats.totals.precision).toBeCloseTo(2 / 3);
      const text = statsText(stats);
      expect(text).toMatch(/xen\/idle-vcpu-path\s+1\s+1\s+1\s+0\.0%/);
      expect(text).toMatch(/total\s+3\s+3\s+1\s+66\.7%/);
      expect(text).toContain('replies: 1 sent, 0 queued');
    } finally {
      await svc.stop();
    }
  });
});

describe.each(STORES)('serve with the real public-inbox source on %s', (_name, make) => {
  const h = useStore(make);

  test('reads the archive from the beginning, answers the patch once, resumes after a restart', async () => {
    const inbox = TestInboxV2.create(join(dir, `inbox-${_name}`));
    for (const m of thread) inbox.append(m.raw);
    const url = await h.freshUrl();
    const cfg = config(url, { top: { sources: [{ type: 'public-inbox', path: inbox.dir, every: '100ms', start: 'beginning' }] } });
    let svc = await kit.open(cfg);
    const key = svc.sources[0]!.key;
    try {
      await svc.runOnce(ONCE);
      expect(rx.messages).toHaveLength(1);
      expect(header(rx.messages[0]!.raw, 'In-Reply-To')).toBe(PATCH_ID);
      expect(JSON.parse((await svc.store.getPosition(key))!)).toEqual({ epoch: 0, commit: inbox.tip() });
    } finally {
      await svc.stop();
    }
    // New mail after a restart: a re-send of the patch (same code, answered already) and a new patch.
    inbox.append(variantOfPatch(thread[0]!, { messageId: '<resend@citrix.com>', subject: "[PATCH v2 RESEND 1/9] x86/domain: Ensure a vCPU's FPU is reset early" }).raw);
    inbox.append(variantOfPatch(thread[0]!, { messageId: '<new-patch@citrix.com>', subject: '[PATCH 1/1] x86/fpu: Same reset, new patch' }).raw);
    svc = await kit.open(cfg);
    try {
      await svc.runOnce(ONCE);
      expect(rx.messages.map((m) => header(m.raw, 'In-Reply-To'))).toEqual([PATCH_ID, '<new-patch@citrix.com>']);
      expect(JSON.parse((await svc.store.getPosition(key))!)).toEqual({ epoch: 0, commit: inbox.tip() });
    } finally {
      await svc.stop();
    }
  });
});

describe('serve policies end to end (SQLite)', () => {
  const h = useStore(sqliteHarness);

  test('reply: off writes the reply to the outbox dir and sends nothing', async () => {
    const cfg = config(await h.freshUrl(), { reply: 'off' });
    const src = new TestSource('test:off');
    const svc = await serve(cfg, [src]);
    try {
      src.push(thread, 'x');
      await svc.runOnce(ONCE);
      expect(rx.messages).toHaveLength(0);
      const files = readdirSync(cfg.delivery.email.outbox);
      const item = await svc.store.getReply(`reply:${PATCH_ID}`);
      expect(item).toMatchObject({ channel: 'preview', state: 'sent' });
      expect(files).toEqual([`${item!.messageId.slice(1, -1)}.eml`]);
      const eml = readFileSync(join(cfg.delivery.email.outbox, files[0]!), 'utf8');
      expect(header(eml, 'In-Reply-To')).toBe(PATCH_ID);
      for (const r of XEN_RULES) expect(eml).toContain(`(${r}, warning)`);
      // A preview is not a post: precision stays about what people saw.
      const stats = await collectStats(svc.store, 'x');
      expect(stats.totals).toMatchObject({ findings: 3, posted: 0 });
    } finally {
      await svc.stop();
    }
  });

  test('delivery mode outbox: files instead of SMTP; reply: author has no Cc', async () => {
    const cfg = config(await h.freshUrl(), { reply: 'author', email: { mode: 'outbox', smtp: undefined } });
    const src = new TestSource('test:files');
    const svc = await serve(cfg, [src]);
    try {
      src.push(thread, 'x');
      await svc.runOnce(ONCE);
      expect(rx.messages).toHaveLength(0);
      const files = readdirSync(cfg.delivery.email.outbox);
      expect(files).toHaveLength(1);
      const eml = readFileSync(join(cfg.delivery.email.outbox, files[0]!), 'utf8');
      expect(header(eml, 'To')).toBe('Ross Lagerwall <ross.lagerwall@citrix.com>');
      expect(header(eml, 'Cc')).toBeNull();
      expect(await svc.store.getReply(`reply:${PATCH_ID}`)).toMatchObject({ channel: 'outbox', to: ['ross.lagerwall@citrix.com'], cc: [] });
    } finally {
      await svc.stop();
    }
  });

  test('a new version repeats nothing already posted; a version whose spot was discussed gets nothing', async () => {
    const url = await h.freshUrl();
    const src = new TestSource('test:versions');
    let svc = await serve(config(url), [src]);
    try {
      src.push([thread[0]!], 'a');
      await svc.runOnce(ONCE);
      expect(rx.messages).toHaveLength(1);
      // v3 of the same patch, same code: same fingerprints, already posted for v2.
      src.push([variantOfPatch(thread[0]!, { messageId: '<v3-1@citrix.com>', subject: "[PATCH v3 1/8] x86/domain: Ensure a vCPU's FPU is reset early" })], 'b');
      await svc.runOnce(ONCE);
      expect(rx.messages).toHaveLength(1);
      expect((await svc.store.findingsFor('<v3-1@citrix.com>')).length).toBe(3);
      expect(await svc.store.getReply('reply:<v3-1@citrix.com>')).toBeNull();
    } finally {
      await svc.stop();
    }

    // Another store: v2 came before the bot was there (too old to answer), and the maintainer
    // reviewed it at the very spot of the findings. v3, sent today, gets nothing: it was discussed.
    rx.messages.length = 0;
    const url2 = await h.freshUrl();
    const src2 = new TestSource('test:discussed');
    svc = await serve(config(url2, { top: { maxAge: '7d' } }), [src2]);
    try {
      src2.push(thread, 'a');
      await svc.runOnce(ONCE);
      expect(rx.messages).toHaveLength(0);
      expect(await svc.store.findingsFor(PATCH_ID)).toEqual([]);
      const today = new Date().toUTCString().replace('GMT', '+0000');
      const v3 = variantOfPatch(thread[0]!, {
        messageId: '<v3-2@citrix.com>',
        subject: "[PATCH v3 1/8] x86/domain: Ensure a vCPU's FPU is reset early",
        date: today,
      });
      src2.push([v3], 'b');
      await svc.runOnce(ONCE);
      expect((await svc.store.findingsFor('<v3-2@citrix.com>')).length).toBe(3);
      expect(rx.messages).toHaveLength(0);
      // Control: the same v3 with no history is answered.
      const fresh = await serve(config(await h.freshUrl(), { top: { maxAge: '7d' } }), [new TestSource('test:fresh')]);
      try {
        (fresh.sources[0] as TestSource).push([v3], 'a');
        await fresh.runOnce(ONCE);
        expect(rx.messages).toHaveLength(1);
      } finally {
        await fresh.stop();
      }
    } finally {
      await svc.stop();
    }
  });

  test('series siblings: a review of patch 1 and our own reply coming back do not silence patch 2', async () => {
    const src = new TestSource('test:siblings');
    const svc = await serve(config(await h.freshUrl()), [src]);
    try {
      // Patch 1/9 with the maintainer's review anchored at arch_vcpu_create (the findings' spot).
      src.push([thread[0]!, thread[1]!], 'a');
      await svc.runOnce(ONCE);
      expect(rx.messages).toHaveLength(1);
      // Our reply comes back through the list, then patch 2/9 (same code, same thread) arrives.
      const ours = rawMail(rx.messages[0]!.raw.replace(/\r\n/g, '\n'), 'list-copy');
      const sibling = variantOfPatch(thread[0]!, {
        messageId: '<sibling-2@citrix.com>',
        subject: '[PATCH v2 2/9] x86/fpu: A sibling that adds the same reset',
      });
      src.push([ours, sibling], 'b');
      await svc.runOnce(ONCE);
      expect(rx.messages).toHaveLength(2);
      expect(header(rx.messages[1]!.raw, 'In-Reply-To')).toBe('<sibling-2@citrix.com>');
      for (const r of XEN_RULES) expect(rx.messages[1]!.raw).toContain(`(${r}, warning)`);
    } finally {
      await svc.stop();
    }
  });

  test('Review-Bot-Ignore in the thread silences that rule; muted senders get nothing', async () => {
    const src = new TestSource('test:ignore');
    const svc = await serve(config(await h.freshUrl()), [src]);
    try {
      const ignore = rawMail(
        `From: Andrew Cooper <andrew.cooper3@citrix.com>
To: ${LIST}
Subject: Re: [PATCH v2 1/9] x86/domain: Ensure a vCPU's FPU is reset early
Date: Tue, 24 Mar 2026 18:30:00 +0000
Message-ID: <ignore-1@citrix.com>
In-Reply-To: ${PATCH_ID}
References: ${COVER_ID} ${PATCH_ID}
List-Id: Xen developer discussion <xen-devel.lists.xenproject.org>

The idle path is handled elsewhere in this series.

Review-Bot-Ignore: xen/idle-vcpu-path
`,
      );
      src.push([thread[0]!, ignore], 'a');
      await svc.runOnce(ONCE);
      expect(rx.messages).toHaveLength(1);
      expect(rx.messages[0]!.raw).not.toContain('xen/idle-vcpu-path');
      expect(rx.messages[0]!.raw).toContain('(xen/fpu-init-order, warning)');
    } finally {
      await svc.stop();
    }
    const muted = new TestSource('test:muted');
    const svc2 = await serve(config(await h.freshUrl(), { list: { mute: ['*@citrix.com'] } }), [muted]);
    try {
      muted.push(thread, 'a');
      await svc2.runOnce(ONCE);
      expect(rx.messages).toHaveLength(1); // only the one from before
      expect(await svc2.store.getReply(`reply:${PATCH_ID}`)).toBeNull();
    } finally {
      await svc2.stop();
    }
  });

  test('embargo holds the reply (queued, not lost); rate limit lets the excess wait', async () => {
    const src = new TestSource('test:embargo');
    // The patch is from March 2026: an embargo of a million hours holds it for good.
    const svc = await serve(config(await h.freshUrl(), { list: { embargoHours: 1_000_000 } }), [src]);
    try {
      src.push(thread, 'a');
      await svc.runOnce(ONCE);
      expect(rx.messages).toHaveLength(0);
      const item = await svc.store.getReply(`reply:${PATCH_ID}`);
      expect(item).toMatchObject({ state: 'queued' });
      expect(item!.nextAttemptAt!.getTime()).toBeGreaterThan(Date.now() + 1000 * 3600 * 24 * 365);
      expect(item!.lastError).toMatch(/^held: embargo/);
    } finally {
      await svc.stop();
    }

    const src2 = new TestSource('test:rate');
    const svc2 = await serve(config(await h.freshUrl(), { list: { rateLimit: { perHour: 1 } } }), [src2]);
    try {
      const other = variantOfPatch(thread[0]!, {
        messageId: '<other-patch@citrix.com>',
        subject: '[PATCH v2 2/9] x86/fpu: Another change with the same code',
      });
      src2.push([thread[0]!, other], 'a');
      await svc2.runOnce(ONCE);
      expect(rx.messages).toHaveLength(1);
      const held = await svc2.store.getReply('reply:<other-patch@citrix.com>');
      expect(held).toMatchObject({ state: 'queued' });
      expect(held!.lastError).toMatch(/^held: rate limit/);
      expect(held!.nextAttemptAt!.getTime()).toBeGreaterThan(Date.now() + 3500_000);
    } finally {
      await svc2.stop();
    }
  });

  test('hostile mail: logged with its source, skipped; header injection never reaches the reply or the envelope', async () => {
    const mem = memoryLogger();
    const cfg = config(await h.freshUrl(), { top: { http: { listen: '127.0.0.1:0' } } });
    const src = new TestSource('test:hostile');
    const svc = await serve(cfg, [src], mem.logger);
    await svc.start();
    try {
      const patchText = thread[0]!.raw.toString('utf8');
      const truncated = rawMail(patchText.slice(0, 300).replace(/\n[^\n]*$/, ''), 'truncated');
      const garbage: RawMessage = { raw: Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919 + 13) % 256)), ref: { source: 'garbage:0', file: 'garbage', offset: 0, length: 4096 } };
      const big = rawMail(`X-Junk: ${'a'.repeat(76)}\n${' b'.repeat(38).concat('\n').repeat(27_000)}${patchText.replace(/^Message-ID: <[^>]+>/m, 'Message-ID: <big@x.org>')}`, 'big');
      expect(big.raw.length).toBeGreaterThan(2_000_000);
      const injected = variantOfPatch(thread[0]!, {
        messageId: '<inject@citrix.com>',
        subject: '=?UTF-8?Q?[PATCH]_x86:_fix=0D=0ABcc:_victim@evil.example=0D=0A=0D=0Abody?=',
      });
      const injectedFrom = rawMail(
        injected.raw
          .toString('utf8')
          .replace(/^From: .*$/m, 'From: =?UTF-8?Q?Ross=0D=0ABcc:_victim2@evil.example?= <ross.lagerwall@citrix.com>'),
        'injected',
      );
      const empty = rawMail('', 'empty');
      src.push([garbage, truncated, big, injectedFrom, empty], 'h1');
      await svc.settle();

      const errors = mem.lines.filter((l) => l.msg && String(l.msg).startsWith('message skipped'));
      expect(errors.map((e) => e.ref).sort()).toEqual(['empty:0', 'garbage:0']);
      expect(errors.every((e) => e.source === 'test:hostile')).toBe(true);

      const res = await fetch(`http://127.0.0.1:${svc.httpPort}/healthz`);
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ ok: true });
      const metrics = await (await fetch(`http://127.0.0.1:${svc.httpPort}/metrics`)).text();
      expect(metrics).toContain('patchvet_errors_total{source="test:hostile"} 2');

      // The injected patch is answered, with one-line headers and a clean envelope.
      const m = rx.messages.find((x) => header(x.raw, 'In-Reply-To') === '<inject@citrix.com>');
      expect(m).toBeDefined();
      expect(headerNames(m!.raw)).not.toContain('bcc');
      expect(m!.raw).not.toMatch(/^Bcc:/im);
      expect(m!.to).not.toContain('victim@evil.example');
      expect(m!.to).not.toContain('victim2@evil.example');
      expect(m!.to[0]).toBe('ross.lagerwall@citrix.com');
      expect(header(m!.raw, 'Subject')).toMatch(/^Re: \[PATCH\] x86: fix Bcc: victim@evil\.example body$/);
      // And the service keeps working.
      src.push([thread[1]!], 'h2');
      await svc.settle();
      expect(await svc.store.hasMessage(REVIEW_ID)).toBe(true);
    } finally {
      await svc.stop();
    }
  });
});

test('--once with a source that cannot poll on demand: read until it is quiet', async () => {
  const h = sqliteHarness();
  await h.setup();
  try {
    const inner = new TestSource('push:one');
    // Only the LiveSource contract: no pollNow().
    const push = { key: inner.key, run: inner.run.bind(inner), health: inner.health.bind(inner) };
    const svc = await kit.open(config(await h.freshUrl()), [push]);
    try {
      inner.push(thread, null);
      const t0 = Date.now();
      await svc.runOnce({ settleMs: 150, deadlineMs: 20_000 });
      expect(Date.now() - t0).toBeLessThan(5000);
      expect(rx.messages).toHaveLength(1);
      // A push source has no position to store.
      expect(await svc.store.getPosition('push:one')).toBeNull();
    } finally {
      await svc.stop();
    }
  } finally {
    await h.teardown();
  }
});

test('a message the reviewer chokes on is given up after 3 tries; the queue moves on', async () => {
  const h = sqliteHarness();
  await h.setup();
  const mem = memoryLogger();
  // A rule whose every property but its id throws: the engine fails on any patch.
  const boom = new Proxy({} as RuleSpec, {
    get: (_t, p) => {
      if (p === 'id') return 'xen/boom';
      throw new Error('boom');
    },
  });
  const svc = await Service.open({ config: config(await h.freshUrl()), sources: [], rules: { rules: [boom, ...rules.rules.filter((r) => r.id.startsWith('common/'))], kb: rules.kb }, logger: mem.logger });
  try {
    await svc.intake({ key: 't' }, { messages: thread, position: 'p' });
    for (let i = 0; i < 3; i++) await svc.processPending();
    expect(await svc.store.pendingMessages(10)).toEqual([]);
    const lines = mem.lines.filter((l) => l.messageId === PATCH_ID);
    expect(lines.filter((l) => l.msg === 'processing: review failed')).toHaveLength(3);
    expect(lines.some((l) => l.msg === 'processing: giving up on this message (left unreviewed)')).toBe(true);
    expect(rx.messages).toHaveLength(0);
  } finally {
    await svc.stop();
    await h.teardown();
  }
});

test('the store is closed after stop(); a second store can open the same file', async () => {
  const h = sqliteHarness();
  await h.setup();
  try {
    const url = await h.freshUrl();
    const svc = await serve(config(url), [new TestSource('t')]);
    await svc.stop();
    const st = await openStore(url);
    expect(await st.pendingMessages(1)).toEqual([]);
    await st.close();
  } finally {
    await h.teardown();
  }
});
