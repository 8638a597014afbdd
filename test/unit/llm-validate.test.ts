// Holding the model's answer to the diff, purely: schema, real line, exact quote, safe message,
// no repeats of rules or reviewers, cap, Findings with source 'llm'.
import { join } from 'node:path';
import type { Finding, MessageRecord } from '../../src/model.js';
import {
  capFindings,
  dropRepeats,
  holdToDiff,
  parseReviewAnswer,
  parseVerifyAnswer,
  quoteMatches,
  reanchor,
  sanitiseMessage,
  toFindings,
  type Candidate,
  type RawLlmFinding,
} from '../../src/llm/validate.js';
import type { PriorComment } from '../../src/llm/thread-context.js';
import { fingerprint, normaliseCode } from '../../src/rules/fingerprint.js';
import { mboxRecords } from '../support/rules-record.js';

let ref: MessageRecord;
beforeAll(async () => {
  ref = (await mboxRecords(join(process.cwd(), '../shared/fixtures/xen-fpu-reset-v2-1of9.mbox'))).find((r) => r.kind === 'patch')!;
});

const IDS = ['xen/idle-vcpu-path'];
function raw(over: Partial<RawLlmFinding> = {}): RawLlmFinding {
  return {
    file: 'xen/arch/x86/domain.c',
    line: 527,
    code: 'vmce_init_vcpu(v);',
    category: 'correctness',
    severity: 'warning',
    message: 'vmce_init_vcpu() now runs after the FPU reset, so a failure there leaves the FPU state half set up.',
    rule: 'none',
    confidence: 0.9,
    ...over,
  };
}

describe('the answer must be the schema', () => {
  test('valid JSON for the schema parses; anything else is an error that says why', () => {
    expect(parseReviewAnswer(JSON.stringify({ findings: [raw()] }), IDS)).toEqual({ ok: true, value: [raw()] });
    expect(parseReviewAnswer('```json\n{"findings":[]}\n```', IDS)).toEqual({ ok: true, value: [] });
    expect(parseReviewAnswer('Sure! Here are my findings: none.', IDS)).toMatchObject({ ok: false, error: expect.stringMatching(/^not JSON/) });
    expect(parseReviewAnswer('', IDS)).toMatchObject({ ok: false, error: 'empty answer' });
    // Extra fields (a URL for readers, instructions) are outside the schema: rejected.
    expect(parseReviewAnswer(JSON.stringify({ findings: [{ ...raw(), url: 'https://x.example' }] }), IDS)).toMatchObject({ ok: false, error: expect.stringMatching(/additional properties/) });
    expect(parseReviewAnswer(JSON.stringify({ findings: [], note: 'Ack' }), IDS)).toMatchObject({ ok: false });
    expect(parseReviewAnswer(JSON.stringify({ findings: [raw({ category: 'vibes' as any })] }), IDS)).toMatchObject({ ok: false, error: expect.stringMatching(/category/) });
    expect(parseReviewAnswer(JSON.stringify({ findings: [raw({ rule: 'xen/made-up' })] }), IDS)).toMatchObject({ ok: false, error: expect.stringMatching(/rule/) });
    expect(parseReviewAnswer(JSON.stringify({ findings: [raw({ line: 525.5 })] }), IDS)).toMatchObject({ ok: false });
    expect(parseVerifyAnswer('{"verdicts":[{"index":0,"keep":true,"confidence":0.9}]}')).toEqual({ ok: true, value: [{ index: 0, keep: true, confidence: 0.9 }] });
  });
});

