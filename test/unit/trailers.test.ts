import { parseTrailers, validateFixes, findReplyTrailers, canonicalTrailerName } from '../../src/patch/trailers.js';

describe('parseTrailers: commit messages', () => {
  test('xen-ftw v2: trailers end at the --- separator, CC: notes after it are not trailers', () => {
    // Commit message of "[PATCH v2 2/2] x86/fpu: Initialise FTW in xstate_alloc_save_area()".
    const body = [
      'Right now, xstate_alloc_save_area() leaves both XSTATE_BV and FTW clear.  This',
      'causes a difference in behaviour between FXRSTOR and XRSTOR.',
      '',
      "Switch to using using XSTATE's idea of initial configuration which will behave",
      'the same even on pre-XSAVE hardware.  Expand the comment to explain why.',
      '',
      'Signed-off-by: Andrew Cooper <andrew.cooper3@citrix.com>',
      'Reviewed-by: Jan Beulich <jbeulich@suse.com>',
      '---',
      'CC: Jan Beulich <JBeulich@suse.com>',
      'CC: Roger Pau Monné <roger.pau@citrix.com>',
      '',
      'v2:',
      ' * Rewrite the commmit message and comment.',
    ].join('\n');
    expect(parseTrailers(body)).toEqual([
      { name: 'Signed-off-by', value: 'Andrew Cooper <andrew.cooper3@citrix.com>' },
      { name: 'Reviewed-by', value: 'Jan Beulich <jbeulich@suse.com>' },
    ]);
  });

  test('eager-fpu 5/9: two Signed-off-by (in-body author and sender), CRLF line ends', () => {
    const body =
      'Remove lazy FPU support from the #NM exception handler used by PV\r\n' +
      'guests since fully_eager_fpu is now always true.\r\n\r\n' +
      'Signed-off-by: Wei Liu <wei.liu2@citrix.com>\r\n' +
      'Signed-off-by: Ross Lagerwall <ross.lagerwall@citrix.com>\r\n\r\n';
    expect(parseTrailers(body).map((t) => t.value)).toEqual([
      'Wei Liu <wei.liu2@citrix.com>',
      'Ross Lagerwall <ross.lagerwall@citrix.com>',
    ]);
  });

  test('canonical case, Fixes kept as written, continuation lines, Cc comments', () => {
    const body = [
      'Fix the thing.',
      '',
      'fixes: 1234abcd5678 ("x86: foo the bar when the baz is',
      '  not yet set up")',
      'Reported-By: Some One <some@example.org>',
      'CC: stable@vger.kernel.org # 6.1+',
      'Link: https://lore.kernel.org/r/20260324181937.2465574-2-ross.lagerwall@citrix.com',
      'Closes: https://bugzilla.example.org/123',
      'Co-Developed-by: Other Person <other@example.org>',
      'release-acked-by: Oleksii Kurochko <oleksii.kurochko@gmail.com>',
      'Signed-off-by: Some One <some@example.org>',
    ].join('\n');
    expect(parseTrailers(body)).toEqual([
      { name: 'Fixes', value: '1234abcd5678 ("x86: foo the bar when the baz is not yet set up")' },
      { name: 'Reported-by', value: 'Some One <some@example.org>' },
      { name: 'Cc', value: 'stable@vger.kernel.org # 6.1+' },
      { name: 'Link', value: 'https://lore.kernel.org/r/20260324181937.2465574-2-ross.lagerwall@citrix.com' },
      { name: 'Closes', value: 'https://bugzilla.example.org/123' },
      { name: 'Co-developed-by', value: 'Other Person <other@example.org>' },
      { name: 'Release-acked-by', value: 'Oleksii Kurochko <oleksii.kurochko@gmail.com>' },
      { name: 'Signed-off-by', value: 'Some One <some@example.org>' },
    ]);
  });

  test('only the last paragraph: "Key: value" lines in the middle of the text are prose', () => {
    const body = [
      'Note: this changes the ABI.',
      'Before: foo',
      '',
      'More explanation here.',
      '',
      'Signed-off-by: A <a@example.org>',
    ].join('\n');
    expect(parseTrailers(body)).toEqual([{ name: 'Signed-off-by', value: 'A <a@example.org>' }]);
  });

  test('a last paragraph of prose has no trailers', () => {
    expect(parseTrailers('Fix foo.\n\nThis is not: a trailer block because of this line\nand this one.\n')).toEqual([]);
    expect(parseTrailers('See https://example.org/x for details.\n')).toEqual([]);
    expect(parseTrailers('')).toEqual([]);
  });

  test('mixed block accepted when git would: Signed-off-by present and >= 25% trailers', () => {
    const body = [
      'Fix foo.',
      '',
      'Signed-off-by: A <a@example.org>',
      '[jb: dropped a hunk]',
      'Signed-off-by: Jan Beulich <jbeulich@suse.com>',
    ].join('\n');
    expect(parseTrailers(body).map((t) => t.name)).toEqual(['Signed-off-by', 'Signed-off-by']);
    // Without a Signed-off-by, one odd line rejects the block (git's rule).
    expect(parseTrailers('Fix foo.\n\nAcked-by: A <a@example.org>\n[random line]\n')).toEqual([]);
  });

  test('a URL line is not a trailer', () => {
    expect(parseTrailers('Fix.\n\nhttps://example.org/bug\nSigned-off-by: A <a@b.org>')).toEqual([
      { name: 'Signed-off-by', value: 'A <a@b.org>' },
    ]);
  });
});

