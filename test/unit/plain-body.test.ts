// parseMail reads the body of a plain text mail (one text/plain part, UTF-8 or ASCII, 7bit,
// 8bit or quoted-printable, not flowed, not an attachment) itself instead of through mailparser's streams, which
// cost two thirds of mailparser's time on a patch. mailparser stays the oracle: every reading
// here must equal the one where mailparser is given the whole body, on edge cases and on all
// 3,000 real linux-hyperv mails; and mail that is not plain in exactly that sense must go to
// mailparser whole.
import { join } from 'node:path';
import { parseMail, readsPlainBody } from '../../src/mail/parse.js';
import { readInputs } from '../../src/sources/index.js';
import type { RawMessage } from '../../src/model.js';

const SAMPLE = join(process.cwd(), '../shared/fixtures/real/linux-hyperv-2026.mbox.gz');

function raw(text: string | Buffer): RawMessage {
  const b = typeof text === 'string' ? Buffer.from(text, 'utf8') : text;
  return { raw: b, ref: { source: 't:0', file: 't', offset: 0, length: b.length } };
}

const HEAD =
  'From: Vitaly Kuznetsov <vkuznets@redhat.com>\nSubject: [PATCH v3 2/4] x86/hyperv: fix TSC page\n' +
  'Message-ID: <20260301.2@redhat.com>\nDate: Sun, 1 Mar 2026 10:00:00 +0100\nMIME-Version: 1.0\n';
const PATCH =
  'The TSC page must be mapped before the clocksource is registered.\n\n' +
  'Signed-off-by: Vitaly Kuznetsov <vkuznets@redhat.com>\n---\n' +
  'diff --git a/arch/x86/hyperv/hv_init.c b/arch/x86/hyperv/hv_init.c\n' +
  '--- a/arch/x86/hyperv/hv_init.c\n+++ b/arch/x86/hyperv/hv_init.c\n' +
  '@@ -10,3 +10,4 @@ static int hv_cpu_init(unsigned int cpu)\n \tint ret;\n+\tret = map_tsc();\n \treturn 0;\n }\n';

/** Mails parseMail must read itself, each with the same result as mailparser's reading. */
const PLAIN: Array<{ name: string; mail: string | Buffer }> = [
  { name: 'git send-email: charset=UTF-8, 8bit', mail: HEAD + 'Content-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\n\n' + PATCH },
  { name: 'no Content-Type at all', mail: HEAD + '\n' + PATCH },
  { name: 'mutt: quoted us-ascii charset and Content-Disposition: inline', mail: HEAD + 'Content-Type: text/plain; charset="us-ascii"\nContent-Disposition: inline\n\n' + PATCH },
  {
    name: 'CRLF line ends in headers and body (a CRLF file in the diff stays LF, as mailparser gives it)',
    mail: (HEAD + 'Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 7bit\n\n' + PATCH).replace(/\n/g, '\r\n'),
  },
  { name: 'lone CRs and CR CR LF in the body', mail: HEAD + 'Content-Type: text/plain\n\nline one\rstill one\r\r\nline two\r\n\r' },
  { name: 'no line end at the end of the body', mail: HEAD + 'Content-Type: text/plain; charset=utf-8\n\n' + PATCH.trimEnd() },
  { name: 'an empty body', mail: HEAD + 'Content-Type: text/plain; charset=utf-8\n\n' },
  { name: 'a byte-order mark at the start of the body', mail: HEAD + 'Content-Type: text/plain; charset=utf-8\n\n\uFEFF' + PATCH },
  {
    name: 'bytes that are not UTF-8 in a body declared UTF-8',
    mail: Buffer.concat([Buffer.from(HEAD + 'Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nReviewed-by: J'), Buffer.from([0xfc]), Buffer.from('rgen Gro'), Buffer.from([0xdf, 0x0a])]),
  },
  { name: 'a folded Content-Type, charset on the continuation line', mail: HEAD + 'Content-Type: text/plain;\n\tcharset="UTF-8";\n format=fixed\nContent-Transfer-Encoding: 8BIT\n\n' + PATCH },
  { name: 'charset spelled utf8 and a trailing semicolon', mail: HEAD + 'Content-Type: TEXT/PLAIN; charset=utf8;\n\n' + PATCH },
  { name: 'an in-body From: and a scissors line', mail: HEAD + 'Content-Type: text/plain; charset=utf-8\n\nFrom: Other Author <other@example.org>\n\n' + PATCH + '-- >8 --\nmore\n' },
  { name: 'the body starts with an indented line', mail: HEAD + 'Content-Type: text/plain\n\n    indented first line\n' + PATCH },
  { name: 'a body with a mbox-style From line and a boundary-looking line', mail: HEAD + 'Content-Type: text/plain\n\nFrom the start\n--foo\n' + PATCH },
];

