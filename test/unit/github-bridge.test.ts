// Mirror PRs and list threads, both ways, with the GitHub API faked by nock and the exact
// requests asserted:
//   - a maintainer's list reply on a linked PR becomes ONE review: its diff comment at the line it
//     quoted (attributed, with the archive link), its prose in the body; never twice, not even
//     after a crash between posting and recording;
//   - a PR review comment from an allowlisted user is forwarded to the list through the outbox,
//     threaded under the right patch mail; others (and bots, and patchvet itself) are not; the
//     forward coming back through the list is not mirrored back, an answer to it is.
import { join } from 'node:path';
import type nock from 'nock';
import { GithubIntegration, indexEntry } from '../../src/github/integration.js';
import { recordFromRaw } from '../../src/mail/record.js';
import { assembleThread } from '../../src/thread/assemble.js';
import { buildThreads } from '../../src/thread/jwz.js';
import type { MessageRecord } from '../../src/model.js';
import type { GithubSettings } from '../../src/github/config.js';
import {
  FILE,
  FULL,
  INSTALLATION_ID,
  OWNER,
  PR,
  REPO,
  appTestKit,
  installationToken,
  noRepoConfig,
  reviewCommentPayload,
  sendWebhook,
  xenMails,
  type AppHarness,
  type FakeCommit,
} from '../helpers/fake-github.js';
import { ANSWER_ID, FIXTURES, PATCH_ID, REVIEW_ID, header, mboxMessages, rawMail } from '../helpers/serve.js';

const HEAD = 'd'.repeat(40);
const LORE = (id: string) => `https://lore.kernel.org/xen-devel/${id.slice(1, -1)}/`;

const kit = appTestKit('patchvet-github-bridge-');
let commit: FakeCommit;
let mails: MessageRecord[];
let raws: Buffer[];

beforeAll(async () => {
  commit = kit.commit;
  const m = xenMails();
  raws = m.map((x) => x.raw);
  mails = await Promise.all(m.map((x) => recordFromRaw(x)));
});

/** A harness whose store holds the thread mails, the patch indexed and linked to the PR. */
async function linked(settings: Partial<GithubSettings> = {}, thread = [0]): Promise<AppHarness> {
  const h = await kit.harness(settings);
  for (const i of thread) {
    await h.store.putMessage(mails[i]!, raws[i]!, { key: 'test', position: String(i) });
    await h.store.markProcessed(mails[i]!.messageId);
  }
  await h.store.putPatchIndex(indexEntry(mails[0]!)!);
  await h.store.putGithubPr({ repo: FULL, pr: PR, installationId: INSTALLATION_ID, headSha: HEAD, baseSha: null, title: null, author: 'rosslagerwall', state: 'open' });
  await h.store.putPrCommits(FULL, PR, [{ sha: commit.sha, patchId: indexEntry(mails[0]!)!.patchId, subjectKey: indexEntry(mails[0]!)!.subjectKey, messageIds: [] }]);
  expect(await h.store.addGithubLink({ repo: FULL, pr: PR, messageId: PATCH_ID, commitSha: commit.sha, method: 'patch-id' })).toBe(true);
  return h;
}

/** Process one mail's GitHub side as serve does: plan (reads), then apply in a transaction. */
async function processMail(h: AppHarness, i: number, own = false): Promise<number> {
  await h.store.putMessage(mails[i]!, raws[i]!, { key: 'test', position: `p${i}` });
  const plan = await h.github.planMessage(mails[i]!, own);
  return h.store.transaction((tx) => GithubIntegration.applyPlan(tx, plan));
}

function prReads(scope: nock.Scope) {
  return scope
    .get(`/repos/${FULL}/pulls/${PR}`)
    .reply(200, { number: PR, state: 'open', title: 'x', user: { login: 'rosslagerwall' }, head: { sha: HEAD }, base: { sha: 'b'.repeat(40) }, commits: 1 })
    .get(`/repos/${FULL}/pulls/${PR}/files`)
    .query({ per_page: 100 })
    .reply(200, commit.files);
}

