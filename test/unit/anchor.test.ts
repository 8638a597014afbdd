import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readFixtureMails } from '../helpers/mbox.js';
import type { Comment, Diff } from '../../src/model.js';
import { anchorComments } from '../../src/patch/anchor.js';
import { extractDiff } from '../../src/patch/diff.js';
import { splitReply } from '../../src/patch/quote.js';
import { recordFromRaw } from '../../src/mail/record.js';

const REPLIES = join(process.cwd(), 'test/fixtures/replies');

const readMbox = readFixtureMails;

function diffOf(body: string): Diff {
  const d = extractDiff(body).diff;
  if (!d) throw new Error('no diff in patch');
  return d;
}

const comments = (body: string, diff: Diff | null) => anchorComments(splitReply(body), diff);
/** file:line:side, the shape most assertions compare. */
const at = (c: Comment) => `${c.file}:${c.line}:${c.side}`;
const reply = (name: string) => readFileSync(join(REPLIES, name), 'utf8');
const PATCH = diffOf(readFileSync(join(REPLIES, 'fpu-two-files.patch'), 'utf8'));

describe('anchorComments on the reference thread (xen-fpu-reset-v2-1of9)', () => {
  let diff: Diff;
  let review: string;
  let answer: string;
  let answerRaw: string;
  beforeAll(async () => {
    const msgs = await readMbox('xen-fpu-reset-v2-1of9.mbox');
    diff = diffOf(msgs[0]!.mail.text!);
    review = msgs[1]!.mail.text!;
    answer = msgs[2]!.mail.text!;
    answerRaw = msgs[2]!.rawBody;
  });

  test("the maintainer's review: two answers to prose, one to the added line 525", () => {
    const cs = comments(review, diff);
    expect(cs).toHaveLength(3);
    expect(cs[0]!.text.startsWith('How?\n\nI don\'t think a PV vCPU can.')).toBe(true);
    expect(cs[0]!.text).toContain('An HVM use of VCPUOP_initialise only passes basic state');
    expect(cs[0]).toMatchObject({ file: null, line: null, side: null, quoted: [] });
    expect(cs[1]!.text.startsWith('The phrasing is a bit awkward')).toBe(true);
    expect(cs[1]).toMatchObject({ file: null, line: null, side: null, quoted: [] });
    expect(cs[2]!.text.startsWith('... this really should be part of allocating the memory.\n\nFirst, we should never')).toBe(true);
    expect(cs[2]!.text).toContain('vcpu_reset_fpu() sets v->fpu_initialised = false.');
    // The blank added line 526 is quoted last, but the comment is about vcpu_reset_fpu(v).
    expect(cs[2]).toEqual({
      file: 'xen/arch/x86/domain.c',
      line: 525,
      side: 'new',
      quoted: ['+        vcpu_reset_fpu(v);'],
      function: 'arch_vcpu_create',
      text: cs[2]!.text,
    });
  });

  test('without the patch, the quoted "+++"/"@@" headers still give line 525 by counting', () => {
    const cs = comments(review, null);
    expect(cs.map(at)).toEqual(['null:null:null', 'null:null:null', 'xen/arch/x86/domain.c:525:new']);
    expect(cs[2]!.quoted).toEqual(['+        vcpu_reset_fpu(v);']);
    expect(cs[2]!.function).toBe('arch_vcpu_create');
  });

  test("the author's answer (format=flowed, patch at depth 2) answers prose only", () => {
    const cs = comments(answer, diff);
    expect(cs.map(at)).toEqual(['null:null:null', 'null:null:null', 'null:null:null']);
    expect(cs[1]!.text.startsWith('No, since it means the backing memory has been properly initialised by')).toBe(true);
    expect(cs[2]!.text.startsWith('... but yes, that does seem like the best way to fix this.')).toBe(true);
    // The same before mailparser's format=flowed decoding, with and without the patch.
    for (const c of [comments(answerRaw, diff), comments(answerRaw, null), comments(answer, null)]) {
      expect(c.map((x) => [at(x), x.text.slice(0, 20)])).toEqual(cs.map((x) => [at(x), x.text.slice(0, 20)]));
    }
  });
});

