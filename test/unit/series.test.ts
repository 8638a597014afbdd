import { groupSeries } from '../../src/thread/series.js';
import { buildThreads } from '../../src/thread/jwz.js';
import { parseSubject } from '../../src/thread/subject.js';
import type { Address, MessageKind, MessageRecord, Series } from '../../src/model.js';

const ROSS: Address = { name: 'Ross Lagerwall', address: 'ross.lagerwall@citrix.com' };
const ANDREW: Address = { name: 'Andrew Cooper', address: 'andrew.cooper3@citrix.com' };
const JAN: Address = { name: 'Jan Beulich', address: 'jbeulich@suse.com' };
const WEI: Address = { name: 'Wei Liu', address: 'wei.liu2@citrix.com' };

interface Opts {
  from?: Address;
  author?: Address;
  date?: string | null;
  irt?: string | null;
  refs?: string[];
  diff?: boolean;
  diffstat?: boolean;
  kind?: MessageKind;
}

/** A record as the mail stage would make it, with defaults for what series grouping ignores. */
function mk(messageId: string, subject: string, o: Opts = {}): MessageRecord {
  const parsedSubject = parseSubject(subject);
  const s = parsedSubject.series;
  const diff = o.diff ?? (!parsedSubject.reply && !!s && s.index !== 0 && !s.prefixes.includes('GIT PULL'));
  const diffstat = o.diffstat ?? (!!s && (s.index === 0 || s.prefixes.includes('GIT PULL')));
  const irt = o.irt ?? null;
  const refs = o.refs ?? (irt ? [irt] : []);
  let kind: MessageKind = 'other';
  if (parsedSubject.reply) kind = 'reply';
  else if (diff) kind = 'patch';
  else if (s && (s.index === 0 || (s.index === null && diffstat))) kind = 'cover';
  else if (irt || refs.length) kind = 'reply';
  const from = o.from ?? ROSS;
  return {
    messageId,
    ref: { source: `test:${messageId}`, file: 'test', offset: 0, length: 0 },
    inReplyTo: irt,
    references: refs,
    from,
    author: o.author ?? from,
    date: o.date === undefined ? '2026-03-24T18:19:28Z' : o.date,
    subject,
    parsedSubject,
    kind: o.kind ?? kind,
    listIds: ['xen-devel.lists.xenproject.org'],
    to: [],
    cc: [],
    commitMessage: null,
    diff: diff ? { files: [], damage: [] } : null,
    files: [],
    diffstat,
    trailers: [],
    blocks: [],
    whitespaceDamaged: false,
    damage: [],
    automated: false,
    warnings: [],
  };
}

function series(records: MessageRecord[]): Series[] {
  return groupSeries(records, buildThreads(records).threads);
}

const at = (min: number, day = 24) => new Date(Date.UTC(2026, 2, day, 18, min, 0)).toISOString();

// ---- the xen-devel fixtures, as records
const eid = (n: number) => `<20260324181937.2465574-${n}-ross.lagerwall@citrix.com>`;
const EAGER_TITLES = [
  "x86/domain: Ensure a vCPU's FPU is reset early",
  'x86: Always use eager-fpu',
  'x86/vmx: Remove lazy FPU support',
  'x86/svm: Remove lazy FPU support',
  'x86/traps: Remove lazy FPU support',
  'x86: Remove fully_eager_fpu',
  'x86: Remove fpu_initialised/fpu_dirty',
  'x86/xstate: Stop tracking nonlazy xstate use',
  'x86: Cleanup cr0.TS flag handling',
];
function eagerFpu(): MessageRecord[] {
  const recs = [mk(eid(1), '[PATCH v2 0/9] x86: Always use eager-fpu', { date: at(19) })];
  EAGER_TITLES.forEach((t, i) =>
    recs.push(
      mk(eid(i + 2), `[PATCH v2 ${i + 1}/9] ${t}`, {
        irt: eid(1),
        date: at(19),
        // 5/9 was written by Wei Liu (in-body From:) and sent by Ross.
        author: i + 1 === 5 ? WEI : ROSS,
      }),
    ),
  );
  recs.push(
    mk('<0471e754-9ea7-4fb5-b573-b770713b2f53@citrix.com>', `Re: [PATCH v2 1/9] ${EAGER_TITLES[0]}`, {
      from: ANDREW,
      irt: eid(2),
      refs: [eid(1), eid(2)],
      date: at(62),
    }),
    mk('<33af69c4-3e35-4baa-abdc-57902a0db4bc@suse.com>', `Re: [PATCH v2 7/9] ${EAGER_TITLES[6]}`, {
      from: JAN,
      irt: eid(8),
      refs: [eid(1), eid(8)],
      date: at(30, 25),
    }),
  );
  return recs;
}