// ---------------------------------------------------------------- list -> PR

test('linking: a patch mail that arrives after the PR is linked by patch-id when serve processes it', async () => {
  const h = await kit.harness();
  try {
    const entry = indexEntry(mails[0]!)!;
    await h.store.putPrCommits(FULL, PR, [{ sha: commit.sha, patchId: entry.patchId, subjectKey: 'other title\nx@example.org', messageIds: [] }]);
    await h.store.putMessage(mails[0]!, raws[0]!, { key: 'test', position: '0' });
    const plan = await h.github.planMessage(mails[0]!, false);
    expect(plan).toEqual({ index: entry, links: [{ repo: FULL, pr: PR, messageId: PATCH_ID, commitSha: commit.sha, method: 'patch-id' }], jobs: [] });
    await h.store.transaction((tx) => GithubIntegration.applyPlan(tx, plan));
    // Stored both ways: PR -> patch, patch -> PR.
    expect((await h.store.githubLinks(FULL, PR)).map((l) => l.messageId)).toEqual([PATCH_ID]);
    expect((await h.store.githubLinksForMessages([PATCH_ID])).map((l) => `${l.repo}#${l.pr}`)).toEqual([`${FULL}#${PR}`]);
    expect(await h.store.patchesByPatchId(entry.patchId!)).toEqual([PATCH_ID]);
  } finally {
    await h.close();
  }
});

test("a maintainer's reply on a linked PR: one review, the diff comment at line 525 attributed with the archive link, the prose in the body", async () => {
  const h = await linked();
  try {
    expect(await processMail(h, 1)).toBe(1);
    let posted: Record<string, unknown> | undefined;
    const scope = prReads(installationToken())
      .post(`/repos/${FULL}/pulls/${PR}/reviews`, (b) => ((posted = b), true))
      .reply(200, { id: 700 })
      .get(`/repos/${FULL}/pulls/${PR}/reviews/700/comments`)
      .query({ per_page: 100 })
      .reply(200, [{ id: 7001, body: `x <!-- patchvet:mail=%3C0471e754-9ea7-4fb5-b573-b770713b2f53@citrix.com%3E#2 -->` }]);
    expect(await h.github.round()).toBe(1);
    scope.done();
    expect(h.unmatched).toEqual([]);
    const review = posted as { commit_id: string; event: string; body: string; comments: Array<{ path: string; line: number; side: string; body: string }> };
    expect(review.commit_id).toBe(HEAD);
    expect(review.event).toBe('COMMENT');
    const prose = mails[1]!.blocks; // the reply's own text, as serve reads it
    expect(prose.length).toBeGreaterThan(0);
    expect(review.body.split('\n')[0]).toBe(
      `**Andrew Cooper** replied on the list on 2026-03-24 to “Re: [PATCH v2 1/9] x86/domain: Ensure a vCPU's FPU is reset early” ([archived mail](${LORE(REVIEW_ID)})):`,
    );
    expect(review.body).toContain('How?\n\nI don\'t think a PV vCPU can.');
    expect(review.body).toContain('<!-- patchvet:mail=%3C0471e754-9ea7-4fb5-b573-b770713b2f53@citrix.com%3E#0 -->');
    expect(review.body).toContain('<!-- patchvet:mail=%3C0471e754-9ea7-4fb5-b573-b770713b2f53@citrix.com%3E#1 -->');
    expect(review.comments).toHaveLength(1);
    const [c] = review.comments;
    expect([c!.path, c!.line, c!.side]).toEqual([FILE, 525, 'RIGHT']);
    expect(c!.body.split('\n').slice(0, 3)).toEqual([
      `**Andrew Cooper** wrote on the list ([archived mail](${LORE(REVIEW_ID)})):`,
      '',
      '... this really should be part of allocating the memory.',
    ]);
    expect(c!.body.endsWith('~Andrew\n<!-- patchvet:mail=%3C0471e754-9ea7-4fb5-b573-b770713b2f53@citrix.com%3E#2 -->')).toBe(true);
    const rows = await h.store.githubComments(FULL, PR);
    expect(rows.map((r) => [r.key, r.kind, r.commentId, r.reviewId, r.line])).toEqual(
      expect.arrayContaining([
        [`mail:${REVIEW_ID}#2`, 'mirror-inline', 7001, 700, 525],
        [`mail:${REVIEW_ID}#0`, 'mirror-body', null, 700, null],
        [`mail:${REVIEW_ID}#1`, 'mirror-body', null, 700, null],
      ]),
    );
    // The same mail again (another source, a re-read): the job exists, nothing is queued.
    expect(await processMail(h, 1)).toBe(0);
    expect(await h.github.round()).toBe(0);
  } finally {
    await h.close();
  }
});