describe('anchorComments on the other real threads', () => {
  test("Jan's review of 7/9 (xen-eager-fpu-v2): a trimmed hunk, a context line and a '+' after two '-'", async () => {
    const msgs = await readMbox('xen-eager-fpu-v2.mbox');
    const patch = msgs.find((m) => m.mail.subject === '[PATCH v2 7/9] x86: Remove fpu_initialised/fpu_dirty')!;
    const diff = diffOf(patch.mail.text!);
    const jan = msgs.find((m) => m.mail.subject?.startsWith('Re: [PATCH v2 7/9]') && m.mail.from?.text.includes('Jan Beulich'))!;
    const cs = comments(jan.mail.text!, diff);
    expect(cs).toHaveLength(2);
    expect(cs[0]).toMatchObject({
      file: 'xen/arch/x86/domctl.c',
      line: 1409,
      side: 'new',
      quoted: ['         c(flags = v->arch.pv.vgc_flags & ~(VGCF_i387_valid|VGCF_in_kernel));'],
      function: 'arch_get_info_guest',
    });
    expect(cs[0]!.text).toBe('It ends up a little odd to clear VGCF_i387_valid here, just to ...');
    expect(cs[1]).toMatchObject({
      file: 'xen/arch/x86/domctl.c',
      line: 1412,
      side: 'new',
      quoted: ['-    if ( v->fpu_initialised )', '-        c(flags |= VGCF_i387_valid);', '+    c(flags |= VGCF_i387_valid);'],
    });
    expect(cs[1]!.text.startsWith('... unconditionally set it afterwards.')).toBe(true);
    // Ross's answer quotes Jan's quote (">>") and answers Jan's words (">"): prose.
    const ross = msgs.find((m) => m.mail.subject?.startsWith('Re: [PATCH v2 7/9]') && m.mail.from?.text.includes('Ross'))!;
    expect(comments(ross.mail.text!, diff).map(at)).toEqual(['null:null:null']);
    // A Reviewed-by after a quoted commit message is not about a line.
    const andrew = msgs.find((m) => m.mail.subject === 'Re: [PATCH v2 5/9] x86/traps: Remove lazy FPU support')!;
    const five = msgs.find((m) => m.mail.subject === '[PATCH v2 5/9] x86/traps: Remove lazy FPU support')!;
    expect(comments(andrew.mail.text!, diffOf(five.mail.text!))).toEqual([
      { file: null, line: null, side: null, quoted: [], function: null, text: 'Reviewed-by: Andrew Cooper <andrew.cooper3@citrix.com>' },
    ]);
  });

  test("Ross's review of the FTW fix (xen-ftw-alloc): flowed joins blank context lines, still line 561", async () => {
    const msgs = await readMbox('xen-ftw-alloc.mbox');
    const diff = diffOf(msgs[0]!.mail.text!);
    const ross = msgs[1]!;
    expect(ross.mail.from?.text).toContain('Ross Lagerwall');
    const cs = comments(ross.mail.text!, diff);
    expect(cs).toHaveLength(1);
    expect(cs[0]).toMatchObject({
      file: 'xen/arch/x86/xstate.c',
      line: 561,
      side: 'new',
      quoted: ['     v->arch.xsave_area = save_area;'],
      function: 'xstate_alloc_save_area',
    });
    expect(cs[0]!.text).toMatch(/^Is this comment correct given that it is initializing FCW to FCW_DEFAULT/);
    // Jan's and Andrew's replies answer quoted prose (the commit message, the review).
    for (const m of msgs.slice(2, 5)) {
      expect(comments(m.mail.text!, diff).every((c) => c.file === null)).toBe(true);
    }
  });
});

