// The common pack on real mail: quiet on the correct Xen series, and right on real (or
// minimally edited real) patches that break the conventions.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { Finding, MessageRecord } from '../../src/model.js';
import { defaultRulesDir, loadPacks } from '../../src/rules/load.js';
import { runRules } from '../../src/rules/engine.js';
import { CHANGELOG_LINE, fixesProblem, parseAddress } from '../../src/rules/matchers/common.js';
import { FIXTURES, makeRecord, mboxRecords, readMbox } from '../support/rules-record.js';

const common = loadPacks([join(defaultRulesDir(), 'common')]);
const run = (r: MessageRecord): Finding[] => runRules(r, common.rules, { kb: common.kb });

const xenMails = readMbox(join(FIXTURES, 'xen-eager-fpu-v2.mbox'));
/** Raw text of patch n/9 of the eager-fpu series. */
const patchText = (n: number): string => xenMails.find((m) => m.includes(`Subject: [PATCH v2 ${n}/9]`))!;

describe('quiet on the real, correct Xen patches', () => {
  test.each(['xen-eager-fpu-v2.mbox', 'xen-ftw-alloc.mbox', 'xen-fpu-reset-v2-1of9.mbox'])('%s', async (file) => {
    const recs = await mboxRecords(join(FIXTURES, file));
    const patches = recs.filter((r) => r.kind === 'patch');
    expect(patches.length).toBe({ 'xen-eager-fpu-v2.mbox': 9, 'xen-ftw-alloc.mbox': 2, 'xen-fpu-reset-v2-1of9.mbox': 1 }[file]);
    for (const r of recs) expect({ subject: r.subject, findings: run(r) }).toEqual({ subject: r.subject, findings: [] });
  });
});

describe('real Xen patch 5/9 with one thing broken', () => {
  const base = patchText(5);

  test('the in-body author (Wei Liu) loses his sign-off', async () => {
    const r = await makeRecord(base.replace('Signed-off-by: Wei Liu <wei.liu2@citrix.com>\n', ''));
    expect(r.author.address).toBe('wei.liu2@citrix.com');
    const f = run(r);
    expect(f).toHaveLength(1);
    expect(f[0]).toMatchObject({
      rule: 'common/signed-off-by',
      severity: 'warning',
      file: null,
      line: null,
      source: 'rule',
      series: { version: 2, index: 5, total: 9 },
      messageId: '<20260324181937.2465574-6-ross.lagerwall@citrix.com>',
    });
    expect(f[0]!.message).toBe(
      'Wei Liu <wei.liu2@citrix.com> is the author but has no Signed-off-by here: keep their sign-off (if the patch is yours, fix the author instead).',
    );
  });

  test('no sign-off at all', async () => {
    const r = await makeRecord(base.replace(/^Signed-off-by: .*\n/gm, ''));
    const f = run(r);
    expect(f.map((x) => x.rule)).toEqual(['common/signed-off-by']);
    expect(f[0]!.message).toMatch(/^No Signed-off-by: the patch needs one from its author \(Wei Liu <wei.liu2@citrix.com>\)/);
  });

  test('the v2 changelog moved above the "---"', async () => {
    const moved = base.replace(
      'Signed-off-by: Wei Liu <wei.liu2@citrix.com>\nSigned-off-by: Ross Lagerwall <ross.lagerwall@citrix.com>\n---\nIn v2:\n',
      'In v2:\n* Tweaked the commit message\n\nSigned-off-by: Wei Liu <wei.liu2@citrix.com>\nSigned-off-by: Ross Lagerwall <ross.lagerwall@citrix.com>\n---\n',
    );
    expect(moved).not.toBe(base);
    const f = run(await makeRecord(moved));
    expect(f.map((x) => [x.rule, x.severity, x.code])).toEqual([['common/changelog-placement', 'warning', 'In v2:']]);
    // The same text in a v1 posting is not a changelog placement problem.
    const v1 = run(await makeRecord(moved.replace('[PATCH v2 5/9]', '[PATCH 5/9]')));
    expect(v1).toEqual([]);
  });

  test('a subject without area and with a full stop: one finding, the second problem as a note', async () => {
    const r = await makeRecord(base.replace('Subject: [PATCH v2 5/9] x86/traps: Remove lazy FPU support', 'Subject: [PATCH v2 5/9] Remove lazy FPU support.'));
    const f = run(r);
    expect(f).toHaveLength(1);
    expect(f[0]!.rule).toBe('common/subject-form');
    expect(f[0]!.severity).toBe('info');
    expect(f[0]!.message).toMatch(/no "area: " prefix/);
    expect(f[0]!.notes).toEqual(['Drop the full stop at the end of the subject.']);
  });

  test('a Fixes: tag with a short sha and no subject', async () => {
    const r = await makeRecord(base.replace('Signed-off-by: Wei Liu', 'Fixes: 954ba3b\nSigned-off-by: Wei Liu'));
    const f = run(r);
    expect(f.map((x) => x.rule)).toEqual(['common/fixes-tag']);
    expect(f[0]!.message).toMatch(/sha "954ba3b" is too short/);
    expect(f[0]!.code).toBe('Fixes: 954ba3b');
  });

  test('trailing whitespace: one finding per file and function, at the first line', async () => {
    const edited = base
      .replace('\n+        ASSERT_UNREACHABLE();\n', '\n+        ASSERT_UNREACHABLE();\t\n')
      .replace('\n+    clts();\n', '\n+    clts(); \n')
      .replace('\n+        clts();\n', '\n+        clts();  \n');
    const f = run(await makeRecord(edited));
    expect(f.map((x) => [x.rule, x.file, x.line, x.function])).toEqual([
      ['common/trailing-whitespace', 'xen/arch/x86/pv/misc-hypercalls.c', 45, 'do_fpu_taskswitch'],
      ['common/trailing-whitespace', 'xen/arch/x86/traps.c', 2050, 'do_device_not_available'],
    ]);
    expect(f[1]!.code).toBe('        ASSERT_UNREACHABLE();\t');
    // Same message for both lines in traps.c: nothing to add as a note.
    expect(f[1]!.notes).toBeUndefined();
  });

  test('sent as format=flowed: the damage is an error', async () => {
    const flowed = base.replace('Content-Type: text/plain\n', 'Content-Type: text/plain; charset=UTF-8; format=flowed\n');
    expect(flowed).not.toBe(base);
    const f = run(await makeRecord(flowed));
    expect(f.map((x) => [x.rule, x.severity])).toEqual([['common/whitespace-damage', 'error']]);
    expect(f[0]!.message).toBe(
      'The patch looks damaged by the mail client (format=flowed / wrapped lines): please resend with git send-email.',
    );
  });
});

