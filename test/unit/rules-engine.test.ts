// The rule engine: scope (paths, lists), triggers and conditions, matchers, findings
// (templates, merging, order, fingerprints), and the loader's checks and error messages.
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { MessageRecord } from '../../src/model.js';
import type { KnowledgeBase, Match, Matcher, RuleSpec } from '../../src/rules/types.js';
import { EMPTY_KB, listsAllow, renderMessage, runRules } from '../../src/rules/engine.js';
import { matchGlob } from '../../src/rules/glob.js';
import { fingerprint, normaliseCode } from '../../src/rules/fingerprint.js';
import { defaultRulesDir, loadPacks, mergeKb } from '../../src/rules/load.js';
import { matchAt } from '../../src/rules/context.js';
import { MATCHERS, MATCHER_PACKS } from '../../src/rules/matchers/index.js';
import { FIXTURES, makeRecord, readMbox } from '../support/rules-record.js';

function rule(p: Partial<RuleSpec> & { id: string }): RuleSpec {
  return { title: 'A test rule', severity: 'warning', scope: {}, message: 'Look at {function}.', guide: 'g', examples: { flag: [], ok: [] }, ...p };
}

const xenMails = readMbox(join(FIXTURES, 'xen-eager-fpu-v2.mbox'));
const patchText = (n: number): string => xenMails.find((m) => m.includes(`Subject: [PATCH v2 ${n}/9]`))!;
const replyText = xenMails.find((m) => m.includes('Subject: Re: [PATCH v2 1/9]'))!;

/** Headers kept: only what a bare git send-email mail has, with the given To. */
function stripListHeaders(text: string, to: string): string {
  const split = text.indexOf('\n\n');
  const head = text.slice(0, split).replace(/\n[ \t]+/g, ' ');
  const keep = head.split('\n').filter((l) => /^(From|Subject|Date|Message-ID|Content-Type|Content-Transfer-Encoding|MIME-Version):/i.test(l));
  return [...keep, `To: ${to}`].join('\n') + text.slice(split);
}

let p1: MessageRecord;
let p5: MessageRecord;
beforeAll(async () => {
  p1 = await makeRecord(patchText(1));
  p5 = await makeRecord(patchText(5));
});

