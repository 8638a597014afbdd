// `patchvet review` end to end: the reference thread raises the maintainer's three points on
// the added vcpu_reset_fpu(v) line, nothing on replies; outputs in every format; exit codes.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { run } from '../helpers/cli.js';

const FIX = join(process.cwd(), '../shared/fixtures');
const REF = join(FIX, 'xen-fpu-reset-v2-1of9.mbox');
const PATCH_ID = '<20260324181937.2465574-2-ross.lagerwall@citrix.com>';

describe('review on the reference thread', () => {
  let doc: any;
  beforeAll(async () => {
    const r = await run(['review', REF, '--format', 'json']);
    expect(r.code).toBe(0);
    doc = JSON.parse(r.out);
  });

  test('all three Xen families on xen/arch/x86/domain.c at the added line', () => {
    expect(doc.schema).toBe('patchvet/review@1');
    const xen = doc.findings.filter((f: any) => f.rule.startsWith('xen/'));
    const rules = new Set(xen.map((f: any) => f.rule));
    for (const id of ['xen/fpu-init-order', 'xen/idle-vcpu-path', 'xen/alloc-time-init']) expect(rules).toContain(id);
    for (const f of xen.filter((f: any) => ['xen/fpu-init-order', 'xen/idle-vcpu-path', 'xen/alloc-time-init'].includes(f.rule))) {
      expect(f).toMatchObject({ messageId: PATCH_ID, file: 'xen/arch/x86/domain.c', line: 525, side: 'new', function: 'arch_vcpu_create', source: 'rule' });
      expect(f.code).toBe('        vcpu_reset_fpu(v);');
      expect(f.series).toEqual({ version: 2, index: 1, total: 9 });
      expect(f.fingerprint).toMatch(/^[0-9a-f]{16}$/);
    }
  });

  test("the messages carry the maintainer's three points", () => {
    const all = doc.findings
      .filter((f: any) => f.rule.startsWith('xen/'))
      .map((f: any) => [f.message, ...(f.notes ?? [])].join(' '))
      .join('\n');
    expect(all).toMatch(/idle vCPU/i);
    expect(all).toMatch(/xstate_alloc_save_area\(\)/);
    expect(all).toMatch(/fpu_initialised/);
  });

  test('nothing on the replies', () => {
    expect(doc.findings.every((f: any) => f.messageId === PATCH_ID)).toBe(true);
    expect(doc.stats).toMatchObject({ messages: 3, threads: 1, patches: 1 });
  });

  test('text output is compiler style, grouped per patch, with the code line', async () => {
    const r = await run(['review', REF]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^\[PATCH v2 1\/9\] x86\/domain: Ensure a vCPU's FPU is reset early$/m);
    expect(r.out).toMatch(/^xen\/arch\/x86\/domain\.c:525: (error|warning): \[xen\/idle-vcpu-path\] /m);
    expect(r.out).toMatch(/^ +525 \| \+ +vcpu_reset_fpu\(v\);$/m);
  });

  test('--fail-on gives exit 1 when a finding is at or above it', async () => {
    expect((await run(['review', REF, '--fail-on', 'warning', '--format', 'json'])).code).toBe(1);
  });

  test('SARIF 2.1.0 validates and carries locations and fingerprints', async () => {
    const r = await run(['review', REF, '--format', 'sarif']);
    const sarif = JSON.parse(r.out);
    const schema = JSON.parse(readFileSync(join(process.cwd(), 'test/fixtures/schemas/sarif-2.1.0-subset.json'), 'utf8'));
    const ajv = new Ajv({ allErrors: true, strict: false });
    const validate = ajv.compile(schema);
    const valid = validate(sarif);
    expect(validate.errors ?? []).toEqual([]);
    expect(valid).toBe(true);
    const res = sarif.runs[0].results.find((x: any) => x.ruleId === 'xen/idle-vcpu-path');
    expect(res.locations[0].physicalLocation).toMatchObject({ artifactLocation: { uri: 'xen/arch/x86/domain.c' }, region: { startLine: 525 } });
    expect(res.partialFingerprints['patchvet/v1']).toMatch(/^[0-9a-f]{16}$/);
    expect(sarif.runs[0].tool.driver.rules[res.ruleIndex].id).toBe('xen/idle-vcpu-path');
  });

  test('email preview: one threaded plain-text reply quoting only the hunk lines concerned', async () => {
    const r = await run(['review', REF, '--format', 'email']);
    expect(r.code).toBe(0);
    const mails = r.out.split(/^From patchvet .*$/m).filter((s) => s.trim());
    expect(mails).toHaveLength(1);
    const m = mails[0];
    expect(m).toMatch(/^Subject: Re: \[PATCH v2 1\/9\] x86\/domain: Ensure a vCPU's FPU is reset early$/m);
    expect(m).toMatch(new RegExp(`^In-Reply-To: ${PATCH_ID}$`, 'm'));
    expect(m).toMatch(/^References: <20260324181937\.2465574-1-ross\.lagerwall@citrix\.com>\s+<20260324181937\.2465574-2-ross\.lagerwall@citrix\.com>$/m);
    expect(m).toMatch(/^To: Ross Lagerwall <ross\.lagerwall@citrix\.com>$/m);
    expect(m).toMatch(/^> \+        vcpu_reset_fpu\(v\);$/m);
    expect(m).toMatch(/^> @@ -522,6 \+522,8 @@ int arch_vcpu_create\(struct vcpu \*v\)$/m);
    expect(m).not.toMatch(/^> .*vmce_init_vcpu/m); // only the lines up to the finding, not the rest of the hunk
    const body = m.split(/\n\n/).slice(1).join('\n\n');
    for (const line of body.split('\n')) if (!line.startsWith('> ')) expect(line.length).toBeLessThanOrEqual(72);
  });
});

describe('silence and scope', () => {
  test('the correct replacement fix (FTW in xstate_alloc_save_area) gets at most info', async () => {
    const r = await run(['review', join(FIX, 'xen-ftw-alloc.mbox'), '--format', 'json']);
    const doc = JSON.parse(r.out);
    expect(doc.findings.filter((f: any) => f.rule.startsWith('xen/') && f.severity !== 'info')).toEqual([]);
  });

  test('the eager-fpu series: its 1/9 is the reference patch (flagged); patches 2-9 get no Xen warning or error', async () => {
    const r = await run(['review', join(FIX, 'xen-eager-fpu-v2.mbox'), '--format', 'json']);
    const doc = JSON.parse(r.out);
    const xen = doc.findings.filter((f: any) => f.rule.startsWith('xen/') && f.severity !== 'info');
    expect(xen.filter((f: any) => f.series?.index !== 1)).toEqual([]);
    expect(new Set(xen.filter((f: any) => f.series?.index === 1).map((f: any) => f.rule))).toEqual(
      new Set(['xen/fpu-init-order', 'xen/idle-vcpu-path', 'xen/alloc-time-init']),
    );
  });

  test('no Xen finding on 3,000 linux-hyperv mails', async () => {
    const r = await run(['review', join(FIX, 'real/linux-hyperv-2026.mbox.gz'), '--format', 'json']);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.out);
    expect(doc.stats.messages).toBe(3000);
    expect(doc.findings.filter((f: any) => f.rule.startsWith('xen/'))).toEqual([]);
    expect(doc.errors).toEqual([]);
  });
});
