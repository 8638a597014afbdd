import { extractDiff, parseDiff } from '../../src/patch/diff.js';
import { assignFunctions, functionNameFromHeader, languageOf, withFunctions } from '../../src/patch/functions.js';
import type { FileDiff, Hunk } from '../../src/model.js';
import { readMbox, SHARED, type FixtureMail } from '../fixtures/diff/read-mbox.js';

/** Parse a one-file diff and return [prefix+text, fn] for each line of its first hunk. */
function fns(path: string, header: string, body: string[]): Array<[string, string | null]> {
  const oldN = body.filter((l) => !l.startsWith('+')).length;
  const newN = body.filter((l) => !l.startsWith('-')).length;
  const text = `diff --git a/${path} b/${path}\n--- a/${path}\n+++ b/${path}\n@@ -1,${oldN} +1,${newN} @@${header ? ` ${header}` : ''}\n${body.join('\n')}\n`;
  const diff = parseDiff(text);
  expect(diff.damage).toEqual([]);
  return diff.files[0].hunks[0].lines.map((l) => [`${l.kind === 'add' ? '+' : l.kind === 'del' ? '-' : ' '}${l.text}`, l.fn]);
}

describe('functionNameFromHeader', () => {
  test.each([
    ['int arch_vcpu_create(struct vcpu *v)', 'arch_vcpu_create'],
    ['static void __init noinline foo(void)', 'foo'],
    ['void *xzalloc_array(size_t size, unsigned long num)', 'xzalloc_array'],
    ['static void cf_check vmx_update_guest_cr(', 'vmx_update_guest_cr'],
    ['long do_domctl(XEN_GUEST_HANDLE_PARAM(xen_domctl_t) u_domctl)', 'do_domctl'],
    ['void asmlinkage svm_vmexit_handler(void)', 'svm_vmexit_handler'],
    ['struct efi_rs_state efi_rs_enter(void)', 'efi_rs_enter'],
    ['static void __attribute__((noreturn)) die(const char *msg)', 'die'],
    ['int __printf(2, 3) snprintf_thing(char *buf, const char *fmt, ...)', 'snprintf_thing'],
    ['void __init __start_xen(unsigned long mbi_p)', '__start_xen'],
    ['static int __init cf_check parse_spec_ctrl(const char *s) /* comment ( */', 'parse_spec_ctrl'],
    ['SYSCALL_DEFINE3(ioctl, unsigned int, fd, unsigned int, cmd, unsigned long, arg)', 'sys_ioctl'],
    ['COMPAT_SYSCALL_DEFINE2(getrlimit, unsigned int, resource, struct compat_rlimit __user *, rlim)', 'compat_sys_getrlimit'],
    ['struct vcpu {', 'struct vcpu'],
    ['struct arch_vcpu', 'struct arch_vcpu'],
    ['union hv_device_id {', 'union hv_device_id'],
    ['enum ind_thunk {', 'enum ind_thunk'],
    ['typedef struct xen_domctl {', 'struct xen_domctl'],
    ['static struct hvm_function_table __initdata_cf_clobber svm_function_table = {', 'svm_function_table'],
    ['static const char *const names[] = {', 'names'],
    ['#define FOO(x) ((x) + 1)', 'FOO'],
    ['#define XSTATE_ALL (~0ULL)', 'XSTATE_ALL'],
  ])('C: %s -> %s', (header, name) => {
    expect(functionNameFromHeader(header, 'xen/arch/x86/foo.c')).toBe(name);
    // Without a path, C is assumed.
    expect(functionNameFromHeader(header)).toBe(name);
  });

  test.each([
    'static int8_t __initdata opt_psfd = -1;',
    'extern uint32_t mxcsr_mask;',
    'int vcpu_init_fpu(struct vcpu *v);',
    'static DEFINE_PER_CPU(struct vcpu *, curr_vcpu);',
    'boolean_param("nosmp", opt_nosmp);',
    'static int',
    'out:',
    '#include <xen/lib.h>',
    '#ifdef CONFIG_HVM',
    '',
  ])('C: %j -> null', (header) => {
    expect(functionNameFromHeader(header, 'xen/common/x.c')).toBeNull();
  });

  test('other languages', () => {
    expect(functionNameFromHeader('def main(argv):', 'tools/pygrub/src/pygrub.py')).toBe('main');
    expect(functionNameFromHeader('    async def fetch(self):', 'x.py')).toBe('fetch');
    expect(functionNameFromHeader('class Grub2ConfigFile(_GrubConfigFile):', 'x.py')).toBe('class Grub2ConfigFile');
    expect(functionNameFromHeader('if __name__ == "__main__":', 'x.py')).toBe('if __name__ == "__main__":');
    expect(functionNameFromHeader('do_start() {', 'tools/hotplug/Linux/init.d/xencommons.sh')).toBe('do_start');
    expect(functionNameFromHeader('function cleanup', 'tools/x.sh')).toBe('cleanup');
    expect(functionNameFromHeader('$(TARGET): $(OBJS)', 'xen/Makefile')).toBe('$(TARGET): $(OBJS)');
    expect(functionNameFromHeader('FUNC(svm_asm_do_resume)', 'xen/arch/x86/hvm/svm/entry.S')).toBe('svm_asm_do_resume');
    expect(functionNameFromHeader('ENTRY(compat_hypercall)', 'xen/arch/x86/x86_64/compat/entry.S')).toBe('compat_hypercall');
    expect(functionNameFromHeader('restore_all_guest:', 'xen/arch/x86/x86_64/entry.S')).toBe('restore_all_guest');
    expect(functionNameFromHeader('On hardware supporting IBPB, the `ibpb=`', 'docs/misc/xen-command-line.pandoc')).toBe(
      'On hardware supporting IBPB, the `ibpb=`',
    );
    expect(languageOf('xen/include/xen/sched.h')).toBe('c');
    expect(languageOf('xen/arch/x86/boot/head.S')).toBe('asm');
    expect(languageOf('tools/Rules.mk')).toBe('make');
  });
});

