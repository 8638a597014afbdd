import { parseSubject, normalizeSubjectKey } from '../../src/thread/subject.js';
import type { SeriesMarker } from '../../src/model.js';

function marker(over: Partial<SeriesMarker>): SeriesMarker {
  return {
    version: 1,
    index: null,
    total: null,
    rfc: false,
    resend: false,
    prefixes: ['PATCH'],
    targets: [],
    ...over,
  };
}

describe('parseSubject: patch brackets', () => {
  const cases: Array<[string, Partial<SeriesMarker>, string]> = [
    // The reference series (xen-devel fixtures).
    ['[PATCH v2 1/9] x86/domain: Ensure a vCPU\'s FPU is reset early', { version: 2, index: 1, total: 9 }, "x86/domain: Ensure a vCPU's FPU is reset early"],
    ['[PATCH v2 0/9] x86: Always use eager-fpu', { version: 2, index: 0, total: 9 }, 'x86: Always use eager-fpu'],
    ['[PATCH 2/2] x86/fpu: Initialise FTW as well as FCW in xstate_alloc_save_area()', { index: 2, total: 2 }, 'x86/fpu: Initialise FTW as well as FCW in xstate_alloc_save_area()'],
    ['[RFC PATCH v3 02/10] xen/riscv: foo', { version: 3, index: 2, total: 10, rfc: true, prefixes: ['RFC', 'PATCH'] }, 'xen/riscv: foo'],
    ['[PATCH for-4.21 v2 2/3] tools: bar', { version: 2, index: 2, total: 3, prefixes: ['PATCH', 'for-4.21'], targets: ['for-4.21'] }, 'tools: bar'],
    ['[PATCH for-4.22? 8/9] x86: baz', { index: 8, total: 9, prefixes: ['PATCH', 'for-4.22?'], targets: ['for-4.22?'] }, 'x86: baz'],
    ['[PATCHv3 1/2] foo', { version: 3, index: 1, total: 2 }, 'foo'],
    ['[PATCH v5.1 10/12] partial reroll', { version: 5.1, index: 10, total: 12 }, 'partial reroll'],
    ['[PATCH 3/2] one too many', { index: 3, total: 2 }, 'one too many'],
    ['[PATCH RESEND] foo', { resend: true, prefixes: ['PATCH', 'RESEND'] }, 'foo'],
    ['[PATCH RESEND v2 3/4] foo', { resend: true, version: 2, index: 3, total: 4, prefixes: ['PATCH', 'RESEND'] }, 'foo'],
    ['[PATCH 0/9] cover', { index: 0, total: 9 }, 'cover'],
    ['[PATCH net-next v4 5/7] net: mana: x', { version: 4, index: 5, total: 7, prefixes: ['PATCH', 'net-next'], targets: ['net-next'] }, 'net: mana: x'],
    ['[PATCH V2] mshv: y', { version: 2 }, 'mshv: y'],
    ['[PATCH v2 RFC 1/2] z', { version: 2, index: 1, total: 2, rfc: true, prefixes: ['PATCH', 'RFC'] }, 'z'],
    ['[RFC] KVM/x86: Killing kvm_get_time_and_clockread()', { rfc: true, prefixes: ['RFC'] }, 'KVM/x86: Killing kvm_get_time_and_clockread()'],
    ['[PATCH 1/1] single', { index: 1, total: 1 }, 'single'],
    ['[PATCH -next] foo', { prefixes: ['PATCH', '-next'], targets: ['-next'] }, 'foo'],
    ['[PATCH 6.1.y 2/3] stable backport', { index: 2, total: 3, prefixes: ['PATCH', '6.1.y'], targets: ['6.1.y'] }, 'stable backport'],
    ['[PATCH] [v2] foo', { version: 2 }, 'foo'],
    // Mercurial patchbomb numbering (as in patchwork's tests).
    ['[PATCH 2 of 3] hg: foo', { index: 2, total: 3 }, 'hg: foo'],
    ['[PATCH V2 0 of 3 RFC] hg: cover', { version: 2, index: 0, total: 3, rfc: true, prefixes: ['PATCH', 'RFC'] }, 'hg: cover'],
    // "of" not between two numbers is a word.
    ['[PATCH 2 of] foo', { prefixes: ['PATCH', '2', 'of'], targets: ['2', 'of'] }, 'foo'],
    ['[GIT PULL] Hyper-V fixes for v7.0-rc5', { prefixes: ['GIT PULL'] }, 'Hyper-V fixes for v7.0-rc5'],
    // Shapes from the linux-hyperv archive.
    ['[PATCH net-next,V3, 0/3] add ethtool COALESCE_RX_CQE_FRAMES/NSECS', { version: 3, index: 0, total: 3, prefixes: ['PATCH', 'net-next'], targets: ['net-next'] }, 'add ethtool COALESCE_RX_CQE_FRAMES/NSECS'],
    ['[PATCH net-next, v2] net: mana: Trigger VF reset', { version: 2, prefixes: ['PATCH', 'net-next'], targets: ['net-next'] }, 'net: mana: Trigger VF reset'],
    ['[PATCH net,v2] net: mana: Fix RX skb truesize accounting', { version: 2, prefixes: ['PATCH', 'net'], targets: ['net'] }, 'net: mana: Fix RX skb truesize accounting'],
    ['[PATCH v2 net-next 0/6] net: mana: Per-vPort EQ', { version: 2, index: 0, total: 6, prefixes: ['PATCH', 'net-next'], targets: ['net-next'] }, 'net: mana: Per-vPort EQ'],
    ['[v2,net-next,1/6] net: mana: Create separate EQs for each vPort', { version: 2, index: 1, total: 6, prefixes: ['net-next'], targets: ['net-next'] }, 'net: mana: Create separate EQs for each vPort'],
    ['[net-next,v3,4/6] net: mana: Use GIC functions', { version: 3, index: 4, total: 6, prefixes: ['net-next'], targets: ['net-next'] }, 'net: mana: Use GIC functions'],
    ['[PPATCH net v3] net: mana: fix use-after-free in add_adev() error path', { version: 3, prefixes: ['PPATCH', 'net'], targets: ['net'] }, 'net: mana: fix use-after-free in add_adev() error path'],
    ['[PATCH-next 00/23] cgroup/cpuset: Enable runtime update', { index: 0, total: 23, prefixes: ['PATCH', '-next'], targets: ['-next'] }, 'cgroup/cpuset: Enable runtime update'],
    ['[PATCH AUTOSEL 7.0-6.18] net: mana: hardening', { prefixes: ['PATCH', 'AUTOSEL', '7.0-6.18'], targets: ['7.0-6.18'] }, 'net: mana: hardening'],
    ['[PATCH 6.19 200/220] x86/hyperv: Use __naked attribute', { index: 200, total: 220, prefixes: ['PATCH', '6.19'], targets: ['6.19'] }, 'x86/hyperv: Use __naked attribute'],
    ['[RFT PATCH] x86/hyperv: Use __naked attribute', { prefixes: ['RFT', 'PATCH'] }, 'x86/hyperv: Use __naked attribute'],
    ['[RFC v1 1/5] PCI: hv: Create and export hv_build_logical_dev_id()', { index: 1, total: 5, rfc: true, prefixes: ['RFC'] }, 'PCI: hv: Create and export hv_build_logical_dev_id()'],
    ['[PATCH V0] mshv: pass struct by reference', { version: 0 }, 'mshv: pass struct by reference'],
    ['[PATCH rc 00/15] Various bug fixes for RDMA drivers', { index: 0, total: 15, prefixes: ['PATCH', 'rc'], targets: ['rc'] }, 'Various bug fixes for RDMA drivers'],
    ['[PATCH --to=kys@microsoft.com,haiyangz@microsoft.com] mshv: Fix interrupt state', { prefixes: ['PATCH', '--to=kys@microsoft.com,haiyangz@microsoft.com'] }, 'mshv: Fix interrupt state'],
    ['[XEN PATCH v3 01/10] xen: misra', { version: 3, index: 1, total: 10, prefixes: ['XEN', 'PATCH'] }, 'xen: misra'],
    ['[for-4.21][PATCH v2] x86: joined target bracket', { version: 2, prefixes: ['for-4.21', 'PATCH'], targets: ['for-4.21'] }, 'x86: joined target bracket'],
  ];
  test.each(cases)('%s', (subject, over, clean) => {
    const p = parseSubject(subject);
    expect(p.series).toEqual(marker(over));
    expect(p.clean).toBe(clean);
    expect(p.reply).toBe(false);
    expect(p.forward).toBe(false);
  });
});

