// The context the LLM pass gets besides the patch: reviewers' comments on this patch and the
// still-relevant ones on earlier versions (found through the series table), and with --tree
// the functions the patch changes.
import { join } from 'node:path';
import { loadCorpus, type Corpus } from '../../src/pipeline.js';
import type { MessageRecord, Thread } from '../../src/model.js';
import { isBot, priorComments } from '../../src/llm/thread-context.js';
import { EarlierVersions } from '../../src/llm/corpus.js';
import { budgetList, enclosingFunctions } from '../../src/llm/review.js';
import { buildReviewRequest } from '../../src/llm/prompt.js';

const FTW = join(process.cwd(), '../shared/fixtures/xen-ftw-alloc.mbox');
const V1 = '<20260326190429.1156367-3-andrew.cooper3@citrix.com>';
const V2 = '<20260327171636.1182604-1-andrew.cooper3@citrix.com>';

let corpus: Corpus;
let thread: Thread;
let v1: MessageRecord;
let v2: MessageRecord;

beforeAll(async () => {
  corpus = await loadCorpus([FTW], { workers: 0 });
  thread = corpus.thread(corpus.threads.at(0)!);
  v1 = thread.messages.find((m) => m.messageId === V1)!.record!;
  v2 = thread.messages.find((m) => m.messageId === V2)!.record!;
});
afterAll(() => corpus.close());

test('comments on this patch: anchored and general, from reviewers, addresses and links masked', () => {
  const p = priorComments(v1, thread);
  expect(p.map((c) => [c.version, c.by, c.file, c.line])).toEqual([
    ['this', 'Ross Lagerwall', 'xen/arch/x86/xstate.c', 561],
    ['this', 'Jan Beulich', null, null],
    ['this', 'Jan Beulich', null, null],
    ['this', 'Jan Beulich', null, null],
  ]);
  // Andrew Cooper wrote the patch: his answers in the thread are not review of it.
  expect(p.some((c) => c.by === 'Andrew Cooper')).toBe(false);
  for (const c of p) expect(c.text).not.toMatch(/[\w.]+@[\w.]+\.\w+|https?:\/\//);
});

test("v2 gets the v1 comment whose code is still there, placed on v2's line; not v1's general remarks", () => {
  const earlier = new EarlierVersions(corpus).of(v2, thread);
  expect(earlier.ids).toEqual([V1]);
  expect(earlier.threads).toEqual([thread]);
  const p = priorComments(v2, thread, { earlierThreads: earlier.threads, earlierPatchIds: earlier.ids });
  expect(p).toEqual([
    expect.objectContaining({ version: 'earlier', by: 'Ross Lagerwall', file: 'xen/arch/x86/xstate.c', line: 571, function: 'xstate_alloc_save_area' }),
  ]);
  const line = v2.diff!.files[0]!.hunks.flatMap((h) => h.lines).find((l) => l.newLine === 571)!;
  expect(line.text.replace(/\s+/g, '')).toBe(p[0]!.code!.replace(/\s+/g, ''));
  const req = buildReviewRequest({ record: v2, guides: [], functions: [], prior: p, ruleFindings: [], maxFindings: 3 }, { model: 'm', maxOutputTokens: 100, budgetTokens: 30000 });
  expect((req as any).body.messages[1].content).toContain('- xen/arch/x86/xstate.c:571 (on an earlier version; the code is still here, by Ross Lagerwall):');
});

test('--tree: the bodies of the functions the patch changes, capped', () => {
  const bodies: Record<string, string> = { xstate_alloc_save_area: 'int xstate_alloc_save_area(struct vcpu *v)\n{\n' + '    x++;\n'.repeat(300) + '}' };
  const fns = enclosingFunctions(v2, { functionBody: (n) => bodies[n], fileText: () => undefined }, 150);
  expect(fns.map((f) => f.name)).toEqual(['xstate_alloc_save_area']);
  expect(fns[0]!.body.split('\n')).toHaveLength(151);
  expect(fns[0]!.body).toMatch(/\/\* \.\.\. 153 more lines \*\/$/);
  expect(enclosingFunctions(v2, undefined)).toEqual([]);
  const req = buildReviewRequest({ record: v2, guides: [], functions: fns, prior: [], ruleFindings: [], maxFindings: 3 }, { model: 'm', maxOutputTokens: 100, budgetTokens: 30000 }) as any;
  expect(req.body.messages[1].content).toMatch(/<<<PATCHVET-DATA-\w+ enclosing-functions\n\/\* xstate_alloc_save_area\(\) as in the target tree before the patch \*\/\nint xstate_alloc_save_area/);
});

test('the daily budget is counted per list: the list address, else the List-Id, else a list among the recipients', () => {
  expect(budgetList(v2)).toBe('xen-devel@lists.xenproject.org');
  expect(budgetList({ ...v2, listIds: ['xen-devel.lists.xenproject.org'] })).toBe('xen-devel.lists.xenproject.org');
  expect(budgetList({ ...v2, listIds: [], to: [{ name: '', address: 'linux-hyperv@vger.kernel.org' }], cc: [] })).toBe('(no list)');
  expect(budgetList({ ...v2, listIds: [], to: [{ name: '', address: 'dev@lists.example.org' }], cc: [] })).toBe('dev@lists.example.org');
});

test('bots are not reviewers: CI, robots, patchwork, patchvet itself; list mail marked bulk is not a bot', () => {
  const as = (name: string, address: string) => ({ ...v1, from: { name, address }, automated: true });
  expect(isBot(as('kernel test robot', 'lkp@intel.com'))).toBe(true);
  expect(isBot(as('patchvet', 'patchvet@localhost'))).toBe(true);
  expect(isBot(as('Xen CI', 'ci-bot@example.org'))).toBe(true);
  expect(isBot(as('Patchwork', 'patchwork@kernel.org'))).toBe(true);
  expect(isBot(as('Jan Beulich', 'jbeulich@suse.com'))).toBe(false);
  expect(isBot(as('Ciara Cibot', 'ciara@example.org'))).toBe(false);
});
