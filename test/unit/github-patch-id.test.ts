// patch-id --stable in TypeScript, checked against the real `git patch-id --stable` on commits
// made by the test in a scratch repository (every kind of change git prints differently), and
// on the reference xen-devel patch mail.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { recordFromRaw } from '../../src/mail/record.js';
import { parseDiff } from '../../src/patch/diff.js';
import { hunkCounts, patchIdOfDiff, patchIdOfText, renderGitDiff } from '../../src/github/patch-id.js';
import { XEN_THREAD, mboxMessages } from '../helpers/serve.js';

let repo: string;
const git = (...args: string[]) =>
  execFileSync('git', args, {
    cwd: repo,
    encoding: 'utf8',
    env: { ...process.env, GIT_AUTHOR_DATE: '2026-03-24T18:19:29Z', GIT_COMMITTER_DATE: '2026-03-24T18:19:29Z' },
  });
const gitIn = (input: string, ...args: string[]) => execFileSync('git', args, { cwd: repo, input, encoding: 'utf8' });
const write = (name: string, text: string | Buffer) => writeFileSync(join(repo, name), text);
const commit = (msg: string) => {
  git('add', '-A');
  git('commit', '-q', '-m', msg);
  return git('rev-parse', 'HEAD').trim();
};
/** What git says: "git show <sha> | git patch-id --stable". */
const gitPatchId = (sha: string) => gitIn(git('show', sha), 'patch-id', '--stable').split(' ')[0]!;

const C_FILE = Array.from({ length: 40 }, (_, i) => `int f${i}(void) { return ${i}; }`).join('\n') + '\n';

const commits: Array<{ what: string; sha: string }> = [];

beforeAll(() => {
  repo = mkdtempSync(join(tmpdir(), 'patchvet-patch-id-'));
  git('init', '-q');
  git('config', 'user.email', 'dev@example.org');
  git('config', 'user.name', 'Dev');
  git('config', 'core.fileMode', 'true');
  write('single.txt', 'one\n');
  write('main.c', C_FILE);
  write('other.c', C_FILE.replace(/return/g, 'yield'));
  write('old-name.c', C_FILE.replace(/int/g, 'long'));
  write('gone.c', 'int gone;\n');
  write('blob.bin', Buffer.from([0, 1, 2, 3, 255, 0, 7]));
  write('tool.sh', '#!/bin/sh\necho hi\n');
  write('noeol.txt', 'last line');
  commit('base');
  write('single.txt', 'two\n'); // "@@ -1 +1 @@": counts without commas
  commits.push({ what: 'one-line hunk without counts', sha: commit('single') });
  write('main.c', C_FILE.replace('return 3;', 'return  3 ;').replace('return 30;', 'return 31;\n\tcall();'));
  commits.push({ what: 'two hunks in one file', sha: commit('two hunks') });
  write('main.c', readFileSync(join(repo, 'main.c'), 'utf8').replace('return 10;', 'return 11;'));
  write('other.c', readFileSync(join(repo, 'other.c'), 'utf8').replace('yield 5;', 'yield 6;'));
  write('new-file.c', 'int added(void)\n{\n\treturn 1;\n}\n');
  unlinkSync(join(repo, 'gone.c'));
  commits.push({ what: 'several files: modified, added, deleted', sha: commit('several') });
  renameSync(join(repo, 'old-name.c'), join(repo, 'new-name.c'));
  write('new-name.c', readFileSync(join(repo, 'new-name.c'), 'utf8').replace('long f2(', 'long g2('));
  commits.push({ what: 'rename with a change', sha: commit('rename') });
  renameSync(join(repo, 'new-name.c'), join(repo, 'moved.c'));
  write('single.txt', 'three\n');
  commits.push({ what: 'pure rename plus another file', sha: commit('pure rename') });
  chmodSync(join(repo, 'tool.sh'), 0o755);
  write('tool.sh', '#!/bin/sh\necho hello\n');
  commits.push({ what: 'mode change with content', sha: commit('mode') });
  write('noeol.txt', 'last line changed');
  commits.push({ what: 'no newline at end of file', sha: commit('noeol') });
  write('blob.bin', Buffer.from([0, 1, 2, 3, 254, 0, 7, 9]));
  write('single.txt', 'four\n');
  commits.push({ what: 'binary file and a text file', sha: commit('binary') });
});

