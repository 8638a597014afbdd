// To/Cc are decoded on first read (src/mail/recipients.ts) instead of by simpleParser during
// the parse. These tests hold the late answer equal to what simpleParser itself gives for the
// same mail (the oracle), on tricky headers and on all 3,000 real linux-hyperv mails, and check
// the laziness: nothing decoded until read, the spool keeps the header values, assignment wins.
import { simpleParser, type AddressObject } from 'mailparser';
import { join } from 'node:path';
import { recordFromRaw } from '../../src/mail/record.js';
import { decodeRecord, encodeRecord } from '../../src/mail/stored.js';
import { rawRecipientsOf, recipientHeaders } from '../../src/mail/recipients.js';
import { readInputs } from '../../src/sources/index.js';
import type { Address, RawMessage } from '../../src/model.js';

const SAMPLE = join(process.cwd(), '../shared/fixtures/real/linux-hyperv-2026.mbox.gz');

function raw(text: string): RawMessage {
  const b = Buffer.from(text, 'utf8');
  return { raw: b, ref: { source: 't:0', file: 't', offset: 0, length: b.length } };
}

/** What simpleParser gives for To/Cc when it reads the whole mail, flattened as records are. */
async function oracle(m: RawMessage): Promise<{ to: Address[]; cc: Address[] }> {
  const mp = await simpleParser(m.raw, { skipHtmlToText: true, skipTextToHtml: true, skipTextLinks: true, skipImageLinks: true });
  const flat = (o: AddressObject | AddressObject[] | undefined): Address[] => {
    const out: Address[] = [];
    for (const x of o ? (Array.isArray(o) ? o : [o]) : []) {
      for (const v of x.value) {
        if (v.group) for (const g of v.group) out.push({ name: g.name ?? '', address: (g.address ?? '').toLowerCase() });
        else out.push({ name: v.name ?? '', address: (v.address ?? '').toLowerCase() });
      }
    }
    return out;
  };
  return { to: flat(mp.to), cc: flat(mp.cc) };
}

const HEAD = 'From: Jan Beulich <jbeulich@suse.com>\nSubject: Re: [PATCH v2 1/9] x86/fpu: reset state\nMessage-ID: <r1@suse.com>\n';

const CASES: Array<{ name: string; headers: string; to: Address[]; cc: Address[] }> = [
  {
    name: 'a folded Cc list with CRLF line ends',
    headers:
      'To: Ross Lagerwall <ross.lagerwall@citrix.com>\r\nCc: Andrew Cooper <andrew.cooper3@citrix.com>,\r\n Roger Pau =?UTF-8?Q?Monn=C3=A9?= <roger.pau@citrix.com>,\r\n\txen-devel@lists.xenproject.org\r\n',
    to: [{ name: 'Ross Lagerwall', address: 'ross.lagerwall@citrix.com' }],
    cc: [
      { name: 'Andrew Cooper', address: 'andrew.cooper3@citrix.com' },
      { name: 'Roger Pau Monné', address: 'roger.pau@citrix.com' },
      { name: '', address: 'xen-devel@lists.xenproject.org' },
    ],
  },
  {
    name: 'a base64 encoded word, raw UTF-8 and an upper-case address',
    headers: 'To: =?utf-8?B?SsO8cmdlbiBHcm/Dnw==?= <JGross@SUSE.com>\nCc: Michał Leszczyński <michal@example.pl>\n',
    to: [{ name: 'Jürgen Groß', address: 'jgross@suse.com' }],
    cc: [{ name: 'Michał Leszczyński', address: 'michal@example.pl' }],
  },
  {
    name: 'two Cc headers, a group and a space before the colon',
    headers: 'TO : undisclosed-recipients:;\nCc: a@example.org\nCC: Reviewers: b@example.org, "Doe, Jane" <c@example.org>;\n',
    to: [],
    cc: [
      { name: '', address: 'a@example.org' },
      { name: '', address: 'b@example.org' }, // a group's members, flattened
      { name: 'Doe, Jane', address: 'c@example.org' },
    ],
  },
  {
    name: 'an old-style comment name and an IDN domain',
    headers: 'To: wl@xen.org (Wei Liu)\nCc: info@xn--bcher-kva.example\n',
    to: [{ name: 'Wei Liu', address: 'wl@xen.org' }],
    cc: [{ name: '', address: 'info@bücher.example' }],
  },
  {
    name: 'no To or Cc at all, and a header that only starts like one',
    headers: 'Content-Type: text/plain\nTopic: x@example.org\nCcx: y@example.org\n',
    to: [],
    cc: [],
  },
];

