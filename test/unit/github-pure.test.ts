// The pure middle of the GitHub side: markers, linking evidence, PR commits as records, where a
// finding sits in a PR's diff, the review plan (inline vs body, nothing twice, resolved and
// reopened), the mirror plan, forwarding choices, and both configs (repository and operator).
import { recordFromRaw } from '../../src/mail/record.js';
import type { Finding, MessageRecord } from '../../src/model.js';
import { appFromEnv, archiveUrl, parseRepoConfig, pathIgnored, ruleMuted, senderAllowed, authorMuted } from '../../src/github/config.js';
import { choosePatch, forwardRefusal } from '../../src/github/forward.js';
import { messageIdOf, subjectKey, trailerMessageIds } from '../../src/github/link.js';
import { findingKey, isOurs, keysIn, mailKey, marker, markersIn, reopenedBody, resolvedBody } from '../../src/github/markers.js';
import { planMirror, type MirrorPayload } from '../../src/github/mirror.js';
import { commitRecord, diffFromFiles, locate, prDiff, splitCommitMessage } from '../../src/github/pr.js';
import { knownFromGithub, knownItems, mdText, planReview, type CommitFindings, type KnownItem } from '../../src/github/review-plan.js';
import { editBodyItem, inlineToBody, retryAt, retryable } from '../../src/github/worker.js';
import { buildConfig, ConfigError, redactedConfig } from '../../src/serve/config.js';
import { FIXTURES, mboxMessages, PATCH_ID } from '../helpers/serve.js';
import { join } from 'node:path';

const FILE = 'xen/arch/x86/domain.c';
const HUNK = [
  '@@ -522,6 +522,8 @@ int arch_vcpu_create(struct vcpu *v)',
  '         if ( (rc = vcpu_init_fpu(v)) != 0 )',
  '             return rc;',
  ' ',
  '+        vcpu_reset_fpu(v);',
  '+',
  '         vmce_init_vcpu(v);',
  ' ',
  '         arch_vcpu_regs_init(v);',
].join('\n');

function finding(over: Partial<Finding> = {}): Finding {
  return {
    rule: 'xen/idle-vcpu-path',
    severity: 'warning',
    title: 'Initialisation or state use that forgets the idle vCPU',
    message: 'The idle vCPU never runs this path.',
    messageId: 'github:o/r@c1',
    subject: '[PATCH] x',
    series: null,
    file: FILE,
    line: 525,
    side: 'new',
    function: 'arch_vcpu_create',
    code: '        vcpu_reset_fpu(v);',
    fingerprint: 'f1f1f1f1f1f1f1f1',
    source: 'rule',
    ...over,
  };
}

// ---------------------------------------------------------------- markers

test('markers survive Message-IDs with "<", ">" and "--", and are found again', () => {
  const id = '<20260324--x@host>';
  const m = marker('mail', `${id}#2`);
  expect(m).toBe('<!-- patchvet:mail=%3C20260324%2D-x@host%3E#2 -->');
  expect(m.slice(4, -3)).not.toContain('--'); // the HTML comment stays one comment
  expect(markersIn(`text\n${m}\n${marker('finding', 'abc')}`)).toEqual([
    { kind: 'mail', value: `${id}#2` },
    { kind: 'finding', value: 'abc' },
  ]);
  expect(keysIn(`${m} ${marker('review', 'sha')}`)).toEqual([mailKey(id, 2)]);
  expect(isOurs('plain human text')).toBe(false);
  expect(isOurs(`x ${marker('finding', 'abc')}`)).toBe(true);
  const body = `**warning** text\n${marker('finding', 'abc')}`;
  const resolved = resolvedBody(body, 'a'.repeat(40));
  expect(resolved.startsWith('**Resolved**: patchvet no longer finds this at aaaaaaaaaaaa.')).toBe(true);
  expect(keysIn(resolved)).toEqual([findingKey('abc')]);
  expect(resolvedBody(resolved, 'b'.repeat(40))).toBe(resolved); // idempotent
  expect(reopenedBody(resolved)).toBe(body);
  expect(reopenedBody(body)).toBe(body);
});

test('Markdown from mail and rules: no HTML, no @-mentions that would notify GitHub users', () => {
  expect(mdText('v->fpu_initialised <b> @andyhhp x@y.org')).toBe('v-&gt;fpu_initialised &lt;b&gt; @\u200bandyhhp x@y.org');
});