test('a crash between posting the mirror and recording it: the retry finds the markers on GitHub and posts nothing', async () => {
  const h = await linked();
  try {
    expect(await processMail(h, 2)).toBe(1); // the author's answer: prose only
    // A worker claims the job and dies after posting (its lease expires).
    const [job] = await h.store.claimGithubJobs(1, 0.05, 'dead-worker');
    expect(job?.kind).toBe('mirror');
    await new Promise((r) => setTimeout(r, 120));
    const markers = [0, 1, 2].map((i) => `<!-- patchvet:mail=%3C68469e6b-33c8-4020-bd8b-75afe8f6570a@citrix.com%3E#${i} -->`).join('\n');
    const scope = prReads(installationToken())
      .get(`/repos/${FULL}/pulls/${PR}/comments`)
      .query({ per_page: 100 })
      .reply(200, [])
      .get(`/repos/${FULL}/pulls/${PR}/reviews`)
      .query({ per_page: 100 })
      .reply(200, [{ id: 701, body: `**Ross Lagerwall** replied on the list ...\n${markers}` }]);
    expect(await h.github.round()).toBe(1);
    scope.done();
    expect(h.unmatched).toEqual([]); // no POST
    expect(await h.store.getGithubJob(job!.key)).toMatchObject({ state: 'done', attempts: 2 });
  } finally {
    await h.close();
  }
});

test('mirrored are replies to the linked patch only: not our own mail, not a muted sender, not a reply to another patch', async () => {
  const h = await linked({ mirrorFrom: ['*@citrix.com'] });
  try {
    // Our own reply to the patch (the bot's address) is never mirrored.
    const own = rawMail(
      `From: patchvet <bot@patchvet.example>\nTo: xen-devel@lists.xenproject.org\nSubject: Re: [PATCH v2 1/9] x86/domain: Ensure a vCPU's FPU is reset early\n` +
        `Message-ID: <patchvet.own@patchvet.example>\nIn-Reply-To: ${PATCH_ID}\nReferences: ${PATCH_ID}\nDate: Wed, 25 Mar 2026 09:00:00 +0000\n\n` +
        `> +        vcpu_reset_fpu(v);\n\nA point.\n`,
    );
    const ownRec = await recordFromRaw(own);
    await h.store.putMessage(ownRec, own.raw, { key: 'test', position: 'own' });
    expect((await h.github.planMessage(ownRec, false)).jobs).toEqual([]);
    // A sender outside mirrorFrom.
    const other = rawMail(
      `From: Someone <someone@example.org>\nTo: xen-devel@lists.xenproject.org\nSubject: Re: [PATCH v2 1/9] x86/domain: Ensure a vCPU's FPU is reset early\n` +
        `Message-ID: <other@example.org>\nIn-Reply-To: ${PATCH_ID}\nReferences: ${PATCH_ID}\nDate: Wed, 25 Mar 2026 09:00:00 +0000\n\n` +
        `> +        vcpu_reset_fpu(v);\n\nA point.\n`,
    );
    const otherRec = await recordFromRaw(other);
    await h.store.putMessage(otherRec, other.raw, { key: 'test', position: 'other' });
    expect((await h.github.planMessage(otherRec, false)).jobs).toEqual([]);
    // The maintainer (citrix.com) is mirrored.
    await h.store.putMessage(mails[1]!, raws[1]!, { key: 'test', position: '1' });
    const plan = await h.github.planMessage(mails[1]!, false);
    expect(plan.jobs.map((j) => [j.key, j.kind, j.installationId])).toEqual([[`mirror:${FULL}#${PR}:${REVIEW_ID}`, 'mirror', INSTALLATION_ID]]);
    // A reply in the same thread to a patch that is not linked: nothing.
    const unrelated = { ...mails[1]!, messageId: '<unlinked@citrix.com>', inReplyTo: '<some-other-patch@citrix.com>', references: ['<some-other-patch@citrix.com>'] };
    expect((await h.github.planMessage(unrelated, false)).jobs).toEqual([]);
  } finally {
    await h.close();
  }
});

