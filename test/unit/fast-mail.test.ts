// The fast path for simple mail (mail/fast.ts) must give byte-identical records to the
// mailparser path: on every one of the 3,000 real linux-hyperv mails, the shared and local
// fixtures, and on made-up mails that probe each place where the two readers could part
// (folding, quoted names, repeated headers, quoted-printable corners, charsets).
import { readFileSync, readdirSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { join } from 'node:path';
import { splitMboxBuffer } from '../../src/sources/index.js';
import { recordFromRaw } from '../../src/mail/record.js';
import { findHeaderEnd } from '../../src/mail/parse.js';
import { readSimpleMail, qpDecode } from '../../src/mail/fast.js';
import type { RawMessage } from '../../src/model.js';

const FIX = join(process.cwd(), '../shared/fixtures');

function raw(text: string | Buffer, name = 'made-up'): RawMessage {
  const buf = typeof text === 'string' ? Buffer.from(text, 'utf8') : text;
  return { raw: buf, ref: { source: `${name}:0`, file: name, offset: 0, length: buf.length } };
}

/** Both readings of one mail; whether the fast path took it. */
async function both(m: RawMessage): Promise<{ fast: string; slow: string; took: boolean }> {
  const took = readSimpleMail(m.raw, findHeaderEnd(m.raw)) !== null;
  const fast = JSON.stringify(await recordFromRaw(m).catch((e: Error) => `error: ${e.message}`));
  const slow = JSON.stringify(await recordFromRaw(m, { mailparserOnly: true }).catch((e: Error) => `error: ${e.message}`));
  return { fast, slow, took };
}

test('all 3,000 real linux-hyperv mails: the same record either way, most of them read by the fast path', async () => {
  const msgs = splitMboxBuffer(gunzipSync(readFileSync(join(FIX, 'real/linux-hyperv-2026.mbox.gz'))), 'linux-hyperv');
  expect(msgs).toHaveLength(3000);
  let took = 0;
  const differ: string[] = [];
  for (const m of msgs) {
    const r = await both(m);
    if (r.took) took++;
    if (r.fast !== r.slow) differ.push(m.ref.source);
  }
  expect(differ).toEqual([]);
  // Single text/plain parts without 8-bit or encoded headers: about four in five of this list's mail.
  expect(took).toBeGreaterThan(2000);
}, 600_000);

test('the fixtures (shared mboxes, local .eml and .mbox files): the same record either way', async () => {
  const mails: RawMessage[] = [];
  for (const f of ['xen-fpu-reset-v2-1of9.mbox', 'xen-eager-fpu-v2.mbox', 'xen-ftw-alloc.mbox']) {
    mails.push(...splitMboxBuffer(readFileSync(join(FIX, f)), f));
  }
  for (const dir of ['test/fixtures/mail', 'test/fixtures/xen', 'test/fixtures/sources']) {
    for (const f of readdirSync(dir)) {
      const buf = readFileSync(join(dir, f));
      if (f.endsWith('.mbox')) mails.push(...splitMboxBuffer(buf, f));
      else if (f.endsWith('.eml')) mails.push(raw(buf, f));
    }
  }
  expect(mails.length).toBeGreaterThan(20);
  for (const m of mails) {
    const r = await both(m);
    expect([m.ref.source, r.fast]).toEqual([m.ref.source, r.slow]);
  }
});

const HEAD = 'Message-ID: <x1@example.org>\nDate: Tue, 24 Mar 2026 18:19:29 +0000\n';

describe('made-up mails where the two readers could part', () => {
  const cases: Array<[string, string, boolean]> = [
    // [name, mail, expected to take the fast path]
    ['folded To/Cc with quoted names holding commas and parentheses',
      `${HEAD}From: "Lagerwall, Ross (Citrix)" <Ross.Lagerwall@citrix.com>\nTo: xen-devel@lists.xenproject.org,\n  "Beulich, Jan" <jbeulich@suse.com>,\n\tAndrew Cooper  <andrew.cooper3@citrix.com>\nCc: <roger.pau@citrix.com>, \n Wei Liu <wl@xen.org>,\nSubject: [PATCH v2 1/9]   x86: a\n  folded subject\n\nbody\r\nwith CRLF\n`, true],
    ['repeated To and References headers add up; a second Subject is ignored',
      `${HEAD}From: a@example.org\nTo: b@example.org\nTo: C <c@example.org>\nReferences: <r1@x>\n <r2@x>\nReferences: r3@x\nSubject: first\nSubject: second\nIn-Reply-To: <r3@x>\n\nhi\n`, true],
    ['quoted-printable with soft breaks, =XX escapes, lowercase hex, trailing blanks and a bad escape',
      `${HEAD}From: A <a@example.org>\nSubject: qp\nContent-Type: text/plain; charset="UTF-8"\nContent-Transfer-Encoding: Quoted-Printable\n\nRoger Pau Monn=C3=A9 wrote:  \n> long line that is soft=\n broken =3d=3D and =ZZ stays \t\n-\tx =e2=80=94 y=\n`, true],
    ['us-ascii declared, 8-bit body: read as UTF-8 like mailparser does',
      Buffer.concat([Buffer.from(`${HEAD}From: a@example.org\nSubject: s\nContent-Type: text/plain; charset=us-ascii\n\n`), Buffer.from([0xc3, 0xa9, 0x20, 0xe9, 0x0a])]).toString('latin1'), true],
    ['a name equal to its address (Outlook), Content-Disposition: inline',
      `${HEAD}From: "a@example.org" <a@example.org>\nTo: "b@example.org" <B@example.org>, "c@example.org" <c@example.org>\nSubject: s\nContent-Disposition: inline\n\nx\n`, true],
    ['an empty quoted name', `${HEAD}From: a@example.org\nTo: "" <b@example.org>\nSubject: s\n\nx\n`, false],
    ['encoded words', `${HEAD}From: =?UTF-8?Q?Roger_Pau_Monn=C3=A9?= <roger.pau@citrix.com>\nSubject: =?utf-8?b?w6k=?=\n\nx\n`, false],
    ['a group and a comment', `${HEAD}From: a@example.org (Alice)\nTo: undisclosed-recipients:;\nSubject: s\n\nx\n`, false],
    ['format=flowed', `${HEAD}From: a@example.org\nSubject: s\nContent-Type: text/plain; charset=utf-8; format=flowed\n\nsoft \nbreak\n`, false],
    ['latin1 charset', `${HEAD}From: a@example.org\nSubject: s\nContent-Type: text/plain; charset=iso-8859-1\n\nx\n`, false],
    ['base64', `${HEAD}From: a@example.org\nSubject: s\nContent-Transfer-Encoding: base64\n\naGVsbG8K\n`, false],
    ['an attachment disposition', `${HEAD}From: a@example.org\nSubject: s\nContent-Disposition: attachment; filename=x.patch\n\nx\n`, false],
    ['a Date that does not parse', `Message-ID: <x@y>\nDate: someday\nFrom: a@example.org\nSubject: s\n\nx\n`, false],
    ['no Message-ID, empty Subject, no Date', `From: a@example.org\nSubject:\nTo:\n\nx\n`, true],
    ['a message id without brackets, references with junk', `Message-ID: x2@example.org\nReferences: <a@x>, b@x <c@x\nFrom: a@example.org\nSubject: s\n\nx\n`, true],
    ['empty body', `${HEAD}From: a@example.org\nSubject: s\n\n`, true],
    ['8-bit in a header mailparser reads', `${HEAD}From: Roger Pau Monné <roger.pau@citrix.com>\nSubject: s\n\nx\n`, false],
    ['an unkept 8-bit header does not matter', `${HEAD}From: a@example.org\nX-Spam: Monné\n  folded é\nSubject: s\n\nx\n`, true],
    ['a 7bit text/plain with an unknown parameter', `${HEAD}From: a@example.org\nSubject: s\nContent-Type: text/plain; name=x.txt\n\nx\n`, false],
  ];
  test.each(cases)('%s', async (_name, text, fast) => {
    const m = raw(Buffer.from(text, 'latin1'));
    const r = await both(m);
    expect(r.took).toBe(fast);
    expect(r.fast).toBe(r.slow);
  });
});

test('quoted-printable decoding follows libqp', () => {
  expect(qpDecode('a=3Db=\r\nc =\n').toString('latin1')).toBe('a=bc ');
  expect(qpDecode('x  \ny\t\r\n=4').toString('latin1')).toBe('x\ny\r\n=4');
  expect(qpDecode('=c3=A9').toString('utf8')).toBe('é');
});
