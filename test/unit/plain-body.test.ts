// parseMail reads the body of a plain text mail (one text/plain part, UTF-8 or ASCII, 7bit,
// 8bit or quoted-printable, not flowed, not an attachment) itself instead of through mailparser's streams, which
// cost two thirds of mailparser's time on a patch. mailparser stays the oracle: every reading
// here must equal the one where mailparser is given the whole body, on edge cases and on all
// 3,000 real linux-hyperv mails; and mail that is not plain in exactly that sense must go to
// mailparser whole. The header block of such a mail is read by mailparser's own header code
// (mailsplit's Headers, MailParser's processHeaders) without its streams; the same oracle holds
// that reading equal to simpleParser's.
import { join } from 'node:path';
import { parseMail, plainBodyOf, readsFlowedWithoutStreams, readsHeadersWithoutStreams, readsPlainBody } from '../../src/mail/parse.js';
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
  {
    name: 'Outlook: Content-Language before Content-Type, us-ascii',
    mail: HEAD + 'Content-Language: en-US\nContent-Type: text/plain; charset="us-ascii"\nContent-Transfer-Encoding: quoted-printable\n\n> +\tif (ret =3D=3D 0)\nWhy?=\n\n',
  },
];

const FLOWED_BODY =
  'On 3/2/26 10:00, Jan Beulich wrote:\n> This really should be part of allocating the memory, \n> not of creating the vCPU.\n\n' +
  'I see your point, but the idle vCPU takes this path \ntoo, so the reset \nhas to stay here.\n\n' +
  '>> +        vcpu_reset_fpu(v);\n\n--  \n-- \nRoss\n';
/** format=flowed mails (Thunderbird's default): read here, unfolded as mailparser unfolds them. */
const FLOWED: Array<{ name: string; mail: string | Buffer }> = [
  { name: 'Thunderbird: soft breaks, quoted lines, a signature', mail: HEAD + 'Content-Type: text/plain; charset=UTF-8; format=flowed\nContent-Transfer-Encoding: 7bit\n\n' + FLOWED_BODY },
  { name: 'delsp=yes: the space before a soft break goes', mail: HEAD + 'Content-Type: text/plain; charset=utf-8; format=flowed; delsp=yes\n\n' + FLOWED_BODY },
  { name: 'quoted "flowed", FORMAT in capitals, delsp=no', mail: HEAD + 'Content-Type: text/plain; Format="FLOWED"; DelSp=No; charset="us-ascii"\n\n' + FLOWED_BODY },
  { name: 'delsp=yes without format=flowed: not flowed', mail: HEAD + 'Content-Type: text/plain; charset=utf-8; delsp=yes\n\nsoft \nbreak\n' },
  { name: 'quoted-printable and flowed', mail: HEAD + 'Content-Type: text/plain; charset=utf-8; format=flowed\nContent-Transfer-Encoding: quoted-printable\n\nsoft=20\nbreak J=C3=BCrgen =\nGro=C3=9F \nend\n' },
  { name: 'CRLF line ends, 8-bit UTF-8', mail: (HEAD + 'Content-Type: text/plain; charset=utf-8; format=flowed\nContent-Transfer-Encoding: 8bit\n\nJ\u00fcrgen \nGro\u00df \n\nend\n').replace(/\n/g, '\r\n') },
  { name: 'an empty flowed body', mail: HEAD + 'Content-Type: text/plain; format=flowed\n\n' },
  { name: 'a flowed diff, as Thunderbird sends patches', mail: HEAD + 'Content-Type: text/plain; charset=UTF-8; format=flowed\n\n' + PATCH.replace('\tret = map_tsc();', '\tret = \nmap_tsc();') },
];

/** Mails that must go to mailparser whole: their text is not the body read as UTF-8. */
const NOT_PLAIN: Array<{ name: string; mail: string }> = [
  { name: 'a latin1 charset', mail: HEAD + 'Content-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: 8bit\n\nJ\u00fcrgen\n' },
  { name: 'quoted-printable in latin1', mail: HEAD + 'Content-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n\nJ=FCrgen\n' },
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
  { name: 'another Content-* header than Content-Language', mail: HEAD + 'Content-Type: text/plain\nContent-ID: <part1@x>\n\nhi\n' },
  { name: 'a format it does not know', mail: HEAD + 'Content-Type: text/plain; charset=utf-8; format=fluid\n\nhi\n' },
  { name: 'a delsp value it does not know', mail: HEAD + 'Content-Type: text/plain; format=flowed; delsp=maybe\n\nhi\n' },
  { name: 'a transfer encoding it does not know', mail: HEAD + 'Content-Type: text/plain\nContent-Transfer-Encoding: x-uuencode\n\nhi\n' },
];