describe('To/Cc read late give what simpleParser gives', () => {
  for (const c of CASES) {
    test(c.name, async () => {
      const m = raw(HEAD + c.headers + '\nQuoted reply text.\n');
      const r = await recordFromRaw(m);
      const want = await oracle(m);
      expect({ to: r.to, cc: r.cc }).toEqual(want);
      // and what a reader of the mail sees (this checks the oracle too)
      expect({ to: r.to, cc: r.cc }).toEqual({ to: c.to, cc: c.cc });
    });
  }

  test('on all 3,000 real mails', async () => {
    let n = 0;
    let withCc = 0;
    const wrong: string[] = [];
    for await (const m of readInputs([SAMPLE])) {
      n++;
      const r = await recordFromRaw(m);
      const want = await oracle(m);
      if (want.cc.length > 1) withCc++;
      if (JSON.stringify({ to: r.to, cc: r.cc }) !== JSON.stringify(want)) wrong.push(r.messageId);
    }
    expect(n).toBe(3000);
    expect(withCc).toBeGreaterThan(1000); // list mail: long Cc lists are the norm
    expect(wrong).toEqual([]);
  }, 120_000);
});

describe('laziness', () => {
  const mail = HEAD + 'To: Jan Beulich <jbeulich@suse.com>\nCc: Xen devel <xen-devel@lists.xenproject.org>\n\nOK.\n';

  test('the spool keeps the header values until To/Cc are read, and decodes them the same', async () => {
    const r = await recordFromRaw(raw(mail));
    expect(rawRecipientsOf(r)).toEqual({ to: ['Jan Beulich <jbeulich@suse.com>'], cc: ['Xen devel <xen-devel@lists.xenproject.org>'] });
    const { head, rest } = encodeRecord(r);
    expect(JSON.parse(rest)[2]).toEqual({ raw: rawRecipientsOf(r) });
    expect(JSON.parse(rest)[3]).toBeNull();
    const back = decodeRecord(head, () => rest);
    expect(back.cc).toEqual([{ name: 'Xen devel', address: 'xen-devel@lists.xenproject.org' }]);
    expect(JSON.stringify(back)).toBe(JSON.stringify(r));
    // Keys keep their place: the record reads the same as one built with plain arrays.
    expect(Object.keys(back)).toEqual(Object.keys(r));
  });

  test('an assigned list wins over the header values, in memory and in the spool', async () => {
    const r = await recordFromRaw(raw(mail));
    r.cc = [{ name: 'Someone', address: 'someone@example.org' }];
    expect(rawRecipientsOf(r)).toBeNull();
    expect(r.to).toEqual([{ name: 'Jan Beulich', address: 'jbeulich@suse.com' }]);
    const { head, rest } = encodeRecord(r);
    const back = decodeRecord(head, () => rest);
    expect(back.cc).toEqual([{ name: 'Someone', address: 'someone@example.org' }]);
    expect(back.to).toEqual([{ name: 'Jan Beulich', address: 'jbeulich@suse.com' }]);
  });

  test('structured clone (records crossing threads) carries the decoded lists', async () => {
    const r = await recordFromRaw(raw(mail));
    const c = structuredClone(r);
    expect(c.cc).toEqual([{ name: 'Xen devel', address: 'xen-devel@lists.xenproject.org' }]);
  });

  test('recipientHeaders reads only To and Cc, every occurrence, unfolded', () => {
    const h = Buffer.from('Tox: no@x\nto: a@x,\n  b@x\nReply-To: c@x\nCC: d@x\ncc:e@x\n', 'latin1');
    expect(recipientHeaders(h)).toEqual({ to: ['a@x, b@x'], cc: ['d@x', 'e@x'] });
  });
});
