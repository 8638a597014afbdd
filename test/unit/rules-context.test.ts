// Code context of changed lines: enclosing blocks, edits and renames, on real Xen hunks
// (the eager-fpu series) and on re-created Xen situations.
import { join } from 'node:path';
import type { FileDiff, Hunk, MessageRecord } from '../../src/model.js';
import type { TreeView } from '../../src/rules/types.js';
import { blocksForLines, isRenameOnly, lineContext, lineTokens, tokenSimilarity, treePreamble } from '../../src/rules/context.js';
import { FIXTURES, makeRecord, mboxRecords } from '../support/rules-record.js';

/** A record from a bare diff (the real mail stage wraps it). */
async function diffRecord(diff: string): Promise<MessageRecord> {
  const r = await makeRecord(diff);
  expect(r.kind).toBe('patch');
  expect(r.diff?.damage).toEqual([]);
  return r;
}

/** The LineContext of the first changed/context line whose text contains `needle` (on `kind` if given). */
function ctxOf(r: MessageRecord, needle: string, kind?: 'add' | 'del' | 'ctx', tree?: TreeView, file?: string) {
  for (const f of r.diff!.files) {
    if (file && f.path !== file) continue;
    for (const h of f.hunks) {
      const i = h.lines.findIndex((l) => l.text.includes(needle) && (!kind || l.kind === kind));
      if (i >= 0) return lineContext(f, h, i, tree);
    }
  }
  throw new Error(`no line with ${needle}`);
}

const blocks = (text: string): string[][] => blocksForLines(text.split('\n').map((t, index) => ({ index, text: t })));

