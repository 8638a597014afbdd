// serve's pure policy: who is answered, when, with what, and how feedback and delivery failures
// are read. Records come from the real xen-devel thread and from mails re-created here.
import { readFileSync } from 'node:fs';
import { recordFromRaw, recordFromText } from '../../src/mail/record.js';
import type { Finding, MessageRecord } from '../../src/model.js';
import { splitMboxBuffer } from '../../src/sources/mbox.js';
import type { ListConfig } from '../../src/serve/config.js';
import {
  addressGlob,
  classifySmtpError,
  decide,
  envelope,
  envelopeAddress,
  feedbackOf,
  holdUntil,
  ignoredRules,
  lineageKey,
  matchList,
  rulesMentioned,
  retryDelay,
  selectFindings,
  type PolicyContext,
} from '../../src/serve/policy.js';
import { join } from 'node:path';

const FIXTURE = join(process.cwd(), '../shared/fixtures/xen-fpu-reset-v2-1of9.mbox');
let patch: MessageRecord;
let review: MessageRecord;
let answer: MessageRecord;

beforeAll(async () => {
  const msgs = splitMboxBuffer(readFileSync(FIXTURE), FIXTURE);
  [patch, review, answer] = await Promise.all(msgs.map((m) => recordFromRaw(m)));
});

const XEN: ListConfig = {
  address: 'xen-devel@lists.xenproject.org',
  listId: null,
  rules: ['xen'],
  reply: 'list',
  mute: [],
  embargoHours: 0,
  rateLimit: null,
};
const OTHER: ListConfig = { ...XEN, address: 'linux-hyperv@vger.kernel.org', rules: null };

function ctx(over: Partial<PolicyContext> = {}): PolicyContext {
  return {
    lists: [XEN],
    botAddress: 'bot@example.org',
    maxAgeSeconds: null,
    now: new Date('2026-03-25T00:00:00Z'),
    ...over,
  };
}

function mail(headers: string, body = 'Text.\n'): Promise<MessageRecord> {
  return recordFromText(`${headers.trim()}\n\n${body}`);
}

const DIFF = `---
 xen/arch/x86/domain.c | 1 +
 1 file changed, 1 insertion(+)

diff --git a/xen/arch/x86/domain.c b/xen/arch/x86/domain.c
--- a/xen/arch/x86/domain.c
+++ b/xen/arch/x86/domain.c
@@ -10,3 +10,4 @@ int arch_vcpu_create(struct vcpu *v)
     a();
+    b();
     c();
`;

function finding(over: Partial<Finding>): Finding {
  return {
    rule: 'xen/idle-vcpu-path',
    severity: 'warning',
    title: 't',
    message: 'm',
    messageId: '<p@x>',
    subject: 's',
    series: null,
    file: 'xen/arch/x86/domain.c',
    line: 525,
    side: 'new',
    function: 'arch_vcpu_create',
    code: 'vcpu_reset_fpu(v);',
    fingerprint: 'fp1',
    source: 'rule',
    ...over,
  };
}

describe('matchList', () => {
  test('by List-Id / List-Post, then To / Cc', async () => {
    expect(patch.listIds).toContain('xen-devel.lists.xenproject.org');
    expect(matchList(patch, [OTHER, XEN])).toBe(XEN);
    const direct = await mail('From: a <a@x.org>\nTo: Xen-Devel@lists.xenproject.org\nSubject: [PATCH] x: y\nMessage-ID: <d@x>');
    expect(matchList(direct, [XEN])).toBe(XEN);
    const cc = await mail('From: a <a@x.org>\nTo: b@x.org\nCc: linux-hyperv@vger.kernel.org\nSubject: [PATCH] x\nMessage-ID: <c@x>');
    expect(matchList(cc, [XEN, OTHER])).toBe(OTHER);
    const none = await mail('From: a <a@x.org>\nTo: b@x.org\nSubject: [PATCH] x\nMessage-ID: <n@x>');
    expect(matchList(none, [XEN, OTHER])).toBeNull();
    // A configured listId matches a List-Id that is not the address.
    const custom = { ...XEN, address: 'devel@example.org', listId: 'xen-devel.lists.xenproject.org' };
    expect(matchList(review, [custom])).toBe(custom);
  });
});

