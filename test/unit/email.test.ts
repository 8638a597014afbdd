import { composeReply, replyToEml, encodeWord, headerSafe, wrap } from '../../src/sinks/email.js';
import { recordFromText } from '../../src/mail/record.js';
import type { Finding } from '../../src/model.js';

const patchMail = (subject: string, fromName: string) =>
  `From: ${fromName} <dev@example.org>\nTo: xen-devel@lists.xenproject.org\nSubject: ${subject}\n` +
  `Message-ID: <p1@example.org>\nIn-Reply-To: <cover@example.org>\nReferences: <cover@example.org>\nDate: Tue, 24 Mar 2026 18:19:29 +0000\n` +
  `MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nx86: change.\n\nSigned-off-by: Dev <dev@example.org>\n---\n` +
  `diff --git a/xen/arch/x86/a.c b/xen/arch/x86/a.c\n--- a/xen/arch/x86/a.c\n+++ b/xen/arch/x86/a.c\n` +
  `@@ -10,6 +10,7 @@ int f(struct vcpu *v)\n {\n     int rc;\n \n+    g(v);\n     rc = h(v);\n     if ( rc )\n         return rc;\n` +
  `@@ -40,3 +41,4 @@ int k(void)\n {\n+    m();\n     return 0;\n }\n`;

const finding = (line: number, fn: string, rule = 'xen/example'): Finding => ({
  rule, severity: 'warning', title: 't', message: `A question about line ${line} that is long enough to need wrapping at seventy-two columns, surely.`,
  messageId: '<p1@example.org>', subject: 's', series: null, file: 'xen/arch/x86/a.c', line, side: 'new', function: fn, code: null, fingerprint: 'f' + line, source: 'rule',
});

test('a reply quotes only the lines up to each finding, elides the rest, wraps at 72', async () => {
  const rec = await recordFromText(patchMail('[PATCH] x86: change', 'Dev'));
  const r = composeReply(rec, [finding(13, 'f'), finding(42, 'k')], { from: 'patchvet <bot@example.org>', list: 'xen-devel@lists.xenproject.org' });
  expect(r.text).toContain('> @@ -10,6 +10,7 @@ int f(struct vcpu *v)\n>  {\n>      int rc;\n>\n> +    g(v);\n');
  expect(r.text).not.toContain('rc = h(v);');
  expect(r.text).toContain('> [...]\n> @@ -40,3 +41,4 @@ int k(void)\n>  {\n> +    m();\n');
  for (const l of r.text.split('\n')) if (!l.startsWith('>')) expect(l.length).toBeLessThanOrEqual(72);
  const eml = replyToEml(r);
  expect(eml).toMatch(/^In-Reply-To: <p1@example\.org>$/m);
  expect(eml).toMatch(/^References: <cover@example\.org> <p1@example\.org>$/m);
  expect(eml).toMatch(/^Auto-Submitted: auto-generated$/m);
});

test('nothing that came in can inject headers; non-ASCII is RFC 2047 encoded', async () => {
  const rec = await recordFromText(patchMail('[PATCH] x86: evil =?UTF-8?Q?=0D=0ABcc:_victim@example.org?=', 'Ren\u00e9 M\u00fcller'));
  const r = composeReply(rec, [finding(13, 'f')], { from: 'patchvet <bot@example.org>' });
  const eml = replyToEml(r);
  const headerBlock = eml.split('\n\n')[0];
  expect(headerBlock).not.toMatch(/^Bcc:/im);
  expect(headerBlock).toMatch(/^To: =\?UTF-8\?Q\?Ren=C3=A9_M=C3=BCller\?= <dev@example\.org>$/m);
  for (const l of headerBlock.split('\n')) expect(l).toMatch(/^([A-Za-z-]+: | )/);
  expect(headerSafe('a\r\nBcc: x')).toBe('a Bcc: x');
  expect(encodeWord('plain')).toBe('plain');
});

test('wrap keeps paragraphs and width', () => {
  expect(wrap('one two three four', 9)).toBe('one two\nthree\nfour');
  expect(wrap('a\n\nb')).toBe('a\n\nb');
});