describe('blocks on re-created Xen hunks', () => {
  test('Xen style: brace on its own line under "if ( !is_idle_domain(d) )"', async () => {
    const r = await diffRecord(`diff --git a/xen/arch/x86/domain.c b/xen/arch/x86/domain.c
--- a/xen/arch/x86/domain.c
+++ b/xen/arch/x86/domain.c
@@ -510,12 +510,14 @@ int arch_vcpu_create(struct vcpu *v)
     rc = mapcache_vcpu_init(v);
     if ( rc )
         return rc;
 
     if ( !is_idle_domain(d) )
     {
         paging_vcpu_init(v);
 
         if ( (rc = vcpu_init_fpu(v)) != 0 )
             return rc;
 
+        vcpu_reset_fpu(v);
+
         vmce_init_vcpu(v);
`);
    expect(ctxOf(r, 'vcpu_reset_fpu', 'add').blocks).toEqual(['!is_idle_domain(d)']);
    // The empty added line after it is still inside the block.
    const h = r.diff!.files[0]!.hunks[0]!;
    const blank = h.lines.findIndex((l, k) => l.kind === 'add' && l.text === '' && k > 0);
    expect(lineContext(r.diff!.files[0]!, h, blank).blocks).toEqual(['!is_idle_domain(d)']);
    // A brace-less single statement: only its own line is inside.
    expect(ctxOf(r, 'return rc;', 'ctx').blocks).toEqual(['rc']);
    expect(ctxOf(r, 'paging_vcpu_init').blocks).toEqual(['!is_idle_domain(d)']);
    expect(ctxOf(r, '(rc = vcpu_init_fpu(v)) != 0').blocks).toEqual(['!is_idle_domain(d)']);
  });

  test('the else branch of "if ( is_idle_vcpu(v) )", braced and brace-less', async () => {
    const r = await diffRecord(`diff --git a/xen/arch/x86/domain.c b/xen/arch/x86/domain.c
--- a/xen/arch/x86/domain.c
+++ b/xen/arch/x86/domain.c
@@ -300,13 +300,15 @@ static void vcpu_setup(struct vcpu *v)
     if ( is_idle_vcpu(v) )
     {
         v->arch.flags = TF_kernel_mode;
         return;
     }
     else
     {
+        vcpu_reset_fpu(v);
         vmce_init_vcpu(v);
     }
 
     if ( is_idle_vcpu(v) )
         v->arch.cr3 = __pa(idle_pg_table);
     else
+        vcpu_setup_fpu(v);
`);
    expect(ctxOf(r, 'vcpu_reset_fpu', 'add').blocks).toEqual(['!(is_idle_vcpu(v))']);
    expect(ctxOf(r, 'TF_kernel_mode').blocks).toEqual(['is_idle_vcpu(v)']);
    expect(ctxOf(r, 'vcpu_setup_fpu', 'add').blocks).toEqual(['!(is_idle_vcpu(v))']);
    expect(ctxOf(r, 'idle_pg_table').blocks).toEqual(['is_idle_vcpu(v)']);
  });

  test('a multi-line condition and its else (x86 context_switch)', async () => {
    const r = await diffRecord(`diff --git a/xen/arch/x86/domain.c b/xen/arch/x86/domain.c
--- a/xen/arch/x86/domain.c
+++ b/xen/arch/x86/domain.c
@@ -2180,11 +2180,12 @@ void context_switch(struct vcpu *prev, struct vcpu *next)
     if ( (per_cpu(curr_vcpu, cpu) == next) ||
          (is_idle_domain(nextd) && cpu_online(cpu)) )
     {
         local_irq_enable();
     }
     else
     {
         __context_switch();
+        vcpu_restore_fpu(next);
 
         /* Re-enable interrupts before restoring state which may fault. */
         local_irq_enable();
`);
    expect(ctxOf(r, 'local_irq_enable();', 'ctx').blocks).toEqual(['(per_cpu(curr_vcpu, cpu) == next) || (is_idle_domain(nextd) && cpu_online(cpu))']);
    expect(ctxOf(r, 'vcpu_restore_fpu', 'add').blocks).toEqual([
      '!((per_cpu(curr_vcpu, cpu) == next) || (is_idle_domain(nextd) && cpu_online(cpu)))',
    ]);
  });

  test('K&R braces with else if / else chains', () => {
    const b = blocks(`static int foo(int x)
{
	if (x > 1) {
		a();
	} else if (x < 0) {
		b();
	} else {
		c();
	}
	d();
}`);
    expect(b[3]).toEqual(['x > 1']);
    expect(b[5]).toEqual(['!(x > 1)', 'x < 0']);
    expect(b[7]).toEqual(['!(x > 1)', '!(x < 0)']);
    expect(b[9]).toEqual([]);
  });

  test('loops written as macros, for, while and switch', () => {
    const b = blocks(`    for_each_vcpu ( d, v )
    {
        vcpu_pause(v);
        for ( i = 0; i < NR_VECTORS; i++ )
            clear_bit(i, v->arch.vec);
    }
    while ( !done )
        cpu_relax();
    switch ( cmd )
    {
    case XEN_DOMCTL_pause:
        rc = 0;
        break;
    }
    list_for_each_entry(pos, &d->list, node) {
        put(pos);
    }`);
    expect(b[2]).toEqual(['for_each_vcpu(d, v)']);
    expect(b[4]).toEqual(['for_each_vcpu(d, v)', 'for (i = 0; i < NR_VECTORS; i++)']);
    expect(b[7]).toEqual(['while (!done)']);
    expect(b[11]).toEqual(['switch (cmd)']);
    expect(b[15]).toEqual(['list_for_each_entry(pos, &d->list, node)']);
    // A plain call statement is not a block.
    expect(blocks('    foo(d);\n    bar(d);')[1]).toEqual([]);
  });

  test('braces in strings, character literals and comments are not blocks', () => {
    const b = blocks(`    if ( x )
    {
        printk("} oops {\\n");
        c = '}';
        /* } closing in a comment
         * { and opening */
        y(); // }
        z();
    }
    after();`);
    expect(b[7]).toEqual(['x']);
    expect(b[9]).toEqual([]);
  });

  test('a hunk that starts inside a block comment does not read the comment as code', () => {
    const b = blocks(`     * for ( i = 0; i < n; i++ ) {
     * if ( x )
     */
    foo();
    if ( y )
        bar();`);
    expect(b[3]).toEqual([]);
    expect(b[5]).toEqual(['y']);
  });

  test('a brace in column 0 starts a new function: nothing leaks from the one before', () => {
    const b = blocks(`    if ( a )
    {
        foo();
}

static void bar(void)
{
    baz();`);
    expect(b[2]).toEqual(['a']);
    expect(b[7]).toEqual([]);
  });

  test('a statement macro without a semicolon ends by indentation', () => {
    const b = blocks(`    if ( x )
        BUILD_BUG_ON_ZERO(y)
    next();`);
    expect(b[1]).toEqual(['x']);
    expect(b[2]).toEqual([]);
  });

  test('removed lines get the old side, added lines the new side', async () => {
    const r = await diffRecord(`diff --git a/xen/arch/x86/i387.c b/xen/arch/x86/i387.c
--- a/xen/arch/x86/i387.c
+++ b/xen/arch/x86/i387.c
@@ -100,6 +100,6 @@ void vcpu_save_fpu(struct vcpu *v)
-    if ( v->fpu_dirtied )
+    if ( !is_idle_vcpu(v) )
     {
         fpu_save(v);
         clts();
     }
     return;
`);
    expect(ctxOf(r, 'fpu_save', 'ctx').blocks).toEqual(['!is_idle_vcpu(v)']);
    const h = r.diff!.files[0]!.hunks[0]!;
    // The removed "if" line itself sits outside both.
    expect(lineContext(r.diff!.files[0]!, h, 0).blocks).toEqual([]);
  });
});

