// `patchvet eval`: findings against the comments maintainers made on the same threads, per
// source (rules, LLM) and per rule. On the real xen-devel threads, and on a made-up thread
// that has every kind of reply (a reviewer, the author answering, a CI bot, a bare
// Reviewed-by).
import { join } from 'node:path';
import { loadCorpus } from '../../src/pipeline.js';
import type { Finding, Thread } from '../../src/model.js';
import { evaluate, reviewComments, type EvalPatch } from '../../src/review/eval.js';
import { run } from '../helpers/cli.js';
import { FakeOpenAI, answer } from '../helpers/fake-openai.js';

const FIX = join(process.cwd(), '../shared/fixtures');
const REF = join(FIX, 'xen-fpu-reset-v2-1of9.mbox');
const MADE_UP = join(process.cwd(), 'test/fixtures/llm/eval-thread.mbox');
const XEN3 = ['xen/alloc-time-init', 'xen/fpu-init-order', 'xen/idle-vcpu-path'];

async function threadOf(path: string): Promise<Thread> {
  const c = await loadCorpus([path], { workers: 0 });
  try {
    return c.thread(c.threads.at(0)!);
  } finally {
    c.close();
  }
}

describe('on the real xen-devel threads', () => {
  test("the reference thread: the maintainer's comment on line 525 is matched by the three Xen rules", async () => {
    const r = await run(['eval', REF, '--format', 'json']);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.out);
    expect(doc).toMatchObject({ schema: 'patchvet/eval@1', window: 3, patches: 1, patchesWithComments: 1, comments: 1, generalComments: 2 });
    expect(doc.sources.rule).toMatchObject({ findings: 3, matchedFindings: 3, unmatchedFindings: 0, comments: 1, matchedComments: 1, missedComments: 0, precision: 1, recall: 1 });
    expect(doc.sources.rule.rules).toEqual(XEN3.map((rule) => ({ rule, findings: 1, matched: 1, unmatched: 0, comments: 1, mailLevel: 0 })));
    expect(doc.sources.llm).toBeNull();
    expect(doc.commentRows).toEqual([
      expect.objectContaining({ file: 'xen/arch/x86/domain.c', line: 525, by: 'Andrew Cooper', matchedBy: { rule: XEN3, llm: [] } }),
    ]);
    expect(doc.unmatched).toEqual([]);
  });

  test('the eager-fpu series: 1/9 matched; the two comments on 7/9 (domctl.c) are misses', async () => {
    const doc = JSON.parse((await run(['eval', join(FIX, 'xen-eager-fpu-v2.mbox'), '--format', 'json'])).out);
    expect(doc).toMatchObject({ patches: 9, patchesWithComments: 2, comments: 3 });
    expect(doc.sources.rule).toMatchObject({ matchedComments: 1, missedComments: 2 });
    expect(doc.commentRows.map((c: any) => `${c.file}:${c.line} ${c.matchedBy.rule.length ? 'matched' : 'missed'}`)).toEqual([
      'xen/arch/x86/domain.c:525 matched',
      'xen/arch/x86/domctl.c:1409 missed',
      'xen/arch/x86/domctl.c:1412 missed',
    ]);
  });

  test('text output: per source and per rule, then each comment and what matched it', async () => {
    const r = await run(['eval', REF]);
    expect(r.out).toMatch(/^1 patch, 1 with reviewers' comments on diff lines: 1 comment compared \(2 on the commit message or prose, not compared\)/);
    expect(r.out).toMatch(/^rules: 1 of 1 comment matched \(recall 100%\), 0 missed; 3 of 3 line findings near a comment \(precision 100%\)$/m);
    expect(r.out).toMatch(/^ {2}xen\/idle-vcpu-path +1 +1 +0 +1 +0$/m);
    expect(r.out).toMatch(/^llm: not run/m);
    expect(r.out).toMatch(/^ {4}xen\/arch\/x86\/domain\.c:525 \(Andrew Cooper\): \.\.\. this really should be part of allocating the memory\./m);
    expect(r.out).toMatch(/^ {6}rules: xen\/alloc-time-init, xen\/fpu-init-order, xen\/idle-vcpu-path$/m);
  });
});