describe('assignFunctions: C', () => {
  test('a definition starting inside the hunk (context line, brace on the next line)', () => {
    expect(
      fns('xen/arch/x86/i387.c', 'void save_fpu_enable(void)', [
        ' }',
        ' ',
        ' /* Initialize FPU\'s context save area */',
        ' int vcpu_init_fpu(struct vcpu *v)',
        ' {',
        '-    v->arch.fully_eager_fpu = opt_eager_fpu;',
        '+    v->arch.fully_eager_fpu = true;',
      ]),
    ).toEqual([
      [' }', 'save_fpu_enable'],
      [' ', null],
      [" /* Initialize FPU's context save area */", null],
      [' int vcpu_init_fpu(struct vcpu *v)', 'vcpu_init_fpu'],
      [' {', 'vcpu_init_fpu'],
      ['-    v->arch.fully_eager_fpu = opt_eager_fpu;', 'vcpu_init_fpu'],
      ['+    v->arch.fully_eager_fpu = true;', 'vcpu_init_fpu'],
    ]);
  });

  test('the hunk starts after the header function ended: leading top-level lines belong to no function', () => {
    expect(
      fns('xen/arch/x86/i387.c', 'static inline void fpu_fxsave(struct vcpu *v)', [
        ' /*******************************/',
        ' /*       VCPU FPU Functions    */',
        ' /*******************************/',
        '-void vcpu_restore_fpu_nonlazy(struct vcpu *v, bool need_stts)',
        '+void vcpu_restore_fpu(struct vcpu *v)',
        ' {',
        '     ASSERT(!is_idle_vcpu(v));',
      ]),
    ).toEqual([
      [' /*******************************/', null],
      [' /*       VCPU FPU Functions    */', null],
      [' /*******************************/', null],
      ['-void vcpu_restore_fpu_nonlazy(struct vcpu *v, bool need_stts)', 'vcpu_restore_fpu_nonlazy'],
      ['+void vcpu_restore_fpu(struct vcpu *v)', 'vcpu_restore_fpu'],
      [' {', 'vcpu_restore_fpu'],
      ['     ASSERT(!is_idle_vcpu(v));', 'vcpu_restore_fpu'],
    ]);
  });

  test('but indented lines at the start are still inside the header function', () => {
    const r = fns('xen/common/x.c', 'static int foo(void)', ['     return 0;', ' }', ' ', '+static int bar(void) {', '+    return 1;', '+}']);
    expect(r.map((x) => x[1])).toEqual(['foo', 'foo', null, 'bar', 'bar', 'bar']);
  });

  test('brace on the same line, attributes, and a multi-line parameter list', () => {
    const r = fns('xen/common/x.c', '', [
      '+static void __init foo(void) {',
      '+}',
      '+static int cf_check hvm_thing(struct vcpu *v,',
      '+                             unsigned int idx)',
      '+{',
      '+    return 0;',
      '+}',
    ]);
    expect(r.map((x) => x[1])).toEqual(['foo', 'foo', 'hvm_thing', 'hvm_thing', 'hvm_thing', 'hvm_thing', 'hvm_thing']);
  });

  test('K&R/Xen-style definition on two lines: the return-type line belongs to the function too', () => {
    const r = fns('tools/libs/ctrl/xc_domain.c', 'int xc_domain_create(xc_interface *xch, uint32_t *pdomid)', [
      '     return 0;',
      ' }',
      ' ',
      '+static int',
      '+xc_domain_thing(xc_interface *xch, uint32_t domid)',
      '+{',
      '+    return -1;',
      '+}',
    ]);
    expect(r.map((x) => x[1])).toEqual([
      'xc_domain_create',
      'xc_domain_create',
      null,
      'xc_domain_thing',
      'xc_domain_thing',
      'xc_domain_thing',
      'xc_domain_thing',
      'xc_domain_thing',
    ]);
  });

  test('a parameter list longer than the first lines: read on to its "{" or ";"', () => {
    const r = fns('drivers/hv/x.c', '', [
      '+static int long_params(int a,',
      '+                int b,',
      '+                int c,',
      '+                int d)',
      '+{',
      '+    return a;',
      '+}',
      '+int long_proto(int a,',
      '+               int b,',
      '+               int c,',
      '+               int d);',
    ]);
    expect(r.map((x) => x[1])).toEqual([...Array(7).fill('long_params'), null, null, null, null]);
  });

  test('prototypes, multi-line calls and top-level declarations are not definitions', () => {
    const r = fns('xen/include/xen/x.h', 'struct foo {', [
      ' };',
      ' ',
      '+int foo_init(struct foo *f,',
      '+             unsigned int n);',
      ' void foo_fini(struct foo *f);',
      ' custom_param("foo", parse_foo);',
    ]);
    expect(r.map((x) => x[1])).toEqual(['struct foo', null, null, null, null, null]);
  });

  test('structs, initialised tables and multi-line macros are scopes of their own', () => {
    const r = fns('xen/arch/x86/hvm/svm/svm.c', 'static void svm_fpu_leave(struct vcpu *v)', [
      ' }',
      ' ',
      '+#define SVM_THING(x) \\',
      '+    do {                \\',
      '+        (x)++;          \\',
      '+    } while ( 0 )',
      '+',
      ' static struct hvm_function_table __initdata_cf_clobber svm_function_table = {',
      '     .name                 = "SVM",',
      '-    .fpu_leave            = svm_fpu_leave,',
      ' };',
      ' ',
      ' struct svm_thing',
      ' {',
      '+    unsigned int count;',
      ' };',
    ]);
    expect(r.map((x) => x[1])).toEqual([
      'svm_fpu_leave',
      null,
      'SVM_THING',
      'SVM_THING',
      'SVM_THING',
      'SVM_THING',
      null,
      'svm_function_table',
      'svm_function_table',
      'svm_function_table',
      'svm_function_table',
      null,
      'struct svm_thing',
      'struct svm_thing',
      'struct svm_thing',
      'struct svm_thing',
    ]);
  });

  test('a removed function replaced by an added one: each side keeps its own name', () => {
    const r = fns('xen/arch/x86/i387.c', '', [
      '-static void old_thing(void)',
      '+static void new_thing(void)',
      ' {',
      '-    a();',
      '+    b();',
      ' }',
    ]);
    expect(r).toEqual([
      ['-static void old_thing(void)', 'old_thing'],
      ['+static void new_thing(void)', 'new_thing'],
      [' {', 'new_thing'],
      ['-    a();', 'old_thing'],
      ['+    b();', 'new_thing'],
      [' }', 'new_thing'],
    ]);
  });

  test('a one-line #define inside a function names its line only', () => {
    const r = fns('xen/common/x.c', 'int foo(void)', ['     int a;', '+#define X(n) (n)', '+    a = X(1);', '+#undef X', '     return a;']);
    expect(r.map((x) => x[1])).toEqual(['foo', 'X', 'foo', 'foo', 'foo']);
  });
});