// ---------------------------------------------------------------- PR -> list

const HUNK = [
  '@@ -522,6 +522,8 @@ int arch_vcpu_create(struct vcpu *v)',
  '         if ( (rc = vcpu_init_fpu(v)) != 0 )',
  '             return rc;',
  ' ',
  '+        vcpu_reset_fpu(v);',
].join('\n');

const prInfo = { owner: OWNER, repo: REPO, number: PR, head: HEAD, base: 'b'.repeat(40) };

async function comment(h: AppHarness, c: { id: number; login: string; body: string; type?: string }): Promise<number> {
  return sendWebhook(h, 'pull_request_review_comment', reviewCommentPayload(prInfo, { ...c, path: FILE, line: 525, diffHunk: HUNK }));
}

/** The token, then no repository config: what a forward reads before it decides. */
function configReads() {
  return noRepoConfig(installationToken());
}

test('a PR review comment from an allowlisted user is forwarded to the list as a threaded reply to the patch, once', async () => {
  const h = await linked({ forward: [{ repo: FULL, users: ['andyhhp'] }] });
  try {
    const scope = configReads();
    expect(await comment(h, { id: 3_100_000_001, login: 'AndyHHP', body: 'Please do this in xstate_alloc_save_area() instead.\n\nThe idle vCPU never gets here.' })).toBe(200);
    scope.done();
    expect(h.unmatched).toEqual([]);
    const item = await h.store.getReply(`github-forward:${FULL}:review-comment:3100000001`);
    expect(item).not.toBeNull();
    const eml = item!.eml.toString('utf8');
    expect(item!.inReplyTo).toBe(PATCH_ID);
    expect(item!.to).toEqual(['ross.lagerwall@citrix.com']);
    expect(item!.cc).toEqual(['xen-devel@lists.xenproject.org']);
    expect(item!.channel).toBe('outbox');
    expect(header(eml, 'From')).toBe('"AndyHHP (GitHub) via patchvet" <bot@patchvet.example>');
    expect(header(eml, 'To')).toBe('Ross Lagerwall <ross.lagerwall@citrix.com>');
    expect(header(eml, 'Cc')).toBe('xen-devel@lists.xenproject.org');
    expect(header(eml, 'Subject')).toBe("Re: [PATCH v2 1/9] x86/domain: Ensure a vCPU's FPU is reset early");
    expect(header(eml, 'In-Reply-To')).toBe(PATCH_ID);
    expect(header(eml, 'References')).toBe(`<20260324181937.2465574-1-ross.lagerwall@citrix.com> ${PATCH_ID}`);
    expect(header(eml, 'Message-ID')).toBe(item!.messageId);
    expect(header(eml, 'X-GitHub-Comment')).toBe(`https://github.com/${FULL}/pull/${PR}#discussion_r3100000001`);
    expect(eml.slice(eml.indexOf('\n\n') + 2)).toBe(
      [
        `AndyHHP commented on GitHub, ${FULL}#${PR} on ${FILE} line 525:`,
        `<https://github.com/${FULL}/pull/${PR}#discussion_r3100000001>`,
        '',
        `> diff --git a/${FILE} b/${FILE}`,
        `> --- a/${FILE}`,
        `> +++ b/${FILE}`,
        '> @@ -522,6 +522,8 @@ int arch_vcpu_create(struct vcpu *v)',
        '>          if ( (rc = vcpu_init_fpu(v)) != 0 )',
        '>              return rc;',
        '>',
        '> +        vcpu_reset_fpu(v);',
        '',
        'Please do this in xstate_alloc_save_area() instead.',
        '',
        'The idle vCPU never gets here.',
        '',
        '-- ',
        'Forwarded by patchvet from a GitHub pull request; answers on the list',
        'are shown on the pull request.',
        '',
      ].join('\n'),
    );
    expect(await h.store.githubForward(FULL, 'review-comment', 3_100_000_001)).toMatchObject({ login: 'AndyHHP', messageId: item!.messageId, inReplyTo: PATCH_ID });
    // The forward, read back by serve's own anchoring, lands on the line it quotes.
    const back = await recordFromRaw(rawMail(eml));
    expect(back.kind).toBe('reply');
    const { threads } = buildThreads([mails[0]!, back]);
    const byId = new Map([mails[0]!, back].map((r) => [r.messageId, r]));
    const t = assembleThread(threads.find((x) => x.messages.some((m) => m.messageId === back.messageId))!, (id) => byId.get(id));
    const anchored = t.messages.find((m) => m.messageId === back.messageId)!.comments.filter((c) => c.file);
    expect(anchored.map((c) => [c.file, c.line, c.side])).toEqual([[FILE, 525, 'new']]);
    expect(anchored[0]!.text).toContain('Please do this in xstate_alloc_save_area() instead.');

    // GitHub redelivers it: nothing more, not even a request.
    expect(await comment(h, { id: 3_100_000_001, login: 'AndyHHP', body: 'Please do this in xstate_alloc_save_area() instead.' })).toBe(200);
    expect(h.unmatched).toEqual([]);
    expect((await h.store.outboxStats()).queued).toBe(1);

    // The forward comes back through the list: it is ours, never mirrored back to the PR...
    const forwardRec = { ...back, messageId: item!.messageId };
    expect((await h.github.planMessage(forwardRec, false)).jobs).toEqual([]);
    // ...while the maintainer's answer to it is.
    const answer = await recordFromRaw(
      rawMail(
        `From: Jan Beulich <jbeulich@suse.com>\nTo: xen-devel@lists.xenproject.org\nSubject: Re: [PATCH v2 1/9] x86/domain: Ensure a vCPU's FPU is reset early\n` +
          `Message-ID: <answer-to-forward@suse.com>\nIn-Reply-To: ${item!.messageId}\nReferences: <20260324181937.2465574-1-ross.lagerwall@citrix.com> ${PATCH_ID} ${item!.messageId}\n` +
          `Date: Thu, 26 Mar 2026 08:00:00 +0100\n\nOn 25.03.2026, AndyHHP wrote:\n> Please do this in xstate_alloc_save_area() instead.\n\nAgreed.\n`,
      ),
    );
    await h.store.putMessage({ ...back, messageId: item!.messageId, inReplyTo: PATCH_ID, references: [PATCH_ID] }, Buffer.from(eml), { key: 'test', position: 'fwd' });
    await h.store.putMessage(answer, Buffer.from('x'), { key: 'test', position: 'answer' });
    expect((await h.github.planMessage(answer, false)).jobs.map((j) => j.key)).toEqual([`mirror:${FULL}#${PR}:<answer-to-forward@suse.com>`]);
  } finally {
    await h.close();
  }
});