const FTW1 = '<20260326190429.1156367-3-andrew.cooper3@citrix.com>';
const FTW1_COVER = '<20260326190429.1156367-1-andrew.cooper3@citrix.com>';
const FTW2 = '<20260327171636.1182604-1-andrew.cooper3@citrix.com>';
function ftw(): MessageRecord[] {
  const t = 'x86/fpu: Initialise FTW as well as FCW in xstate_alloc_save_area()';
  return [
    mk(FTW1, `[PATCH 2/2] ${t}`, { from: ANDREW, irt: FTW1_COVER, date: '2026-03-26T19:04:29Z' }),
    mk('<a0cf5128-9387-4796-8440-7e33b6dd8337@citrix.com>', `Re: [PATCH 2/2] ${t}`, {
      irt: FTW1,
      refs: [FTW1_COVER, FTW1],
      date: '2026-03-27T10:04:19Z',
    }),
    mk('<0c4143b1-730e-4078-b2a4-e180d0437450@suse.com>', `Re: [PATCH 2/2] ${t}`, {
      from: JAN,
      irt: FTW1,
      refs: [FTW1_COVER, FTW1],
      date: '2026-03-27T10:07:04Z',
    }),
    mk(FTW2, '[PATCH v2 2/2] x86/fpu: Initialise FTW in xstate_alloc_save_area()', {
      from: ANDREW,
      irt: FTW1,
      refs: [FTW1],
      date: '2026-03-27T17:16:36Z',
    }),
  ];
}

describe('groupSeries: the xen-devel fixtures', () => {
  test('eager-fpu v2: cover and nine patches, one series; the in-body author of 5/9 does not split it', () => {
    const s = series(eagerFpu());
    expect(s).toHaveLength(1);
    expect(s[0]).toEqual({
      id: eid(1),
      version: 2,
      total: 9,
      subject: 'x86: Always use eager-fpu',
      author: ROSS,
      cover: eid(1),
      patches: [2, 3, 4, 5, 6, 7, 8, 9, 10].map(eid),
      extra: [],
      complete: true,
      missing: [],
      rfc: false,
      previousVersion: null,
      nextVersion: null,
    });
  });

  test('reference thread: patch 1/9 below a missing cover letter', () => {
    const recs = eagerFpu().filter((r) => r.messageId === eid(2) || r.parsedSubject.reply);
    const s = series(recs);
    expect(s).toHaveLength(1);
    expect(s[0]).toMatchObject({
      id: eid(2),
      version: 2,
      total: 9,
      cover: null,
      complete: false,
      missing: [2, 3, 4, 5, 6, 7, 8, 9],
      subject: "x86/domain: Ensure a vCPU's FPU is reset early",
    });
    expect(s[0].patches).toEqual([eid(2), null, null, null, null, null, null, null, null]);
  });

  test('ftw: patch 2/2 of a series whose cover and 1/2 are missing, and its v2 posted in reply to it', () => {
    const s = series(ftw());
    expect(s).toHaveLength(2);
    const [v1, v2] = s;
    expect(v1).toMatchObject({ id: FTW1, version: 1, total: 2, patches: [null, FTW1], missing: [1], complete: false });
    expect(v2).toMatchObject({ id: FTW2, version: 2, total: 2, patches: [null, FTW2], missing: [1], complete: false });
    expect(v2.previousVersion).toBe(FTW1);
    expect(v1.nextVersion).toBe(FTW2);
    expect(v1.previousVersion).toBeNull();
    expect(v2.nextVersion).toBeNull();
  });

  test('arrival order does not matter', () => {
    const recs = [...eagerFpu(), ...ftw()];
    const expected = series(recs);
    // A fixed "shuffle": every third record first, then the rest reversed.
    const shuffled = [...recs.filter((_, i) => i % 3 === 0), ...recs.filter((_, i) => i % 3 !== 0).reverse()];
    expect(series(shuffled)).toEqual(expected);
  });
});