describe('blocks, edits and renames on the real eager-fpu series', () => {
  let recs: MessageRecord[];
  beforeAll(async () => {
    recs = (await mboxRecords(join(FIXTURES, 'xen-eager-fpu-v2.mbox'))).filter((r) => r.kind === 'patch');
    expect(recs).toHaveLength(9);
  });
  const patch = (n: number): MessageRecord => recs.find((r) => r.parsedSubject.series?.index === n)!;

  test('4/9 svm_fpu_dirty_intercept: nested if and its else, inside "if ( vmcb != n1vmcb )"', () => {
    const r = patch(4);
    expect(ctxOf(r, 'hvm_inject_hw_exception(X86_EXC_NM', 'del').blocks).toEqual(['vmcb != n1vmcb', 'v->arch.hvm.guest_cr[0] & X86_CR0_TS']);
    expect(ctxOf(r, 'vmcb_set_cr0(n1vmcb, vmcb_get_cr0(n1vmcb) & ~X86_CR0_TS)', 'del').blocks).toEqual([
      'vmcb != n1vmcb',
      '!(v->arch.hvm.guest_cr[0] & X86_CR0_TS)',
    ]);
  });

  test('3/9 vmx_update_guest_cr: an else-if chain inside nested braces', () => {
    const c = ctxOf(patch(3), 'vmx_fpu_enter(v);', 'del');
    expect(c.blocks).toEqual(['!(v->arch.hvm.guest_cr[0] & X86_CR0_TS)', '!(v != current)', 'v->arch.hvm.hw_cr[0] & X86_CR0_TS']);
    expect(c.line.fn).toBe('vmx_update_guest_cr');
  });

  test('5/9 do_device_not_available: the new early-exit block, and the code after it', () => {
    const r = patch(5);
    expect(ctxOf(r, 'ASSERT_UNREACHABLE();', 'add').blocks).toEqual(['!(curr->arch.pv.ctrlreg[0] & X86_CR0_TS)']);
    expect(ctxOf(r, 'domain_crash(curr->domain);', 'add').blocks).toEqual(['!(curr->arch.pv.ctrlreg[0] & X86_CR0_TS)']);
    // After the closing brace: a comment and a blank line first, then clts().
    expect(ctxOf(r, 'For better or worse', 'add').blocks).toEqual([]);
    const clts = ctxOf(r, 'clts();', 'add', undefined, 'xen/arch/x86/traps.c');
    expect(clts.line.text).toBe('    clts();');
    expect(clts.blocks).toEqual([]);
    // In misc-hypercalls.c the hunk starts inside an else whose if is not shown.
    const misc = 'xen/arch/x86/pv/misc-hypercalls.c';
    expect(ctxOf(r, 'if ( v->fpu_dirtied )', 'del', undefined, misc).blocks).toEqual(['else']);
    expect(ctxOf(r, 'clts();', 'del', undefined, misc).blocks).toEqual(['else', 'v->fpu_dirtied']);
    expect(ctxOf(r, 'clts();', 'add', undefined, misc).blocks).toEqual(['else']);
  });

  test('edited and rename-only lines', () => {
    const r5 = patch(5);
    // "if ( v->fpu_dirtied ) clts();" -> "clts();": the clts() line is the same statement, re-indented.
    const clts = ctxOf(r5, 'clts();', 'add', undefined, 'xen/arch/x86/pv/misc-hypercalls.c');
    expect(clts.line.text).toBe('        clts();');
    expect([clts.edited, clts.renameOnly]).toEqual([true, true]);
    // The condition was inverted: an edit, not a rename.
    const cond = ctxOf(r5, 'if ( !(curr->arch.pv.ctrlreg[0] & X86_CR0_TS) )', 'add');
    expect([cond.edited, cond.renameOnly]).toEqual([true, false]);
    // New statements with nothing like them among the removed lines.
    expect(ctxOf(r5, 'ASSERT_UNREACHABLE();', 'add').edited).toBe(false);
    expect(ctxOf(r5, 'domain_crash(curr->domain);', 'add').edited).toBe(false);
    // 6/9: a renamed callee that lost an argument is an edit of the old call.
    const call = ctxOf(patch(6), 'vcpu_restore_fpu(n);', 'add');
    expect([call.edited, call.renameOnly]).toEqual([true, false]);
    expect(ctxOf(patch(6), 'vcpu_restore_fpu_nonlazy(n, false);', 'del').edited).toBe(true);
  });
});