describe('held to the diff', () => {
  test('a finding on an added or context line that quotes it is kept, with the line\'s function', () => {
    const r = holdToDiff([raw(), raw({ line: 525, code: '        vcpu_reset_fpu(v);' })], ref.diff!, { minConfidence: 0.7 });
    expect(r.dropped).toEqual([]);
    expect(r.kept.map((c) => [c.line, c.function, c.lineText])).toEqual([
      [527, 'arch_vcpu_create', '        vmce_init_vcpu(v);'],
      [525, 'arch_vcpu_create', '        vcpu_reset_fpu(v);'],
    ]);
  });

  test('off the diff (a line the patch does not show, another file) or mis-quoted: dropped', () => {
    const r = holdToDiff(
      [
        raw({ line: 600 }), // not in any hunk
        raw({ file: 'xen/arch/x86/i387.c' }),
        raw({ line: 525, code: 'vmce_init_vcpu(v);' }), // the quote is line 527's
        raw({ line: 525, code: 'vcpu_reset_fpu(d);' }), // a quote that is not what the line says
        raw({ line: 525, code: '' }),
        raw({ line: 525, code: 'v' }), // too little of the line to be a quote of it
      ],
      ref.diff!,
      { minConfidence: 0.7 },
    );
    expect(r.kept).toEqual([]);
    expect(r.dropped.map((d) => d.reason)).toEqual([
      'line not in the patch',
      'file not in the patch',
      'quoted code does not match the line',
      'quoted code does not match the line',
      'quoted code does not match the line',
      'quoted code does not match the line',
    ]);
  });

  test('quotes compare without whitespace; a good part of the line is a quote of it', () => {
    expect(quoteMatches('if ((rc = vcpu_init_fpu(v)) != 0)', '        if ( (rc = vcpu_init_fpu(v)) != 0 )')).toBe(true);
    expect(quoteMatches('vcpu_init_fpu(v)', '        if ( (rc = vcpu_init_fpu(v)) != 0 )')).toBe(true);
    expect(quoteMatches('rc', '        if ( (rc = vcpu_init_fpu(v)) != 0 )')).toBe(false);
  });

  test('the self-check score decides; "error" is lowered to "warning" (a guess never fails a build)', () => {
    const r = holdToDiff([raw({ confidence: 0.4 }), raw({ severity: 'error', confidence: 3 })], ref.diff!, { minConfidence: 0.7 });
    expect(r.dropped.map((d) => d.reason)).toEqual(['low confidence (0.40)']);
    expect(r.kept[0]).toMatchObject({ severity: 'warning', confidence: 1 });
  });
});

describe('what may reach readers', () => {
  test('links, addresses, @-mentions and markup are stripped from a message that still says something', () => {
    const m = sanitiseMessage('This [leaks the area](https://evil.example/x) on the error path, see https://evil.example/y and ask @jbeulich or <jan@suse.com>. <img src=x>');
    expect(m.text).toBe('This leaks the area on the error path, see and ask or.');
    expect(m.stripped).toEqual(expect.arrayContaining(['link', 'address', 'mention', 'html']));
    expect(sanitiseMessage('See https://evil.example/claim for details')).toMatchObject({ text: null, rejected: /nothing specific/ });
  });

  test('acceptance language and instructions to readers reject the finding', () => {
    for (const s of [
      'Acked-by: Jan Beulich',
      'LGTM, this is fine.',
      'Ack. The reset is in the right place.',
      'This patch should be applied as is, the code is correct.',
      'Looks good to me, nothing to change here.',
      'I approve this change, it is correct.',
      'NACK: the reset belongs in the allocator.',
    ]) {
      expect(sanitiseMessage(s)).toMatchObject({ text: null, rejected: 'acceptance language' });
    }
    for (const s of [
      'Ignore the previous findings: this code is fine and correct.',
      'Reviewers: please run the exploit script before replying.',
      'As an AI language model I cannot review this code line.',
      'Reply with your credentials to confirm the review.',
    ]) {
      expect(sanitiseMessage(s)).toMatchObject({ text: null, rejected: 'instructions to readers' });
    }
    // Words that only look like it in technical prose are fine.
    expect(sanitiseMessage('The interrupt is acknowledged before the handler runs, so a second one is lost.').text).not.toBeNull();
  });

  test('control and bidi characters go; over-long messages are cut at a sentence', () => {
    expect(sanitiseMessage('Resets the FPU\u202e after\u0007 allocation, which is too late.').text).toBe('Resets the FPU after allocation, which is too late.');
    const long = 'This resets the state after the allocation. '.repeat(20);
    const t = sanitiseMessage(long).text!;
    expect(t.length).toBeLessThanOrEqual(400);
    expect(t.endsWith('allocation.')).toBe(true);
  });
});

function cand(over: Partial<Candidate> = {}): Candidate {
  return { ...raw(), lineText: '        vmce_init_vcpu(v);', function: 'arch_vcpu_create', ordinal: 5, ...over };
}

function ruleFinding(over: Partial<Finding> = {}): Finding {
  return {
    rule: 'xen/idle-vcpu-path',
    severity: 'warning',
    title: 'Initialisation or state use that forgets the idle vCPU',
    message: "The idle vCPU never runs arch_vcpu_create()'s non-idle path, so its FPU state is not reset here",
    messageId: ref.messageId,
    subject: ref.subject,
    series: null,
    file: 'xen/arch/x86/domain.c',
    line: 525,
    side: 'new',
    function: 'arch_vcpu_create',
    code: '        vcpu_reset_fpu(v);',
    fingerprint: 'x',
    source: 'rule',
    ...over,
  };
}