test('not forwarded: users outside the allowlist, bots, patchvet itself, repositories without a forward entry, and a repo config that says no', async () => {
  const h = await linked({ forward: [{ repo: FULL, users: ['andyhhp'] }] });
  try {
    expect(await comment(h, { id: 1, login: 'someone', body: 'LGTM' })).toBe(200);
    expect(await comment(h, { id: 2, login: 'andyhhp', body: 'x', type: 'Bot' })).toBe(200);
    expect(await comment(h, { id: 3, login: 'andyhhp', body: `**Andrew Cooper** wrote on the list\n<!-- patchvet:mail=%3Cx@y%3E#0 -->` })).toBe(200);
    expect(h.unmatched).toEqual([]); // refused before any request
    const scope = installationToken()
      .get(`/repos/${FULL}/contents/.github%2Fpatchvet.yml`)
      .reply(200, 'forward: false\n', { 'content-type': 'text/plain; charset=utf-8' });
    expect(await comment(h, { id: 4, login: 'andyhhp', body: 'A real point.' })).toBe(200);
    scope.done();
    expect(h.unmatched).toEqual([]);
    expect((await h.store.outboxStats()).queued).toBe(0);
  } finally {
    await h.close();
  }
  const none = await linked({ forward: [] });
  try {
    expect(await comment(none, { id: 5, login: 'andyhhp', body: 'A real point.' })).toBe(200);
    expect(none.unmatched).toEqual([]);
    expect((await none.store.outboxStats()).queued).toBe(0);
  } finally {
    await none.close();
  }
});