describe('groupSeries: shapes of series', () => {
  test('no cover, shallow threading (2..N reply to 1)', () => {
    const recs = [
      mk('<p1@x>', '[PATCH 1/3] a'),
      mk('<p2@x>', '[PATCH 2/3] b', { irt: '<p1@x>' }),
      mk('<p3@x>', '[PATCH 3/3] c', { irt: '<p1@x>' }),
    ];
    const s = series(recs);
    expect(s).toHaveLength(1);
    expect(s[0]).toMatchObject({ id: '<p1@x>', cover: null, patches: ['<p1@x>', '<p2@x>', '<p3@x>'], complete: true, subject: 'a' });
  });

  test('Mercurial patchbomb "[PATCH 1 of 2]" / "[PATCH 2 of 2]", no cover: one series (as patchwork groups it)', () => {
    // Re-created from the shape of patchwork's tests/series/mercurial-no-cover-letter.mbox.
    const recs = [
      mk('<9a1b2c3d4e5f60718293.1774370000@xenbox>', '[PATCH 1 of 2] tools/xl: print the domain name once'),
      mk('<0f1e2d3c4b5a69788796.1774370001@xenbox>', '[PATCH 2 of 2] tools/xl: drop the unused destroy flag', {
        irt: '<9a1b2c3d4e5f60718293.1774370000@xenbox>',
      }),
    ];
    const s = series(recs);
    expect(s).toHaveLength(1);
    expect(s[0]).toMatchObject({
      id: '<9a1b2c3d4e5f60718293.1774370000@xenbox>',
      total: 2,
      cover: null,
      patches: ['<9a1b2c3d4e5f60718293.1774370000@xenbox>', '<0f1e2d3c4b5a69788796.1774370001@xenbox>'],
      complete: true,
    });
  });

  test('no cover, deep threading (each patch replies to the previous one), one missing', () => {
    const recs = [
      mk('<p1@x>', '[PATCH v3 1/4] a'),
      // <p2@x> never arrived; 3 and 4 still chain through it.
      mk('<p3@x>', '[PATCH v3 3/4] c', { irt: '<p2@x>', refs: ['<p1@x>', '<p2@x>'] }),
      mk('<p4@x>', '[PATCH v3 4/4] d', { irt: '<p3@x>', refs: ['<p1@x>', '<p2@x>', '<p3@x>'] }),
    ];
    const s = series(recs);
    expect(s).toHaveLength(1);
    expect(s[0]).toMatchObject({ id: '<p1@x>', version: 3, patches: ['<p1@x>', null, '<p3@x>', '<p4@x>'], missing: [2], complete: false });
  });

  test('cover with deep threading, patches out of order', () => {
    const recs = [
      mk('<p3@x>', '[PATCH 3/3] c', { irt: '<p2@x>', refs: ['<c@x>', '<p1@x>', '<p2@x>'], date: at(3) }),
      mk('<p1@x>', '[PATCH 1/3] a', { irt: '<c@x>', date: at(1) }),
      mk('<c@x>', '[PATCH 0/3] the series', { date: at(0) }),
      mk('<p2@x>', '[PATCH 2/3] b', { irt: '<p1@x>', refs: ['<c@x>', '<p1@x>'], date: at(2) }),
    ];
    const s = series(recs);
    expect(s).toHaveLength(1);
    expect(s[0]).toMatchObject({ id: '<c@x>', cover: '<c@x>', patches: ['<p1@x>', '<p2@x>', '<p3@x>'], complete: true, subject: 'the series' });
  });

  test('missing patch with a cover', () => {
    const recs = [
      mk('<c@x>', '[PATCH 0/4] s'),
      mk('<p1@x>', '[PATCH 1/4] a', { irt: '<c@x>' }),
      mk('<p2@x>', '[PATCH 2/4] b', { irt: '<c@x>' }),
      mk('<p4@x>', '[PATCH 4/4] d', { irt: '<c@x>' }),
    ];
    expect(series(recs)[0]).toMatchObject({ patches: ['<p1@x>', '<p2@x>', null, '<p4@x>'], missing: [3], complete: false });
  });

  test('"[PATCH 3/2]" goes to extra', () => {
    const recs = [
      mk('<c@x>', '[PATCH 0/2] s'),
      mk('<p1@x>', '[PATCH 1/2] a', { irt: '<c@x>' }),
      mk('<p2@x>', '[PATCH 2/2] b', { irt: '<c@x>' }),
      mk('<p3@x>', '[PATCH 3/2] c', { irt: '<c@x>' }),
    ];
    const s = series(recs);
    expect(s).toHaveLength(1);
    expect(s[0]).toMatchObject({ patches: ['<p1@x>', '<p2@x>'], extra: ['<p3@x>'], complete: true, missing: [] });
  });

  test('unnumbered cover letter: diffstat, no diff', () => {
    const recs = [
      mk('<c@x>', '[RFC PATCH] x86: a proposal', { diff: false, diffstat: true }),
      mk('<p1@x>', '[RFC PATCH 1/2] a', { irt: '<c@x>' }),
      mk('<p2@x>', '[RFC PATCH 2/2] b', { irt: '<c@x>' }),
    ];
    const s = series(recs);
    expect(s).toHaveLength(1);
    expect(s[0]).toMatchObject({ id: '<c@x>', cover: '<c@x>', total: 2, complete: true, rfc: true, subject: 'x86: a proposal' });
  });

  test('single unnumbered patch; replies, pull requests and mails without marker are not series', () => {
    const recs = [
      mk('<p@x>', '[PATCH] MAINTAINERS: update'),
      mk('<re@x>', 'Re: [PATCH] MAINTAINERS: update', { irt: '<p@x>', from: JAN }),
      mk('<re-diff@x>', 'Re: [PATCH] MAINTAINERS: update', { irt: '<p@x>', from: JAN, diff: true, kind: 'reply' }),
      mk('<pull@x>', '[GIT PULL] Hyper-V fixes for v7.0-rc5', { kind: 'other' }),
      mk('<q@x>', 'Question about the FPU'),
    ];
    const s = series(recs);
    expect(s).toHaveLength(1);
    expect(s[0]).toMatchObject({ id: '<p@x>', total: 1, patches: ['<p@x>'], complete: true, cover: null });
  });

  test('linux-hyperv: "[PATCH v4 00/55]" cover answered by "[PATCH 01/55]" patches (version left out)', () => {
    const c = '<20260319202509.63802-1-eric.curtin@docker.com>';
    const p = (n: number) => `<20260319202509.63802-${n + 1}-eric.curtin@docker.com>`;
    const recs = [
      mk(c, '[PATCH v4 00/55] drivers: hv: dxgkrnl: Driver for Hyper-V virtual compute device'),
      mk(p(1), '[PATCH 01/55] drivers: hv: dxgkrnl: Driver initialization and loading', { irt: c }),
      mk(p(2), '[PATCH 02/55] drivers: hv: dxgkrnl: Add VMBus message support', { irt: c }),
    ];
    const s = series(recs);
    expect(s).toHaveLength(1);
    expect(s[0]).toMatchObject({ id: c, version: 4, total: 55, missing: Array.from({ length: 53 }, (_, i) => i + 3) });
    // But a v2 patch below a v1 cover is a new version, not a member.
    const v = series([mk('<c@x>', '[PATCH 0/2] s'), mk('<p1@x>', '[PATCH v2 1/2] a', { irt: '<c@x>' })]);
    expect(v.map((x) => [x.id, x.version, x.previousVersion])).toEqual([
      ['<c@x>', 1, null],
      ['<p1@x>', 2, '<c@x>'],
    ]);
  });

  test('linux-hyperv AUTOSEL: unnumbered patches below one absent mail are series of one each', () => {
    const ghost = '<20260420132314.1023554-1-sashal@kernel.org>';
    const sasha: Address = { name: 'Sasha Levin', address: 'sashal@kernel.org' };
    const recs = [
      mk('<20260420132314.1023554-44-sashal@kernel.org>', '[PATCH AUTOSEL 7.0-6.18] net: mana: hardening: Validate adapter_mtu', { irt: ghost, from: sasha, date: at(17) }),
      mk('<20260420132314.1023554-307-sashal@kernel.org>', '[PATCH AUTOSEL 6.18] PCI: hv: Set default NUMA node to 0', { irt: ghost, from: sasha, date: at(21) }),
    ];
    const s = series(recs);
    expect(s.map((x) => [x.patches.length, x.extra.length, x.complete])).toEqual([
      [1, 0, true],
      [1, 0, true],
    ]);
  });

  test('another sender posting into the thread is not part of the series', () => {
    const recs = [
      mk('<c@x>', '[PATCH 0/2] s'),
      mk('<p1@x>', '[PATCH 1/2] a', { irt: '<c@x>' }),
      mk('<p2@x>', '[PATCH 2/2] b', { irt: '<c@x>' }),
      mk('<alt@x>', '[PATCH 2/2] alternative b', { irt: '<c@x>', from: JAN, date: at(40) }),
    ];
    const s = series(recs);
    expect(s.map((x) => x.id)).toEqual(['<c@x>', '<alt@x>']);
    expect(s[0].extra).toEqual([]);
  });

  test('unthreaded series: patches without threading headers sent together', () => {
    const recs = [
      mk('<u1@x>', '[PATCH v2 1/3] a', { date: at(0) }),
      mk('<u2@x>', '[PATCH v2 2/3] b', { date: at(1) }),
      mk('<other@x>', '[PATCH v2 2/3] someone else', { date: at(1), from: JAN }),
      mk('<u3@x>', '[PATCH v2 3/3] c', { date: at(2) }),
      // Same shape two days later: a different posting.
      mk('<w1@x>', '[PATCH v2 1/3] a', { date: at(0, 26) }),
    ];
    const s = series(recs);
    expect(s.map((x) => [x.id, x.patches])).toEqual([
      ['<u1@x>', ['<u1@x>', '<u2@x>', '<u3@x>']],
      ['<other@x>', [null, '<other@x>', null]],
      ['<w1@x>', ['<w1@x>', null, null]],
    ]);
  });

  test('duplicate records (same mail twice): the first wins, nothing lands in extra', () => {
    const recs = [mk('<p1@x>', '[PATCH 1/2] a'), mk('<p2@x>', '[PATCH 2/2] b', { irt: '<p1@x>' }), mk('<p1@x>', '[PATCH 1/2] a')];
    const s = series(recs);
    expect(s).toHaveLength(1);
    expect(s[0]).toMatchObject({ patches: ['<p1@x>', '<p2@x>'], extra: [] });
  });
});