describe('assignFunctions: other languages', () => {
  test('Python: def/class lines, top-level statements clear the function', () => {
    const r = fns('tools/pygrub/src/pygrub.py', 'def run_main(args):', [
      '     return 0',
      ' ',
      '+class Menu(object):',
      '+    def draw(self):',
      '+        pass',
      '+',
      ' if __name__ == "__main__":',
      '     run_main(sys.argv)',
    ]);
    expect(r.map((x) => x[1])).toEqual(['run_main', 'run_main', 'class Menu', 'draw', 'draw', 'draw', null, null]);
  });

  test('shell: "name() {" to "}"', () => {
    const r = fns('tools/hotplug/Linux/xendomains.sh', 'do_start() {', ['     echo start', ' }', ' ', '+do_stop() {', '+    echo stop', '+}']);
    expect(r.map((x) => x[1])).toEqual(['do_start', 'do_start', null, 'do_stop', 'do_stop', 'do_stop']);
  });

  test('Makefile and docs: the header text, and each column-0 line after it, as git shows them', () => {
    const r = fns('xen/Makefile', '$(TARGET): FORCE', ['        $(MAKE) -f build', ' ', '+clean-thing:', '+\trm -f thing']);
    expect(r.map((x) => x[1])).toEqual(['$(TARGET): FORCE', '$(TARGET): FORCE', 'clean-thing:', 'clean-thing:']);
  });

  test('assembly: FUNC()/END() and labels', () => {
    const r = fns('xen/arch/x86/hvm/svm/entry.S', 'FUNC(svm_asm_do_resume)', ['         call svm_intr_assist', '+        nop', ' END(svm_asm_do_resume)', ' ', '+FUNC(svm_other)', '+        ret']);
    expect(r.map((x) => x[1])).toEqual(['svm_asm_do_resume', 'svm_asm_do_resume', 'svm_asm_do_resume', null, 'svm_other', 'svm_other']);
  });
});