describe('anchorComments: re-created situations (fpu-two-files.patch)', () => {
  test('the fixture patch reads as expected', () => {
    expect(PATCH.damage).toEqual([]);
    expect(PATCH.files.map((f) => f.path)).toEqual(['xen/arch/x86/i387.c', 'xen/arch/x86/xstate.c']);
  });

  test("a reply to a '-' line anchors on the old side", () => {
    const cs = comments(reply('del-line.txt'), PATCH);
    expect(cs[0]).toMatchObject({
      file: 'xen/arch/x86/i387.c',
      line: 303,
      side: 'old',
      quoted: ['-        .fpu_sse.fcw = FCW_RESET,'],
      function: 'vcpu_reset_fpu',
    });
    expect(cs[1]).toMatchObject({ file: 'xen/arch/x86/i387.c', line: 309, side: 'new', quoted: ['+        .fpu_sse.fcw = FCW_DEFAULT,'] });
    expect(cs[1]!.text).toBe('If so, the commit message wants to say why.\n\nJan');
    // Without the patch and without a quoted "+++ b/..." there is no file to name.
    expect(comments(reply('del-line.txt'), null).map(at)).toEqual(['null:null:null', 'null:null:null']);
  });

  test('an author answering inline after a ">>" diff line, between answers to ">" prose', () => {
    for (const diff of [PATCH, null]) {
      const cs = comments(reply('nested-answer.txt'), diff);
      expect(cs.map(at)).toEqual(['null:null:null', 'xen/arch/x86/i387.c:128:new', 'null:null:null']);
      expect(cs[1]!.quoted).toEqual(['+    if ( !v->arch.xsave_area )']);
      expect(cs[1]!.text.startsWith('The allocation can fail part way')).toBe(true);
    }
  });

  test('a diff line the client broke in two: tail kept its ">"', () => {
    const cs = comments(reply('rewrapped-kept.txt'), PATCH);
    expect(cs.map(at)).toEqual(['xen/arch/x86/i387.c:130:new', 'xen/arch/x86/i387.c:132:new']);
    // "quoted" carries the patch's own line, whole again.
    expect(cs[0]!.quoted).toEqual([
      '+    if ( !v->arch.xsave_area )',
      '+    {',
      '+        printk(XENLOG_G_WARNING "%pv: FPU state area not initialised, resetting to defaults\\n", v);',
    ]);
    expect(cs[1]!.quoted).toEqual(['+        return -ENOMEM;', '+    }']);
    expect(cs[1]!.text).toBe('~Andrew');
  });

  test('a diff line the client broke in two: tail lost its ">"', () => {
    const cs = comments(reply('rewrapped-lost.txt'), PATCH);
    expect(cs).toHaveLength(1);
    expect(cs[0]).toMatchObject({ file: 'xen/arch/x86/i387.c', line: 131, side: 'new' });
    expect(cs[0]!.quoted[1]).toContain('resetting to defaults');
  });

  test('whitespace damage: tabs for spaces, collapsed indentation, context lines without their space', () => {
    const body = reply('whitespace-damaged.txt');
    expect(body).toContain('>\treturn -ENOMEM;');
    const cs = comments(body, PATCH);
    expect(cs.map(at)).toEqual(['xen/arch/x86/xstate.c:553:new', 'xen/arch/x86/xstate.c:556:new']);
    expect(cs[0]!.quoted).toEqual(['-     * Set the memory image to default values.', '+     * Set the memory image to #RESET values.']);
    expect(cs[1]!.quoted).toEqual(['+    save_area->fpu_sse.ftw = FXSAVE_FTW_RESET;']);
    // The quote's own headers count the same lines (the damage is in whitespace only).
    expect(comments(body, null).map(at)).toEqual(['xen/arch/x86/xstate.c:553:new', 'xen/arch/x86/xstate.c:556:new']);
  });

  test('a reply quoting only prose (commit message, diffstat)', () => {
    const cs = comments(reply('prose-only.txt'), PATCH);
    expect(cs).toHaveLength(2);
    expect(cs.every((c) => c.file === null && c.line === null && c.side === null && c.quoted.length === 0)).toBe(true);
  });

  test('a quoted diff whose file and hunk headers were cut away', () => {
    const cs = comments(reply('headers-cut.txt'), PATCH);
    // "if ( !v->arch.xsave_area )" is added in both files: the quoted context decides.
    expect(cs).toHaveLength(1);
    expect(cs[0]).toMatchObject({
      file: 'xen/arch/x86/xstate.c',
      line: 560,
      side: 'new',
      quoted: ['+    if ( !v->arch.xsave_area )', '+        return -ENOMEM;'],
      function: 'xstate_alloc_save_area',
    });
    expect(comments(reply('headers-cut.txt'), null).map(at)).toEqual(['null:null:null']);
  });

  test('the same text in two files: the quoted file header decides', () => {
    const cs = comments(reply('file-header-decides.txt'), PATCH);
    expect(cs.map(at)).toEqual(['xen/arch/x86/xstate.c:560:new']);
    // Without the patch: the file is known, the line is not (lines were elided).
    expect(comments(reply('file-header-decides.txt'), null).map(at)).toEqual(['xen/arch/x86/xstate.c:null:null']);
    // The header is what decided: without it the first occurrence in the patch is taken.
    const headless = reply('file-header-decides.txt').replace(/^> (diff|index|---|\+\+\+) .*\n/gm, '');
    expect(headless).not.toContain('xstate.c');
    expect(comments(headless, PATCH).map(at)).toEqual(['xen/arch/x86/i387.c:131:new']);
  });

  test('the same text in two files: the occurrence after the previous anchor wins', () => {
    const cs = comments(reply('same-text-two-files.txt'), PATCH);
    expect(cs.map(at)).toEqual(['xen/arch/x86/i387.c:123:new', 'xen/arch/x86/i387.c:128:new', 'xen/arch/x86/xstate.c:560:new']);
    expect(cs[0]!.quoted).toEqual(['-    v->arch.fully_eager_fpu = !cpu_has_xsaveopt;', '+    v->arch.fully_eager_fpu = true;']);
  });

  test('"[...]" between two quoted hunks; a trimmed hunk is matched by content, not by its header', () => {
    const cs = comments(reply('elision-hunks.txt'), PATCH);
    // The first hunk was quoted from its 10th line on: the header's 120 would be wrong.
    expect(cs.map(at)).toEqual(['xen/arch/x86/i387.c:129:new', 'xen/arch/x86/i387.c:309:new']);
    expect(cs[0]!.quoted).toEqual(['+    if ( !v->arch.xsave_area )', '+    {']);
    expect(cs[1]!.quoted).toEqual(['-        .fpu_sse.fcw = FCW_RESET,', '+        .fpu_sse.fcw = FCW_DEFAULT,']);
    expect(cs[1]!.function).toBe('vcpu_reset_fpu');
    // Without the patch the second hunk, quoted whole, still counts right.
    expect(comments(reply('elision-hunks.txt'), null)[1]).toMatchObject({ file: 'xen/arch/x86/i387.c', line: 309, side: 'new' });
  });

  test('Outlook top-posting: the text answers no quoted line', () => {
    const cs = comments(reply('outlook-top-post.txt'), PATCH);
    expect(cs).toHaveLength(1);
    expect(cs[0]).toMatchObject({ file: null, line: null, side: null, quoted: [] });
    expect(cs[0]!.text).toContain('Reviewed-by: Paul Durrant <paul@xen.org>');
  });

  test("the patch pasted without '>' after [snip] is quoted material; a reviewer's own diff stays text", () => {
    const cs = comments(reply('pasted-patch.txt'), PATCH);
    expect(cs.map(at)).toEqual(['null:null:null', 'xen/arch/x86/xstate.c:556:new']);
    expect(cs[1]!.text).toBe("Should this be FTW's XSAVE init value instead?\n\nMichael");
    const proposal = [
      '> +    save_area->fpu_sse.ftw = FXSAVE_FTW_RESET;',
      '',
      'Something like this instead:',
      '',
      '--- a/xen/arch/x86/xstate.c',
      '+++ b/xen/arch/x86/xstate.c',
      '@@ -555,6 +555,7 @@ int xstate_alloc_save_area(struct vcpu *v)',
      '     save_area->fpu_sse.fcw = FCW_DEFAULT;',
      '+    save_area->fpu_sse.ftw = 0xffff;',
    ].join('\n');
    const pc = comments(proposal, PATCH);
    expect(pc).toHaveLength(1);
    expect(pc[0]!.text).toContain('+    save_area->fpu_sse.ftw = 0xffff;');
    expect(at(pc[0]!)).toBe('xen/arch/x86/xstate.c:556:new');
  });

  test("a diff the reviewer quotes from elsewhere does not move anchors into the patch", () => {
    const body = [
      'On 27.03.2026 11:04, Ross Lagerwall wrote:',
      '> Can we do this instead?',
      '>',
      '> --- a/xen/arch/x86/hvm/vmx/vmcs.c',
      '> +++ b/xen/arch/x86/hvm/vmx/vmcs.c',
      '> @@ -1310,6 +1310,7 @@ static int construct_vmcs(struct vcpu *v)',
      '>      }',
      '> +    vmx_fpu_enter(v);',
      '>      return 0;',
      '>  }',
      '',
      'No, that path is not taken for the idle vCPU.',
    ].join('\n');
    expect(comments(body, PATCH).map(at)).toEqual(['null:null:null']);
  });

  test('text before any quote, and a comment right after a hunk header', () => {
    const body = [
      'General comment first.',
      '',
      '> --- a/xen/arch/x86/xstate.c',
      '> +++ b/xen/arch/x86/xstate.c',
      '',
      'This whole file wants a cleanup.',
    ].join('\n');
    const cs = comments(body, PATCH);
    expect(cs.map(at)).toEqual(['null:null:null', 'xen/arch/x86/xstate.c:null:null']);
  });

  // Exponential matching would show as jest's timeout; speed itself is for `npm run bench`, not
  // a wall-clock bound that fails whenever the machine is busy.
  test('a big patch quoted whole, full of repeated short lines, anchors every comment', () => {
    // 10 files x 100 small functions: "+{", "+}", "+" occur 1,000 times each.
    const lines: string[] = [];
    for (let f = 0; f < 10; f++) {
      lines.push(`diff --git a/f${f}.c b/f${f}.c`, `--- a/f${f}.c`, `+++ b/f${f}.c`, '@@ -0,0 +1,500 @@');
      for (let i = 0; i < 100; i++) lines.push(`+static int fn_${f}_${i}(void)`, '+{', '+\treturn 0;', '+}', '+');
    }
    const big = diffOf(`${lines.join('\n')}\n`);
    const body = lines.map((l, i) => (i % 50 === 49 ? `> ${l}\n\nComment ${i}.\n` : `> ${l}`)).join('\n');
    const cs = comments(body, big);
    expect(cs).toHaveLength(100);
    // Line 49 of the quote is fn_0_9's header line, new line 46 of f0.c.
    expect(cs[0]).toMatchObject({ file: 'f0.c', line: 46, quoted: ['+}', '+', '+static int fn_0_9(void)'] });
    // Line 4999 is the blank "+" after fn_9_91's "+}" (new line 459): the "+}" is the anchor.
    expect(cs[99]).toMatchObject({ file: 'f9.c', line: 459, quoted: ['+{', '+\treturn 0;', '+}'] });
  });
});