// ---------------------------------------------------------------- linking evidence

test('Link:/Message-Id: trailers name the list mail (lore, patchwork, msgid.link, bare ids); other links do not', () => {
  const id = '<20260324181937.2465574-2-ross.lagerwall@citrix.com>';
  const bare = id.slice(1, -1);
  expect(messageIdOf(`https://lore.kernel.org/r/${bare}`)).toBe(id);
  expect(messageIdOf(`https://lore.kernel.org/xen-devel/${bare}/T/#u`)).toBe(id);
  expect(messageIdOf(`https://lore.kernel.org/all/${bare.replace('@', '%40')}/`)).toBe(id);
  expect(messageIdOf(`https://patchwork.kernel.org/project/xen-devel/patch/${bare}/`)).toBe(id);
  expect(messageIdOf(`https://msgid.link/${bare}`)).toBe(id);
  expect(messageIdOf(id)).toBe(id);
  expect(messageIdOf(bare)).toBe(id);
  expect(messageIdOf('https://gitlab.com/xen-project/xen/-/issues/201')).toBeNull();
  expect(messageIdOf('https://lists.xenproject.org/archives/html/xen-devel/2026-03/msg01234.html')).toBeNull();
  const msg = [
    'x86/domain: Ensure a vCPU\'s FPU is reset early',
    '',
    'Body text mentioning Link: in prose is not a trailer only when it is not at a line start.',
    '',
    'Signed-off-by: Ross Lagerwall <ross.lagerwall@citrix.com>',
    `Link: https://lore.kernel.org/r/${bare}`,
    `Message-Id: ${id}`,
    'Link: https://gitlab.com/xen-project/xen/-/issues/201',
    'Link: https://lore.kernel.org/r/other@example.org',
  ].join('\n');
  expect(trailerMessageIds(msg)).toEqual([id, '<other@example.org>']);
});

test('title + author key: the mail subject and the commit title agree despite brackets, case, spaces and a final stop', () => {
  expect(subjectKey("[PATCH v2 1/9] x86/domain: Ensure a vCPU's FPU is reset early.", 'Ross.Lagerwall@citrix.com')).toBe(
    subjectKey("x86/domain:  ensure a vCPU's FPU is reset early", 'ross.lagerwall@citrix.com'),
  );
  expect(subjectKey('x86/domain: Ensure reset', 'a@b.c')).not.toBe(subjectKey('x86/domain: Ensure reset', 'd@b.c'));
});

// ---------------------------------------------------------------- PR commits and diffs

test('a PR commit as a patch record: numbered subject, body as commit message, trailers, its own diff', async () => {
  const [patch] = mboxMessages(join(FIXTURES, 'xen-fpu-reset-v2-1of9.mbox'));
  const mail = await recordFromRaw(patch!);
  const raw = patch!.raw.toString('utf8');
  const diff = raw.slice(raw.indexOf('diff --git'), raw.indexOf('-- \n2.53.0'));
  const rec = commitRecord(
    { sha: 'c1', message: `x86/domain: Ensure a vCPU's FPU is reset early\n\n${mail.commitMessage}\n`, author: { name: 'Ross Lagerwall', email: 'ross.lagerwall@citrix.com', date: '2026-03-24T18:19:29Z' }, diff },
    { repo: 'xen-project/xen', index: 1, total: 9, lists: ['xen-devel@lists.xenproject.org'] },
  );
  expect(rec.messageId).toBe('github:xen-project/xen@c1');
  expect(rec.subject).toBe("[PATCH 1/9] x86/domain: Ensure a vCPU's FPU is reset early");
  expect(rec.parsedSubject.series).toMatchObject({ index: 1, total: 9 });
  expect(rec.kind).toBe('patch');
  expect(rec.commitMessage).toBe(mail.commitMessage);
  expect(rec.trailers).toEqual(mail.trailers);
  expect(rec.listIds).toEqual(['xen-devel@lists.xenproject.org']);
  // The same diff lines, numbers and functions as the mail's.
  expect(rec.diff).toEqual(mail.diff);
  expect(rec.files).toEqual([FILE]);
  expect(splitCommitMessage('Title\r\n\r\n\r\nBody\r\n')).toEqual({ title: 'Title', body: 'Body' });
  const single = commitRecord({ sha: 'c2', message: 'Only a title', author: { name: 'A', email: 'a@b.c' }, diff: null }, { repo: 'o/r', index: 1, total: 1 });
  expect([single.subject, single.diff, single.commitMessage]).toEqual(['[PATCH] Only a title', null, '']);
});

