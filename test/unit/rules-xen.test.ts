// The Xen pack: every rule's examples, the real xen-devel fixtures (the reference review, the
// fix that replaced it, the whole eager-FPU series) and silence on 3,000 linux-hyperv mails.
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { join } from 'node:path';
import type { Finding, MessageRecord } from '../../src/model.js';
import { defaultRulesDir, loadPacks } from '../../src/rules/load.js';
import { formatExampleResults, runExamples } from '../../src/rules/examples.js';
import { runRules } from '../../src/rules/engine.js';
import { FIXTURES, makeRecord, mboxRecords, readMbox } from '../support/rules-record.js';
import type { TreeView } from '../../src/rules/types.js';
import { exampleToMail } from '../../src/rules/examples.js';
import {
  allocation,
  assignment,
  declarations,
  findCalls,
  memsetCall,
  newSide,
  normalizeCode,
  sizeofOperand,
  statementStart,
  zeroingTwin,
} from '../../src/rules/matchers/c.js';
import { _internal, inKbList, xenMatchers } from '../../src/rules/matchers/xen.js';
import { MATCHERS } from '../../src/rules/matchers/index.js';

const HERE = join(process.cwd(), 'test', 'fixtures', 'xen');

async function patchRecord(file: string): Promise<MessageRecord> {
  const text = readFileSync(join(HERE, file), 'utf8');
  return makeRecord(file.endsWith('.mbox') ? text : exampleToMail(text, file));
}

const xen = loadPacks([join(defaultRulesDir(), 'xen')]);

function describeFindings(fs: Finding[]): string {
  return fs.map((f) => `${f.rule} ${f.severity} ${f.file}:${f.line} ${f.message}${f.notes ? ' | ' + f.notes.join(' | ') : ''}`).join('\n');
}

function run(record: MessageRecord): Finding[] {
  return runRules(record, xen.rules, { kb: xen.kb });
}

describe('xen pack', () => {
  test('loads without errors; the three FPU families and at least four more rules', () => {
    expect(xen.errors).toEqual([]);
    const ids = xen.rules.map((r) => r.id);
    for (const id of ['xen/fpu-init-order', 'xen/idle-vcpu-path', 'xen/alloc-time-init']) expect(ids).toContain(id);
    expect(ids.length).toBeGreaterThanOrEqual(7);
    for (const r of xen.rules) {
      expect(r.scope.paths).toEqual(['xen/**']);
      expect(r.scope.lists).toEqual(['xen-devel@lists.xenproject.org', 'xen-devel.lists.xenproject.org']);
      expect(r.examples.flag.length).toBeGreaterThan(0);
      expect(r.examples.ok.length).toBeGreaterThan(0);
    }
  });

  test('every example passes', async () => {
    const results = await runExamples(xen.rules, xen.kb, makeRecord);
    const failed = results.filter((r) => !r.passed);
    if (failed.length) console.log(formatExampleResults(failed));
    expect(failed.map((r) => `${r.rule} ${r.kind}: ${r.name}: ${r.problems.join('; ')}`)).toEqual([]);
  });
});