test('a conversation comment on the PR is forwarded as a reply to the series cover letter', async () => {
  const h = await linked({ forward: [{ repo: FULL, users: ['andyhhp'] }] });
  try {
    const [coverMsg] = mboxMessages(join(FIXTURES, 'xen-eager-fpu-v2.mbox'));
    const cover = await recordFromRaw(coverMsg!);
    expect(cover.kind).toBe('cover');
    await h.store.putMessage(cover, coverMsg!.raw, { key: 'test', position: 'cover' });
    const scope = configReads();
    const payload = {
      action: 'created',
      issue: { number: PR, pull_request: { url: `https://api.github.com/repos/${FULL}/pulls/${PR}` } },
      comment: { id: 77, body: 'Could the series be split in two?', html_url: `https://github.com/${FULL}/pull/${PR}#issuecomment-77`, user: { login: 'andyhhp', type: 'User' } },
      repository: { id: 1, name: REPO, full_name: FULL, owner: { login: OWNER } },
      installation: { id: INSTALLATION_ID },
      sender: { login: 'andyhhp', type: 'User' },
    };
    expect(await sendWebhook(h, 'issue_comment', payload)).toBe(200);
    scope.done();
    const item = await h.store.getReply(`github-forward:${FULL}:issue-comment:77`);
    expect(item?.inReplyTo).toBe(cover.messageId);
    const eml = item!.eml.toString('utf8');
    expect(header(eml, 'Subject')).toBe('Re: [PATCH v2 0/9] x86: Always use eager-fpu');
    expect(header(eml, 'References')).toBe(cover.messageId);
    expect(eml).toContain(`andyhhp commented on GitHub, ${FULL}#${PR}:\n<https://github.com/${FULL}/pull/${PR}#issuecomment-77>\n\nCould the series be split in two?\n`);
    // An issue (not a PR) is never forwarded.
    const issue = { ...payload, issue: { number: 99 }, comment: { ...payload.comment, id: 78 } };
    expect(await sendWebhook(h, 'issue_comment', issue)).toBe(200);
    expect(h.unmatched).toEqual([]);
    expect((await h.store.outboxStats()).queued).toBe(1);
  } finally {
    await h.close();
  }
});

test('an unlinked PR: the comment is not forwarded (there is no patch mail to answer)', async () => {
  const h = await kit.harness({ forward: [{ repo: FULL, users: ['andyhhp'] }] });
  try {
    const scope = configReads();
    expect(await comment(h, { id: 6, login: 'andyhhp', body: 'A real point.' })).toBe(200);
    scope.done();
    expect((await h.store.outboxStats()).queued).toBe(0);
    expect(await h.store.githubForward(FULL, 'review-comment', 6)).toBeNull();
  } finally {
    await h.close();
  }
});

void ANSWER_ID;
