import { buildThreads, Threader, type ThreadInput } from '../../src/thread/jwz.js';
import { parseSubject } from '../../src/thread/subject.js';

function rec(
  messageId: string,
  opts: { irt?: string | null; refs?: string[]; date?: string | null; subject?: string } = {},
): ThreadInput {
  const subject = opts.subject ?? `mail ${messageId}`;
  return {
    messageId,
    inReplyTo: opts.irt ?? null,
    references: opts.refs ?? [],
    date: opts.date === undefined ? '2026-03-24T18:00:00.000Z' : opts.date,
    subject,
    parsedSubject: parseSubject(subject),
  };
}

/** "id<-parent" pairs in output order, for compact assertions. */
function shape(t: { messages: Array<{ messageId: string; parent: string | null; ghost: boolean }> }): string[] {
  return t.messages.map((m) => `${m.ghost ? '?' : ''}${m.messageId}<-${m.parent ?? ''}`);
}

// The reference thread (xen-fpu-reset-v2-1of9.mbox): patch 1/9, Andrew's review, Ross's
// answer; the cover letter -1- is not in the file.
const COVER = '<20260324181937.2465574-1-ross.lagerwall@citrix.com>';
const P1 = '<20260324181937.2465574-2-ross.lagerwall@citrix.com>';
const REVIEW = '<0471e754-9ea7-4fb5-b573-b770713b2f53@citrix.com>';
const ANSWER = '<68469e6b-33c8-4020-bd8b-75afe8f6570a@citrix.com>';
const referenceThread = (): ThreadInput[] => [
  rec(P1, {
    irt: COVER,
    refs: [COVER],
    date: '2026-03-24T18:19:29Z',
    subject: "[PATCH v2 1/9] x86/domain: Ensure a vCPU's FPU is reset early",
  }),
  rec(REVIEW, {
    irt: P1,
    refs: [COVER, P1],
    date: '2026-03-24T23:02:34Z',
    subject: "Re: [PATCH v2 1/9] x86/domain: Ensure a vCPU's FPU is reset early",
  }),
  rec(ANSWER, {
    irt: REVIEW,
    refs: [COVER, P1, REVIEW],
    date: '2026-03-25T10:36:03Z',
    subject: "Re: [PATCH v2 1/9] x86/domain: Ensure a vCPU's FPU is reset early",
  }),
];