describe('decide', () => {
  test('the reference patch is answered on the list; its replies never', () => {
    expect(patch.kind).toBe('patch');
    expect(decide(patch, ctx())).toMatchObject({ action: 'send', review: true, audience: 'list', list: XEN });
    for (const r of [review, answer]) expect(decide(r, ctx())).toMatchObject({ action: 'none', review: false, reason: 'not a patch (reply)' });
  });

  test('reply modes: off previews, author answers the author only', () => {
    expect(decide(patch, ctx({ lists: [{ ...XEN, reply: 'off' }] }))).toMatchObject({ action: 'preview', review: true });
    expect(decide(patch, ctx({ lists: [{ ...XEN, reply: 'author' }] }))).toMatchObject({ action: 'send', audience: 'author' });
  });

  test('a patch from a vger.kernel.org list, which stamps "Precedence: bulk" on every mail, is answered', async () => {
    // The first patch of the real linux-hyperv sample, headers as the list delivered them.
    const { readInputs } = await import('../../src/sources/index.js');
    let first: MessageRecord | null = null;
    for await (const m of readInputs([join(process.cwd(), '../shared/fixtures/real/linux-hyperv-2026.mbox.gz')])) {
      const r = await recordFromRaw(m);
      if (r.kind === 'patch' && /^Precedence: bulk$/im.test(m.raw.toString('latin1'))) {
        first = r;
        break;
      }
    }
    expect(first).not.toBeNull();
    const d = decide(first!, ctx({ lists: [OTHER], now: new Date(first!.date ?? 0) }));
    expect(d).toMatchObject({ action: 'send', review: true });
  });

  test('never: own mail, automated mail, muted senders, old mail, other lists', async () => {
    expect(decide(patch, ctx({ botAddress: 'Ross.Lagerwall@citrix.com' })).reason).toBe('own mail');
    const auto = await mail(
      'From: a <a@x.org>\nTo: xen-devel@lists.xenproject.org\nSubject: [PATCH] x: y\nMessage-ID: <a@x>\nAuto-Submitted: auto-generated',
      'Change.\n' + DIFF,
    );
    expect(auto.kind).toBe('patch');
    expect(decide(auto, ctx()).reason).toBe('automated mail');
    const ours = await mail(
      'From: someone <s@x.org>\nTo: xen-devel@lists.xenproject.org\nSubject: [PATCH] x: y\nMessage-ID: <o@x>\nX-Patchvet: findings=1',
      'Change.\n' + DIFF,
    );
    expect(decide(ours, ctx()).reason).toBe('automated mail');
    expect(decide(patch, ctx({ lists: [{ ...XEN, mute: ['*@citrix.com'] }] })).reason).toBe('muted sender');
    expect(decide(patch, ctx({ lists: [{ ...XEN, mute: ['ross.lagerwall@*'] }] })).reason).toBe('muted sender');
    expect(decide(patch, ctx({ lists: [{ ...XEN, mute: ['*@suse.com'] }] })).action).toBe('send');
    // Max age: a first start on an old archive answers nothing from it.
    const later = new Date('2026-11-24T00:00:00Z');
    expect(decide(patch, ctx({ now: later, maxAgeSeconds: 7 * 86400 })).reason).toBe('older than maxAge');
    expect(decide(patch, ctx({ now: later, maxAgeSeconds: null })).action).toBe('send');
    expect(decide(patch, ctx({ now: later, maxAgeSeconds: 7 * 86400, lists: [{ ...XEN, maxAgeSeconds: null }] })).action).toBe('send');
    expect(decide(patch, ctx({ lists: [OTHER] })).reason).toBe('not on a configured list');
  });
});