describe('the reference review (xen-fpu-reset-v2-1of9.mbox)', () => {
  let records: MessageRecord[];
  beforeAll(async () => {
    records = await mboxRecords(join(FIXTURES, 'xen-fpu-reset-v2-1of9.mbox'));
  });

  test('the patch gets all three families on domain.c line 525, carrying the three review points', () => {
    const patch = records.find((r) => r.kind === 'patch')!;
    const fs = run(patch);
    const at525 = fs.filter((f) => f.file === 'xen/arch/x86/domain.c' && f.line === 525);
    const byRule = (id: string): Finding => {
      const f = at525.find((x) => x.rule === id);
      if (!f) throw new Error(`no ${id} at 525; got:\n${describeFindings(fs)}`);
      return f;
    };
    const order = byRule('xen/fpu-init-order');
    const idle = byRule('xen/idle-vcpu-path');
    const alloc = byRule('xen/alloc-time-init');
    // (a) the idle vCPU never takes that path
    expect(idle.message).toMatch(/idle vCPU never runs arch_vcpu_create\(\)'s non-idle path/);
    expect(idle.function).toBe('arch_vcpu_create');
    // (b) the reset belongs in xstate_alloc_save_area()
    for (const f of [order, idle, alloc]) expect(f.message).toMatch(/xstate_alloc_save_area\(\)/);
    expect(alloc.message).toMatch(/right after vcpu_init_fpu\(\) allocated/);
    // (c) vcpu_reset_fpu() clears fpu_initialised, which the context switch sets unconditionally
    expect(order.message).toMatch(/vcpu_reset_fpu\(\) sets v->fpu_initialised = false/);
    expect(order.message).toMatch(/vcpu_restore_fpu_nonlazy\(\) sets it unconditionally/);
    for (const f of [order, idle, alloc]) {
      expect(f.side).toBe('new');
      expect(f.code).toBe('        vcpu_reset_fpu(v);');
      expect(f.severity).toBe('warning');
    }
    // nothing else from the Xen pack on this two-line patch
    expect(fs.filter((f) => f.line !== 525)).toEqual([]);
  });

  test('the replies get nothing', () => {
    const replies = records.filter((r) => r.kind === 'reply');
    expect(replies.length).toBe(2);
    for (const r of replies) expect(run(r)).toEqual([]);
  });
});

describe('the fix that replaced it (xen-ftw-alloc.mbox)', () => {
  test('its patches get at most an info question', async () => {
    const records = await mboxRecords(join(FIXTURES, 'xen-ftw-alloc.mbox'));
    const patches = records.filter((r) => r.kind === 'patch');
    expect(patches.length).toBe(2);
    for (const p of patches) {
      const fs = run(p);
      expect(fs.filter((f) => f.severity !== 'info')).toEqual([]);
    }
    for (const r of records.filter((x) => x.kind !== 'patch')) expect(run(r)).toEqual([]);
  });
});

describe('the eager-FPU series (xen-eager-fpu-v2.mbox)', () => {
  test('no warning or error on any patch but 1/9 (the reference patch itself)', async () => {
    const records = await mboxRecords(join(FIXTURES, 'xen-eager-fpu-v2.mbox'));
    const patches = records.filter((r) => r.kind === 'patch');
    expect(patches.length).toBe(9);
    const report: string[] = [];
    for (const p of patches) {
      const fs = run(p);
      const index = p.parsedSubject.series?.index;
      if (index === 1) {
        expect(new Set(fs.map((f) => f.rule))).toEqual(new Set(['xen/fpu-init-order', 'xen/idle-vcpu-path', 'xen/alloc-time-init']));
        continue;
      }
      for (const f of fs) report.push(`${index}/9 ${f.rule} ${f.severity} ${f.file}:${f.line} ${f.message}`);
    }
    expect(report.filter((l) => !/ info /.test(l))).toEqual([]);
    // What is left are questions; keep them few.
    expect(report.length).toBeLessThanOrEqual(2);
  });
});

describe('linux-hyperv (3,000 non-Xen mails)', () => {
  test('no Xen finding at all', async () => {
    const gz = readFileSync(join(FIXTURES, 'real', 'linux-hyperv-2026.mbox.gz'));
    const text = gunzipSync(gz).toString('utf8');
    const mails = text
      .split(/^From [^\n]*\n/m)
      .filter((m) => m.trim())
      .map((m) => m.replace(/^>(>*From )/gm, '$1'));
    expect(mails.length).toBeGreaterThanOrEqual(2900);
    let patches = 0;
    const found: string[] = [];
    for (const m of mails) {
      let r: MessageRecord;
      try {
        r = await makeRecord(m);
      } catch {
        continue;
      }
      if (r.kind === 'patch') patches++;
      for (const f of run(r)) found.push(`${r.subject}: ${f.rule} ${f.file}:${f.line}`);
      // Scope is what keeps them out; check the rules would not fire on the code either.
      if (r.kind === 'patch' && r.listIds.length) {
        for (const f of runRules({ ...r, listIds: [] , to: [], cc: [] }, xen.rules, { kb: xen.kb })) found.push(`(no list) ${r.subject}: ${f.rule}`);
      }
    }
    expect(patches).toBeGreaterThan(500);
    expect(found).toEqual([]);
  }, 600000);
});

describe('fixtures of the pack (test/fixtures/xen)', () => {
  test('the reference situation as a real xen-devel mail: three findings, one per family, on line 525', async () => {
    const r = await patchRecord('reset-after-init-fpu.mbox');
    expect(r.kind).toBe('patch');
    expect(r.listIds.join(' ')).toContain('xen-devel.lists.xenproject.org');
    const fs = run(r);
    expect(fs.map((f) => `${f.rule}@${f.line}`).sort()).toEqual([
      'xen/alloc-time-init@525',
      'xen/fpu-init-order@525',
      'xen/idle-vcpu-path@525',
    ]);
    // fingerprints are stable across line moves: same rule/file/function/code
    const moved = await makeRecord(readFileSync(join(HERE, 'reset-after-init-fpu.mbox'), 'utf8').replace('@@ -522,6 +522,8 @@', '@@ -530,6 +530,8 @@'));
    const fs2 = run(moved);
    expect(fs2.map((f) => f.line)).toEqual([533, 533, 533]);
    expect(fs2.map((f) => f.fingerprint).sort()).toEqual(fs.map((f) => f.fingerprint).sort());
  });

  test('v->arch.msrs deep inside __context_switch(): the idle check above the hunk is not visible, so silence', async () => {
    const fs = run(await patchRecord('msrs-hidden-block.patch'));
    expect(fs.filter((f) => f.rule === 'xen/idle-vcpu-path')).toEqual([]);
  });

  test('an unacknowledged change of what hvm_save_cpu_ctxt() reports: one info question, on the dropped test', async () => {
    const fs = run(await patchRecord('abi-unacknowledged.patch'));
    expect(fs.map((f) => [f.rule, f.severity, f.side, f.line])).toEqual([['xen/fpu-init-order', 'info', 'old', 936]]);
    expect(fs[0]!.message).toMatch(/XEN_X86_FPU_INITIALISED in the HVM CPU record.*API\/ABI change/);
  });

  test('the same change with the ABI change called out in the commit message: silence', async () => {
    const text = readFileSync(join(HERE, 'abi-unacknowledged.patch'), 'utf8').replace(
      'Simplify hvm_save_cpu_ctxt().',
      'Simplify hvm_save_cpu_ctxt(). This is a user-visible change: a vCPU which never ran\nnow reports XEN_X86_FPU_INITIALISED.',
    );
    expect(run(await makeRecord(exampleToMail(text, 'ack')))).toEqual([]);
  });

  test('Linux drivers/xen paths are out of scope even with Xen function names', async () => {
    expect(run(await patchRecord('linux-xen-driver.patch'))).toEqual([]);
  });
});

describe('with a tree', () => {
  // A pre-image laid out so that the reference hunk (old lines 522-527) lines up with it.
  function domainC(): string {
    const lines: string[] = [];
    for (let i = 1; i <= 511; i++) lines.push(i === 1 ? '/* domain.c */' : '');
    lines.push(
      'int arch_vcpu_create(struct vcpu *v)', // 512
      '{',
      '    struct domain *d = v->domain;',
      '    int rc;',
      '',
      '    if ( !is_idle_domain(d) )', // 517
      '    {',
      '        paging_vcpu_init(v);',
      '',
      '        /* FPU */',
      '        if ( (rc = vcpu_init_fpu(v)) != 0 )', // 522
      '            return rc;',
      '',
      '        vmce_init_vcpu(v);',
      '',
      '        arch_vcpu_regs_init(v);',
      '    }',
      '    else if ( (rc = xstate_alloc_save_area(v)) != 0 )',
      '        return rc;',
      '',
      '    return 0;',
      '}',
    );
    return lines.join('\n');
  }
  const tree: TreeView = {
    fileText: (path) => (path === 'xen/arch/x86/domain.c' ? domainC() : undefined),
    functionBody: (name) =>
      name === 'xstate_alloc_save_area'
        ? '{\n    save_area->fpu_sse.fcw = FCW_DEFAULT;\n    save_area->fpu_sse.mxcsr = MXCSR_DEFAULT;\n}'
        : name === 'vcpu_reset_fpu'
          ? '{\n    xsave_area->fpu_sse.fcw = FCW_RESET;\n    xsave_area->fpu_sse.ftw = FXSAVE_FTW_RESET;\n}'
          : undefined,
  };

  test('the enclosing !is_idle_domain() block comes from the tree and the finding says so', async () => {
    const r = await patchRecord('reset-after-init-fpu.mbox');
    const fs = runRules(r, xen.rules, { kb: xen.kb, tree });
    const idle = fs.find((f) => f.rule === 'xen/idle-vcpu-path');
    expect(idle?.line).toBe(525);
    expect(idle?.message).toMatch(/idle vCPU never runs arch_vcpu_create\(\)'s non-idle path/);
  });

  test("defaults are compared with the tree, not the kb: an MXCSR default departing from the allocator's is a question", async () => {
    const diff = [
      'diff --git a/xen/arch/x86/i387.c b/xen/arch/x86/i387.c',
      '--- a/xen/arch/x86/i387.c',
      '+++ b/xen/arch/x86/i387.c',
      '@@ -300,6 +300,7 @@ void vcpu_reset_fpu(struct vcpu *v)',
      '     struct xsave_struct *xsave_area = VCPU_MAP_XSAVE_AREA(v);',
      ' ',
      '     xsave_area->fpu_sse.fcw = FCW_RESET;',
      '+    xsave_area->fpu_sse.mxcsr = MXCSR_DEFAULT & ~X86_MXCSR_DAZ;',
      '     xsave_area->fpu_sse.ftw = FXSAVE_FTW_RESET;',
      ' }',
      ' ',
      '',
    ].join('\n');
    const r = await makeRecord(exampleToMail(diff, 'tree-defaults'));
    const withTree = runRules(r, xen.rules, { kb: xen.kb, tree }).filter((f) => f.rule === 'xen/fpu-init-order');
    expect(withTree.map((f) => [f.severity, f.line])).toEqual([['info', 303]]);
    expect(withTree[0]!.message).toMatch(/xstate_alloc_save_area\(\) uses MXCSR_DEFAULT/);
  });
});

describe('C helpers (src/rules/matchers/c.ts)', () => {
  test('calls, nested and cut off', () => {
    const calls = findCalls('    if ( (rc = vcpu_init_fpu(v)) != 0 ) /* vcpu_reset_fpu(v) */');
    expect(calls.map((c) => c.name)).toEqual(['vcpu_init_fpu']);
    const cut = findCalls('rc = hypercall_create_continuation(__HYPERVISOR_memory_op, "lh",');
    expect(cut[0]).toMatchObject({ name: 'hypercall_create_continuation', complete: false, args: ['__HYPERVISOR_memory_op', '"lh"'] });
    expect(findCalls('memcpy(ctxt.fpu_regs, &xsave_area->fpu_sse, sizeof(ctxt.fpu_regs));')[0]!.args).toEqual([
      'ctxt.fpu_regs',
      '&xsave_area->fpu_sse',
      'sizeof(ctxt.fpu_regs)',
    ]);
  });

  test('assignments: targets, fields, declarations; conditions and macro wrappers are not assignments', () => {
    expect(assignment('    v->fpu_initialised = false;')).toMatchObject({ target: 'v->fpu_initialised', op: '=', value: 'false', field: 'fpu_initialised' });
    expect(assignment('    save_area->fpu_sse.ftw = FXSAVE_FTW_RESET;')?.field).toBe('ftw');
    expect(assignment('    v->arch.hvm.vmx.exception_bitmap |= (1u << X86_EXC_NM);')?.op).toBe('|=');
    expect(assignment('    struct xen_foo info = {};')).toMatchObject({ target: 'info', declaration: true, value: '{}' });
    expect(assignment('    if ( (rc = vcpu_init_fpu(v)) != 0 )')).toBeNull();
    expect(assignment('    if ( a == b )')).toBeNull();
    expect(assignment('        c(flags |= VGCF_i387_valid);')).toBeNull();
  });

  test('allocations and their zeroing twins', () => {
    expect(allocation('    d->arch.hvm.vioapic = xmalloc_array(struct hvm_vioapic *, n);')).toMatchObject({
      target: 'd->arch.hvm.vioapic',
      allocator: 'xmalloc_array',
      zeroed: false,
    });
    expect(allocation('    if ( !(p = xzalloc(struct foo)) )')).toMatchObject({ target: 'p', zeroed: true });
    expect(allocation('    return xmalloc(struct foo);')).toMatchObject({ target: null });
    expect(allocation('    if ( x == xmalloc_bytes(4) )')?.target).toBeNull();
    expect(zeroingTwin('xmalloc_array')).toBe('xzalloc_array');
    expect(zeroingTwin('xvmalloc')).toBe('xvzalloc');
    expect(zeroingTwin('xzalloc')).toBeNull();
  });

  test('memset and sizeof', () => {
    expect(memsetCall('memset(&info, 0, sizeof(info));')).toMatchObject({ dest: '&info', value: '0', size: 'sizeof(info)' });
    expect(sizeofOperand('sizeof(*p)')).toBe('*p');
    expect(sizeofOperand('sizeof(a) * n')).toBeNull();
    expect(sizeofOperand('sizeof p')).toBe('p');
  });

  test('declarations', () => {
    expect(declarations('    struct xen_domctl_getdomaininfo info;')).toEqual([
      { name: 'info', type: 'struct xen_domctl_getdomaininfo', pointer: false, array: false, init: null },
    ]);
    expect(declarations('    uint8_t buf[64], *p = NULL;').map((d) => [d.name, d.pointer, d.array, d.init])).toEqual([
      ['buf', false, true, null],
      ['p', true, false, 'NULL'],
    ]);
    expect(declarations('    return rc;')).toEqual([]);
    expect(declarations('    vcpu_reset_fpu(v);')).toEqual([]);
    expect(declarations('    rc = foo(v);')).toEqual([]);
  });

  test('the start of a statement spanning lines', () => {
    const hunk = {
      header: '@@ -1,4 +1,4 @@ void f(void)',
      oldStart: 1,
      oldLines: 4,
      newStart: 1,
      newLines: 4,
      headerFunction: 'f',
      lines: ['    x = 1;', '    if ( !is_idle_vcpu(next) &&', '         (next->arch.msrs->spec_ctrl.raw & SSBD) )', '        y();'].map((text, k) => ({
        kind: 'ctx' as const,
        text,
        oldLine: k + 1,
        newLine: k + 1,
        fn: 'f',
      })),
    };
    const view = newSide(hunk);
    expect(statementStart(view, 2)).toBe(1);
    expect(statementStart(view, 3)).toBe(3);
    expect(statementStart(view, 0)).toBe(0);
  });

  test('normalised code ignores layout and comments', () => {
    expect(normalizeCode('        c(flags |= VGCF_i387_valid);')).toBe(normalizeCode('    c( flags |= VGCF_i387_valid ); /* x */'));
  });
});

describe('Xen matcher internals (src/rules/matchers/xen.ts)', () => {
  test('every rule names a registered matcher of the pack', () => {
    for (const r of xen.rules) {
      expect(r.matcher).toMatch(/^xen\./);
      expect(xenMatchers[r.matcher!]).toBeDefined();
      expect(MATCHERS[r.matcher!]).toBe(xenMatchers[r.matcher!]);
    }
  });

  test('idle conditions: what excludes the idle vCPU and what does not', () => {
    expect(_internal.excludesIdle('!is_idle_domain(d)')).toBe(true);
    expect(_internal.excludesIdle('!(is_idle_domain(d))')).toBe(true);
    expect(_internal.excludesIdle('cpu_has_xsave && !is_idle_vcpu(v)')).toBe(true);
    expect(_internal.excludesIdle('is_hvm_vcpu(n)')).toBe(true);
    // the idle domain counts as PV: is_pv_*() does not exclude it
    expect(_internal.excludesIdle('is_pv_vcpu(v)')).toBe(false);
    expect(_internal.excludesIdle('!is_idle_vcpu(v) || force')).toBe(false);
    expect(_internal.selectsIdle('is_idle_vcpu(v)')).toBe(true);
  });

  test('kb lists with regex entries', () => {
    expect(inKbList(xen.kb, 'guestReachable', 'do_memory_op')).toBe(true);
    expect(inKbList(xen.kb, 'guestReachable', 'vmx_vmexit_handler')).toBe(true);
    expect(inKbList(xen.kb, 'guestReachable', 'arch_vcpu_create')).toBe(false);
    expect(inKbList(xen.kb, 'createPaths', 'hvm_vcpu_initialise')).toBe(true);
    expect(inKbList(xen.kb, 'createPaths', 'vcpu_reset_fpu')).toBe(false);
  });

  test('renames, record fields, defaults, guest counts, error values', () => {
    expect(_internal.renamedTwin('    if ( flags & VGCF_i387_valid )', ['    if ( flags & VGCF_I387_VALID )'])).toBe(true);
    expect(_internal.renamedTwin('    if ( flags & VGCF_i387_valid )', ['    if ( flags | VGCF_I387_VALID )'])).toBe(false);
    expect(_internal.recordField('    ctxt.xcr0 = v->arch.xcr0;', true)).toBe('ctxt.xcr0');
    expect(_internal.recordField('    v->arch.xcr0 = ctxt.xcr0;', false)).toBe('ctxt.xcr0');
    expect(_internal.defaultWrite('            .fcw = FCW_RESET,', xen.kb)).toEqual({ field: 'fcw', value: 'FCW_RESET' });
    expect(_internal.guestCount('i < xrsp.nr_extents')).toBe('xrsp.nr_extents');
    expect(_internal.guestCount('i < d->max_vcpus')).toBeNull();
    expect(_internal.isErrorValue('-ENOMEM')).toBe(true);
    expect(_internal.isErrorValue('0')).toBe(false);
  });
});

void readMbox;