describe("whose comments count, and where", () => {
  test("a reviewer's comments count (one on a removed line, placed where it was removed); the author, a bot and a bare Reviewed-by do not", async () => {
    const t = await threadOf(MADE_UP);
    const c = reviewComments(t).get('<eval-patch@example.org>')!;
    expect(c.comments.map((x) => [x.by, x.line, x.text.split('\n')[0]])).toEqual([
      ['Rita Reviewer', 103, 'Was the old count ever wrong for idle units, or is this only about'],
      ['Rita Reviewer', 105, "unit_runnable() needs the unit's lock held, and nothing here takes it."],
      ['Rita Reviewer', 110, 'update_load() should only run when n changed, it is not cheap.'],
    ]);
    expect(c.general).toBe(0); // the author's answer is not review
  });

  test('a finding matches a comment in the same file within the window; old-side findings count where the line went', async () => {
    const t = await threadOf(MADE_UP);
    const patch = t.messages.find((m) => m.messageId === '<eval-patch@example.org>')!.record!;
    const f = (rule: string, line: number | null, over: Partial<Finding> = {}): Finding => ({
      rule,
      severity: 'warning',
      title: rule,
      message: `${rule} says so`,
      messageId: patch.messageId,
      subject: patch.subject,
      series: null,
      file: line === null ? null : 'xen/common/sched/rq.c',
      line,
      side: line === null ? null : 'new',
      function: 'rebuild_runq',
      code: null,
      fingerprint: rule,
      source: 'rule',
      ...over,
    });
    const p: EvalPatch = {
      record: patch,
      ...reviewComments(t).get(patch.messageId)!,
      findings: [
        f('t/at-105', 105),
        f('t/three-away', 113), // 110 + 3
        f('t/four-away', 99), // 103 - 4
        f('t/old-side', 104, { side: 'old' }), // removed line 104: sits at new 103
        f('t/mail', null),
        f('t/other-file', 105, { file: 'xen/common/sched/core.c' }),
        f('llm/correctness', 106, { source: 'llm' }),
      ],
    };
    const r = evaluate([p], { window: 3, llm: true });
    expect(r.sources.rule).toMatchObject({ findings: 6, mailLevel: 1, matchedFindings: 3, unmatchedFindings: 2, comments: 3, matchedComments: 3, missedComments: 0 });
    expect(r.sources.rule.rules.map((x) => [x.rule, x.matched, x.unmatched, x.comments, x.mailLevel])).toEqual([
      ['t/at-105', 1, 0, 2, 0], // 103 and 105 are both within 3 lines
      ['t/four-away', 0, 1, 0, 0],
      ['t/mail', 0, 0, 0, 1],
      ['t/old-side', 1, 0, 2, 0],
      ['t/other-file', 0, 1, 0, 0],
      ['t/three-away', 1, 0, 1, 0],
    ]);
    expect(r.sources.llm).toMatchObject({ findings: 1, matchedFindings: 1, matchedComments: 2, missedComments: 1, recall: 2 / 3 });
    expect(r.unmatched.map((u) => u.rule)).toEqual(['t/four-away', 't/other-file']);
    expect(evaluate([p], { window: 0 }).sources.rule).toMatchObject({ matchedFindings: 2, matchedComments: 2 }); // 105 on 105, old 104 on 103
  });
});

describe('eval --llm', () => {
  let server: FakeOpenAI;
  const saved: Record<string, string | undefined> = {};
  beforeEach(async () => {
    server = await FakeOpenAI.start();
    for (const k of ['OPENAI_BASE_URL', 'OPENAI_API_KEY', 'PATCHVET_LLM_MODEL']) saved[k] = process.env[k];
    process.env.OPENAI_BASE_URL = server.url;
    process.env.PATCHVET_LLM_MODEL = 'review-model';
    delete process.env.OPENAI_API_KEY;
  });
  afterEach(async () => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    await server.close();
  });

  // LLM findings are scored as review would print them (repeats of rule findings dropped), so
  // the llm column shows what the pass adds to the rules.
  test('the LLM reviews each patch as first posted (no maintainer comments in the request) and is scored on its own', async () => {
    server.fallback = answer({
      findings: [
        {
          file: 'xen/arch/x86/domain.c',
          line: 527,
          code: 'vmce_init_vcpu(v);',
          category: 'design',
          severity: 'warning',
          message: 'vmce_init_vcpu() now runs on a freshly reset area; if it fails, the caller unwinds without undoing the reset.',
          rule: 'none',
          confidence: 0.9,
        },
      ],
    });
    const r = await run(['eval', REF, '--llm', '--format', 'json']);
    expect(r.code).toBe(0);
    const user = server.chats[0]!.body.messages[1].content as string;
    expect(user).not.toContain('review-so-far');
    expect(user).not.toContain('this really should be part of allocating the memory');
    const doc = JSON.parse(r.out);
    expect(doc.sources.llm).toMatchObject({ findings: 1, matchedFindings: 1, comments: 1, matchedComments: 1, rules: [expect.objectContaining({ rule: 'llm/design', matched: 1 })] });
    expect(doc.commentRows[0].matchedBy).toEqual({ rule: XEN3, llm: ['llm/design'] });
  });
});