describe('plain text bodies read without mailparser streams', () => {
  const READ_HERE = [
    ...PLAIN.map((c) => ({ ...c, encoding: 'binary' })),
    ...PLAIN_QP.map((c) => ({ ...c, name: `quoted-printable, ${c.name}`, encoding: 'quoted-printable' })),
    ...FLOWED.map((c) => ({ ...c, name: `flowed, ${c.name}`, encoding: c.name.startsWith('quoted-printable') ? 'quoted-printable' : 'binary' })),
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

  test('flowed mail is unfolded, latin1 mail decoded: both steps matter', async () => {
    // Read as plain UTF-8 text without them, the results would differ from mailparser's.
    const flowed = raw(FLOWED[0].mail);
    expect(plainBodyOf(flowed.raw)).toEqual({ encoding: 'binary', flowed: true, delSp: false });
    expect((await parseMail(flowed)).body).toContain('the idle vCPU takes this path too, so the reset has to stay here.\n');
    expect(plainBodyOf(raw(FLOWED[1].mail).raw)).toEqual({ encoding: 'binary', flowed: true, delSp: true });
    expect((await parseMail(raw(FLOWED[1].mail))).body).toContain('the idle vCPU takes this pathtoo, so the resethas to stay here.\n');
    expect(plainBodyOf(raw(FLOWED[3].mail).raw)).toEqual({ encoding: 'binary', flowed: false, delSp: false });
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

const BODY = 'Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n' + PATCH;
/** Header blocks of plain text mails: each read as simpleParser reads it. */
const HEADERS: Array<{ name: string; mail: string | Buffer }> = [
  {
    name: 'RFC 2047 words in From and Subject, in UTF-8 and ISO-8859-1, Q and B',
    mail:
      'From: =?UTF-8?Q?J=C3=BCrgen_Gro=C3=9F?= <jgross@suse.com>\nSubject: =?iso-8859-1?q?=5BPATCH_v2=5D_fix_f=FCr?=\n =?UTF-8?B?IGvDpHNl?=\n' +
      'Message-ID: <a@suse.com>\nDate: Mon, 2 Mar 2026 09:00:00 +0000\n' + BODY,
  },
  {
    name: '8-bit Subject and From name without a charset: not UTF-8, so read as latin1',
    mail: Buffer.concat([Buffer.from('From: J'), Buffer.from([0xfc]), Buffer.from('rgen <j@example.org>\nSubject: [PATCH] f'), Buffer.from([0xfc]), Buffer.from('r\nMessage-ID: <b@example.org>\n' + BODY)]),
  },
  { name: '8-bit UTF-8 Subject without a charset', mail: 'From: a@example.org\nSubject: [PATCH] caf\u00e9 \u2014 fix\nMessage-ID: <c@example.org>\n' + BODY },
  {
    name: 'folded References and In-Reply-To, ids without angle brackets, a comment',
    mail:
      'From: a@example.org\nSubject: Re: [PATCH] x\nMessage-ID: <d@example.org>\nIn-Reply-To: <c@example.org> (Jane\'s message)\n' +
      'References: <a@example.org>\n\t<b@example.org>\n  bare@example.org <c@example.org>\n' + BODY,
  },
  { name: 'Subject, From and Message-ID given twice: the first wins', mail: 'From: a@example.org\nFrom: b@example.org\nSubject: one\nSubject: two\nMessage-ID: <e1@x>\nMessage-ID: <e2@x>\n' + BODY },
  { name: 'a Date that cannot be read, and no Message-ID', mail: 'From: a@example.org\nSubject: [PATCH] y\nDate: sometime on Tuesday\n' + BODY },
  { name: 'no Subject, no From', mail: 'Message-ID: <f@example.org>\nDate: Tue, 3 Mar 2026 10:00:00 -0800 (PST)\n' + BODY },
  { name: 'a group and a quoted name with a comma in From', mail: 'From: "Doe, Jane" (maintainer) <jane@example.org>\nSubject: [PATCH] z\nMessage-ID: <g@example.org>\n' + BODY },
  { name: 'an empty group in From', mail: 'From: undisclosed-recipients:;\nSubject: [PATCH] z\nMessage-ID: <h@example.org>\n' + BODY },
  { name: 'CRLF header block, spaces before colons, lowercase names', mail: ('from : a@example.org\nsubject:\t[PATCH]   spaced\nmessage-id:<i@example.org>\n' + BODY).replace(/\n/g, '\r\n') },
  { name: 'an unknown charset in an encoded word', mail: 'From: a@example.org\nSubject: =?x-unknown?Q?caf=E9?= tail\nMessage-ID: <j@example.org>\n' + BODY },
];

describe('header blocks of plain text mails read by mailparser without its streams', () => {
  test('this mailparser has the parts: its header code and libmime\'s decodeFlowed are used', () => {
    // false would mean a mailparser release without MailParser#processHeaders or mailsplit's
    // Headers (or libmime's decodeFlowed): those mails would go through simpleParser, correct
    // but slower.
    expect(readsHeadersWithoutStreams()).toBe(true);
    expect(readsFlowedWithoutStreams()).toBe(true);
  });

  test('mails from the same sender: each From: read as simpleParser reads it, none sharing the other\'s', async () => {
    const mail = (from: string, id: string) => raw(`From: ${from}\nSubject: [PATCH] s\nMessage-ID: <${id}@x>\n` + BODY);
    const jane = '=?UTF-8?Q?Jane_D=C3=B6e?= <Jane@Example.org>';
    const mails = [mail(jane, 'a'), mail('John <john@example.org>', 'b'), mail(jane, 'c'), mail(jane.toUpperCase(), 'd')];
    const here = [];
    for (const m of mails) {
      const r = await parseMail(m);
      expect(r).toEqual(await parseMail(m, { plainBodyFastPath: false }));
      here.push(r);
    }
    expect(here[0].from).toEqual({ name: 'Jane D\u00f6e', address: 'jane@example.org' });
    expect(here[2].from).toEqual(here[0].from);
    expect(here[2].from).not.toBe(here[0].from);
    here[0].from.name = 'changed';
    expect((await parseMail(mails[2])).from.name).toBe('Jane D\u00f6e');
  });

  test.each(HEADERS)('$name: the same as simpleParser reads it', async ({ mail }) => {
    const m = raw(mail);
    expect(readsPlainBody(m.raw)).not.toBe(null);
    const here = await parseMail(m);
    const oracle = await parseMail(m, { plainBodyFastPath: false });
    expect(here).toEqual(oracle);
  });
});