const QP = HEAD + 'Content-Type: text/plain; charset="utf-8"\nContent-Transfer-Encoding: quoted-printable\n\n';
/** Quoted-printable mails parseMail must read itself (Outlook and Exchange send these). */
const PLAIN_QP: Array<{ name: string; mail: string | Buffer }> = [
  { name: 'escapes and soft line breaks', mail: QP + 'Reviewed-by: J=C3=BCrgen Gro=C3=9F <jgross@suse.com>\nA long line that was wrapped by the encoder at seventy-six characters, so it g=\noes on here.\n' },
  { name: 'a diff with =3D and trailing spaces the encoder kept as =20', mail: QP + '> +\tif (ret =3D=3D 0)=20\n> +\t\treturn;\n\nWhy not -EINVAL here?\n' },
  { name: 'CRLF line ends and CRLF soft breaks', mail: (QP + 'first =\nline\n=E2=80=94 dash\nlast\n').replace(/\n/g, '\r\n') },
  { name: 'invalid escapes, lowercase hex, a lone = at the end', mail: QP + 'a =ZZ b =c3=a9 c =4\nend =' },
  { name: 'whitespace before the line ends, which quoted-printable drops', mail: QP + 'text   \nmore\t\n\nend' },
  {
    name: 'raw 8-bit bytes inside a quoted-printable body',
    mail: Buffer.concat([Buffer.from(QP + 'raw '), Buffer.from([0xc3, 0xa9]), Buffer.from(' and escaped =C3=A9\n')]),
  },
  { name: 'Content-Transfer-Encoding in capitals', mail: QP.replace('quoted-printable', 'Quoted-Printable') + 'J=C3=BCrgen\n' },
];

/** Mails that must go to mailparser whole: their text is not the body read as UTF-8. */
const NOT_PLAIN: Array<{ name: string; mail: string }> = [
  { name: 'format=flowed', mail: HEAD + 'Content-Type: text/plain; charset=UTF-8; format=flowed\n\nsoft \nbreak\n' },
  { name: 'a latin1 charset', mail: HEAD + 'Content-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: 8bit\n\nJ\u00fcrgen\n' },
  { name: 'quoted-printable in latin1', mail: HEAD + 'Content-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n\nJ=FCrgen\n' },
  { name: 'quoted-printable and flowed', mail: HEAD + 'Content-Type: text/plain; charset=utf-8; format=flowed\nContent-Transfer-Encoding: quoted-printable\n\nsoft=20\nbreak\n' },
  { name: 'base64', mail: HEAD + 'Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\nSGVsbG8K\n' },
  { name: 'an attachment disposition', mail: HEAD + 'Content-Type: text/plain\nContent-Disposition: attachment; filename="0001-fix.patch"\n\n' + PATCH },
  { name: 'Content-Type given twice', mail: HEAD + 'Content-Type: text/plain; charset=utf-8\nContent-Type: text/html\n\n<p>hi</p>\n' },
  { name: 'an RFC 2231 charset', mail: HEAD + "Content-Type: text/plain; charset*=utf-8''UTF-8\n\nhi\n" },
  { name: 'a parameter it does not know', mail: HEAD + 'Content-Type: text/plain; name="fix.patch"\n\n' + PATCH },
  { name: 'text/html', mail: HEAD + 'Content-Type: text/html; charset=utf-8\n\n<p>hi</p>\n' },
  {
    name: 'multipart',
    mail: HEAD + 'Content-Type: multipart/mixed; boundary="b"\n\n--b\nContent-Type: text/plain\n\nhi\n--b\nContent-Type: text/x-patch\n\n' + PATCH + '--b--\n',
  },
  { name: 'a transfer encoding it does not know', mail: HEAD + 'Content-Type: text/plain\nContent-Transfer-Encoding: x-uuencode\n\nhi\n' },
];

describe('plain text bodies read without mailparser streams', () => {
  const READ_HERE = [
    ...PLAIN.map((c) => ({ ...c, encoding: 'binary' })),
    ...PLAIN_QP.map((c) => ({ ...c, name: `quoted-printable, ${c.name}`, encoding: 'quoted-printable' })),
  ];
  test.each(READ_HERE)('$name: read here, and the same as mailparser reads it', async ({ mail, encoding }) => {
    const m = raw(mail);
    expect(readsPlainBody(m.raw)).toBe(encoding);
    const here = await parseMail(m);
    const oracle = await parseMail(m, { plainBodyFastPath: false });
    expect(here).toEqual(oracle);
  });

  test.each(NOT_PLAIN)('$name: given to mailparser whole', async ({ mail }) => {
    expect(readsPlainBody(raw(mail).raw)).toBe(null);
  });

  test('the flowed and latin1 mails would read differently: the guard matters', async () => {
    // Were these read as plain UTF-8 text, the result would differ from mailparser's.
    const flowed = raw(NOT_PLAIN[0].mail);
    expect((await parseMail(flowed)).body).toBe('soft break');
    const latin1 = raw(Buffer.concat([Buffer.from(HEAD + 'Content-Type: text/plain; charset=iso-8859-1\n\nJ'), Buffer.from([0xfc, 0x0a])]));
    expect((await parseMail(latin1)).body).toBe('J\u00fc\n');
  });

  test('on all 3,000 real mails: most are read here, every one as mailparser reads it', async () => {
    let plain = 0;
    let qp = 0;
    let n = 0;
    const differ: string[] = [];
    for await (const m of readInputs([SAMPLE])) {
      n++;
      const how = readsPlainBody(m.raw);
      if (!how) continue;
      plain++;
      if (how === 'quoted-printable') qp++;
      const here = await parseMail(m);
      const oracle = await parseMail(m, { plainBodyFastPath: false });
      if (JSON.stringify(here) !== JSON.stringify(oracle)) differ.push(m.ref.source);
    }
    expect(n).toBe(3000);
    expect(differ).toEqual([]);
    // 2,355 of the sample are single-part 7bit/8bit text/plain; all but the flowed and
    // non-UTF-8 ones are read here.
    expect(plain).toBeGreaterThan(2000);
    expect(qp).toBeGreaterThan(100);
  }, 120_000);
});
