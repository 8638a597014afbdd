import { readFileSync } from 'node:fs';
import { extractDiff, parseDiff, splitPatchBody } from '../../src/patch/diff.js';
import type { Diff, DiffLine, FileDiff } from '../../src/model.js';
import { patchMails, readMbox, SHARED, type FixtureMail } from '../fixtures/diff/read-mbox.js';

const fixture = (name: string) => readFileSync(new URL(`../fixtures/diff/${name}`, import.meta.url), 'utf8');

function file(diff: Diff, path: string): FileDiff {
  const f = diff.files.find((x) => x.path === path);
  if (!f) throw new Error(`no file ${path} in ${diff.files.map((x) => x.path).join(', ')}`);
  return f;
}

const allLines = (f: FileDiff): DiffLine[] => f.hunks.flatMap((h) => h.lines);

let reference: FixtureMail;
let eager: FixtureMail[];
let ftw: FixtureMail[];

beforeAll(async () => {
  [reference] = await readMbox(`${SHARED}/xen-fpu-reset-v2-1of9.mbox`);
  eager = await readMbox(`${SHARED}/xen-eager-fpu-v2.mbox`);
  ftw = await readMbox(`${SHARED}/xen-ftw-alloc.mbox`);
});

// ---------------------------------------------------------------- splitPatchBody

describe('splitPatchBody', () => {
  test('reference patch: message, notes with diffstat, diff without the signature', () => {
    const parts = splitPatchBody(reference.text);
    expect(parts.commitMessage.startsWith("When using eager-fpu, a vCPU's FPU is always marked")).toBe(true);
    expect(parts.commitMessage.endsWith('Signed-off-by: Ross Lagerwall <ross.lagerwall@citrix.com>')).toBe(true);
    expect(parts.notes).toBe('New in v2\n\n xen/arch/x86/domain.c | 2 ++\n 1 file changed, 2 insertions(+)');
    expect(parts.diffstat).toBe(true);
    expect(parts.diffText!.startsWith('diff --git a/xen/arch/x86/domain.c b/xen/arch/x86/domain.c\n')).toBe(true);
    expect(parts.diffText!.endsWith('         arch_vcpu_regs_init(v);\n')).toBe(true);
    expect(parts.diffText).not.toContain('2.53.0');
  });

  test('two "---" lines: the first ends the message, the rest (CCs, remarks, diffstat) are notes', () => {
    const v1 = ftw.find((m) => m.subject.startsWith('[PATCH 2/2]'))!;
    const parts = splitPatchBody(v1.text);
    expect(parts.commitMessage.endsWith('Signed-off-by: Andrew Cooper <andrew.cooper3@citrix.com>')).toBe(true);
    expect(parts.commitMessage).not.toContain('CC:');
    expect(parts.notes.startsWith('CC: Jan Beulich <JBeulich@suse.com>')).toBe(true);
    expect(parts.notes).toContain("I don't understand what the rest of the comment is trying to say");
    expect(parts.notes.endsWith(' 1 file changed, 2 insertions(+), 1 deletion(-)')).toBe(true);
    expect(parts.diffText!.startsWith('diff --git a/xen/arch/x86/xstate.c')).toBe(true);
    expect(parts.diffText!.endsWith('     v->arch.xsave_area = save_area;\n')).toBe(true);
  });

  test('cover letter: diffstat but no diff; the signature is not part of the text', () => {
    const cover = eager.find((m) => m.subject.startsWith('[PATCH v2 0/9]'))!;
    const parts = splitPatchBody(cover.text);
    expect(parts.diffText).toBeNull();
    expect(parts.diffstat).toBe(true);
    expect(parts.notes).toBe('');
    expect(parts.commitMessage.startsWith('Remove the eager-fpu option')).toBe(true);
    expect(parts.commitMessage.endsWith(' 29 files changed, 59 insertions(+), 556 deletions(-)')).toBe(true);
    expect(parts.commitMessage).not.toContain('2.53.0');
  });

  test('a reply without diff or diffstat', () => {
    const reply = ftw.find((m) => m.subject.startsWith('Re:'))!;
    const parts = splitPatchBody(reply.text);
    expect(parts.diffText).toBeNull();
    expect(parts.diffstat).toBe(false);
  });

  test('Thunderbird-pasted diff without "---" separator or "diff --git": the message ends at "--- a/"', () => {
    const parts = splitPatchBody(fixture('thunderbird-plain.txt'));
    expect(parts.commitMessage.endsWith('Signed-off-by: Jane Doe <jane.doe@example.org>')).toBe(true);
    expect(parts.notes).toBe('');
    expect(parts.diffstat).toBe(false);
    expect(parts.diffText!.startsWith('--- a/xen/common/grant_table.c\n+++ b/xen/common/grant_table.c\n@@ ')).toBe(true);
    expect(parts.diffText!.endsWith('         max_grant_frames = opt_max_grant_frames;\n')).toBe(true);
  });

  test('"---" followed by whitespace is a separator (as in git mailinfo)', () => {
    const body = 'Fix it.\n\nSigned-off-by: A <a@example.org>\n---  \nv2: nothing\n\ndiff --git a/x.c b/x.c\n--- a/x.c\n+++ b/x.c\n@@ -1 +1 @@\n-a\n+b\n';
    const parts = splitPatchBody(body);
    expect(parts.commitMessage).toBe('Fix it.\n\nSigned-off-by: A <a@example.org>');
    expect(parts.notes).toBe('v2: nothing');
    expect(parts.diffText).toBe('diff --git a/x.c b/x.c\n--- a/x.c\n+++ b/x.c\n@@ -1 +1 @@\n-a\n+b\n');
  });

  test('"diff -" in prose does not end the commit message; "--- x" without "+++" is not a diff', () => {
    const body = [
      'Compare with the output of',
      'diff -u before after',
      'which shows the problem.',
      '--- not a file name',
      'still the message',
      '---',
      'notes',
    ].join('\n');
    const parts = splitPatchBody(body);
    expect(parts.commitMessage).toBe(body.slice(0, body.indexOf('\n---\n')));
    expect(parts.notes).toBe('notes');
    expect(parts.diffText).toBeNull();
  });

  test('text after the diff (b4 trailers, signature) is not part of the diff', () => {
    const body =
      'Msg\n---\n x.c | 2 +-\n 1 file changed, 1 insertion(+), 1 deletion(-)\n\n' +
      'diff --git a/x.c b/x.c\nindex 1111111..2222222 100644\n--- a/x.c\n+++ b/x.c\n@@ -1,2 +1,2 @@\n ctx\n-a\n+b\n' +
      '---\nbase-commit: 0123456789abcdef0123456789abcdef01234567\nchange-id: 20260101-x-1234\n\nBest regards,\n-- \nA <a@example.org>\n';
    const parts = splitPatchBody(body);
    expect(parts.diffstat).toBe(true);
    expect(parts.diffText!.endsWith('+b\n')).toBe(true);
    const diff = parseDiff(parts.diffText!);
    expect(diff.damage).toEqual([]);
  });
});