test('commit diffs rebuilt from the files API (too large for the diff format): added, removed, renamed, binary skipped', () => {
  const text = diffFromFiles([
    { filename: 'a.c', status: 'added', patch: '@@ -0,0 +1,2 @@\n+int a;\n+int b;' },
    { filename: 'gone.c', status: 'removed', patch: '@@ -1 +0,0 @@\n-int gone;' },
    { filename: 'new.c', previous_filename: 'old.c', status: 'renamed', patch: '@@ -1,2 +1,2 @@\n int x;\n-int y;\n+int z;' },
    { filename: 'logo.png', status: 'modified' },
  ]);
  const parsed = prDiff([
    { filename: 'a.c', status: 'added', patch: '@@ -0,0 +1,2 @@\n+int a;\n+int b;' },
    { filename: 'logo.png', status: 'modified' },
  ]);
  expect(parsed.withoutPatch).toEqual(['logo.png']);
  expect(text).toContain('diff --git a/old.c b/new.c\nrename from old.c\nrename to new.c\n--- a/old.c\n+++ b/new.c\n');
  expect(text).toContain('diff --git a/gone.c b/gone.c\ndeleted file mode 100644\n--- a/gone.c\n+++ /dev/null\n');
  expect(text).not.toContain('logo.png');
});

test('locate: a finding made against a commit is placed on the PR diff line with the same text, on the right side', () => {
  const pr = prDiff([
    { filename: FILE, status: 'modified', patch: HUNK },
    // Another commit of the PR added 3 lines above in this file: the same text sits 3 lines lower.
    { filename: 'xen/common/sched.c', status: 'modified', patch: '@@ -10,3 +10,6 @@ f\n a;\n+b;\n+c;\n+d;\n-        old_call(v);\n+        vcpu_reset_fpu(v);\n e;' },
    { filename: 'xen/new-name.c', previous_filename: 'xen/old-name.c', status: 'renamed', patch: '@@ -1,2 +1,2 @@\n x;\n-y;\n+z;' },
  ]);
  expect(locate(pr, { path: FILE, line: 525, side: 'new', code: '        vcpu_reset_fpu(v);' })).toEqual({ path: FILE, line: 525, side: 'RIGHT' });
  // Context lines can be commented on too.
  expect(locate(pr, { path: FILE, line: 527, side: 'new', code: '        vmce_init_vcpu(v);' })).toEqual({ path: FILE, line: 527, side: 'RIGHT' });
  // Same text, moved by an earlier commit: the nearest line with that text.
  expect(locate(pr, { path: 'xen/common/sched.c', line: 11, side: 'new', code: 'vcpu_reset_fpu(v);' })).toEqual({ path: 'xen/common/sched.c', line: 14, side: 'RIGHT' });
  // A deleted line is on the LEFT, by its old line number.
  expect(locate(pr, { path: 'xen/common/sched.c', line: 11, side: 'old', code: '        old_call(v);' })).toEqual({ path: 'xen/common/sched.c', line: 11, side: 'LEFT' });
  // Not in the diff: a line outside the hunks, text that is not there, another file, no line.
  expect(locate(pr, { path: FILE, line: 600, side: 'new', code: 'return 0;' })).toBeNull();
  expect(locate(pr, { path: FILE, line: 525, side: 'new', code: 'something else();' })).toBeNull();
  expect(locate(pr, { path: 'xen/arch/x86/hvm.c', line: 5, side: 'new', code: 'x' })).toBeNull();
  expect(locate(pr, { path: FILE, line: null, side: null, code: null })).toBeNull();
  // A finding on a file's old name is placed in the renamed file.
  expect(locate(pr, { path: 'xen/old-name.c', line: 2, side: 'new', code: 'z;' })).toEqual({ path: 'xen/new-name.c', line: 2, side: 'RIGHT' });
});

// ---------------------------------------------------------------- the review plan

const pr1 = () => prDiff([{ filename: FILE, status: 'modified', patch: HUNK }]);
const HEAD = 'e'.repeat(40);
const opts = { headSha: HEAD, maxInline: 50, failOn: null };