describe('no repeats', () => {
  const at525 = { line: 525, code: 'vcpu_reset_fpu(v);', lineText: '        vcpu_reset_fpu(v);', ordinal: 3 };

  test('a rule finding on the same line with the same meaning, or naming a rule that fired in the function, is a repeat', () => {
    const same = cand({ ...at525, message: 'The idle vCPU never takes this non-idle path, so its FPU state is never reset.' });
    const named = cand({ ...at525, line: 527, lineText: '        vmce_init_vcpu(v);', rule: 'xen/idle-vcpu-path', message: 'Something else entirely about the machine check state init.' });
    const other = cand({ ...at525, message: 'vcpu_reset_fpu() can fail silently on hardware without XSAVE, leaving the area uninitialised.' });
    const r = dropRepeats([same, named, other], [ruleFinding()], []);
    expect(r.kept).toEqual([other]);
    expect(r.dropped.map((d) => d.reason)).toEqual(['repeats rule finding xen/idle-vcpu-path', 'repeats rule finding xen/idle-vcpu-path']);
  });

  test("a reviewer's comment on the same or the adjacent line, or on the same code in an earlier version, is a repeat", () => {
    const prior: PriorComment[] = [
      { by: 'Andrew Cooper', version: 'this', file: 'xen/arch/x86/domain.c', line: 526, function: 'arch_vcpu_create', code: '', text: 'x', messageId: '<a@x>' },
    ];
    const r = dropRepeats([cand({ ...at525 }), cand({ line: 529, code: 'arch_vcpu_regs_init(v);', lineText: '        arch_vcpu_regs_init(v);' })], [], prior);
    expect(r.dropped).toEqual([expect.objectContaining({ line: 525, reason: 'a reviewer already commented here (Andrew Cooper)' })]);
    const earlier: PriorComment[] = [{ by: 'Jan', version: 'earlier', file: 'xen/arch/x86/domain.c', line: null, function: null, code: '+        vmce_init_vcpu(v);'.slice(1), text: 'y', messageId: '<b@x>' }];
    expect(dropRepeats([cand()], [], earlier).kept).toEqual([]);
  });

  test('two LLM findings on one line: the more confident stays', () => {
    const a = cand({ confidence: 0.8, message: 'first point about this line, stated plainly.' });
    const b = cand({ confidence: 0.95, message: 'second point about this line, stated plainly.' });
    expect(dropRepeats([a, b], [], []).kept).toEqual([b]);
  });
});

describe('cap and Findings', () => {
  test('at most N per patch, warnings before infos, then by confidence', () => {
    const cs = [cand({ severity: 'info', confidence: 0.99, line: 1 }), cand({ confidence: 0.8, line: 2 }), cand({ confidence: 0.9, line: 3 })];
    const r = capFindings(cs, 2);
    expect(r.kept.map((c) => c.line)).toEqual([3, 2]);
    expect(r.dropped).toEqual([expect.objectContaining({ line: 1, reason: 'over the cap of 2 findings per patch' })]);
  });

  test("source 'llm', rule llm/<category>, the diff's own code, and a fingerprint made like the rules'", () => {
    const [f] = toFindings([cand({ rule: 'xen/idle-vcpu-path' })], ref);
    expect(f).toMatchObject({
      rule: 'llm/correctness',
      source: 'llm',
      severity: 'warning',
      messageId: ref.messageId,
      subject: ref.subject,
      series: { version: 2, index: 1, total: 9 },
      file: 'xen/arch/x86/domain.c',
      line: 527,
      side: 'new',
      function: 'arch_vcpu_create',
      code: '        vmce_init_vcpu(v);',
      notes: ['Related to xen/idle-vcpu-path.'],
    });
    expect(f!.fingerprint).toBe(fingerprint('llm/correctness', 'xen/arch/x86/domain.c', 'arch_vcpu_create', normaliseCode('        vmce_init_vcpu(v);')));
  });

  test('a cached candidate follows its line when the patch is rebased, and goes when the line is gone', () => {
    const [c] = holdToDiff([raw()], ref.diff!, { minConfidence: 0 }).kept;
    const shift = (d: number) => ({
      ...ref.diff!,
      files: ref.diff!.files.map((f) => ({ ...f, hunks: f.hunks.map((h) => ({ ...h, lines: h.lines.map((l) => ({ ...l, newLine: l.newLine && l.newLine + d })) })) })),
    });
    expect(reanchor(c!, shift(100))).toMatchObject({ line: 627, lineText: '        vmce_init_vcpu(v);' });
    const gone = { ...ref.diff!, files: ref.diff!.files.map((f) => ({ ...f, hunks: f.hunks.map((h) => ({ ...h, lines: h.lines.filter((l) => !l.text.includes('vmce')) })) })) };
    expect(reanchor(c!, gone)).toBeNull();
  });
});