describe('buildThreads', () => {
  test('reference thread: the missing cover letter is a ghost root', () => {
    const { threads } = buildThreads(referenceThread());
    expect(threads).toHaveLength(1);
    const t = threads[0];
    expect(t.root).toBe(COVER);
    expect(t.rootMissing).toBe(true);
    expect(t.subject).toBe("[PATCH v2 1/9] x86/domain: Ensure a vCPU's FPU is reset early");
    expect(t.messages).toEqual([
      { messageId: COVER, parent: null, ghost: true, children: [P1] },
      { messageId: P1, parent: COVER, ghost: false, children: [REVIEW] },
      { messageId: REVIEW, parent: P1, ghost: false, children: [ANSWER] },
      { messageId: ANSWER, parent: REVIEW, ghost: false, children: [] },
    ]);
  });

  test('out-of-order arrival gives the same threads', () => {
    const base = referenceThread();
    const expected = buildThreads(base);
    const perms = [
      [2, 1, 0],
      [1, 2, 0],
      [2, 0, 1],
    ];
    for (const p of perms) expect(buildThreads(p.map((i) => base[i]))).toEqual(expected);
  });

  test('eager-fpu v2: cover, nine patches in shallow threading, replies; depth-first, siblings by date', () => {
    const id = (n: number) => `<20260324181937.2465574-${n}-ross.lagerwall@citrix.com>`;
    const recs: ThreadInput[] = [rec(id(1), { date: '2026-03-24T18:19:28Z', subject: '[PATCH v2 0/9] x86: Always use eager-fpu' })];
    for (let i = 1; i <= 9; i++) {
      recs.push(rec(id(i + 1), { irt: id(1), refs: [id(1)], date: `2026-03-24T18:19:${28 + i}Z`, subject: `[PATCH v2 ${i}/9] p${i}` }));
    }
    recs.push(rec('<r5@citrix.com>', { irt: id(6), refs: [id(1), id(6)], date: '2026-03-24T23:06:24Z' }));
    recs.push(rec('<r1@citrix.com>', { irt: id(2), refs: [id(1), id(2)], date: '2026-03-24T23:02:34Z' }));
    recs.push(rec('<r7@suse.com>', { irt: id(8), refs: [id(1), id(8)], date: '2026-03-25T09:30:57Z' }));
    recs.push(rec('<r7b@citrix.com>', { irt: '<r7@suse.com>', refs: [id(1), id(8), '<r7@suse.com>'], date: '2026-03-25T10:43:11Z' }));
    // Arrival order shuffled: replies first.
    const { threads } = buildThreads([...recs].reverse());
    expect(threads).toHaveLength(1);
    expect(threads[0].rootMissing).toBe(false);
    expect(threads[0].subject).toBe('[PATCH v2 0/9] x86: Always use eager-fpu');
    expect(threads[0].messages.map((m) => m.messageId)).toEqual([
      id(1),
      id(2),
      '<r1@citrix.com>',
      id(3),
      id(4),
      id(5),
      id(6),
      '<r5@citrix.com>',
      id(7),
      id(8),
      '<r7@suse.com>',
      '<r7b@citrix.com>',
      id(9),
      id(10),
    ]);
  });

  test('missing parent in the middle of a chain stays as a ghost', () => {
    const { threads } = buildThreads([
      rec('<a@x>'),
      rec('<c@x>', { irt: '<b@x>', refs: ['<a@x>', '<b@x>'] }),
    ]);
    expect(threads).toHaveLength(1);
    expect(shape(threads[0])).toEqual(['<a@x><-', '?<b@x><-<a@x>', '<c@x><-<b@x>']);
    expect(threads[0].rootMissing).toBe(false);
  });

  test('References without In-Reply-To, and In-Reply-To without References', () => {
    const { threads } = buildThreads([
      rec('<a@x>', { date: '2026-01-01T00:00:00Z' }),
      rec('<b@x>', { refs: ['<a@x>'], date: '2026-01-01T01:00:00Z' }),
      rec('<c@x>', { irt: '<b@x>', date: '2026-01-01T02:00:00Z' }),
    ]);
    expect(threads).toHaveLength(1);
    expect(shape(threads[0])).toEqual(['<a@x><-', '<b@x><-<a@x>', '<c@x><-<b@x>']);
  });

  test('In-Reply-To is the parent even when References lists it earlier', () => {
    const { threads } = buildThreads([rec('<a@x>'), rec('<b@x>', { refs: ['<a@x>'] }), rec('<c@x>', { irt: '<a@x>', refs: ['<a@x>', '<b@x>'] })]);
    expect(threads[0].messages.find((m) => m.messageId === '<c@x>')?.parent).toBe('<a@x>');
    expect(threads[0].messages.find((m) => m.messageId === '<b@x>')?.parent).toBe('<a@x>');
  });

  test('broken References: truncated ids and garbage are ignored', () => {
    const { threads } = buildThreads([
      rec('<a@x>'),
      rec('<b@x>', {
        refs: ['<20260324181937.2465574-1-ross.lag', 'garbage text', '<>', '<a@x>', 'x@y>', ''],
        irt: '<a@x> (Andrew Cooper\'s message of Tue)',
      }),
    ]);
    expect(threads).toHaveLength(1);
    expect(shape(threads[0])).toEqual(['<a@x><-', '<b@x><-<a@x>']);
    expect(threads[0].messages.some((m) => m.ghost)).toBe(false);
  });

  test('cycles in References do not loop or lose messages', () => {
    const two = buildThreads([rec('<a@x>', { refs: ['<b@x>'] }), rec('<b@x>', { refs: ['<a@x>'] })]);
    expect(two.threads).toHaveLength(1);
    expect(two.threads[0].messages.map((m) => m.messageId).sort()).toEqual(['<a@x>', '<b@x>']);
    expect(two.threads[0].messages.filter((m) => m.parent === null)).toHaveLength(1);

    const three = buildThreads([
      rec('<a@x>', { irt: '<c@x>' }),
      rec('<b@x>', { irt: '<a@x>' }),
      rec('<c@x>', { irt: '<b@x>' }),
    ]);
    expect(three.threads).toHaveLength(1);
    expect(three.threads[0].messages).toHaveLength(3);

    // A chain that lists an id twice, and a message that names itself.
    const self = buildThreads([rec('<a@x>', { irt: '<a@x>', refs: ['<a@x>'] }), rec('<b@x>', { refs: ['<a@x>', '<b@x>', '<a@x>'] })]);
    expect(self.threads).toHaveLength(1);
    expect(shape(self.threads[0])).toEqual(['<a@x><-', '<b@x><-<a@x>']);
  });

  test('duplicate Message-IDs: the first record wins', () => {
    const { threads } = buildThreads([
      rec('<a@x>', { subject: 'first copy' }),
      rec('<b@x>', { irt: '<a@x>' }),
      rec('<a@x>', { subject: 'second copy', irt: '<elsewhere@x>', refs: ['<elsewhere@x>'] }),
    ]);
    expect(threads).toHaveLength(1);
    expect(threads[0].subject).toBe('first copy');
    expect(threads[0].messages.map((m) => m.messageId)).toEqual(['<a@x>', '<b@x>']);
    const t = new Threader();
    expect(t.add(rec('<a@x>'))).toBe(true);
    expect(t.add(rec('<a@x>'))).toBe(false);
    expect(t.duplicateCount).toBe(1);
  });

  test('two unrelated mails with the same subject do not merge', () => {
    const { threads } = buildThreads([
      rec('<one@a>', { subject: '[PATCH] fix typo', date: '2026-02-01T00:00:00Z' }),
      rec('<two@b>', { subject: '[PATCH] fix typo', date: '2026-02-02T00:00:00Z' }),
      rec('<re-two@c>', { subject: 'Re: [PATCH] fix typo', irt: '<two@b>', refs: ['<two@b>'], date: '2026-02-03T00:00:00Z' }),
      rec('<stray@d>', { subject: 'Re: [PATCH] fix typo', date: '2026-02-04T00:00:00Z' }),
    ]);
    expect(threads.map((t) => t.root)).toEqual(['<one@a>', '<two@b>', '<stray@d>']);
    expect(threads.map((t) => t.messages.length)).toEqual([1, 2, 1]);
  });

  test("a message's own headers beat a parent implied by another message", () => {
    const x = rec('<x@x>', { irt: '<p@x>', refs: ['<p@x>'] });
    const y = rec('<y@x>', { irt: '<x@x>', refs: ['<q@x>', '<x@x>'] }); // claims x hangs under q
    const p = rec('<p@x>');
    for (const order of [
      [x, y, p],
      [y, x, p],
      [y, p, x],
      [p, y, x],
    ]) {
      const { threads } = buildThreads(order);
      expect(threads).toHaveLength(1);
      // q lost its only child to x's own header, so the ghost is pruned.
      expect(shape(threads[0])).toEqual(['<p@x><-', '<x@x><-<p@x>', '<y@x><-<x@x>']);
    }
  });

  test('a message without threading headers keeps the parent implied by a reply to it', () => {
    const { threads } = buildThreads([rec('<a@x>'), rec('<x@x>'), rec('<y@x>', { irt: '<x@x>', refs: ['<a@x>', '<x@x>'] })]);
    expect(threads).toHaveLength(1);
    expect(shape(threads[0])).toEqual(['<a@x><-', '<x@x><-<a@x>', '<y@x><-<x@x>']);
  });

  test('siblings by date, null dates last, then by id; ghosts sort by their earliest descendant', () => {
    const { threads } = buildThreads([
      rec('<root@x>', { date: '2026-01-01T00:00:00Z' }),
      rec('<late@x>', { irt: '<root@x>', date: '2026-01-03T00:00:00Z' }),
      rec('<nodate-b@x>', { irt: '<root@x>', date: null }),
      rec('<nodate-a@x>', { irt: '<root@x>', date: null }),
      rec('<early@x>', { irt: '<root@x>', date: '2026-01-02T00:00:00+05:00' }),
      rec('<under-ghost@x>', { refs: ['<root@x>', '<ghost@x>'], date: '2026-01-02T12:00:00Z' }),
    ]);
    expect(threads[0].messages.map((m) => m.messageId)).toEqual([
      '<root@x>',
      '<early@x>',
      '<ghost@x>',
      '<under-ghost@x>',
      '<late@x>',
      '<nodate-a@x>',
      '<nodate-b@x>',
    ]);
    expect(threads[0].messages[0].children).toEqual(['<early@x>', '<ghost@x>', '<late@x>', '<nodate-a@x>', '<nodate-b@x>']);
  });

  test('threads ordered by the date of their first real message', () => {
    const { threads } = buildThreads([
      rec('<t3@x>', { date: null }),
      rec('<t2@x>', { date: '2026-05-01T00:00:00Z' }),
      rec('<t1-reply@x>', { irt: '<t1-missing@x>', date: '2026-04-01T00:00:00Z' }),
    ]);
    expect(threads.map((t) => t.root)).toEqual(['<t1-missing@x>', '<t2@x>', '<t3@x>']);
    expect(threads[0].rootMissing).toBe(true);
  });

  // Size, not speed: a wall-clock bound here failed whenever the machine was busy (speed is
  // measured by `npm run bench`). Deep chains must not recurse, and newest-first arrival
  // re-parents every ghost of the chain.
  test('120k messages in 20k threads, with a 5k-deep reply chain arriving newest first', () => {
    const recs: ThreadInput[] = [];
    for (let t = 0; t < 20000; t++) {
      const cover = `<c${t}@x>`;
      recs.push(rec(cover));
      for (let i = 1; i <= 4; i++) recs.push(rec(`<p${t}-${i}@x>`, { irt: cover, refs: [cover] }));
      recs.push(rec(`<r${t}@x>`, { irt: `<p${t}-1@x>`, refs: [cover, `<p${t}-1@x>`] }));
    }
    let prev = '<chain0@x>';
    recs.push(rec(prev));
    const refs = [prev];
    for (let i = 1; i < 5000; i++) {
      const id = `<chain${i}@x>`;
      // Clients truncate References; keep the last 20 like many do.
      recs.push(rec(id, { irt: prev, refs: refs.slice(-20) }));
      refs.push(id);
      prev = id;
    }
    const { threads } = buildThreads(recs.reverse());
    expect(threads).toHaveLength(20001);
    expect(threads.reduce((n, t) => n + t.messages.length, 0)).toBe(125000);
    const chain = threads.find((t) => t.root === '<chain0@x>')!;
    expect(chain.messages.map((m) => m.messageId).slice(0, 3)).toEqual(['<chain0@x>', '<chain1@x>', '<chain2@x>']);
    expect(chain.messages).toHaveLength(5000);
    expect(chain.messages.every((m, i) => m.parent === (i === 0 ? null : `<chain${i - 1}@x>`))).toBe(true);
  });
});