// ---------------------------------------------------------------- the real patches

describe('parseDiff on the xen-devel fixtures', () => {
  test('reference patch 1/9: file, blobs, hunk, line numbers and function', () => {
    const { diff } = extractDiff(reference.text);
    expect(diff!.damage).toEqual([]);
    expect(diff!.files).toHaveLength(1);
    const f = diff!.files[0];
    expect(f).toMatchObject({
      oldPath: 'xen/arch/x86/domain.c',
      newPath: 'xen/arch/x86/domain.c',
      path: 'xen/arch/x86/domain.c',
      status: 'modified',
      oldBlob: '9ba2774762cc',
      newBlob: '82da1c5d7b38',
      oldMode: '100644',
      newMode: '100644',
      binary: false,
      additions: 2,
      deletions: 0,
    });
    expect(f.hunks).toHaveLength(1);
    const h = f.hunks[0];
    expect(h).toMatchObject({
      header: '@@ -522,6 +522,8 @@ int arch_vcpu_create(struct vcpu *v)',
      oldStart: 522,
      oldLines: 6,
      newStart: 522,
      newLines: 8,
      headerFunction: 'int arch_vcpu_create(struct vcpu *v)',
    });
    const added = h.lines.find((l) => l.text === '        vcpu_reset_fpu(v);')!;
    expect(added).toEqual({ kind: 'add', text: '        vcpu_reset_fpu(v);', oldLine: null, newLine: 525, fn: 'arch_vcpu_create' });
    expect(h.lines[0]).toMatchObject({ kind: 'ctx', text: '        if ( (rc = vcpu_init_fpu(v)) != 0 )', oldLine: 522, newLine: 522 });
    const last = h.lines[h.lines.length - 1];
    expect(last).toMatchObject({ kind: 'ctx', text: '        arch_vcpu_regs_init(v);', oldLine: 527, newLine: 529 });
    // The empty context line is "" after its single space.
    expect(h.lines[2]).toMatchObject({ kind: 'ctx', text: '', oldLine: 524, newLine: 524 });
    expect(h.lines.every((l) => l.fn === 'arch_vcpu_create')).toBe(true);
  });

  /** " xen/arch/x86/domain.c | 2 ++" lines of a patch's notes: path suffix -> changed lines. */
  function diffstatOf(notes: string): Array<{ path: string; changed: number }> {
    const out: Array<{ path: string; changed: number }> = [];
    for (const line of notes.split('\n')) {
      const m = /^ (\S.*?)\s+\|\s+(\d+) [-+]*$/.exec(line);
      if (m) out.push({ path: m[1].replace(/^\.\.\.\//, ''), changed: Number(m[2]) });
    }
    return out;
  }

  test('every patch of both series: no damage, counts agree with the hunk headers and the diffstat', () => {
    const patches = [...patchMails(eager), ...patchMails(ftw)];
    expect(patches).toHaveLength(11);
    for (const p of patches) {
      const ex = extractDiff(p.text);
      expect({ subject: p.subject, damage: ex.diff!.damage }).toEqual({ subject: p.subject, damage: [] });
      expect(ex.diffstat).toBe(true);
      const stat = diffstatOf(ex.notes);
      expect(stat.length).toBe(ex.diff!.files.length);
      for (const s of stat) {
        const f = ex.diff!.files.find((x) => x.path.endsWith(s.path));
        expect({ subject: p.subject, path: s.path, changed: f && f.additions + f.deletions }).toEqual({
          subject: p.subject,
          path: s.path,
          changed: s.changed,
        });
      }
      for (const f of ex.diff!.files) {
        for (const h of f.hunks) {
          expect(h.lines.filter((l) => l.kind !== 'add')).toHaveLength(h.oldLines);
          expect(h.lines.filter((l) => l.kind !== 'del')).toHaveLength(h.newLines);
          // Line numbers run on from the header on both sides.
          const olds = h.lines.filter((l) => l.oldLine !== null).map((l) => l.oldLine);
          const news = h.lines.filter((l) => l.newLine !== null).map((l) => l.newLine);
          expect(olds).toEqual(olds.map((_, k) => h.oldStart + k));
          expect(news).toEqual(news.map((_, k) => h.newStart + k));
        }
      }
    }
  });

  test('patch 7/9 (ten files) reads every file and hunk', () => {
    const p = eager.find((m) => m.subject.startsWith('[PATCH v2 7/9]'))!;
    const { diff } = extractDiff(p.text);
    expect(diff!.files.map((f) => f.path)).toEqual([
      'xen/arch/x86/domctl.c',
      'xen/arch/x86/hvm/emulate.c',
      'xen/arch/x86/hvm/hvm.c',
      'xen/arch/x86/hvm/vlapic.c',
      'xen/arch/x86/i387.c',
      'xen/arch/x86/include/asm/hvm/hvm.h',
      'xen/arch/x86/include/asm/xstate.h',
      'xen/arch/x86/xstate.c',
      'xen/common/domain.c',
      'xen/include/xen/sched.h',
    ]);
    expect(file(diff!, 'xen/arch/x86/i387.c').hunks).toHaveLength(6);
  });
});

// ---------------------------------------------------------------- git extended headers

describe('git extended headers', () => {
  let diff: Diff;
  beforeAll(() => {
    diff = parseDiff(fixture('git-extended.txt'));
  });

  test('no damage, every file read', () => {
    expect(diff.damage).toEqual([]);
    expect(diff.files.map((f) => [f.status, f.path])).toEqual([
      ['renamed', 'xen/common/new name.c'],
      ['renamed', 'xen/common/sched/credit3.c'],
      ['copied', 'tools/include/xen/io/ring.h'],
      ['modified', 'tools/misc/xen-bugtool'],
      ['added', 'xen/common/empty.c'],
      ['deleted', 'xen/common/gone.c'],
      ['modified', 'docs/figs/layout.png'],
      ['added', 'tools/firmware/blob.bin'],
      ['modified', 'xen/common/version.c'],
    ]);
  });

  test('pure rename (similarity 100%, names with spaces, no hunks)', () => {
    expect(diff.files[0]).toMatchObject({
      oldPath: 'xen/common/old name.c',
      newPath: 'xen/common/new name.c',
      similarity: 100,
      hunks: [],
      additions: 0,
      deletions: 0,
      binary: false,
    });
  });

  test('rename with a content change', () => {
    const f = diff.files[1];
    expect(f).toMatchObject({
      oldPath: 'xen/common/sched/credit.c',
      newPath: 'xen/common/sched/credit3.c',
      similarity: 91,
      oldBlob: '0a1b2c3d4e5f',
      newBlob: '6a7b8c9d0e1f',
      additions: 1,
      deletions: 1,
    });
    expect(f.hunks[0].lines[2]).toMatchObject({ kind: 'add', text: ' * Credit3 scheduler', newLine: 2 });
  });

  test('copy', () => {
    expect(diff.files[2]).toMatchObject({
      oldPath: 'xen/include/public/io/ring.h',
      newPath: 'tools/include/xen/io/ring.h',
      similarity: 97,
      additions: 1,
      deletions: 1,
    });
  });

  test('mode-only change', () => {
    expect(diff.files[3]).toMatchObject({
      oldPath: 'tools/misc/xen-bugtool',
      newPath: 'tools/misc/xen-bugtool',
      oldMode: '100644',
      newMode: '100755',
      hunks: [],
    });
  });

  test('new empty file and deleted file', () => {
    expect(diff.files[4]).toMatchObject({ oldPath: null, newPath: 'xen/common/empty.c', newMode: '100644', hunks: [] });
    expect(diff.files[4].oldMode).toBeUndefined();
    const gone = diff.files[5];
    expect(gone).toMatchObject({ oldPath: 'xen/common/gone.c', newPath: null, path: 'xen/common/gone.c', oldMode: '100644', deletions: 3 });
    expect(gone.hunks[0].lines.map((l) => [l.kind, l.oldLine, l.newLine])).toEqual([
      ['del', 1, null],
      ['del', 2, null],
      ['del', 3, null],
    ]);
  });

  test('binary files: "Binary files ... differ" and a GIT binary patch, without hunks', () => {
    expect(diff.files[6]).toMatchObject({ binary: true, hunks: [], oldBlob: '0123456789ab', newBlob: 'ba9876543210' });
    expect(diff.files[7]).toMatchObject({ binary: true, hunks: [], status: 'added', oldPath: null });
  });

  test('"\\ No newline at end of file" on both sides, then the signature', () => {
    const f = diff.files[8];
    expect(f.hunks[0].lines).toEqual([
      { kind: 'del', text: 'const char *xen_extra = "-unstable";', oldLine: 1, newLine: null, fn: null, noNewline: true },
      { kind: 'add', text: 'const char *xen_extra = "-rc1";', oldLine: null, newLine: 1, fn: null, noNewline: true },
    ]);
  });
});

// ---------------------------------------------------------------- diffs without git headers

describe('diffs without "diff --git"', () => {
  test('Thunderbird: plain "--- a/" "+++ b/" with an empty line and a signature after the hunk', () => {
    const { diff } = extractDiff(fixture('thunderbird-plain.txt'));
    expect(diff!.damage).toEqual([]);
    expect(diff!.files).toHaveLength(1);
    const f = diff!.files[0];
    expect(f).toMatchObject({ oldPath: 'xen/common/grant_table.c', newPath: 'xen/common/grant_table.c', status: 'modified', additions: 3, deletions: 0 });
    expect(f.oldBlob).toBeUndefined();
    const add = f.hunks[0].lines.find((l) => l.kind === 'add')!;
    expect(add).toMatchObject({ text: '    if ( max_grant_frames < 1 )', newLine: 1990, fn: 'grant_table_init' });
  });

  test('diff -u with timestamps and a backup suffix; diff -N new file from /dev/null', () => {
    const diff = parseDiff(fixture('diff-u-timestamps.txt'));
    expect(diff.damage).toEqual([]);
    expect(diff.files.map((f) => [f.status, f.oldPath, f.newPath])).toEqual([
      ['modified', 'xen/arch/x86/setup.c', 'xen/arch/x86/setup.c'],
      ['added', null, 'xen/arch/x86/newfile.c'],
    ]);
    expect(diff.files[0].hunks[0].headerFunction).toBeNull();
    expect(diff.files[0].hunks[0].lines[4]).toMatchObject({ kind: 'add', text: 'static bool __initdata opt_nosmp = false;', newLine: 13 });
  });

  test('"diff -urN" and "Index:" headers before "---"/"+++"', () => {
    const text = [
      'Index: xen/common/foo.c',
      '===================================================================',
      '--- xen/common/foo.c\t(revision 100)',
      '+++ xen/common/foo.c\t(working copy)',
      '@@ -1 +1 @@',
      '-a',
      '+b',
      'diff -urN xen-4.21.orig/xen/common/bar.c xen-4.21/xen/common/bar.c',
      '--- xen-4.21.orig/xen/common/bar.c\t2026-01-01 10:00:00.000000000 +0000',
      '+++ xen-4.21/xen/common/bar.c\t2026-01-01 10:00:00.000000000 +0000',
      '@@ -1 +1 @@',
      '-c',
      '+d',
      '',
    ].join('\n');
    const diff = parseDiff(text);
    expect(diff.damage).toEqual([]);
    expect(diff.files.map((f) => [f.path, f.oldPath, f.additions])).toEqual([
      ['xen/common/foo.c', 'xen/common/foo.c', 1],
      ['xen/common/bar.c', 'xen/common/bar.c', 1],
    ]);
  });
});

test('quilt headers as the -mm tree sends them: "--- a/f~patch-name" / "+++ a/f" name f', () => {
  // The shape of Andrew Morton's mm-commits mails (seen in the linux-hyperv sample), applied with patch -p1.
  const text = [
    '--- a/mm/util.c~mm-various-small-mmap_prepare-cleanups-fix',
    '+++ a/mm/util.c',
    '@@ -1140,6 +1140,6 @@ int compat_vma_mmap(struct file *file, struct vm_area_struct *vma)',
    ' {',
    ' \tstruct vm_area_desc desc;',
    '-\tint err;',
    '+\tint err = 0;',
    ' ',
    ' \terr = vfs_mmap_prepare(file, &desc);',
    ' \tif (err)',
    '--- a/include/linux/mm.h~mm-various-small-mmap_prepare-cleanups-fix',
    '+++ a/include/linux/mm.h',
    '@@ -10,1 +10,1 @@',
    '-old',
    '+new',
    '',
  ].join('\n');
  const diff = parseDiff(text);
  expect(diff.damage).toEqual([]);
  expect(diff.files.map((f) => [f.status, f.oldPath, f.newPath])).toEqual([
    ['modified', 'mm/util.c', 'mm/util.c'],
    ['modified', 'include/linux/mm.h', 'include/linux/mm.h'],
  ]);
  expect(diff.files[0].hunks[0].lines.find((l) => l.kind === 'add')).toMatchObject({ newLine: 1142, fn: 'compat_vma_mmap' });
});

test('plain diffs without a/ on both sides keep their first directory ("--- xen/foo.c.orig" / "+++ xen/foo.c")', () => {
  const diff = parseDiff(['--- xen/common/foo.c.orig', '+++ xen/common/foo.c', '@@ -1 +1 @@', '-a', '+b', ''].join('\n'));
  expect(diff.files.map((f) => [f.oldPath, f.newPath])).toEqual([['xen/common/foo.c', 'xen/common/foo.c']]);
});

// ---------------------------------------------------------------- hunk boundaries

describe('hunk boundaries by the counts', () => {
  test('a removed line "-- foo" and a removed "- " line are body lines; the "-- " after the hunk is the signature', () => {
    const body = [
      'Drop the old separators.',
      '---',
      'diff --git a/docs/README b/docs/README',
      '--- a/docs/README',
      '+++ b/docs/README',
      '@@ -1,4 +1,2 @@',
      ' Title',
      '--- foo',
      '-- ',
      ' End',
      '-- ',
      '2.53.0',
      '',
    ].join('\n');
    const { diff } = extractDiff(body);
    expect(diff!.damage).toEqual([]);
    const lines = diff!.files[0].hunks[0].lines;
    expect(lines.map((l) => [l.kind, l.text])).toEqual([
      ['ctx', 'Title'],
      ['del', '-- foo'],
      ['del', '- '],
      ['ctx', 'End'],
    ]);
    expect(diff!.files[0].deletions).toBe(2);
  });

  test('multiple files and hunks', () => {
    const text = [
      'diff --git a/a.c b/a.c',
      '--- a/a.c',
      '+++ b/a.c',
      '@@ -1,2 +1,2 @@ int f(void)',
      ' x',
      '-y',
      '+z',
      '@@ -10 +10,2 @@ int g(void)',
      ' w',
      '+v',
      'diff --git a/b.h b/b.h',
      '--- a/b.h',
      '+++ b/b.h',
      '@@ -3,0 +4 @@',
      '+#define B 1',
      '',
    ].join('\n');
    const diff = parseDiff(text);
    expect(diff.damage).toEqual([]);
    expect(diff.files.map((f) => [f.path, f.hunks.length, f.additions, f.deletions])).toEqual([
      ['a.c', 2, 2, 1],
      ['b.h', 1, 1, 0],
    ]);
    expect(diff.files[0].hunks[1]).toMatchObject({ oldStart: 10, oldLines: 1, newStart: 10, newLines: 2, headerFunction: 'int g(void)' });
    expect(diff.files[0].hunks[1].lines[1]).toMatchObject({ kind: 'add', text: 'v', newLine: 11, fn: 'g' });
    expect(diff.files[1].hunks[0]).toMatchObject({ oldStart: 3, oldLines: 0, newStart: 4, newLines: 1, headerFunction: null });
    expect(diff.files[1].hunks[0].lines[0]).toMatchObject({ newLine: 4, fn: 'B' });
  });

  test('a hunk that lost lines: damage says how many, and the next file is still read', () => {
    const text = [
      'diff --git a/a.c b/a.c',
      '--- a/a.c',
      '+++ b/a.c',
      '@@ -1,4 +1,5 @@',
      ' one',
      '+two',
      ' three',
      'diff --git a/b.c b/b.c',
      '--- a/b.c',
      '+++ b/b.c',
      '@@ -1 +1 @@',
      '-x',
      '+y',
      '',
    ].join('\n');
    const diff = parseDiff(text);
    expect(diff.damage).toEqual(['a.c hunk @@ -1,4 +1,5 @@: 2 lines missing, cut by the next file header']);
    expect(diff.files.map((f) => f.path)).toEqual(['a.c', 'b.c']);
    expect(diff.files[0].hunks[0].lines).toHaveLength(3);
    expect(diff.files[1].hunks[0].lines.map((l) => l.text)).toEqual(['x', 'y']);
  });

  test('a hunk cut short by the signature', () => {
    const text = 'diff --git a/a.c b/a.c\n--- a/a.c\n+++ b/a.c\n@@ -1,3 +1,3 @@\n a\n-b\n+c\n-- \n2.53.0\n';
    const diff = parseDiff(text);
    expect(diff.damage).toEqual(['a.c hunk @@ -1,3 +1,3 @@: 1 line missing, cut by the mail signature']);
    expect(diff.files[0].hunks[0].lines.map((l) => l.kind)).toEqual(['ctx', 'del', 'add']);
  });

  test('a hunk header that does not parse is reported and skipped', () => {
    const text = 'diff --git a/a.c b/a.c\n--- a/a.c\n+++ b/a.c\n@@ -1,x +1 @@\n-a\n+b\n@@ -5 +5 @@\n-c\n+d\n';
    const diff = parseDiff(text);
    expect(diff.damage).toEqual(['a.c: hunk header does not parse: "@@ -1,x +1 @@"']);
    expect(diff.files[0].hunks).toHaveLength(1);
    expect(diff.files[0].hunks[0].oldStart).toBe(5);
  });
});

// ---------------------------------------------------------------- mail-client damage

describe('mail-client damage', () => {
  test('a wrapped long line: reported, joined back, and the counts (and later line numbers) still hold', () => {
    const diff = parseDiff(fixture('wrapped-outlook.txt'));
    expect(diff.damage).toEqual([
      'xen/arch/x86/hvm/hvm.c hunk @@ -100,6 +100,7 @@: line without diff prefix inside a hunk, read as the wrapped end of the line before: "quite long\\\\n\\", v, idx);"',
    ]);
    const hvm = file(diff, 'xen/arch/x86/hvm/hvm.c');
    const added = hvm.hunks[0].lines.find((l) => l.kind === 'add')!;
    expect(added.text).toBe('    printk(XENLOG_G_WARNING "%pv: setting thing %u to a value that is quite long\\n", v, idx);');
    expect(added.newLine).toBe(103);
    expect(hvm.hunks[0].lines[hvm.hunks[0].lines.length - 1]).toMatchObject({ text: '    return 0;', newLine: 106 });
    // The next file is unaffected.
    expect(file(diff, 'xen/arch/x86/hvm/vlapic.c').hunks[0].lines).toHaveLength(7);
    expect(file(diff, 'xen/arch/x86/hvm/vlapic.c').hunks[0].lines[3]).toMatchObject({ kind: 'add', newLine: 52 });
  });

  test('a wrapped line whose continuation starts with a space: the counts disagree and it is reported', () => {
    const text = [
      'diff --git a/a.c b/a.c',
      '--- a/a.c',
      '+++ b/a.c',
      '@@ -1,3 +1,4 @@ void f(void)',
      ' {',
      '+    printk("a message that is long enough for a mail client to wrap it",',
      ' v);',
      '     g();',
      ' }',
      '-- ',
      '2.53.0',
      '',
    ].join('\n');
    const diff = parseDiff(text);
    expect(diff.damage).toEqual(['a.c hunk @@ -1,3 +1,4 @@: 1 line right after the hunk beyond its counts (looks like diff lines)']);
  });

  test('surplus body lines after a hunk stay in diffText, so extractDiff still reports them', () => {
    // A flowed decoder joined a blank context line with the next hunk's header.
    const body = [
      'Fix.',
      '---',
      'diff --git a/a.c b/a.c',
      '--- a/a.c',
      '+++ b/a.c',
      '@@ -1,3 +1,3 @@ int f(void)',
      ' {',
      '-    a();',
      '+    b();',
      ' }',
      ' @@ -20,3 +20,3 @@ int g(void)',
      '     x();',
      '-    y();',
      '+    z();',
      '-- ',
      '2.53.0',
      '',
    ].join('\n');
    const parts = splitPatchBody(body);
    expect(parts.diffText!.endsWith('+    z();\n')).toBe(true);
    const { diff } = extractDiff(body);
    expect(diff!.damage).toEqual(['a.c hunk @@ -1,3 +1,3 @@: 4 lines right after the hunk beyond its counts (look like diff lines)']);
  });

  test('a wrapped "index" line is reported and does not open a second file', () => {
    const text = [
      'diff --git a/fs/ntfs3/fsntfs.c b/fs/ntfs3/fsntfs.c',
      'index',
      '0df2aa81d8845f21bfb571c408bd65b9e1fb8128..3ced4f95c2e95bac1fe5b334f976b8c8a15cf19d 100644',
      '--- a/fs/ntfs3/fsntfs.c',
      '+++ b/fs/ntfs3/fsntfs.c',
      '@@ -1 +1 @@',
      '-a',
      '+b',
      '',
    ].join('\n');
    const diff = parseDiff(text);
    expect(diff.files).toHaveLength(1);
    expect(diff.files[0].path).toBe('fs/ntfs3/fsntfs.c');
    expect(diff.damage).toEqual([
      'fs/ntfs3/fsntfs.c: unexpected line in the file header (wrapped?): "index"',
      'fs/ntfs3/fsntfs.c: unexpected line in the file header (wrapped?): "0df2aa81d8845f21bfb571c408bd65b9e1fb8128..."',
    ]);
  });

  test('a wrapped "diff --git" line: the names on the next line are used, and it is reported', () => {
    const text = [
      'diff --git',
      'a/Documentation/devicetree/bindings/reserved-memory/wakeup-mailbox.yaml b/Documentation/devicetree/bindings/reserved-memory/wakeup-mailbox.yaml',
      'new file mode 100644',
      'index 000000000000..111111111111',
      '',
    ].join('\n');
    const diff = parseDiff(text);
    expect(diff.files.map((f) => [f.status, f.path])).toEqual([['added', 'Documentation/devicetree/bindings/reserved-memory/wakeup-mailbox.yaml']]);
    expect(diff.damage).toHaveLength(2);
    expect(diff.damage[0]).toContain('"diff --git" line without file names (wrapped?)');
  });

  test('prose right after a pasted diff is not damage; the wrapped end of a long last line is', () => {
    const head = 'Fix.\n--- a/a.c\n+++ b/a.c\n@@ -1,2 +1,2 @@\n {\n-    a();\n';
    const prose = extractDiff(`${head}+    b();\nThanks,\nJane\n`);
    expect(prose.diff!.damage).toEqual([]);
    const wrapped = extractDiff(`${head}+    printk("a message long enough to be wrapped by the client at 72,\nsomewhere");\n`);
    expect(wrapped.diff!.damage).toEqual(['a.c hunk @@ -1,2 +1,2 @@: 1 line right after the hunk beyond its counts (looks like diff lines)']);
  });

  test('wrapping is judged by display width (tabs), and text between hunks is never prose', () => {
    // Kernel code: two tabs + 50 characters is 66 columns wide though only 52 characters long.
    const tabbed = parseDiff(
      '--- a/a.c\n+++ b/a.c\n@@ -1,2 +1,3 @@ void f(void)\n {\n+\t\tsint.as_uint64 = hv_get_non_nested_msr(HV_MSR_SINT0 +\nHV_SYNIC_SINT_INDEX);\n }\n',
    );
    expect(tabbed.damage).toEqual([
      'a.c hunk @@ -1,2 +1,3 @@: line without diff prefix inside a hunk, read as the wrapped end of the line before: "HV_SYNIC_SINT_INDEX);"',
    ]);
    expect(tabbed.files[0].hunks[0].lines[1].text).toBe('\t\tsint.as_uint64 = hv_get_non_nested_msr(HV_MSR_SINT0 + HV_SYNIC_SINT_INDEX);');
    // A short last line wrapped early (a long word followed): caught because a header follows.
    const early = parseDiff('--- a/a.c\n+++ b/a.c\n@@ -1,1 +1,2 @@\n x\n+static DECLARE_WORK(kvp_work,\nkvp_host_handshake_func);\n@@ -9 +10 @@\n-a\n+b\n');
    expect(early.damage).toEqual(['a.c hunk @@ -1,1 +1,2 @@: 1 line right after the hunk beyond its counts (looks like diff lines)']);
  });

  test('format=flowed joined two lines: the hunk is short by one line', () => {
    // A context line ending in a space was joined with the next one by a flowed decoder.
    const text = 'diff --git a/a.c b/a.c\n--- a/a.c\n+++ b/a.c\n@@ -1,3 +1,3 @@\n int x; int y;\n-a\n+b\n';
    const diff = parseDiff(text);
    expect(diff.damage).toEqual(['a.c hunk @@ -1,3 +1,3 @@: 1 line missing, cut by the end of the diff']);
  });

  test('an empty context line whose space was stripped is a context line, and no damage when the counts agree', () => {
    const text = 'diff --git a/a.c b/a.c\n--- a/a.c\n+++ b/a.c\n@@ -1,3 +1,4 @@\n a\n\n+b\n c\n';
    const diff = parseDiff(text);
    expect(diff.damage).toEqual([]);
    expect(diff.files[0].hunks[0].lines.map((l) => [l.kind, l.text, l.oldLine, l.newLine])).toEqual([
      ['ctx', 'a', 1, 1],
      ['ctx', '', 2, 2],
      ['add', 'b', null, 3],
      ['ctx', 'c', 3, 4],
    ]);
  });

  test('context lines that lost their leading space are read as context and reported', () => {
    const text = [
      'diff --git a/a.c b/a.c',
      '--- a/a.c',
      '+++ b/a.c',
      '@@ -10,4 +10,5 @@',
      '}',
      ' ',
      'static int foo(void)',
      '+/* new */',
      '{',
      '',
    ].join('\n');
    const diff = parseDiff(text);
    expect(diff.damage).toHaveLength(3);
    expect(diff.damage[0]).toBe('a.c hunk @@ -10,4 +10,5 @@: line without diff prefix inside a hunk, read as a context line: "}"');
    expect(diff.files[0].hunks[0].lines.map((l) => [l.kind, l.newLine])).toEqual([
      ['ctx', 10],
      ['ctx', 11],
      ['ctx', 12],
      ['add', 13],
      ['ctx', 14],
    ]);
  });

  test('CRLF line ends: no \\r in the text, no damage when every line has one', () => {
    const lf = 'diff --git a/a.c b/a.c\nindex 1111111..2222222 100644\n--- a/a.c\n+++ b/a.c\n@@ -1,2 +1,2 @@ int main(void)\n a\n-b\n+c\n';
    const diff = parseDiff(lf.replace(/\n/g, '\r\n'));
    expect(diff.damage).toEqual([]);
    expect(diff.files[0].path).toBe('a.c');
    expect(diff.files[0].newBlob).toBe('2222222');
    expect(diff.files[0].hunks[0].headerFunction).toBe('int main(void)');
    expect(diff.files[0].hunks[0].lines.map((l) => l.text)).toEqual(['a', 'b', 'c']);
  });

  test('mixed CRLF and LF: recorded as damage, text still clean', () => {
    const text = 'diff --git a/a.c b/a.c\n--- a/a.c\n+++ b/a.c\n@@ -1,2 +1,2 @@\n a\r\n-b\r\n+c\n';
    const diff = parseDiff(text);
    expect(diff.damage).toEqual(['mixed line endings: 2 of 7 diff lines end in CRLF']);
    expect(diff.files[0].hunks[0].lines.map((l) => l.text)).toEqual(['a', 'b', 'c']);
  });

  test('a CRLF mail without a diff: sections joined without \\r, the signature cut', () => {
    expect(extractDiff('Thanks,\r\n\r\nlooks good.\r\n\r\n-- \r\nJane\r\n')).toEqual({
      commitMessage: 'Thanks,\n\nlooks good.',
      notes: '',
      diff: null,
      diffstat: false,
    });
    const parts = splitPatchBody('v2: nothing\r\n---\r\n\r\nNotes here.\r\n-- \r\n2.53.0\r\n');
    expect(parts).toEqual({ commitMessage: 'v2: nothing', notes: 'Notes here.', diffText: null, diffstat: false });
  });

  test('a CRLF body through splitPatchBody keeps its \\r in diffText only', () => {
    const body = 'Fix.\r\n---\r\n a.c | 2 +-\r\n 1 file changed, 1 insertion(+), 1 deletion(-)\r\n\r\ndiff --git a/a.c b/a.c\r\n--- a/a.c\r\n+++ b/a.c\r\n@@ -1 +1 @@\r\n-b\r\n+c\r\n-- \r\n2.53.0\r\n';
    const ex = extractDiff(body);
    expect(ex.commitMessage).toBe('Fix.');
    expect(ex.diffstat).toBe(true);
    expect(ex.notes).not.toContain('\r');
    expect(ex.diff!.damage).toEqual([]);
    expect(ex.diff!.files[0].hunks[0].lines.map((l) => l.text)).toEqual(['b', 'c']);
  });
});

// ---------------------------------------------------------------- paths

describe('paths', () => {
  test('quoted names with escapes and UTF-8 octal bytes', () => {
    const text = [
      'diff --git "a/tools/x\\ty.c" "b/tools/x\\ty.c"',
      'index 1111111..2222222 100644',
      '--- "a/tools/x\\ty.c"',
      '+++ "b/tools/x\\ty.c"',
      '@@ -1 +1 @@',
      '-a',
      '+b',
      'diff --git "a/docs/caf\\303\\251.md" "b/docs/caf\\303\\251.md"',
      'new file mode 100644',
      'index 0000000..3333333',
      '--- /dev/null',
      '+++ "b/docs/caf\\303\\251.md"',
      '@@ -0,0 +1 @@',
      '+hello',
      'diff --git a/x "b/y \\"z\\""',
      'similarity index 100%',
      'rename from x',
      'rename to "y \\"z\\""',
      '',
    ].join('\n');
    const diff = parseDiff(text);
    expect(diff.damage).toEqual([]);
    expect(diff.files.map((f) => [f.status, f.oldPath, f.newPath])).toEqual([
      ['modified', 'tools/x\ty.c', 'tools/x\ty.c'],
      ['added', null, 'docs/café.md'],
      ['renamed', 'x', 'y "z"'],
    ]);
  });

  test('names with spaces: the trailing TAB git adds, and the "diff --git" line alone', () => {
    const text = [
      'diff --git a/docs/my notes.txt b/docs/my notes.txt',
      'index 1111111..2222222 100644',
      '--- a/docs/my notes.txt\t',
      '+++ b/docs/my notes.txt\t',
      '@@ -1 +1 @@',
      '-a',
      '+b',
      'diff --git a/tools/run me.sh b/tools/run me.sh',
      'old mode 100644',
      'new mode 100755',
      '',
    ].join('\n');
    const diff = parseDiff(text);
    expect(diff.files.map((f) => [f.oldPath, f.newPath])).toEqual([
      ['docs/my notes.txt', 'docs/my notes.txt'],
      ['tools/run me.sh', 'tools/run me.sh'],
    ]);
  });

  test('diff.noPrefix: names without a/ b/ are kept whole', () => {
    const text = 'diff --git xen/common/a.c xen/common/a.c\nindex 1111111..2222222 100644\n--- xen/common/a.c\n+++ xen/common/a.c\n@@ -1 +1 @@\n-a\n+b\n';
    expect(parseDiff(text).files[0].path).toBe('xen/common/a.c');
  });
});