describe('groupSeries: versions', () => {
  test('v2 cover posted in reply to the v1 cover: two series, linked', () => {
    const recs = [
      mk('<v1c@x>', '[PATCH 0/2] x86: foo', { date: at(0) }),
      mk('<v1p1@x>', '[PATCH 1/2] a', { irt: '<v1c@x>', date: at(0) }),
      mk('<v1p2@x>', '[PATCH 2/2] b', { irt: '<v1c@x>', date: at(0) }),
      mk('<rev@x>', 'Re: [PATCH 1/2] a', { irt: '<v1p1@x>', refs: ['<v1c@x>', '<v1p1@x>'], from: JAN, date: at(30) }),
      mk('<v2c@x>', '[PATCH v2 0/2] x86: foo, take two', { irt: '<v1c@x>', date: at(0, 25) }),
      mk('<v2p1@x>', '[PATCH v2 1/2] a', { irt: '<v2c@x>', refs: ['<v1c@x>', '<v2c@x>'], date: at(0, 25) }),
      mk('<v2p2@x>', '[PATCH v2 2/2] b', { irt: '<v2c@x>', refs: ['<v1c@x>', '<v2c@x>'], date: at(0, 25) }),
    ];
    const s = series(recs);
    expect(s.map((x) => [x.id, x.version, x.patches, x.previousVersion, x.nextVersion])).toEqual([
      ['<v1c@x>', 1, ['<v1p1@x>', '<v1p2@x>'], null, '<v2c@x>'],
      ['<v2c@x>', 2, ['<v2p1@x>', '<v2p2@x>'], '<v1c@x>', null],
    ]);
  });

  test('versions in separate threads linked by sender and cover subject, highest lower version wins', () => {
    const recs = [
      mk('<v1@x>', '[PATCH 0/1] x86: Always use eager-fpu', { date: at(0, 1) }),
      mk('<v1p@x>', '[PATCH 1/1] x86: Always use eager-fpu', { irt: '<v1@x>', date: at(0, 1) }),
      mk('<v2@x>', '[PATCH v2 0/1] x86: always use eager-FPU.', { date: at(0, 5) }),
      mk('<v2p@x>', '[PATCH v2 1/1] x86: Always use eager-fpu', { irt: '<v2@x>', date: at(0, 5) }),
      mk('<v3@x>', '[PATCH v3 0/1] x86: Always use eager-fpu', { date: at(0, 9) }),
      mk('<v3p@x>', '[PATCH v3 1/1] x86: Always use eager-fpu', { irt: '<v3@x>', date: at(0, 9) }),
      // Same subject, someone else: not a version of it.
      mk('<jan@x>', '[PATCH v4 0/1] x86: Always use eager-fpu', { from: JAN, date: at(0, 10) }),
      mk('<janp@x>', '[PATCH v4 1/1] x86: Always use eager-fpu', { from: JAN, irt: '<jan@x>', date: at(0, 10) }),
    ];
    const s = series(recs);
    const link = Object.fromEntries(s.map((x) => [x.id, [x.previousVersion, x.nextVersion]]));
    expect(link).toEqual({
      '<v1@x>': [null, '<v2@x>'],
      '<v2@x>': ['<v1@x>', '<v3@x>'],
      '<v3@x>': ['<v2@x>', null],
      '<jan@x>': [null, null],
    });
  });

  test('single patches without cover link by the subject of patch 1', () => {
    const recs = [
      mk('<a1@x>', '[PATCH] tools: fix typo', { date: at(0, 1) }),
      mk('<a2@x>', '[PATCH v2] tools: fix typo', { date: at(0, 2) }),
      // Unrelated "[PATCH] fix typo" mails by others stay unlinked.
      mk('<b1@x>', '[PATCH] tools: fix typo', { from: JAN, date: at(0, 3) }),
    ];
    const s = series(recs);
    expect(s.find((x) => x.id === '<a2@x>')?.previousVersion).toBe('<a1@x>');
    expect(s.find((x) => x.id === '<b1@x>')).toMatchObject({ previousVersion: null, nextVersion: null });
  });

  test('v5.1 partial reroll in reply to v5 10/12 links to v5; v6 links to v5 by subject', () => {
    const recs = [mk('<v5c@x>', '[PATCH v5 00/12] xen/riscv: big series', { date: at(0, 1) })];
    for (let i = 1; i <= 12; i++) recs.push(mk(`<v5p${i}@x>`, `[PATCH v5 ${String(i).padStart(2, '0')}/12] p${i}`, { irt: '<v5c@x>', date: at(i, 1) }));
    recs.push(
      mk('<v51@x>', '[PATCH v5.1 10/12] p10', { irt: '<v5p10@x>', refs: ['<v5c@x>', '<v5p10@x>'], date: at(0, 3) }),
      mk('<v6c@x>', '[PATCH v6 00/12] xen/riscv: big series', { date: at(0, 9) }),
    );
    const s = series(recs);
    const v51 = s.find((x) => x.id === '<v51@x>')!;
    expect(v51).toMatchObject({ version: 5.1, total: 12, previousVersion: '<v5c@x>', complete: false });
    expect(v51.patches[9]).toBe('<v51@x>');
    expect(v51.missing).toHaveLength(11);
    expect(s.find((x) => x.id === '<v6c@x>')?.previousVersion).toBe('<v5c@x>');
    // The nearest version above v5 is the partial reroll.
    expect(s.find((x) => x.id === '<v5c@x>')?.nextVersion).toBe('<v51@x>');
  });

  test('RESEND: same version, its own series, linked as the next posting of the original', () => {
    const recs = [
      mk('<o@x>', '[PATCH v2 0/2] tools: stuff', { date: at(0, 1) }),
      mk('<o1@x>', '[PATCH v2 1/2] a', { irt: '<o@x>', date: at(0, 1) }),
      mk('<o2@x>', '[PATCH v2 2/2] b', { irt: '<o@x>', date: at(0, 1) }),
      mk('<r@x>', '[PATCH RESEND v2 0/2] tools: stuff', { date: at(0, 15) }),
      mk('<r1@x>', '[PATCH RESEND v2 1/2] a', { irt: '<r@x>', date: at(0, 15) }),
      mk('<r2@x>', '[PATCH RESEND v2 2/2] b', { irt: '<r@x>', date: at(0, 15) }),
      // A resend of a single patch, posted in reply to the original.
      mk('<p@x>', '[PATCH] x86: one', { date: at(0, 2) }),
      mk('<pr@x>', '[PATCH RESEND] x86: one', { irt: '<p@x>', date: at(0, 20) }),
    ];
    const s = series(recs);
    expect(s.map((x) => [x.id, x.version, x.patches, x.previousVersion, x.nextVersion])).toEqual([
      ['<o@x>', 2, ['<o1@x>', '<o2@x>'], null, '<r@x>'],
      ['<p@x>', 1, ['<p@x>'], null, '<pr@x>'],
      ['<r@x>', 2, ['<r1@x>', '<r2@x>'], '<o@x>', null],
      ['<pr@x>', 1, ['<pr@x>'], '<p@x>', null],
    ]);
  });

  test('a later version never becomes the previous one', () => {
    const recs = [
      mk('<v2@x>', '[PATCH v2] x86: foo', { date: at(0, 1) }),
      mk('<v1@x>', '[PATCH] x86: foo', { irt: '<v2@x>', date: at(0, 2) }),
    ];
    const s = series(recs);
    expect(s.find((x) => x.id === '<v1@x>')?.previousVersion).toBeNull();
    expect(s.find((x) => x.id === '<v2@x>')?.previousVersion).toBeNull();
  });
});

// Size, not speed (a wall-clock bound failed whenever the machine was busy; see `npm run bench`).
test('100k patch mails in 20k series', () => {
  const recs: MessageRecord[] = [];
  for (let t = 0; t < 20000; t++) {
    const from: Address = { name: `A${t % 500}`, address: `a${t % 500}@example.org` };
    const c = `<c${t}@x>`;
    recs.push(mk(c, `[PATCH v${1 + (t % 3)} 0/4] subsystem ${t % 7000}: change`, { from, date: at(t % 60, 1 + (t % 28)) }));
    for (let i = 1; i <= 4; i++) recs.push(mk(`<p${t}-${i}@x>`, `[PATCH v${1 + (t % 3)} ${i}/4] part ${i}`, { irt: c, from, date: at(t % 60, 1 + (t % 28)) }));
  }
  const threads = buildThreads(recs).threads;
  const s = groupSeries(recs, threads);
  expect(s).toHaveLength(20000);
  expect(s.every((x) => x.complete)).toBe(true);
});