describe('anchorComments: quotes that go past the patch (review bots, quotes of other patches)', () => {
  // Re-created from review-bot mails and list reviews seen on real lists: a bot quoting the
  // file as it reads after the patch (added lines with a context prefix) and past the end of
  // a hunk, and a maintainer quoting another patch of the series without its headers.
  const DOMAIN = diffOf(
    [
      'diff --git a/xen/common/domain.c b/xen/common/domain.c',
      '--- a/xen/common/domain.c',
      '+++ b/xen/common/domain.c',
      '@@ -200,4 +200,4 @@ int domain_kill(struct domain *d)',
      '     if ( d == current->domain )',
      '-        return -EINVAL;',
      '+        return -EPERM;',
      ' ',
      '     return ret;',
      '@@ -210,9 +210,15 @@ int domain_pause_by_systemcontroller(struct domain *d)',
      ' {',
      '     int ret;',
      ' ',
      '+    if ( d->is_dying )',
      '+        return -EINVAL;',
      '+',
      '+    if ( d == current->domain )',
      '+        return -EINVAL;',
      '+',
      '     ret = domain_pause_except_self(d);',
      '     if ( ret )',
      '         return ret;',
      ' ',
      '     return 0;',
      ' }',
      '',
    ].join('\n'),
  );

  test('the file as patched, added lines quoted as context: the blank lines between them count', () => {
    const body = [
      '> diff --git a/xen/common/domain.c b/xen/common/domain.c',
      '> --- a/xen/common/domain.c',
      '> +++ b/xen/common/domain.c',
      '> @@ -210,9 +210,15 @@ int domain_pause_by_systemcontroller(struct domain *d)',
      '>  {',
      '>      int ret;',
      '>  ',
      '>      if ( d->is_dying )',
      '>          return -EINVAL;',
      '>  ',
      '>      if ( d == current->domain )',
      '>          return -EINVAL;',
      '',
      '[Severity: Medium] Can the caller ever be its own target here?',
    ].join('\n');
    const cs = comments(body, DOMAIN);
    expect(cs).toHaveLength(1);
    // 210 "{", 211 "int ret;", 212 "", 213-214 is_dying, 215 "", 216-217 current->domain.
    expect(cs[0]).toMatchObject({ file: 'xen/common/domain.c', line: 217, side: 'new' });
  });

  test('quoted past the end of a hunk: a line reading like an earlier hunk\'s is the next line of the file', () => {
    const body = [
      '> diff --git a/xen/common/domain.c b/xen/common/domain.c',
      '> --- a/xen/common/domain.c',
      '> +++ b/xen/common/domain.c',
      '> @@ -210,9 +210,15 @@ int domain_pause_by_systemcontroller(struct domain *d)',
      '>      ret = domain_pause_except_self(d);',
      '>      if ( ret )',
      '>          return ret;',
      '>  ',
      '>      return 0;',
      '>  }',
      '>  ',
      '>  int domain_unpause_by_systemcontroller(struct domain *d)',
      '>  {',
      '>      int ret;',
      '>  ',
      '>      if ( d->controller_pause_count == 0 )',
      '>          return -EINVAL;',
      '',
      'This is pre-existing, but the count is read without the lock.',
    ].join('\n');
    const cs = comments(body, DOMAIN);
    expect(cs).toHaveLength(1);
    // "int ret;" and "return ret;" are in the patch (lines 211 and 202), but the quote is past
    // the hunk's last line (224, "}"): the file goes on at 225.
    expect(cs[0]).toMatchObject({ file: 'xen/common/domain.c', line: 231, side: 'new', function: 'domain_unpause_by_systemcontroller' });
  });

  test("lines of another patch quoted without headers do not anchor the comment after them", () => {
    const body = [
      'On 02.04.2026 10:12, Ross Lagerwall wrote:',
      '> +    if ( d == current->domain )',
      '> +        return -EINVAL;',
      '',
      'Why not -EPERM, as in domain_kill()? And the same hack as in 4/6:',
      '',
      '> +    /* Hack: pretend the domain is paused already. */',
      '> +    if ( d->controller_pause_count )',
      '> +        return 0;',
      '',
      'We do not take hacks.',
    ].join('\n');
    const cs = comments(body, DOMAIN);
    expect(cs.map(at)).toEqual(['xen/common/domain.c:217:new', 'null:null:null']);
  });
});