describe('real linux-hyperv patches', () => {
  const mails = gunzipSync(readFileSync(join(FIXTURES, 'real/linux-hyperv-2026.mbox.gz')))
    .toString('utf8')
    .split(/^From [^\n]*\n/m)
    .map((m) => m.replace(/^>(>*From )/gm, '$1'));
  const find = (subject: string): string => {
    const m = mails.find((x) => x.includes(`\nSubject: ${subject}`));
    if (!m) throw new Error(`no mail ${subject}`);
    return m;
  };

  test('sent by one person, signed off by another: flagged', async () => {
    const r = await makeRecord(find('[PATCH 55/55] drivers: hv: dxgkrnl: Code cleanup'));
    expect(run(r).map((f) => [f.rule, f.message])).toEqual([
      ['common/signed-off-by', 'Eric Curtin <ericcurtin17@gmail.com> is the author but has no Signed-off-by here: keep their sign-off (if the patch is yours, fix the author instead).'],
    ]);
  });

  test('a stable review mail (author named by a later From: line) is not flagged', async () => {
    const r = await makeRecord(find('[PATCH 6.19 200/220] x86/hyperv: Use __naked attribute'));
    expect(r.author.name).toBe('Greg Kroah-Hartman');
    expect(run(r)).toEqual([]);
  });

  test('a sign-off below the first "---" is lost by git am: flagged as missing', async () => {
    const r = await makeRecord(find('[PATCH 01/61] Coccinelle: Prefer IS_ERR_OR_NULL'));
    expect(run(r).map((f) => f.rule)).toEqual(['common/signed-off-by']);
  });

  test('a DRM-style "v2:" changelog in the commit message', async () => {
    const r = await makeRecord(find('[PATCH v2 2/9] drm/vblank: Add DRM_VBLANK_FLAG_SIMULATED'));
    const f = run(r).filter((x) => x.rule === 'common/changelog-placement');
    expect(f.map((x) => x.code)).toEqual(['v2:']);
  });
});

describe('matcher helpers', () => {
  test('fixesProblem', () => {
    expect(fixesProblem('639de2aafa4b ("x86/fpu: Initialise FCW")')).toBeNull();
    expect(fixesProblem('639de2aafa4b21a4cd6a8ff0d1d4a7e9e0cc1d3b ("x86: a (nested) "quoted" subject")')).toBeNull();
    expect(fixesProblem('639de2a ("x86/fpu: Initialise FCW")')).toMatch(/too short/);
    expect(fixesProblem('639de2aafa4b')).toMatch(/lacks the commit's subject/);
    expect(fixesProblem('639de2aafa4b x86/fpu: Initialise FCW')).toMatch(/Write the subject of 639de2aafa4b as \("<subject>"\)/);
    expect(fixesProblem('639de2aafa4b ("x86/fpu: Initialise')).toMatch(/cut short/);
    expect(fixesProblem('#123')).toMatch(/names an issue/);
    expect(fixesProblem('https://github.com/x/y/issues/1')).toMatch(/names an issue/);
    expect(fixesProblem('commit 639de2aafa4b ("x")')).toMatch(/Drop the word "commit"/);
    expect(fixesProblem('a race in the scheduler')).toMatch(/needs a commit id/);
  });

  test('changelog lines', () => {
    for (const l of ['v2:', 'Changes in v2:', 'Changes since v1:', 'changes from v3', 'v1 -> v2:', '- v3: take the lock', 'In v2:', 'v2 changes:', 'Changelog:']) {
      expect({ l, m: CHANGELOG_LINE.test(l) }).toEqual({ l, m: true });
    }
    for (const l of ['The v2 interface of the hypercall', 'use the v2: form', 'Changes the v2 ABI', 'vcpu_v2_init()']) {
      expect({ l, m: CHANGELOG_LINE.test(l) }).toEqual({ l, m: false });
    }
  });

  test('parseAddress', () => {
    expect(parseAddress('Ross Lagerwall <ross.lagerwall@citrix.com>')).toEqual({ name: 'Ross Lagerwall', address: 'ross.lagerwall@citrix.com' });
    expect(parseAddress('"Daniel P. Smith" <dpsmith@apertussolutions.com>')).toEqual({ name: 'Daniel P. Smith', address: 'dpsmith@apertussolutions.com' });
    expect(parseAddress('jane@example.org')).toEqual({ name: '', address: 'jane@example.org' });
  });
});