test('plan: inline where the diff has the line; the rest (elsewhere, commit message, over the limit) in the body; one per fingerprint', () => {
  const commits: CommitFindings[] = [
    {
      sha: '1'.repeat(40),
      title: 'first',
      findings: [
        finding({ fingerprint: 'a1' }),
        finding({ fingerprint: 'b2', rule: 'common/signed-off-by', severity: 'error', file: null, line: null, side: null, code: null, function: null, message: 'No Signed-off-by.' }),
        finding({ fingerprint: 'c3', line: 700, code: 'return 0;', message: 'Far away.' }),
      ],
    },
    // The same finding again in a later commit: posted once.
    { sha: '2'.repeat(40), title: 'second', findings: [finding({ fingerprint: 'a1' }), finding({ fingerprint: 'd4', rule: 'xen/alloc-time-init', severity: 'info', message: 'Second point.' })] },
  ];
  const plan = planReview(commits, pr1(), new Map(), { ...opts, maxInline: 1 });
  expect(plan.review!.comments.map((c) => [c.path, c.line, c.side])).toEqual([[FILE, 525, 'RIGHT']]);
  expect(plan.review!.comments[0]!.body).toContain('<!-- patchvet:finding=a1 -->');
  expect(plan.items.map((i) => [i.key, i.kind])).toEqual([
    ['finding:a1', 'finding-inline'],
    ['finding:b2', 'finding-body'],
    ['finding:c3', 'finding-body'],
    ['finding:d4', 'finding-body'],
  ]);
  expect(plan.review!.body.split('\n')).toEqual([
    `<!-- patchvet:review=${HEAD} -->`,
    `**patchvet** reviewed 2 commits at ${HEAD.slice(0, 12)}: 4 new points (1 error, 2 warnings, 1 note).`,
    '',
    'Not on a line of the diff:',
    '',
    '- **error** `common/signed-off-by` (commit 111111111111): No Signed-off-by. <!-- patchvet:finding=b2 -->',
    `- **warning** \`xen/idle-vcpu-path\` \`${FILE}:700\` (commit 111111111111, not in the diff): Far away. <!-- patchvet:finding=c3 -->`,
    `- **info** \`xen/alloc-time-init\` \`${FILE}:525\` (commit 222222222222, over the inline limit): Second point. <!-- patchvet:finding=d4 -->`,
  ]);
  // The check run annotates head lines only, at every current finding.
  expect(plan.annotations.map((a) => [a.path, a.start_line, a.annotation_level])).toEqual([
    [FILE, 525, 'warning'],
    [FILE, 525, 'notice'],
  ]);
  expect(plan.check).toMatchObject({ conclusion: 'neutral', title: '4 findings (1 error, 2 warnings, 1 note)' });
  expect(planReview(commits, pr1(), new Map(), { ...opts, failOn: 'error' }).check.conclusion).toBe('failure');
  expect(planReview(commits, pr1(), new Map(), { ...opts, failOn: 'error', skippedCommits: 3, configProblems: ['packs: no rule pack named xne'] }).check.summary).toContain(
    '3 commits of this pull request were not reviewed (over the per-PR limit).\n\n`.github/patchvet.yml` has problems (ignored):\n- packs: no rule pack named xne',
  );
});

test('plan on a re-push: posted findings are kept, gone ones resolved, returning ones reopened, nothing posted twice', () => {
  const known = new Map<string, KnownItem>([
    ['finding:a1', { key: 'finding:a1', kind: 'finding-inline', commentId: 1, reviewId: 9, state: 'open' }],
    ['finding:gone', { key: 'finding:gone', kind: 'finding-inline', commentId: 2, reviewId: 9, state: 'open' }],
    ['finding:back', { key: 'finding:back', kind: 'finding-body', commentId: null, reviewId: 9, state: 'resolved' }],
    ['mail:<m@x>#0', { key: 'mail:<m@x>#0', kind: 'mirror-inline', commentId: 3, reviewId: 10, state: 'open' }],
  ]);
  const plan = planReview([{ sha: 'c', title: 't', findings: [finding({ fingerprint: 'a1' }), finding({ fingerprint: 'back' })] }], pr1(), known, opts);
  expect(plan.review).toBeNull();
  expect(plan.kept).toEqual(['finding:a1']);
  expect(plan.resolve.map((k) => k.key)).toEqual(['finding:gone']); // mirrored mail comments are never "resolved"
  expect(plan.reopen.map((k) => k.key)).toEqual(['finding:back']);
  expect(plan.check.summary).toContain('0 new, 2 already posted, 1 resolved since the last push');
});