describe('the id index', () => {
  test('many ids, Latin-1 and wider ones alike: found again, and ordered as strings are', () => {
    // 30,000 roots without dates: thread order is then the order of the root ids as strings
    // (code units), which the index compares on its own bytes; ids outside Latin-1 and with
    // characters above 0x7f are kept another way and must still sort and thread alike.
    const ids: string[] = [];
    for (let i = 0; i < 30000; i++) {
      const tag = i % 997 === 0 ? `é${i}` : i % 1499 === 0 ? `日本${i}` : i % 1999 === 0 ? `\u{1F600}${i}` : `${(i * 7919) % 30011}`;
      ids.push(`<${tag}-${i}@x>`);
    }
    const recs = ids.map((id) => rec(id, { date: null }));
    // and one reply per wide id, threaded by In-Reply-To
    const wide = ids.filter((id) => /[^\x00-\xff]/.test(id));
    for (const id of wide) recs.push(rec(`<re-${id.slice(1)}`, { irt: id, date: null }));
    const { threads } = buildThreads(recs);
    expect(threads.map((t) => t.root)).toEqual([...ids].sort());
    for (const id of wide) {
      const t = threads.find((x) => x.root === id)!;
      expect(t.messages.map((m) => m.messageId)).toEqual([id, `<re-${id.slice(1)}`]);
    }
    const t = new Threader();
    for (const r of recs) t.add(r);
    for (const id of [ids[0], ids[997], ids[1499], ids[29999], wide[0]]) expect(t.idOf(t.indexOf(id))).toBe(id);
    expect(t.indexOf('<absent@x>')).toBe(-1);
  });
});