describe('path scope', () => {
  test.each([
    ['xen/arch/x86/domain.c', 'xen/**', true],
    ['xen/arch/x86/domain.c', 'xen/arch/', true],
    ['xen/arch/x86/domain.c', 'xen/arch', true],
    ['xen/arch/x86/domain.c', 'xen/*/x86/*.c', true],
    ['xen/arch/x86/domain.c', 'xen/*.c', false],
    ['xen/arch/x86/domain.c', '*.c', true],
    ['xen/arch/x86/include/asm/i387.h', '*.{c,h}', true],
    ['xen/arch/x86/include/asm/i387.h', 'xen/arch/**/asm/*.h', true],
    ['xen/arch/x86/domain.c', 'xen/arch/[wx]*/**', true],
    ['xen/arch/x86/domain.c', 'xen/arch/[!x]*/**', false],
    ['tools/xl/xl.c', 'xen/**', false],
    ['arch/x86/hyperv/hv_crash.c', 'xen/**', false],
    ['drivers/xen/events/events_base.c', 'xen/**', false],
    ['docs/misc/xen-command-line.pandoc', 'docs/**/*.pandoc', true],
    ['xenbits/a.c', 'xen/**', false],
  ])('%s ~ %s = %s', (path, glob, want) => {
    expect(matchGlob(path, glob)).toBe(want);
  });

  test('a Linux path never gets a rule scoped to xen/** (real linux-hyperv patches)', async () => {
    const mails = gunzipSync(readFileSync(join(FIXTURES, 'real/linux-hyperv-2026.mbox.gz')))
      .toString('utf8')
      .split(/^From [^\n]*\n/m)
      .filter((m) => /^Subject: \[PATCH/m.test(m))
      .slice(0, 150)
      .map((m) => m.replace(/^>(>*From )/gm, '$1'));
    const scoped = rule({ id: 'demo/everything', scope: { paths: ['xen/**'] }, trigger: { added: ['.'], removed: ['.'] } });
    const unscoped = rule({ id: 'demo/everything', trigger: { added: ['.'], removed: ['.'] } });
    let patches = 0;
    let unscopedFindings = 0;
    for (const m of mails) {
      const r = await makeRecord(m);
      if (r.kind !== 'patch') continue;
      patches++;
      expect(runRules(r, [scoped], { kb: EMPTY_KB })).toEqual([]);
      unscopedFindings += runRules(r, [unscoped], { kb: EMPTY_KB }).length;
    }
    expect(patches).toBeGreaterThan(50);
    expect(unscopedFindings).toBeGreaterThan(patches);
    // And the same scoped rule does see the Xen patch.
    expect(runRules(p1, [scoped], { kb: EMPTY_KB }).map((f) => f.file)).toEqual(['xen/arch/x86/domain.c']);
  });

  test('excludePaths wins over paths', () => {
    const r = rule({ id: 'demo/x', scope: { paths: ['xen/**'], excludePaths: ['xen/arch/x86/include/**'] }, trigger: { removed: ['.'] } });
    const files = new Set(runRules(p5, [r], { kb: EMPTY_KB }).map((f) => f.file));
    expect([...files].sort()).toEqual(['xen/arch/x86/i387.c', 'xen/arch/x86/pv/misc-hypercalls.c', 'xen/arch/x86/traps.c']);
  });
});

describe('list scope', () => {
  const xenRule = rule({ id: 'demo/xen-only', scope: { lists: ['xen-devel@lists.xenproject.org'] }, trigger: { added: ['vcpu_reset_fpu'] } });
  const hvRule = rule({ id: 'demo/hv-only', scope: { lists: ['linux-hyperv@vger.kernel.org'] }, trigger: { added: ['vcpu_reset_fpu'] } });

  test('List-Id of the real mail: the xen-devel rule runs, the linux-hyperv one does not', () => {
    expect(p1.listIds.join(' ')).toMatch(/xen-devel\.lists\.xenproject\.org/);
    expect(listsAllow(xenRule, p1)).toBe(true);
    expect(listsAllow(hvRule, p1)).toBe(false);
    expect(runRules(p1, [xenRule, hvRule], { kb: EMPTY_KB }).map((f) => f.rule)).toEqual(['demo/xen-only']);
  });

  test('a mail sent to the list address without list headers counts as the list', async () => {
    const r = await makeRecord(stripListHeaders(patchText(1), 'xen-devel@lists.xenproject.org'));
    expect(r.listIds).toEqual([]);
    expect(listsAllow(xenRule, r)).toBe(true);
    expect(listsAllow(hvRule, r)).toBe(false);
  });

  test('a mail that names no list at all is kept; opts.lists says where it came from', async () => {
    const r = await makeRecord(stripListHeaders(patchText(1), 'Jan Beulich <jbeulich@suse.com>'));
    expect(listsAllow(xenRule, r)).toBe(true);
    expect(listsAllow(hvRule, r)).toBe(true);
    expect(runRules(r, [hvRule], { kb: EMPTY_KB, lists: ['xen-devel@lists.xenproject.org'] })).toEqual([]);
    expect(runRules(r, [xenRule], { kb: EMPTY_KB, lists: ['xen-devel@lists.xenproject.org'] })).toHaveLength(1);
  });

  test('a List-Id fragment is enough', () => {
    expect(listsAllow(rule({ id: 'demo/x', scope: { lists: ['xen-devel'] } }), p1)).toBe(true);
  });
});

describe('triggers, conditions and matchers', () => {
  const kb: KnowledgeBase = { lists: { vcpuCreatePaths: ['arch_vcpu_create', 'vcpu_create'] }, functions: {} };

  test('inFunction with a kb list, notInFunction', () => {
    const inCreate = rule({ id: 'demo/in', trigger: { added: ['vcpu_reset_fpu\\('] }, condition: { inFunction: ['kb:vcpuCreatePaths'] } });
    const notInCreate = rule({ id: 'demo/not-in', trigger: { added: ['vcpu_reset_fpu\\('] }, condition: { notInFunction: ['kb:vcpuCreatePaths'] } });
    const named = rule({ id: 'demo/named', trigger: { added: ['vcpu_reset_fpu\\('] }, condition: { inFunction: ['vcpu_initialise'] } });
    const f = runRules(p1, [inCreate, notInCreate, named], { kb });
    expect(f.map((x) => [x.rule, x.file, x.line, x.function, x.code])).toEqual([
      ['demo/in', 'xen/arch/x86/domain.c', 525, 'arch_vcpu_create', '        vcpu_reset_fpu(v);'],
    ]);
  });

  test('insideBlock / notInsideBlock on the enclosing conditions (real 5/9 hunk)', () => {
    const inside = rule({ id: 'demo/inside', trigger: { added: ['domain_crash|clts'] }, condition: { insideBlock: '^!\\(curr->arch\\.pv\\.ctrlreg' } });
    const outside = rule({ id: 'demo/outside', trigger: { added: ['domain_crash|clts'] }, condition: { notInsideBlock: 'X86_CR0_TS' } });
    const f = runRules(p5, [inside, outside], { kb: EMPTY_KB });
    expect(f.map((x) => [x.rule, x.file, x.line, x.code!.trim()])).toEqual([
      ['demo/outside', 'xen/arch/x86/pv/misc-hypercalls.c', 45, 'clts();'],
      ['demo/inside', 'xen/arch/x86/traps.c', 2051, 'domain_crash(curr->domain);'],
      ['demo/outside', 'xen/arch/x86/traps.c', 2059, 'clts();'],
    ]);
  });

  test('removed-line triggers see removed lines only', () => {
    const r = rule({ id: 'demo/removed', trigger: { removed: ['vcpu_restore_fpu_lazy'] } });
    const f = runRules(p5, [r], { kb: EMPTY_KB });
    expect(f.map((x) => [x.file, x.line, x.side, x.function])).toEqual([
      ['xen/arch/x86/i387.c', 240, 'old', 'vcpu_restore_fpu_lazy'],
      ['xen/arch/x86/include/asm/i387.h', 31, 'old', null],
      ['xen/arch/x86/traps.c', 2048, 'old', 'do_device_not_available'],
    ]);
  });

  test('a matcher gets the passing lines and the kb; its vars fill the message; {symbol} comes from scope.symbols', () => {
    const seen: string[] = [];
    const matcher: Matcher = (ctx) => {
      for (const lc of ctx.lines) seen.push(`${lc.line.kind}:${lc.line.text.trim()}`);
      expect(ctx.kb).toBe(kb);
      expect(ctx.contextOf(ctx.lines[0]!.file, ctx.lines[0]!.hunk, ctx.lines[0]!.index).blocks).toEqual(ctx.lines[0]!.blocks);
      return ctx.lines.map((lc) => matchAt(lc, { vars: { what: 'the reset' } }));
    };
    const r = rule({
      id: 'demo/matcher',
      scope: { symbols: ['vcpu_init_fpu', 'vcpu_reset_fpu'] },
      trigger: { added: ['vcpu_reset_fpu'] },
      matcher: 'demo.m',
      message: '{function}() calls {symbol} ({what}) at {file}:{line}; {unknown} stays.',
    });
    const f = runRules(p1, [r], { kb, matchers: { 'demo.m': matcher } });
    expect(seen).toEqual(['add:vcpu_reset_fpu(v);']);
    expect(f[0]!.message).toBe('arch_vcpu_create() calls vcpu_reset_fpu (the reset) at xen/arch/x86/domain.c:525; {unknown} stays.');
  });

  test('a matcher rule without trigger runs once per patch, never on replies or covers', async () => {
    let calls = 0;
    const r = rule({ id: 'demo/once', matcher: 'demo.once' });
    const matchers = {
      'demo.once': ((ctx) => {
        calls++;
        expect(ctx.lines.length).toBe(ctx.diff.files.reduce((n, f) => n + f.additions + f.deletions, 0));
        return [];
      }) as Matcher,
    };
    runRules(p1, [r], { kb: EMPTY_KB, matchers });
    runRules(p5, [r], { kb: EMPTY_KB, matchers });
    runRules(await makeRecord(replyText), [r], { kb: EMPTY_KB, matchers });
    runRules(await makeRecord(xenMails.find((m) => m.includes('Subject: [PATCH v2 0/9]'))!), [r], { kb: EMPTY_KB, matchers });
    expect(calls).toBe(2);
  });

  test('a throwing matcher: onError gets it and the other rules still run; without onError it propagates', () => {
    const bad = rule({ id: 'demo/bad', matcher: 'demo.throw' });
    const good = rule({ id: 'demo/good', trigger: { added: ['vcpu_reset_fpu'] } });
    const matchers = { 'demo.throw': (() => { throw new Error('boom'); }) as Matcher };
    const errors: string[] = [];
    const f = runRules(p1, [bad, good], { kb: EMPTY_KB, matchers, onError: (ru, e) => errors.push(`${ru.id}: ${(e as Error).message}`) });
    expect(errors).toEqual(['demo/bad: boom']);
    expect(f.map((x) => x.rule)).toEqual(['demo/good']);
    expect(() => runRules(p1, [bad], { kb: EMPTY_KB, matchers })).toThrow(/rule demo\/bad failed on <20260324181937.2465574-2-ross.lagerwall@citrix.com>: boom/);
  });
});

describe('findings', () => {
  test('one finding per (rule, file, function): first line kept, other messages as notes; sorted by file and line', () => {
    const matcher: Matcher = (ctx) =>
      ctx.lines.map((lc, k): Match => matchAt(lc, { message: k % 2 ? `Second kind of problem.` : `First kind of problem.` }));
    const r = rule({ id: 'demo/merge', trigger: { added: ['.'], removed: ['.'] }, matcher: 'demo.merge' });
    const f = runRules(p5, [r], { kb: EMPTY_KB, matchers: { 'demo.merge': matcher } });
    const keys = f.map((x) => `${x.file}|${x.function}`);
    expect(new Set(keys).size).toBe(keys.length);
    expect(f.map((x) => [x.file, x.line, x.function])).toEqual([
      // The comment above the removed function sits between functions.
      ['xen/arch/x86/i387.c', 237, null],
      ['xen/arch/x86/i387.c', 240, 'vcpu_restore_fpu_lazy'],
      ['xen/arch/x86/include/asm/i387.h', 31, null],
      ['xen/arch/x86/pv/misc-hypercalls.c', 45, 'do_fpu_taskswitch'],
      ['xen/arch/x86/traps.c', 2048, 'do_device_not_available'],
    ]);
    const traps = f[4]!;
    expect(traps.message).toBe('First kind of problem.');
    expect(traps.notes).toEqual(['Second kind of problem.']);
    expect(f[2]!.notes).toBeUndefined();
    for (const x of f) {
      expect(x).toMatchObject({ source: 'rule', title: 'A test rule', severity: 'warning', subject: '[PATCH v2 5/9] x86/traps: Remove lazy FPU support' });
      expect(x.series).toEqual({ version: 2, index: 5, total: 9 });
      expect(x.fingerprint).toMatch(/^[0-9a-f]{16}$/);
    }
  });

  test('a Match severity overrides the rule', () => {
    const r = rule({ id: 'demo/sev', trigger: { added: ['vcpu_reset_fpu'] }, matcher: 'demo.sev' });
    const f = runRules(p1, [r], { kb: EMPTY_KB, matchers: { 'demo.sev': (ctx) => ctx.lines.map((lc) => matchAt(lc, { severity: 'error' })) } });
    expect(f[0]!.severity).toBe('error');
  });

  test('renderMessage defaults', () => {
    const r = rule({ id: 'demo/x' });
    const m: Match = { file: '', line: null, side: null, function: null, code: null };
    expect(renderMessage('{function} in {file} at {line}: {symbol}', r, m)).toBe('this code in the patch at ?: {symbol}');
  });
});

describe('fingerprints', () => {
  const r = rule({ id: 'demo/reset', trigger: { added: ['vcpu_reset_fpu'] } });
  const fp = async (text: string): Promise<string> => {
    const f = runRules(await makeRecord(text), [r], { kb: EMPTY_KB });
    expect(f).toHaveLength(1);
    return f[0]!.fingerprint;
  };

  test('the same across a re-send, a rebase (lines moved) and a v3; different when the code changes', async () => {
    const v2 = patchText(1);
    const first = await fp(v2);
    // Re-sent as v3 with a new Message-ID after a rebase that moved the function down 40 lines.
    const v3 = v2
      .replace('[PATCH v2 1/9]', '[PATCH v3 1/7]')
      .replace('<20260324181937.2465574-2-ross.lagerwall@citrix.com>', '<20260410090000.1-2-ross.lagerwall@citrix.com>')
      .replace('@@ -522,6 +522,8 @@', '@@ -562,6 +562,8 @@');
    expect(v3).not.toBe(v2);
    const moved = await makeRecord(v3);
    expect(runRules(moved, [r], { kb: EMPTY_KB })[0]!.line).toBe(565);
    expect(await fp(v3)).toBe(first);
    // Re-indented with a tab: the same code.
    expect(await fp(v3.replace('+        vcpu_reset_fpu(v);', '+\tvcpu_reset_fpu(v);'))).toBe(first);
    // A different argument is a different finding.
    expect(await fp(v2.replace('+        vcpu_reset_fpu(v);', '+        vcpu_reset_fpu(curr);'))).not.toBe(first);
  });

  test('normaliseCode and fingerprint', () => {
    expect(normaliseCode('    if ( !is_idle_domain(d) )')).toBe('if(!is_idle_domain(d))');
    expect(normaliseCode('if (!is_idle_domain(d))')).toBe('if(!is_idle_domain(d))');
    expect(normaliseCode('static  int\tfoo;')).toBe('static int foo;');
    expect(normaliseCode('return rc ;')).toBe('return rc;');
    expect(fingerprint('r', 'f', 'fn', 'k')).toBe(fingerprint('r', 'f', 'fn', 'k'));
    expect(fingerprint('r', 'f', 'fn', 'k')).not.toBe(fingerprint('r', 'f', null, 'k'));
    expect(fingerprint('r', 'f', 'fn', 'k')).toMatch(/^[0-9a-f]{16}$/);
  });
});

describe('loader', () => {
  let dir: string;
  const write = (rel: string, text: string): void => {
    const p = join(dir, rel);
    mkdirSync(join(p, '..'), { recursive: true });
    writeFileSync(p, text);
  };
  const good = (id: string, extra = ''): string => `id: ${id}
title: A rule
severity: warning
trigger:
  added: ['vcpu_reset_fpu']
message: "Reset in {function}."
guide: Why.
${extra}examples:
  flag:
    - name: f
      patch: "diff --git a/x.c b/x.c\\n"
  ok:
    - name: o
      patch: "diff --git a/x.c b/x.c\\n"
`;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'patchvet-load-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test('the shipped rules load (every pack) and the default dir is the repo rules/', () => {
    expect(defaultRulesDir()).toBe(join(process.cwd(), 'rules'));
    const all = loadPacks();
    expect(all.packs.common!.rules.length).toBe(6);
    for (const r of all.rules) expect(r.source).toMatch(new RegExp(`^rules/${r.id.split('/')[0]}/${r.id.split('/')[1]}\\.yml$`));
  });

  test('a rules root and a single pack dir; packs met twice merge, kb lists too', () => {
    write('a/demo/one.yml', good('demo/one'));
    write('a/demo/kb.yml', 'lists:\n  nonIdle: [arch_vcpu_create]\nfunctions:\n  vcpu_reset_fpu: {sets: [fpu_initialised], idle: never}\n');
    write('b/demo/two.yml', good('demo/two', "condition:\n  inFunction: ['kb:nonIdle', 'kb:extra']\n"));
    write('b/demo/kb.yml', 'lists:\n  nonIdle: [vcpu_create]\n  extra: [x]\nfunctions:\n  vcpu_reset_fpu: {resets: [fpu]}\n');
    const res = loadPacks([join(dir, 'a'), join(dir, 'b', 'demo')]);
    expect(res.errors).toEqual([]);
    expect(res.rules.map((r) => r.id)).toEqual(['demo/one', 'demo/two']);
    expect(res.kb.lists.nonIdle).toEqual(['arch_vcpu_create', 'vcpu_create']);
    expect(res.kb.functions.vcpu_reset_fpu).toEqual({ sets: ['fpu_initialised'], idle: 'never', resets: ['fpu'] });
    expect(res.packs.demo!.dirs).toHaveLength(2);
  });

  test('errors name the file and the field and say what to do', () => {
    write('demo/typo.yml', good('demo/typo').replace('trigger:', 'triger:'));
    write('demo/bad-regex.yml', good('demo/bad-regex').replace("['vcpu_reset_fpu']", "['vcpu_reset_fpu(']"));
    write('demo/no-guide.yml', good('demo/no-guide').replace('guide: Why.\n', ''));
    write('demo/wrong-pack.yml', good('other/wrong-pack'));
    write('demo/file-name.yml', good('demo/other-name'));
    write('demo/sev.yml', good('demo/sev').replace('severity: warning', 'severity: fatal'));
    write('demo/matcher.yml', good('demo/matcher', 'matcher: demo.nothere\n'));
    write('demo/kbref.yml', good('demo/kbref', "condition:\n  inFunction: ['kb:missing']\n"));
    write('demo/no-ok.yml', good('demo/no-ok').replace(/  ok:\n[\s\S]*$/, '  ok: []\n'));
    write('demo/two-things.yml', good('demo/two-things', 'matcher: common.fixesTg\n').replace('severity: warning', 'severity: warn').replace("['vcpu_reset_fpu']", "['(foo']"));
    write('demo/yaml.yml', 'id: demo/yaml\ntitle: [unclosed\n');
    write('demo/kb.yml', 'lists:\n  x: [a]\nfuncs: {}\n');
    const res = loadPacks([dir]);
    const byFile = (f: string): string[] => res.errors.filter((e) => e.file.endsWith(`demo/${f}`)).map((e) => `${e.field ?? ''} :: ${e.message}`);
    expect(byFile('typo.yml')).toEqual(expect.arrayContaining([expect.stringMatching(/^triger :: triger: unknown field: did you mean "trigger"\?/)]));
    expect(byFile('bad-regex.yml')).toEqual([expect.stringMatching(/^trigger\.added\[0\] :: .*invalid regular expression "vcpu_reset_fpu\(": .*fix the pattern/)]);
    expect(byFile('no-guide.yml')).toEqual([expect.stringMatching(/^guide :: guide: missing: add it \(the invariant, why it matters/)]);
    expect(byFile('wrong-pack.yml')).toEqual([expect.stringMatching(/^id :: .*must start with the pack name "demo\/".*write "demo\/wrong-pack"/)]);
    expect(byFile('file-name.yml')).toEqual([expect.stringMatching(/^id :: .*does not match the file name file-name\.yml/)]);
    expect(byFile('sev.yml')).toEqual([expect.stringMatching(/^severity :: severity: must be one of error, warning, info/)]);
    expect(byFile('matcher.yml')).toEqual([expect.stringMatching(/^matcher :: .*no matcher "demo\.nothere" is registered.*src\/rules\/matchers\/demo\.ts/)]);
    expect(byFile('kbref.yml')).toEqual([expect.stringMatching(/^condition\.inFunction\[0\] :: .*no knowledge-base list "missing": define it under lists: in .*demo\/kb\.yml/)]);
    expect(byFile('no-ok.yml')).toEqual([expect.stringMatching(/^examples\.ok :: .*is empty: add at least one \(a near-miss patch/)]);
    // Several problems in one file are all reported at once.
    expect(byFile('two-things.yml')).toEqual([
      'severity :: severity: must be one of error, warning, info (not "warn")',
      expect.stringMatching(/^trigger\.added\[0\] :: .*Unterminated group/),
      expect.stringMatching(/^matcher :: .*did you mean "common\.fixesTag"\?/),
    ]);
    expect(byFile('yaml.yml')).toEqual([expect.stringMatching(/^ :: YAML error at line \d+, column \d+/)]);
    expect(byFile('kb.yml')).toEqual([expect.stringMatching(/^funcs :: funcs: unknown field: did you mean "functions"\?/)]);
    // Broken files are left out, nothing else loads here.
    expect(res.rules).toEqual([]);
  });

  test('duplicate ids across directories are an error naming both files', () => {
    write('a/demo/dup.yml', good('demo/dup'));
    write('b/demo/dup.yml', good('demo/dup'));
    const res = loadPacks([join(dir, 'a'), join(dir, 'b')]);
    expect(res.rules.map((r) => r.id)).toEqual(['demo/dup']);
    expect(res.errors).toHaveLength(1);
    expect(res.errors[0]!.file).toMatch(/b\/demo\/dup\.yml$/);
    expect(res.errors[0]!.message).toMatch(/"demo\/dup" is already used by .*a\/demo\/dup\.yml: ids are never reused/);
  });

  test('a missing directory is reported, not thrown', () => {
    const res = loadPacks([join(dir, 'nope')]);
    expect(res.errors[0]!.message).toMatch(/not a directory/);
  });

  test('mergeKb', () => {
    expect(mergeKb({ lists: { a: ['x'] }, functions: {} }, { lists: { a: ['y', 'x'] }, functions: { f: { note: 'n' } } })).toEqual({
      lists: { a: ['x', 'y'] },
      functions: { f: { note: 'n' } },
    });
  });
});

describe('matcher registry', () => {
  test('pack tables do not collide and every key is "<pack>.<name>"', () => {
    const keys = Object.values(MATCHER_PACKS).flatMap((t) => Object.keys(t));
    expect(new Set(keys).size).toBe(keys.length);
    expect(Object.keys(MATCHERS).sort()).toEqual([...keys].sort());
    for (const [pack, table] of Object.entries(MATCHER_PACKS)) for (const k of Object.keys(table)) expect(k.startsWith(`${pack}.`)).toBe(true);
  });
});