describe('parseSubject: reply and forward prefixes, tags', () => {
  test('plain Re:', () => {
    const p = parseSubject("Re: [PATCH v2 1/9] x86/domain: Ensure a vCPU's FPU is reset early");
    expect(p.reply).toBe(true);
    expect(p.series).toEqual(marker({ version: 2, index: 1, total: 9 }));
    expect(p.clean).toBe("x86/domain: Ensure a vCPU's FPU is reset early");
  });

  test.each([
    'RE: [PATCH 1/2] foo',
    'Re[2]: [PATCH 1/2] foo',
    'Re(3): [PATCH 1/2] foo',
    'AW: [PATCH 1/2] foo',
    'SV: [PATCH 1/2] foo',
    'Antw: [PATCH 1/2] foo',
    'Odp: [PATCH 1/2] foo',
    'VS: [PATCH 1/2] foo',
    'Re: RE: RE: [PATCH 1/2] foo',
    're : [PATCH 1/2] foo',
    '回复：[PATCH 1/2] foo',
    ' Re: [PATCH 1/2] foo',
    'Re:  [PATCH 1/2] foo',
    'RE: [EXTERNAL] Re: [PATCH 1/2] foo',
    'RE: [Intel-wired-lan] [PATCH 1/2] foo',
    '[Xen-devel] Re: [PATCH 1/2] foo',
    'Re: [Xen-devel] [PATCH 1/2] foo',
    'Re: (subset) [PATCH 1/2] foo',
  ])('reply %s', (subject) => {
    const p = parseSubject(subject);
    expect(p.reply).toBe(true);
    expect(p.forward).toBe(false);
    expect(p.clean).toBe('foo');
    expect(p.series).toEqual(marker({ index: 1, total: 2 }));
  });

  test.each(['Fwd: [PATCH 1/2] foo', 'Fw: [PATCH 1/2] foo', 'FW: [PATCH 1/2] foo', 'WG: [PATCH 1/2] foo', '[Fwd: [PATCH 1/2] foo]'])(
    'forward %s',
    (subject) => {
      const p = parseSubject(subject);
      expect(p.forward).toBe(true);
      expect(p.reply).toBe(false);
      expect(p.clean).toBe('foo');
      expect(p.series?.index).toBe(1);
    },
  );

  test('reply to a forward: both flags, prefixes in any order and case', () => {
    const p = parseSubject('re: FWD: Aw: [Xen-devel] [PATCH v2] foo');
    expect(p).toEqual({ clean: 'foo', reply: true, forward: true, series: marker({ version: 2 }) });
  });

  test('list tag first', () => {
    const p = parseSubject('[Xen-devel] [PATCH v2 1/9] x86/domain: Ensure a vCPU\'s FPU is reset early');
    expect(p.series).toEqual(marker({ version: 2, index: 1, total: 9 }));
    expect(p.clean).toBe("x86/domain: Ensure a vCPU's FPU is reset early");
    expect(p.reply).toBe(false);
  });

  test('non-patch brackets are tags, not markers', () => {
    expect(parseSubject('[BUG] KVM: x86: kvmclock jumps ~253 years')).toEqual({
      clean: 'KVM: x86: kvmclock jumps ~253 years',
      reply: false,
      forward: false,
      series: null,
    });
    expect(parseSubject('[ANNOUNCE] Xen 4.21 released').series).toBeNull();
    expect(parseSubject('[BUG/RFE] hv_balloon: hot-add not triggered').series).toBeNull();
    expect(parseSubject('[bug report] net: mana: Add support for auxiliary device').series).toBeNull();
    const tip = parseSubject('[tip:irq/core] [x86/irq]  2b57c69917: lkvs.thermal_test.fail');
    expect(tip.series).toBeNull();
    expect(tip.clean).toBe('2b57c69917: lkvs.thermal_test.fail');
    // netdev's AI review bot re-titles patches "[net-next] ..." with no PATCH, version or numbering.
    expect(parseSubject('Re: [net-next] net: mana: Expose hardware diagnostic info').series).toBeNull();
  });

  test('no marker', () => {
    expect(parseSubject('VFIO support on hyperv (vfio_pci_core_ioctl())')).toEqual({
      clean: 'VFIO support on hyperv (vfio_pci_core_ioctl())',
      reply: false,
      forward: false,
      series: null,
    });
    expect(parseSubject('Re: VFIO support on hyperv').reply).toBe(true);
  });

  test('after the marker comes the title, even when it starts like a prefix', () => {
    expect(parseSubject('[PATCH] rv: Fix the monitor')).toEqual({
      clean: 'rv: Fix the monitor',
      reply: false,
      forward: false,
      series: marker({}),
    });
    const p = parseSubject('Fwd: [PATCH v1 1/2] Re: [PATCH v3 2/2] foo');
    expect(p.series).toEqual(marker({ version: 1, index: 1, total: 2 }));
    expect(p.forward).toBe(true);
    expect(p.reply).toBe(false);
    // git am drops a "Re:" and the brackets after it wherever they sit in the leading run;
    // the marker stays this mail's own.
    expect(p.clean).toBe('foo');
    // Tags after a marker are still removed; a second marker directly after joins the first.
    expect(parseSubject('[PATCH v2] [Xen-devel] foo').clean).toBe('foo');
  });

  test('folded subject: whitespace collapsed', () => {
    const p = parseSubject('Re: [PATCH 2/2] x86/fpu: Initialise FTW as well as FCW in\n xstate_alloc_save_area()');
    expect(p.clean).toBe('x86/fpu: Initialise FTW as well as FCW in xstate_alloc_save_area()');
  });

  test('words that look like prefixes inside the text stay', () => {
    expect(parseSubject('[PATCH] Re-enable foo: bar').clean).toBe('Re-enable foo: bar');
    expect(parseSubject('Reply: foo').reply).toBe(false);
    expect(parseSubject('[PATCH] foo [v2]').clean).toBe('foo [v2]');
    expect(parseSubject('[unclosed bracket').clean).toBe('[unclosed bracket');
    expect(parseSubject('').clean).toBe('');
  });
});

describe('normalizeSubjectKey', () => {
  test('lowercase, collapsed whitespace, trailing full stop', () => {
    expect(normalizeSubjectKey('net: mana: Force full-page RX buffers for 4K page size on specific systems.')).toBe(
      normalizeSubjectKey('net: mana:  Force full-page RX buffers for 4K page size on specific systems'),
    );
    expect(normalizeSubjectKey(' X86: Always use  eager-fpu ')).toBe('x86: always use eager-fpu');
    expect(normalizeSubjectKey('x86: Always use eager-fpu')).not.toBe(normalizeSubjectKey('x86: Always use lazy-fpu'));
  });
});