describe('renames and similarity', () => {
  test('consistent identifier substitution is a rename; anything else is not', () => {
    expect(isRenameOnly('    if ( !is_idle_vcpu(v) )', '    if ( !is_idle_vcpu(curr) )')).toBe(true);
    expect(isRenameOnly('v->arch.flags = v->domain->flags;', 'curr->arch.flags = curr->domain->flags;')).toBe(true);
    expect(isRenameOnly('        clts();', 'clts();')).toBe(true);
    expect(isRenameOnly('foo(v, v);', 'foo(curr, v);')).toBe(false);
    expect(isRenameOnly('a = b;', 'b = a;')).toBe(false);
    expect(isRenameOnly('if ( !is_idle_vcpu(v) )', 'if ( is_idle_vcpu(v) )')).toBe(false);
    expect(isRenameOnly('x[0] = 1;', 'x[1] = 1;')).toBe(false);
    expect(isRenameOnly('if ( x )', 'while ( x )')).toBe(false);
    // A typo fixed in a comment changes words, not identifiers.
    expect(isRenameOnly(' * if the vetor is set', ' * if the vector is set')).toBe(false);
  });

  test('similarity counts words, not just punctuation', () => {
    expect(tokenSimilarity('clts();', 'vcpu_restore_fpu_lazy(curr);')).toBeLessThan(0.5);
    expect(tokenSimilarity('vcpu_restore_fpu_nonlazy(n, false);', 'vcpu_restore_fpu(n);')).toBeGreaterThanOrEqual(0.5);
    expect(tokenSimilarity('pv_inject_hw_exception(X86_EXC_NM, X86_EVENT_NO_EC);', 'ASSERT_UNREACHABLE();')).toBeLessThan(0.5);
  });

  test('tokens skip comments and strings keep their braces', () => {
    expect(lineTokens('foo("{", x); /* } */').map((t) => t.text)).toEqual(['foo', '(', '"{"', ',', 'x', ')', ';', '}']);
    expect(lineTokens('foo("{", x); /* } */').filter((t) => t.type === 'comment').map((t) => t.text)).toEqual(['}']);
  });
});

describe('blocks with the tree', () => {
  const pre = [
    'int arch_vcpu_create(struct vcpu *v)',
    '{',
    '    struct domain *d = v->domain;',
    '    int rc;',
    '',
    '    if ( !is_idle_domain(d) )',
    '    {',
    '        paging_vcpu_init(v);',
    '',
    '        if ( (rc = vcpu_init_fpu(v)) != 0 )',
    '            return rc;',
    '',
    '        vmce_init_vcpu(v);',
    '    }',
    '    return 0;',
    '}',
  ];
  const diff = `diff --git a/xen/arch/x86/domain.c b/xen/arch/x86/domain.c
--- a/xen/arch/x86/domain.c
+++ b/xen/arch/x86/domain.c
@@ -10,4 +10,6 @@ int arch_vcpu_create(struct vcpu *v)
         if ( (rc = vcpu_init_fpu(v)) != 0 )
             return rc;
 
+        vcpu_reset_fpu(v);
+
         vmce_init_vcpu(v);
`;
  const treeOf = (text: string): TreeView => ({ fileText: (p) => (p === 'xen/arch/x86/domain.c' ? text : undefined), functionBody: () => undefined });

  test('an if opened above the hunk is seen through the pre-image', async () => {
    const r = await diffRecord(diff);
    const f: FileDiff = r.diff!.files[0]!;
    const h: Hunk = f.hunks[0]!;
    expect(ctxOf(r, 'vcpu_reset_fpu').blocks).toEqual([]);
    const tree = treeOf(pre.join('\n'));
    expect(treePreamble(f, h, tree)[0]).toBe('{');
    expect(ctxOf(r, 'vcpu_reset_fpu', 'add', tree).blocks).toEqual(['!is_idle_domain(d)']);
    expect(ctxOf(r, 'return rc;', 'ctx', tree).blocks).toEqual(['!is_idle_domain(d)', '(rc = vcpu_init_fpu(v)) != 0']);
  });

  test('a tree at another revision (lines do not match the hunk) is ignored', async () => {
    const r = await diffRecord(diff);
    const shifted = treeOf(['/* new header line */', ...pre].join('\n'));
    expect(treePreamble(r.diff!.files[0]!, r.diff!.files[0]!.hunks[0]!, shifted)).toEqual([]);
    expect(ctxOf(r, 'vcpu_reset_fpu', 'add', shifted).blocks).toEqual([]);
  });
});

describe('functionName', () => {
  test('a function keeps its identifier, a struct body keeps its tag', async () => {
    const { functionName } = await import('../../src/rules/context.js');
    expect(functionName('int arch_vcpu_create(struct vcpu *v)')).toBe('arch_vcpu_create');
    expect(functionName('struct vcpu')).toBe('struct vcpu');
    expect(functionName(null)).toBeNull();
  });
});