test('what is on GitHub fills what the store misses, and GitHub tells which comments someone resolved', () => {
  const fromGh = knownFromGithub(
    [
      { id: 1, body: `x ${marker('finding', 'a1')}`, inReplyTo: null, login: 'patchvet[bot]' },
      { id: 2, body: resolvedBody(`y ${marker('finding', 'b2')}`, HEAD), inReplyTo: null, login: 'patchvet[bot]' },
      { id: 3, body: 'a human answer', inReplyTo: 1, login: 'rosslagerwall' },
    ],
    [{ id: 9, body: `- **info** item ${marker('finding', 'c3')}\n${marker('mail', '<m@x>#1')}` }],
  );
  expect([...fromGh.values()]).toEqual([
    { key: 'finding:a1', kind: 'finding-inline', commentId: 1, reviewId: null, state: 'open' },
    { key: 'finding:b2', kind: 'finding-inline', commentId: 2, reviewId: null, state: 'resolved' },
    { key: 'finding:c3', kind: 'finding-body', commentId: null, reviewId: 9, state: 'open' },
    { key: 'mail:<m@x>#1', kind: 'mirror-body', commentId: null, reviewId: 9, state: 'open' },
  ]);
  const merged = knownItems(
    [{ repo: 'o/r', pr: 1, key: 'finding:b2', kind: 'finding-inline', commentId: null, reviewId: 8, state: 'open' }],
    fromGh,
  );
  expect(merged.get('finding:b2')).toEqual({ key: 'finding:b2', kind: 'finding-inline', commentId: 2, reviewId: 8, state: 'resolved' });
});

test('review-body items are struck through when resolved and restored when they come back; a refused review keeps its comments in the body', () => {
  const body = `head\n\n- **warning** \`r/x\` (commit 1): Text. ${marker('finding', 'a1')}\n- **info** \`r/y\` (commit 1): Other. ${marker('finding', 'b2')}`;
  const resolved = editBodyItem(body, 'finding:a1', true, HEAD);
  expect(resolved.split('\n')[2]).toBe(`- ~~**warning** \`r/x\` (commit 1): Text.~~ (resolved at ${HEAD.slice(0, 12)}) ${marker('finding', 'a1')}`);
  expect(resolved.split('\n')[3]).toBe(body.split('\n')[3]);
  expect(editBodyItem(resolved, 'finding:a1', true, HEAD)).toBe(resolved);
  expect(editBodyItem(resolved, 'finding:a1', false, HEAD)).toBe(body);
  const fallback = inlineToBody({ commit_id: HEAD, event: 'COMMENT', body: 'B', comments: [{ path: FILE, line: 3, side: 'LEFT', body: `C ${marker('finding', 'z')}` }] });
  expect(fallback).toEqual({ commit_id: HEAD, event: 'COMMENT', body: `B\n\n---\n\nOn \`${FILE}\` line 3 (old side):\n\nC ${marker('finding', 'z')}`, comments: [] });
});

// ---------------------------------------------------------------- mirror plan