describe('holdUntil', () => {
  const queuedAt = new Date('2026-03-24T18:20:00Z');
  test('embargo counts from the patch date', () => {
    const l = { ...XEN, embargoHours: 24 };
    const h = holdUntil(patch, l, { now: new Date('2026-03-25T00:00:00Z'), queuedAt, sentAt: [] });
    expect(h?.until.toISOString()).toBe('2026-03-25T18:19:29.000Z');
    expect(holdUntil(patch, l, { now: new Date('2026-03-25T18:20:00Z'), queuedAt, sentAt: [] })).toBeNull();
    // A forged date in the future counts from when the reply was queued.
    const future = { date: '2099-01-01T00:00:00.000Z' };
    expect(holdUntil(future, l, { now: new Date('2026-03-25T00:00:00Z'), queuedAt, sentAt: [] })?.until.toISOString()).toBe(
      '2026-03-25T18:20:00.000Z',
    );
  });

  test('rate limit: the excess waits for a slot, never dropped', () => {
    const l = { ...XEN, rateLimit: { perHour: 2 } };
    const now = new Date('2026-03-25T12:00:00Z').getTime();
    const sent = [now - 3000_000, now - 60_000, now - 7200_000];
    const h = holdUntil(patch, l, { now: new Date(now), queuedAt, sentAt: sent });
    expect(h?.until.getTime()).toBe(now - 3000_000 + 3600_000 + 1);
    expect(holdUntil(patch, l, { now: new Date(now), queuedAt, sentAt: [now - 60_000] })).toBeNull();
    expect(holdUntil(patch, null, { now: new Date(now), queuedAt, sentAt: sent })).toBeNull();
  });
});

describe('selectFindings', () => {
  test('posted before, discussed at the same file+function, ignored rules', () => {
    const a = finding({ fingerprint: 'a' });
    const b = finding({ fingerprint: 'b', rule: 'xen/fpu-init-order', function: 'vcpu_init_fpu' });
    const c = finding({ fingerprint: 'c', rule: 'xen/alloc-time-init', function: 'xstate_alloc_save_area', file: 'xen/arch/x86/xstate.c' });
    const none = selectFindings([a, b, c], { posted: new Set(), answered: [], ignored: new Set() });
    expect(none.post).toEqual([a, b, c]);
    const sel = selectFindings([a, b, c], {
      posted: new Set(['a']),
      answered: [{ file: 'xen/arch/x86/domain.c', function: 'vcpu_init_fpu' }],
      ignored: new Set(['xen/alloc-time-init']),
    });
    expect(sel.post).toEqual([]);
    expect(sel.skipped.map((s) => s.reason)).toEqual(['posted before', 'already discussed', 'ignored']);
    // Same file, other function: still new.
    const other = selectFindings([a], { posted: new Set(), answered: [{ file: a.file!, function: 'other' }], ignored: new Set() });
    expect(other.post).toEqual([a]);
  });

  test('the real review is anchored to the function the findings are about', async () => {
    // Andrew's review of the reference patch comments on arch_vcpu_create in domain.c, the
    // very spot of the three findings: as an earlier version's discussion it would silence them.
    const { assembleThread } = await import('../../src/thread/assemble.js');
    const { buildThreads } = await import('../../src/thread/jwz.js');
    const recs = [patch, review, answer];
    const t = assembleThread(buildThreads(recs).threads[0]!, (id) => recs.find((r) => r.messageId === id));
    const comments = t.messages.find((m) => m.messageId === review.messageId)!.comments;
    expect(comments.some((c) => c.file === 'xen/arch/x86/domain.c' && c.function === 'arch_vcpu_create')).toBe(true);
  });

  test('lineage: same sender and title across versions, whatever the marker', async () => {
    const v2 = await mail('From: A <a@x.org>\nSubject: [PATCH v2 3/9] x86/fpu: Reset the FPU.\nMessage-ID: <v2@x>', 'x\n' + DIFF);
    const v3 = await mail('From: A <A@x.org>\nSubject: [PATCH v3 2/8] x86/fpu: reset the FPU\nMessage-ID: <v3@x>', 'x\n' + DIFF);
    const other = await mail('From: B <b@x.org>\nSubject: [PATCH v3 2/8] x86/fpu: reset the FPU\nMessage-ID: <o@x>', 'x\n' + DIFF);
    expect(lineageKey(v2)).toBe(lineageKey(v3));
    expect(lineageKey(other)).not.toBe(lineageKey(v3));
  });
});

