// The examples runner on the common pack, and on deliberately broken rules.
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultRulesDir, loadPacks } from '../../src/rules/load.js';
import { exampleToMail, formatExampleResults, runExamples } from '../../src/rules/examples.js';
import { makeRecord } from '../support/rules-record.js';

const common = loadPacks([join(defaultRulesDir(), 'common')]);

describe('common pack examples', () => {
  test('the pack loads without errors and every rule has flag and ok examples', () => {
    expect(common.errors).toEqual([]);
    expect(common.rules.map((r) => r.id).sort()).toEqual([
      'common/changelog-placement',
      'common/fixes-tag',
      'common/signed-off-by',
      'common/subject-form',
      'common/trailing-whitespace',
      'common/whitespace-damage',
    ]);
    for (const r of common.rules) {
      expect(r.examples.flag.length).toBeGreaterThan(0);
      expect(r.examples.ok.length).toBeGreaterThan(0);
    }
  });

  test('every example passes', async () => {
    const results = await runExamples(common.rules, common.kb, makeRecord);
    const report = formatExampleResults(results);
    const failed = results.filter((r) => !r.passed);
    if (failed.length) console.log(report);
    expect(failed).toEqual([]);
    expect(report).toMatch(new RegExp(`\\n${results.length} passed, 0 failed\\n$`));
    expect(results.length).toBe(common.rules.reduce((n, r) => n + r.examples.flag.length + r.examples.ok.length, 0));
  });
});

describe('exampleToMail', () => {
  test('wraps a bare diff into a signed-off patch mail with an area-prefixed subject', () => {
    const mail = exampleToMail('diff --git a/x.c b/x.c\n--- a/x.c\n+++ b/x.c\n@@ -1 +1 @@\n-a\n+b\n', 'r/x-flag-0');
    expect(mail).toMatch(/^From: Example Author <author@example.org>\nSubject: \[PATCH\] example: change\n/);
    expect(mail).toContain('Message-ID: <r-x-flag-0@patchvet.invalid>');
    expect(mail).toMatch(/\nSigned-off-by: Example Author <author@example.org>\n---\ndiff --git a\/x.c b\/x.c\n/);
  });

  test('keeps a whole mail as it is (an "x86: ..." first line is not taken for a header)', () => {
    const mail = 'From: A <a@b.c>\nSubject: [PATCH] x: y\n\nbody\n';
    expect(exampleToMail(mail)).toBe(mail);
    const msg = 'x86: Do it\n\nSigned-off-by: A <a@b.c>\n---\ndiff --git a/x.c b/x.c\n';
    expect(exampleToMail(msg)).toMatch(/^From: Example Author.*\n(.*\n)*\nx86: Do it\n/);
  });
});

describe('a broken rule fails with a clear report', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'patchvet-rules-'));
    mkdirSync(join(dir, 'demo'));
    // Trigger on "spin_lock(" but the flag example adds spin_lock_irqsave(): it cannot fire.
    // And the ok example does add spin_lock(), so it fires where it must not.
    writeFileSync(
      join(dir, 'demo', 'raw-lock.yml'),
      `id: demo/raw-lock
title: Raw spin_lock
severity: warning
trigger:
  added: ['\\bspin_lock\\(']
message: "Use the irqsave variant in {function}."
guide: A demo rule.
examples:
  flag:
    - name: irqsave used
      patch: |
        diff --git a/xen/common/foo.c b/xen/common/foo.c
        --- a/xen/common/foo.c
        +++ b/xen/common/foo.c
        @@ -10,2 +10,3 @@ int foo(struct domain *d)
             int rc;
        +    spin_lock_irqsave(&d->lock, flags);
             rc = bar(d);
      expect:
        - line: 11
  ok:
    - name: plain lock
      patch: |
        diff --git a/xen/common/foo.c b/xen/common/foo.c
        --- a/xen/common/foo.c
        +++ b/xen/common/foo.c
        @@ -10,2 +10,3 @@ int foo(struct domain *d)
             int rc;
        +    spin_lock(&d->lock);
             rc = bar(d);
`,
    );
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test('flag without a finding and ok with one are both reported, with the reason', async () => {
    const packs = loadPacks([dir]);
    expect(packs.errors).toEqual([]);
    const results = await runExamples(packs.rules, packs.kb, makeRecord);
    expect(results.map((r) => [r.kind, r.name, r.passed])).toEqual([
      ['flag', 'irqsave used', false],
      ['ok', 'plain lock', false],
    ]);
    expect(results[0]!.problems[0]).toMatch(/expected a finding, got none: no added\/removed line matches the trigger/);
    expect(results[1]!.problems[0]).toMatch(/expected no finding, got 1: xen\/common\/foo.c:11 warning: Use the irqsave variant in foo\./);
    const report = formatExampleResults(results);
    expect(report).toContain('demo/raw-lock (');
    expect(report).toContain('raw-lock.yml)');
    expect(report).toContain('  ✗ flag: irqsave used\n      expected a finding, got none');
    expect(report).toContain('  ✗ ok: plain lock\n      expected no finding, got 1');
    expect(report.trimEnd().split('\n').pop()).toBe('0 passed, 2 failed');
  });

  test('an expectation on the wrong line and an unfilled placeholder are failures', async () => {
    const packs = loadPacks([dir]);
    const rule = { ...packs.rules[0]!, message: 'Lock taken in {function} without {why}.' };
    rule.examples = {
      flag: [{ ...rule.examples.ok[0]!, name: 'wrong line', expect: [{ line: 12 }] }],
      ok: [],
    };
    const [r] = await runExamples([rule], packs.kb, makeRecord);
    expect(r!.passed).toBe(false);
    expect(r!.problems.join('\n')).toMatch(/the message still has \{why\}/);
    expect(r!.problems.join('\n')).toMatch(/expect\[0\] \(line=12\) not met; got: xen\/common\/foo.c:11/);
  });
});