describe('anchoring through the mail parser: a review that proposes a fixup after a scissors line', () => {
  // Re-created from a qemu-devel review (the same habit is common on xen-devel): the reviewer
  // quotes the hunk, writes "I'd squash:", then "-- >8 --" and a bare fixup hunk, then a
  // Reviewed-by. git am would cut everything above the scissors line; a review must keep it.
  const mail = (headers: string[], body: string[]) =>
    Buffer.from([...headers, '', ...body, ''].join('\n'), 'utf8');
  const PATCH_MAIL = mail(
    [
      'From: Ross Lagerwall <ross.lagerwall@citrix.com>',
      'To: xen-devel@lists.xenproject.org',
      'Subject: [PATCH v2 3/6] xen/domain: refuse to pause the current domain',
      'Date: Thu, 02 Apr 2026 10:12:00 +0100',
      'Message-ID: <20260402091200.1000-4-ross.lagerwall@citrix.com>',
    ],
    [
      'Pausing the current domain from a domctl would deadlock.',
      '',
      'Signed-off-by: Ross Lagerwall <ross.lagerwall@citrix.com>',
      '---',
      'diff --git a/xen/common/domain.c b/xen/common/domain.c',
      '--- a/xen/common/domain.c',
      '+++ b/xen/common/domain.c',
      '@@ -210,6 +210,9 @@ int domain_pause_by_systemcontroller(struct domain *d)',
      ' {',
      '     int ret;',
      ' ',
      '+    if ( d == current->domain )',
      '+        return -EINVAL;',
      '+',
      '     ret = domain_pause_except_self(d);',
      '     if ( ret )',
      '         return ret;',
    ],
  );
  const REPLY_MAIL = mail(
    [
      'From: Jan Beulich <jbeulich@suse.com>',
      'To: Ross Lagerwall <ross.lagerwall@citrix.com>',
      'Cc: xen-devel@lists.xenproject.org',
      'Subject: Re: [PATCH v2 3/6] xen/domain: refuse to pause the current domain',
      'Date: Thu, 02 Apr 2026 11:30:00 +0200',
      'Message-ID: <6b1f0c1e-squash@suse.com>',
      'In-Reply-To: <20260402091200.1000-4-ross.lagerwall@citrix.com>',
      'Content-Type: text/plain; charset=UTF-8; format=flowed',
    ],
    [
      'On 02.04.2026 11:12, Ross Lagerwall wrote:',
      '> @@ -210,6 +210,9 @@ int domain_pause_by_systemcontroller(struct domain *d)',
      '>   {',
      '>       int ret;',
      '>   ',
      '> +    if ( d == current->domain )',
      '> +        return -EINVAL;',
      '',
      "EPERM would match domain_kill(). I'd squash:",
      '',
      '-- >8 --',
      '@@ -211,3 +211,3 @@ int domain_pause_by_systemcontroller(struct domain *d)',
      '     if ( d == current->domain )',
      '-        return -EINVAL;',
      '+        return -EPERM;',
      '---',
      '',
      'With that:',
      'Reviewed-by: Jan Beulich <jbeulich@suse.com>',
    ],
  );
  const ref = (file: string) => ({ source: 'test', file, offset: 0, length: 0 });

  test('the comment above "-- >8 --" anchors on the quoted line, and the Reviewed-by is read', async () => {
    const patch = await recordFromRaw({ raw: PATCH_MAIL, ref: ref('patch') });
    const review = await recordFromRaw({ raw: REPLY_MAIL, ref: ref('reply') });
    expect(review.kind).toBe('reply');
    const cs = anchorComments(review.blocks, patch.diff);
    // The first comment answers "return -EINVAL;" (new line 214); before the fix, the reply was
    // split from the text below the scissors line only, so nothing was anchored.
    expect(cs[0]).toMatchObject({ file: 'xen/common/domain.c', line: 214, side: 'new' });
    expect(cs[0]!.text).toContain("EPERM would match domain_kill(). I'd squash:");
    expect(cs.map((c) => c.text).join('\n')).toContain('+        return -EPERM;');
    expect(review.trailers.map((t) => `${t.name}: ${t.value}`)).toContain('Reviewed-by: Jan Beulich <jbeulich@suse.com>');
  });
});