test('mirror plan: quoted diff comments inline, others in the body with the quote, already mirrored ones left out', () => {
  const p: MirrorPayload = {
    mail: { messageId: '<r@x>', from: { name: 'Jan Beulich', address: 'jbeulich@suse.com' }, date: '2026-03-25T08:00:00Z', subject: 'Re: [PATCH] x' },
    patchMessageId: PATCH_ID,
    commitSha: 'c',
    comments: [
      { index: 0, file: null, line: null, side: null, text: 'General remark.', quoted: [] },
      { index: 1, file: FILE, line: 525, side: 'new', text: 'Why here?', quoted: ['+        vcpu_reset_fpu(v);'] },
      { index: 2, file: FILE, line: 900, side: 'new', text: 'And this, @someone?', quoted: ['+    later_call();'] },
    ],
  };
  const plan = planMirror(p, pr1(), { headSha: HEAD, archive: 'https://lists.example.org/{messageId}', already: new Set() });
  expect(plan.review!.comments).toEqual([
    { path: FILE, line: 525, side: 'RIGHT', body: `**Jan Beulich** wrote on the list ([archived mail](https://lists.example.org/r@x)):\n\nWhy here?\n${marker('mail', '<r@x>#1')}` },
  ]);
  expect(plan.review!.body).toBe(
    [
      '**Jan Beulich** replied on the list on 2026-03-25 to “Re: [PATCH] x” ([archived mail](https://lists.example.org/r@x)):',
      '',
      '',
      'General remark.',
      marker('mail', '<r@x>#0'),
      '',
      `On \`${FILE}:900\`:`,
      '',
      '```diff',
      '+    later_call();',
      '```',
      '',
      'And this, @\u200bsomeone?',
      marker('mail', '<r@x>#2'),
    ].join('\n'),
  );
  expect(plan.items.map((i) => [i.key, i.kind])).toEqual([
    ['mail:<r@x>#1', 'mirror-inline'],
    ['mail:<r@x>#0', 'mirror-body'],
    ['mail:<r@x>#2', 'mirror-body'],
  ]);
  const again = planMirror(p, pr1(), { headSha: HEAD, archive: 'https://lists.example.org/{messageId}', already: new Set(['mail:<r@x>#0', 'mail:<r@x>#1', 'mail:<r@x>#2']) });
  expect(again).toEqual({ review: null, items: [] });
  expect(archiveUrl('https://lore.kernel.org/xen-devel/{messageId}/', '<a+b/c@x.org>')).toBe('https://lore.kernel.org/xen-devel/a%2Bb%2Fc@x.org/');
});

// ---------------------------------------------------------------- forwarding choices

test('forwarding: who may, and which patch mail a comment answers', async () => {
  const c = { kind: 'review-comment' as const, id: 1, login: 'AndyHHP', userType: 'User', htmlUrl: 'u', body: 'x' };
  expect(forwardRefusal(c, ['andyhhp'])).toBeNull();
  expect(forwardRefusal(c, ['jbeulich'])).toMatch(/not allowed/);
  expect(forwardRefusal({ ...c, userType: 'Bot' }, ['andyhhp'])).toMatch(/bot/);
  expect(forwardRefusal({ ...c, login: 'dependabot[bot]' }, ['dependabot[bot]'])).toMatch(/bot/);
  expect(forwardRefusal({ ...c, body: `x ${marker('finding', 'a')}` }, ['andyhhp'])).toMatch(/own/);
  expect(forwardRefusal({ ...c, body: '  ' }, ['andyhhp'])).toMatch(/empty/);

  // The v2 series: patches 1..9, several touching the same files.
  const series = await Promise.all(mboxMessages(join(FIXTURES, 'xen-eager-fpu-v2.mbox')).map((m) => recordFromRaw(m)));
  const patches = series.filter((r) => r.kind === 'patch').sort((a, b) => a.parsedSubject.series!.index! - b.parsedSubject.series!.index!);
  const cover = series.find((r) => r.kind === 'cover')!;
  expect(patches).toHaveLength(9);
  const domain = patches.filter((p) => p.files.includes(FILE));
  expect(domain.length).toBeGreaterThan(1);
  // The commented line is the one patch 1 adds: patch 1 answers, though later patches touch the file.
  const hunk = '@@ -522,6 +522,8 @@\n         if ( (rc = vcpu_init_fpu(v)) != 0 )\n             return rc;\n \n+        vcpu_reset_fpu(v);';
  expect(choosePatch({ kind: 'review-comment', path: FILE, diffHunk: hunk }, patches)?.messageId).toBe(PATCH_ID);
  // A line no patch has: the last patch touching the file.
  expect(choosePatch({ kind: 'review-comment', path: FILE, diffHunk: '@@ -1 +1 @@\n+nowhere();' }, patches)?.messageId).toBe(domain[domain.length - 1]!.messageId);
  // A file no patch touches: the last patch. A conversation comment: the cover letter.
  expect(choosePatch({ kind: 'review-comment', path: 'README', diffHunk: null }, patches)?.messageId).toBe(patches[8]!.messageId);
  expect(choosePatch({ kind: 'issue-comment', path: null, diffHunk: null }, patches, cover)?.messageId).toBe(cover.messageId);
  expect(choosePatch({ kind: 'issue-comment', path: null, diffHunk: null }, patches)?.messageId).toBe(patches[0]!.messageId);
  expect(choosePatch({ kind: 'review-comment', path: FILE, diffHunk: hunk }, [] as MessageRecord[])).toBeNull();
});

// ---------------------------------------------------------------- configs