describe('on the xen-devel fixtures', () => {
  let eager: FixtureMail[];
  beforeAll(async () => {
    eager = await readMbox(`${SHARED}/xen-eager-fpu-v2.mbox`);
  });

  const hunkOf = (subject: string, path: string, header: string): Hunk => {
    const mail = eager.find((m) => m.subject.startsWith(subject))!;
    const f = extractDiff(mail.text).diff!.files.find((x) => x.path === path)!;
    return f.hunks.find((h) => h.header.startsWith(header))!;
  };

  test('patch 3/9, vmx.c: a hunk that removes two functions after the header function', () => {
    const h = hunkOf('[PATCH v2 3/9]', 'xen/arch/x86/hvm/vmx/vmx.c', '@@ -3281,20 +3230,6 @@');
    expect(h.headerFunction).toBe('void update_guest_eip(void)');
    const byFn = (name: string | null) => h.lines.filter((l) => l.fn === name).map((l) => l.text.trim());
    expect(byFn('vmx_fpu_dirty_intercept')[0]).toBe('static void cf_check vmx_fpu_dirty_intercept(void)');
    expect(h.lines.find((l) => l.text.startsWith('static void vmx_dr_access'))!.fn).toBe('vmx_dr_access');
    expect(h.lines[0].fn).toBe('update_guest_eip');
    // The blank line between the functions belongs to none.
    expect(byFn(null).every((t) => t === '')).toBe(true);
    expect(byFn(null).length).toBeGreaterThan(0);
  });

  test('patch 8/9, xstate.h: macros at top level', () => {
    const h = hunkOf('[PATCH v2 8/9]', 'xen/arch/x86/include/asm/xstate.h', '@@ -33,12 +33,10 @@');
    expect(h.headerFunction).toBe('extern uint32_t mxcsr_mask;');
    const nonlazy = h.lines.find((l) => l.text.startsWith('#define XSTATE_NONLAZY'))!;
    expect(nonlazy).toMatchObject({ kind: 'del', fn: 'XSTATE_NONLAZY' });
  });

  test('withFunctions is pure; assignFunctions fills in place', () => {
    const diff = parseDiff('--- a/x.c\n+++ b/x.c\n@@ -1,2 +1,3 @@ int main(void)\n {\n+    return 0;\n }\n');
    const f: FileDiff = diff.files[0];
    f.hunks[0].lines.forEach((l) => (l.fn = null));
    const copy = withFunctions(f);
    expect(copy.hunks[0].lines.map((l) => l.fn)).toEqual(['main', 'main', 'main']);
    expect(f.hunks[0].lines.map((l) => l.fn)).toEqual([null, null, null]);
    assignFunctions(f);
    expect(f.hunks[0].lines.map((l) => l.fn)).toEqual(['main', 'main', 'main']);
  });
});