describe('anchorComments: patch lines that hash alike are still told apart', () => {
  // The index looks lines up by a hash of their text without whitespace. These two lines
  // have the same 32-bit hash (found by search); each must still anchor on itself, and a
  // quoted line hashing like a patch line but reading otherwise must match nothing.
  const A = 'ret = check_71wu(dev);';
  const B = 'ret = check_itfa(dev);';
  const patch = [
    'From: Dev <dev@example.org>',
    'Subject: [PATCH] drv: check the device twice',
    '',
    '---',
    'diff --git a/drivers/x/drv.c b/drivers/x/drv.c',
    'index 1111111..2222222 100644',
    '--- a/drivers/x/drv.c',
    '+++ b/drivers/x/drv.c',
    '@@ -10,6 +10,12 @@ static int drv_probe(struct device *dev)',
    ' {',
    ' \tint ret;',
    ' ',
    `+\t${A}`,
    '+\tif (ret)',
    '+\t\treturn ret;',
    `+\t${B}`,
    '+\tif (ret)',
    '+\t\treturn ret;',
    ' \treturn 0;',
    ' }',
    ' ',
    '--',
    '2.43.0',
    '',
  ].join('\n');
  const DIFF = diffOf(patch);

  test('the two lines anchor on themselves, each quoted alone', () => {
    expect(comments([`> +\t${B}`, '', 'Why check it again?'].join('\n'), DIFF).map(at)).toEqual(['drivers/x/drv.c:16:new']);
    expect(comments([`> +\t${A}`, '', 'And why here?'].join('\n'), DIFF).map(at)).toEqual(['drivers/x/drv.c:13:new']);
  });

  test("a quoted line with a patch line's hash but other text is not the patch's", () => {
    // The same patch without the second check: quoting it finds the first one's hash only.
    const without = diffOf(patch.split('\n').filter((l) => l !== `+\t${B}`).join('\n'));
    expect(comments([`> +\t${A}`, '', 'Why check it?'].join('\n'), without).map(at)).toEqual(['drivers/x/drv.c:13:new']);
    expect(comments([`> +\t${B}`, '', 'Where does this come from?'].join('\n'), without).map(at)).toEqual(['null:null:null']);
  });
});