test('repository config: keys read, mistakes reported (never fatal), mutes split into rules and authors', () => {
  const c = parseRepoConfig({
    packs: ['xen'],
    minSeverity: 'warning',
    ignorePaths: ['docs/**', 'tools/tests/'],
    mute: ['xen/style', 'common/*', 'dependabot[bot]', 'SomeBot'],
    failOn: 'error',
    checks: false,
    dryRun: true,
    forward: false,
  });
  expect(c).toEqual({
    enabled: true,
    packs: ['xen'],
    minSeverity: 'warning',
    ignorePaths: ['docs/**', 'tools/tests/'],
    muteRules: ['xen/style', 'common/*'],
    muteAuthors: ['dependabot[bot]', 'somebot'],
    failOn: 'error',
    checks: false,
    dryRun: true,
    forward: false,
    problems: [],
  });
  expect(ruleMuted(c, 'common/subject-form')).toBe(true);
  expect(ruleMuted(c, 'xen/idle-vcpu-path')).toBe(false);
  expect(authorMuted(c, 'Dependabot[bot]')).toBe(true);
  expect(authorMuted(c, 'dependabotXbot]')).toBe(false);
  expect(pathIgnored(c, 'tools/tests/x86/a.c')).toBe(true);
  expect(pathIgnored(c, 'xen/arch/x86/domain.c')).toBe(false);
  expect(parseRepoConfig(null).problems).toEqual([]);
  expect(parseRepoConfig({ failOn: 'off' }).failOn).toBeNull();
  expect(parseRepoConfig({ pakcs: ['xen'], minSeverity: 'loud', mute: 3, checks: 'yes' }).problems).toEqual([
    'unknown key "pakcs": allowed keys are enabled, packs, rules, minSeverity, ignorePaths, mute, failOn, checks, dryRun, forward',
    'checks: must be true or false',
    'minSeverity: "loud" is not one of info, warning, error',
    'mute: must be a list of strings',
  ]);
  expect(parseRepoConfig('just text').problems).toEqual(['the file must be a YAML mapping (packs:, minSeverity:, ignorePaths:, mute:, ...)']);
  expect(senderAllowed(['*@citrix.com'], 'Andrew.Cooper3@citrix.com')).toBe(true);
  expect(senderAllowed(['*@citrix.com'], 'jbeulich@suse.com')).toBe(false);
});

test("the App's environment: off without it, every missing piece named, GHE host and protocol make the base URL", () => {
  const read = (p: string) => {
    if (p === '/keys/app.pem') return '-----BEGIN RSA PRIVATE KEY-----\nAAA\n-----END RSA PRIVATE KEY-----\n';
    throw new Error('ENOENT: no such file');
  };
  expect(appFromEnv({}, read)).toBeNull();
  expect(appFromEnv({ APP_ID: '12' }, read)).toEqual([
    'PRIVATE_KEY (or PRIVATE_KEY_PATH) is not set: give the App private key (PEM)',
    'WEBHOOK_SECRET is not set: without it webhooks cannot be verified (the App stays off)',
  ]);
  expect(appFromEnv({ APP_ID: 'x', PRIVATE_KEY_PATH: '/nope.pem', WEBHOOK_SECRET: 's' }, read)).toEqual([
    'APP_ID "x" is not a number',
    'PRIVATE_KEY_PATH /nope.pem: ENOENT: no such file',
  ]);
  expect(appFromEnv({ APP_ID: '12', PRIVATE_KEY_PATH: '/keys/app.pem', WEBHOOK_SECRET: 's', GHE_HOST: '127.0.0.1:8080', GHE_PROTOCOL: 'http' }, read)).toEqual({
    appId: '12',
    privateKey: '-----BEGIN RSA PRIVATE KEY-----\nAAA\n-----END RSA PRIVATE KEY-----\n',
    webhookSecret: 's',
    host: '127.0.0.1:8080',
    protocol: 'http',
    baseUrl: 'http://127.0.0.1:8080/api/v3',
  });
  // A key pasted into one line with "\n" escapes.
  const one = appFromEnv({ APP_ID: '12', PRIVATE_KEY: '-----BEGIN RSA PRIVATE KEY-----\\nAAA\\n-----END RSA PRIVATE KEY-----', WEBHOOK_SECRET: 's' }, read);
  expect(one).toMatchObject({ privateKey: '-----BEGIN RSA PRIVATE KEY-----\nAAA\n-----END RSA PRIVATE KEY-----', baseUrl: 'https://api.github.com' });
  expect(appFromEnv({ APP_ID: '12', PRIVATE_KEY: 'not a key', WEBHOOK_SECRET: 's', GHE_PROTOCOL: 'ftp' }, read)).toEqual([
    'PRIVATE_KEY is not a PEM private key',
    'GHE_PROTOCOL "ftp" must be https or http',
  ]);
});