describe('feedback', () => {
  const bot = '<patchvet.abc@example.org>';
  test('Review-Bot-Ignore lines and "false positive" near a quoted finding', async () => {
    const r = await mail(
      `From: Jan <jbeulich@suse.com>\nTo: bot@example.org\nSubject: Re: [PATCH] x\nMessage-ID: <f1@x>\nIn-Reply-To: ${bot}`,
      `On Tue, patchvet wrote:
> The idle vCPU never runs arch_vcpu_create()'s non-idle path.
> (xen/idle-vcpu-path, warning)

This is a false positive: idle vCPUs are set up elsewhere.

> vcpu_reset_fpu() sets v->fpu_initialised = false;
> (xen/fpu-init-order, warning)

Right.

Review-Bot-Ignore: xen/alloc-time-init
`,
    );
    const fb = feedbackOf(r);
    expect(fb.ignore).toEqual(['xen/alloc-time-init']);
    expect(fb.falsePositive).toBe(true);
    expect(fb.near).toEqual(['xen/idle-vcpu-path']);
    expect(fb.excerpt).toMatch(/^This is a false positive/);
  });

  test('quoted instructions are not instructions; agreement is not a dispute', async () => {
    const r = await mail(
      `From: Jan <jbeulich@suse.com>\nSubject: Re: [PATCH] x\nMessage-ID: <f2@x>\nIn-Reply-To: ${bot}`,
      `> To silence a rule on this thread, reply with
> Review-Bot-Ignore: xen/idle-vcpu-path
> This might be a false positive.

Good catch, thanks.
`,
    );
    expect(feedbackOf(r)).toMatchObject({ ignore: [], falsePositive: false });
    expect(ignoredRules(r)).toEqual([]);
  });

  test('rule ids the bot wrote', () => {
    expect(rulesMentioned('x\n(xen/fpu-init-order, warning)\n[common/fixes-tag] a general point\n(xen/idle-vcpu-path, error)')).toEqual([
      'xen/fpu-init-order',
      'common/fixes-tag',
      'xen/idle-vcpu-path',
    ]);
  });
});

describe('envelope and delivery failures', () => {
  test('only clean addresses reach the SMTP envelope; never the bot itself', () => {
    expect(envelopeAddress('Ross Lagerwall <ross.lagerwall@citrix.com>')).toBe('ross.lagerwall@citrix.com');
    expect(envelopeAddress('evil@x.org\r\nRCPT TO:<other@y.org>')).toBeNull();
    expect(envelopeAddress('a b@x.org')).toBeNull();
    expect(envelopeAddress('"quoted"@x.org')).toBeNull();
    expect(envelopeAddress('nobody')).toBeNull();
    const e = envelope(
      ['Ross <ross@citrix.com>'],
      ['xen-devel@lists.xenproject.org', 'Bot <BOT@example.org>', 'ross@citrix.com', 'bad address@x'],
      'bot@example.org',
    );
    expect(e).toEqual({ to: ['ross@citrix.com'], cc: ['xen-devel@lists.xenproject.org'] });
  });

  test('5xx is permanent, 4xx and network errors are temporary; backoff doubles up to the cap', () => {
    expect(classifySmtpError({ responseCode: 550 })).toBe('permanent');
    expect(classifySmtpError({ responseCode: 451 })).toBe('temporary');
    expect(classifySmtpError({ code: 'ECONNREFUSED' })).toBe('temporary');
    expect(classifySmtpError(null)).toBe('temporary');
    const retry = { initialDelaySeconds: 30, maxDelaySeconds: 3600, maxPermanentFailures: 3 };
    expect([1, 2, 3, 8, 30].map((n) => retryDelay(n, retry, 0))).toEqual([30, 60, 120, 3600, 3600]);
    expect(retryDelay(1, retry, 1)).toBeCloseTo(33);
  });

  test('address globs', () => {
    expect(addressGlob('*@bots.example.org').test('ci@bots.example.org')).toBe(true);
    expect(addressGlob('*@bots.example.org').test('ci@bots.example.org.evil')).toBe(false);
    expect(addressGlob('syzbot+?@x.org').test('syzbot+1@x.org')).toBe(true);
  });
});