describe('parseTrailers: given in replies', () => {
  test("Jan's conditional Reviewed-by (xen-ftw review), condition from the lead-in sentence", () => {
    const newText = [
      'The title using "as well as" reads to me as if both are being fixed, when',
      'really you bring FTW in line with FCW. Preferably with this adjusted to be',
      'unambiguous:',
      'Reviewed-by: Jan Beulich <jbeulich@suse.com>',
      '',
      'I think it tries to say that the values put in memory aren\'t actually going',
      'to be used by a subsequent XRSTOR.',
      '',
      'Jan',
    ].join('\n');
    expect(parseTrailers(newText, { fromReply: true })).toEqual([
      { name: 'Reviewed-by', value: 'Jan Beulich <jbeulich@suse.com>' },
    ]);
    expect(findReplyTrailers(newText)).toEqual([
      {
        trailer: { name: 'Reviewed-by', value: 'Jan Beulich <jbeulich@suse.com>' },
        condition: 'Preferably with this adjusted to be unambiguous',
        line: 3,
      },
    ]);
  });

  test('unconditional tag alone (eager-fpu 5/9 review)', () => {
    const r = findReplyTrailers('\nReviewed-by: Andrew Cooper <andrew.cooper3@citrix.com>\n');
    expect(r).toEqual([
      { trailer: { name: 'Reviewed-by', value: 'Andrew Cooper <andrew.cooper3@citrix.com>' }, condition: null, line: 1 },
    ]);
  });

  test('conditions on the same line, on the next line, and shared by a block', () => {
    const r = findReplyTrailers(
      [
        'Reviewed-by: Jan Beulich <jbeulich@suse.com> with the nit fixed',
        '',
        'With that fixed: Acked-by: Roger Pau Monné <roger.pau@citrix.com>',
        '',
        'Acked-by: Julien Grall <jgrall@amazon.com>',
        'provided the comment is updated.',
        '',
        'With the two issues above addressed:',
        'Acked-by: Stefano Stabellini <sstabellini@kernel.org>',
        'Tested-by: Stefano Stabellini <sstabellini@kernel.org>',
      ].join('\n'),
    );
    expect(r.map((x) => [x.trailer.name, x.trailer.value, x.condition])).toEqual([
      ['Reviewed-by', 'Jan Beulich <jbeulich@suse.com>', 'with the nit fixed'],
      ['Acked-by', 'Roger Pau Monné <roger.pau@citrix.com>', 'With that fixed'],
      ['Acked-by', 'Julien Grall <jgrall@amazon.com>', 'provided the comment is updated.'],
      ['Acked-by', 'Stefano Stabellini <sstabellini@kernel.org>', 'With the two issues above addressed'],
      ['Tested-by', 'Stefano Stabellini <sstabellini@kernel.org>', 'With the two issues above addressed'],
    ]);
  });

  test('only tags with an address (or a Fixes sha) count; prose mentioning them does not', () => {
    const text = [
      'Link: https://example.org/some/discussion',
      'Note: this is not a tag',
      'I would add a Reviewed-by: tag if you fix this.',
      'Acked-by: me',
      'Fixes: 1234abcd5678 ("x86: foo")',
      'Fixes: the bug from last week',
      'Reviewed-by: Long Name Here',
      '  <long.name@example.org>',
      'Acked-by: Jan Beulich <jbeulich@suse.com> # x86',
    ].join('\n');
    expect(parseTrailers(text, { fromReply: true })).toEqual([
      { name: 'Fixes', value: '1234abcd5678 ("x86: foo")' },
      { name: 'Reviewed-by', value: 'Long Name Here <long.name@example.org>' },
      { name: 'Acked-by', value: 'Jan Beulich <jbeulich@suse.com> # x86' },
    ]);
  });
});

describe('validateFixes', () => {
  test('well formed', () => {
    expect(validateFixes('1234abcd5678 ("x86: foo")')).toBeNull();
    expect(validateFixes('639de2aafa1234567890 ("x86/fpu: Initialise FTW (and more)")')).toBeNull();
  });
  test('short sha', () => {
    expect(validateFixes('639de2aafa ("x86/fpu: foo")')).toMatch(/10 digits; use at least 12/);
  });
  test('no quoted subject', () => {
    expect(validateFixes('1234abcd5678')).toMatch(/no quoted subject/);
    expect(validateFixes('1234abcd5678 x86: foo')).toMatch(/no quoted subject/);
    expect(validateFixes('1234abcd5678 (x86: foo)')).toMatch(/no quoted subject/);
  });
  test('not hex', () => {
    expect(validateFixes('XSA-123 ("x86: foo")')).toMatch(/not a hexadecimal commit id/);
  });
  test('several problems at once', () => {
    const p = validateFixes('abc123');
    expect(p).toMatch(/use at least 12/);
    expect(p).toMatch(/no quoted subject/);
  });
});

test('canonicalTrailerName', () => {
  expect(canonicalTrailerName('SIGNED-OFF-BY')).toBe('Signed-off-by');
  expect(canonicalTrailerName('CC')).toBe('Cc');
  expect(canonicalTrailerName('X-Custom-Thing')).toBe('X-Custom-Thing');
});