test('patchvet.yml `github:`: defaults, forwarding entries, mistakes named by key; secrets never in the redacted config', () => {
  const env = { APP_ID: '7', PRIVATE_KEY: '-----BEGIN RSA PRIVATE KEY-----\nK\n-----END RSA PRIVATE KEY-----', WEBHOOK_SECRET: 'hush' };
  const c = buildConfig(
    {
      lists: [{ address: 'xen-devel@lists.xenproject.org' }],
      github: {
        dryRun: true,
        archive: 'https://lore.kernel.org/xen-devel/{messageId}/',
        forward: [{ repo: 'Xen-Project/Xen', users: ['AndyHHP', 'jbeulich'] }],
        repos: ['xen-project/xen'],
        retry: { rateLimit: 1, maxWait: '2m' },
      },
    },
    { env },
  );
  expect(c.github).toMatchObject({
    dryRun: true,
    mirror: true,
    checkName: 'patchvet',
    lists: ['xen-devel@lists.xenproject.org'],
    forward: [{ repo: 'xen-project/xen', users: ['andyhhp', 'jbeulich'] }],
    repos: ['xen-project/xen'],
    retry: { rateLimit: 1, secondaryRateLimit: 1, serverErrors: 2, maxWaitSeconds: 120 },
  });
  expect(c.github.app?.appId).toBe('7');
  const shown = JSON.stringify(redactedConfig(c));
  expect(shown).not.toContain('hush');
  expect(shown).not.toContain('BEGIN RSA');
  expect(buildConfig({}, { env: {} }).github.app).toBeNull();

  const problems = (data: unknown, e: Record<string, string> = {}) => {
    try {
      buildConfig(data, { env: e });
      return [];
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as ConfigError).problems;
    }
  };
  expect(problems({ github: { archive: 'https://lore.kernel.org/all/' } })).toEqual([
    'github.archive: "https://lore.kernel.org/all/" has no {messageId}: a URL with {messageId}, e.g. https://lore.kernel.org/xen-devel/{messageId}/',
  ]);
  expect(problems({ github: { forwrd: [] } })).toEqual(['github: unknown key "forwrd": did you mean "forward"?']);
  expect(problems({ lists: [{ address: 'a@b.org' }], github: { forward: [{ repo: 'not a repo', users: ['x'] }] } })).toEqual([
    'github.forward[0].repo: "not a repo" is not owner/name: a list of owner/name repositories, e.g. [xen-project/xen]',
  ]);
  expect(problems({ github: { forward: [{ repo: 'o/r', users: ['x'] }] } })).toEqual([
    "github.forward: forwarding PR comments needs the list in lists: (its address is Cc'd)",
  ]);
  expect(problems({}, { APP_ID: '7' })[0]).toMatch(/^GitHub App environment: PRIVATE_KEY/);
});

test('job failures: network trouble, 5xx and rate limits are retried (at the reset time when GitHub says it); other 4xx are not', () => {
  const now = new Date('2026-03-25T10:00:00Z');
  expect(retryable(new Error('ECONNRESET'))).toBe(true);
  expect(retryable({ status: 502, message: 'Bad Gateway' })).toBe(true);
  expect(retryable({ status: 404, message: 'Not Found' })).toBe(false);
  expect(retryable({ status: 422, message: 'Unprocessable' })).toBe(false);
  expect(retryable({ status: 403, message: 'Resource not accessible by integration', response: { headers: {} } })).toBe(false);
  const limited = { status: 403, message: 'API rate limit exceeded', response: { headers: { 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': String(now.getTime() / 1000 + 600) } } };
  expect(retryable(limited)).toBe(true);
  expect(retryAt(limited, now)).toEqual(new Date(now.getTime() + 601_000));
  expect(retryAt({ response: { headers: { 'retry-after': '30' } } }, now)).toEqual(new Date(now.getTime() + 30_000));
  expect(retryAt(new Error('x'), now)).toBeNull();
});