afterAll(() => {
  if (repo) rmSync(repo, { recursive: true, force: true });
});

test('hunk header counts: omitted counts are 1', () => {
  expect(hunkCounts('@@ -1 +1 @@')).toEqual({ before: 1, after: 1 });
  expect(hunkCounts('@@ -522,6 +522,8 @@ int arch_vcpu_create(struct vcpu *v)')).toEqual({ before: 6, after: 8 });
  expect(hunkCounts('@@ -0,0 +1,4 @@')).toEqual({ before: 0, after: 4 });
  expect(hunkCounts('@@ junk')).toBeNull();
});

test('the id of `git show` output equals git patch-id --stable, for every kind of change', () => {
  expect(commits.length).toBe(8);
  for (const c of commits) {
    const expected = gitPatchId(c.sha);
    expect({ what: c.what, id: patchIdOfText(git('show', c.sha)) }).toEqual({ what: c.what, id: expected });
  }
  // Distinct changes have distinct ids.
  expect(new Set(commits.map((c) => gitPatchId(c.sha))).size).toBe(commits.length);
});

test('the parsed diff rendered back to git text keeps the id (text changes; binary by blob ids)', () => {
  for (const c of commits) {
    const show = git('show', '--format=', c.sha);
    const diff = parseDiff(show);
    expect(diff.damage).toEqual([]);
    expect({ what: c.what, id: patchIdOfDiff(diff) }).toEqual({ what: c.what, id: gitPatchId(c.sha) });
  }
});

test('format-patch mails give the commit id (what links a PR commit to its list patch)', async () => {
  for (const c of commits.filter((x) => !x.what.startsWith('binary'))) {
    const mail = git('format-patch', '-1', '--stdout', c.sha);
    const rec = await recordFromRaw({ raw: Buffer.from(mail), ref: { source: 'x:0', file: 'x', offset: 0, length: mail.length } });
    expect(rec.kind).toBe('patch');
    expect({ what: c.what, id: patchIdOfDiff(rec.diff) }).toEqual({ what: c.what, id: gitPatchId(c.sha) });
    // git patch-id reads mails too.
    expect(gitIn(mail, 'patch-id', '--stable').split(' ')[0]).toBe(gitPatchId(c.sha));
  }
});

test('whitespace, line numbers and file order do not change the id; content does', () => {
  const a = 'diff --git a/x.c b/x.c\n--- a/x.c\n+++ b/x.c\n@@ -10,3 +10,3 @@ f\n ctx\n-old(a, b);\n+new(a, b);\n ctx2\n';
  const b = 'diff --git a/y.c b/y.c\n--- a/y.c\n+++ b/y.c\n@@ -1,1 +1,2 @@\n keep\n+added();\n';
  const id = patchIdOfText(a + b);
  expect(id).toMatch(/^[0-9a-f]{40}$/);
  expect(patchIdOfText(b + a)).toBe(id);
  expect(patchIdOfText((a + b).replace('@@ -10,3 +10,3 @@ f', '@@ -99,3 +120,3 @@ g'))).toBe(id);
  expect(patchIdOfText((a + b).replace('new(a, b);', 'new(a,\tb);  '))).toBe(id);
  expect(patchIdOfText((a + b).replace('new(a, b);', 'new(b, a);'))).not.toBe(id);
  expect(patchIdOfText('just a commit message\n')).toBeNull();
  expect(patchIdOfDiff(null)).toBeNull();
  // Cross-checked with git itself, in a fresh repository-less run.
  expect(gitIn(a + b, 'patch-id', '--stable').split(' ')[0]).toBe(id);
});

test('the reference xen-devel patch: mail, commit text and rendered diff agree with git', async () => {
  const [patch] = mboxMessages(XEN_THREAD);
  const rec = await recordFromRaw(patch!);
  const raw = patch!.raw.toString('utf8');
  const body = raw.slice(raw.indexOf('\n\n') + 2);
  const expected = gitIn(`From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\n${raw}`, 'patch-id', '--stable').split(' ')[0];
  expect(expected).toMatch(/^[0-9a-f]{40}$/);
  expect(patchIdOfText(body)).toBe(expected);
  expect(patchIdOfDiff(rec.diff)).toBe(expected);
  expect(renderGitDiff(rec.diff!)).toContain('+        vcpu_reset_fpu(v);\n');
});
