import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseMail, applyInBodyHeaders, isScissorsLine, extractIds, headerValue, trimHeaders, findHeaderEnd } from '../../src/mail/parse.js';
import { recordFromRaw, recordFromText } from '../../src/mail/record.js';
import type { RawMessage } from '../../src/model.js';

const dir = join(process.cwd(), 'test/fixtures/mail');
const raw = (name: string): RawMessage => {
  const buf = readFileSync(join(dir, name));
  return { raw: buf, ref: { source: `${name}:0`, file: name, offset: 0, length: buf.length } };
};

describe('in-body headers (git am semantics)', () => {
  test('in-body From: and Subject: win over the mail headers', async () => {
    const r = await recordFromRaw(raw('inbody-from.eml'));
    expect(r.from).toEqual({ name: 'Sender Relay', address: 'relay@example.org' });
    expect(r.author).toEqual({ name: 'Roger Pau Monné', address: 'roger.pau@citrix.com' });
    expect(r.parsedSubject.clean).toBe('x86/hvm: the real title');
    expect(r.kind).toBe('patch');
    expect(r.files).toEqual(['xen/arch/x86/hvm/hvm.c']);
    expect(r.commitMessage).toContain('The real commit message.');
    expect(r.commitMessage).not.toContain('From:');
    expect(r.listIds).toContain('xen-devel.lists.xenproject.org');
  });

  test('scissors: text above "-- >8 --" is dropped and the in-body author after it is used', async () => {
    const m = await parseMail(raw('scissors.eml'));
    expect(m.body.startsWith('Do it the other way.')).toBe(true);
    expect(m.bodyFrom).toEqual({ name: 'Jan Beulich', address: 'jbeulich@suse.com' });
    expect(m.warnings.join(' ')).toMatch(/scissors/);
    const r = await recordFromRaw(raw('scissors.eml'));
    expect(r.author.address).toBe('jbeulich@suse.com');
    expect(r.files).toEqual(['xen/common/foo.c']);
  });

  test('a body starting with prose "From: ..." followed by text is not an in-body header', () => {
    const ib = applyInBodyHeaders('From: the start of time, this was wrong.\nIt still is.\n');
    expect(ib.from).toBeNull();
    expect(ib.body).toContain('From: the start of time');
  });

  test('scissors line shapes', () => {
    expect(isScissorsLine('-- >8 --')).toBe(true);
    expect(isScissorsLine('--8<--')).toBe(true);
    expect(isScissorsLine('------------------------ >8 ------------------------')).toBe(true);
    expect(isScissorsLine('x >8 y')).toBe(false);
    expect(isScissorsLine('if (a >8)')).toBe(false);
  });
});

describe('encodings and damage', () => {
  test('CRLF in a base64 body is kept in the diff (mailparser drops \\r)', async () => {
    const r = await recordFromRaw(raw('crlf-base64.eml'));
    expect(r.files).toEqual(['tools/win/build.bat']);
    const lines = r.diff!.files[0].hunks[0].lines;
    expect(lines.map((l) => l.kind)).toEqual(['del', 'add', 'ctx']);
    expect(lines[1].text).toBe('echo new');
  });

  test('8-bit headers without declared charset are read as latin1', async () => {
    const r = await recordFromRaw(raw('latin1-header.eml'));
    expect(r.from.name).toBe('René Müller');
    expect(r.subject).toBe('[PATCH] docs: café fix');
  });

  test('an unknown charset does not abort parsing', async () => {
    const r = await recordFromRaw(raw('bad-charset.eml'));
    expect(r.messageId).toBe('<badcs-1@example.org>');
    expect(r.kind).toBe('other');
  });

  test('a text/x-patch attachment (a whole format-patch file) is the patch', async () => {
    const r = await recordFromRaw(raw('attachment.eml'));
    expect(r.kind).toBe('patch');
    expect(r.files).toEqual(['xen/common/sched/core.c']);
    expect(r.author.address).toBe('att@example.org');
  });

  test('format=flowed patches are flagged as whitespace-damaged', async () => {
    const r = await recordFromRaw(raw('flowed.eml'));
    expect(r.kind).toBe('patch');
    expect(r.whitespaceDamaged).toBe(true);
    expect(r.damage[0]).toMatch(/format=flowed/);
  });

  test('bounces are automated and get a derived Message-ID', async () => {
    const r = await recordFromRaw(raw('bounce.eml'));
    expect(r.automated).toBe(true);
    expect(r.messageId).toMatch(/^<patchvet-[0-9a-f]{20}@missing-message-id>$/);
    expect(r.warnings.join(' ')).toMatch(/no Message-ID/);
  });

  describe('automated mail', () => {
    // A patch as vger.kernel.org delivers it: the list stamps "Precedence: bulk" on every mail.
    const listPatch = (extra: string, list = 'List-Id: <linux-hyperv.vger.kernel.org>\n') =>
      recordFromText(
        'From: Wei Liu <wei.liu@kernel.org>\nTo: linux-hyperv@vger.kernel.org\nSubject: [PATCH] hv: fix the thing\n' +
          'Message-ID: <auto-1@kernel.org>\nDate: Wed, 25 Feb 2026 19:05:29 +0000\n' + list + extra + '\n' +
          'Fix it.\n\nSigned-off-by: Wei Liu <wei.liu@kernel.org>\n---\n' +
          'diff --git a/drivers/hv/a.c b/drivers/hv/a.c\n--- a/drivers/hv/a.c\n+++ b/drivers/hv/a.c\n@@ -1,2 +1,2 @@\n int a;\n-int b;\n+int c;\n',
      );

    test('list mail stamped "Precedence: bulk" or "list" by the list server is written by a person', async () => {
      for (const extra of ['Precedence: bulk\n', 'Precedence: list\n', 'Precedence: junk\n', 'Auto-Submitted: no\n', '']) {
        const r = await listPatch(extra);
        expect({ extra, kind: r.kind, automated: r.automated }).toEqual({ extra, kind: 'patch', automated: false });
      }
      // List-Post or ezmlm's Mailing-List say the same as List-Id.
      expect((await listPatch('Precedence: bulk\n', 'List-Post: <mailto:xen-devel@lists.xenproject.org>\n')).automated).toBe(false);
      expect((await listPatch('Precedence: bulk\n', 'Mailing-List: contact dev-help@example.org; run by ezmlm\n')).automated).toBe(false);
    });

    test('bulk mail that did not come through a list, auto-replies and list notices are automated', async () => {
      expect((await listPatch('Precedence: bulk\n', '')).automated).toBe(true);
      expect((await listPatch('Precedence: junk\n', '')).automated).toBe(true);
      // Through the list and still a program's: RFC 3834 and the older auto-reply markers.
      const markers = ['Auto-Submitted: auto-replied', 'Auto-Submitted: auto-generated', 'X-Autoreply: yes', 'X-Autorespond: vacation', 'X-List-Administrivia: yes'];
      for (const extra of [...markers.map((m) => `Precedence: bulk\n${m}\n`), 'Precedence: auto_reply\n']) {
        expect({ extra, automated: (await listPatch(extra)).automated }).toEqual({ extra, automated: true });
      }
    });
  });

  test('a Date header that does not parse gives no date (not the time of parsing) and a warning', async () => {
    const text = 'Message-ID: <d@example.org>\nDate: someday soon\nFrom: a@example.org\nSubject: s\n\nbody\n';
    const r = await recordFromRaw({ raw: Buffer.from(text), ref: { source: 'd:0', file: 'd', offset: 0, length: text.length } });
    expect(r.date).toBeNull();
    expect(r.warnings).toContain('Date header could not be parsed');
    const ok = await recordFromRaw({ raw: Buffer.from(text.replace('someday soon', 'Tue, 24 Mar 2026 18:19:29 +0000')), ref: { source: 'd:0', file: 'd', offset: 0, length: text.length } });
    expect(ok.date).toBe('2026-03-24T18:19:29.000Z');
  });

  test('garbage is rejected with a clear error', async () => {
    const buf = Buffer.from('\x00\x01\x02 binary junk without headers');
    await expect(parseMail({ raw: buf, ref: { source: 'x:0', file: 'x', offset: 0, length: buf.length } })).rejects.toThrow(/no header block/);
  });
});

describe('the reference thread', () => {
  const mbox = readFileSync(join(process.cwd(), '../shared/fixtures/xen-fpu-reset-v2-1of9.mbox'), 'latin1');
  const mails = mbox.split(/^From mboxrd@z .*\n/m).filter(Boolean).map((m) => m.replace(/^>(>*From )/gm, '$1'));

  test('patch 1/9: kind, series, author, files, trailers', async () => {
    const r = await recordFromRaw({ raw: Buffer.from(mails[0], 'latin1'), ref: { source: 'ref:0', file: 'ref', offset: 0, length: 0 } });
    expect(r.kind).toBe('patch');
    expect(r.messageId).toBe('<20260324181937.2465574-2-ross.lagerwall@citrix.com>');
    expect(r.inReplyTo).toBe('<20260324181937.2465574-1-ross.lagerwall@citrix.com>');
    expect(r.parsedSubject.series).toMatchObject({ version: 2, index: 1, total: 9, rfc: false });
    expect(r.parsedSubject.clean).toBe("x86/domain: Ensure a vCPU's FPU is reset early");
    expect(r.author).toEqual({ name: 'Ross Lagerwall', address: 'ross.lagerwall@citrix.com' });
    expect(r.files).toEqual(['xen/arch/x86/domain.c']);
    expect(r.trailers).toEqual([{ name: 'Signed-off-by', value: 'Ross Lagerwall <ross.lagerwall@citrix.com>' }]);
    expect(r.whitespaceDamaged).toBe(false);
  });

  test('the author answer is a flowed reply, not a patch', async () => {
    const r = await recordFromRaw({ raw: Buffer.from(mails[2], 'latin1'), ref: { source: 'ref:2', file: 'ref', offset: 0, length: 0 } });
    expect(r.kind).toBe('reply');
    expect(r.files).toEqual([]);
    expect(r.blocks.some((b) => b.type === 'quote')).toBe(true);
  });
});

test('extractIds handles missing brackets and several ids', () => {
  expect(extractIds('<a@b> <c@d>')).toEqual(['<a@b>', '<c@d>']);
  expect(extractIds('a@b')).toEqual(['<a@b>']);
});

test('recordFromText wraps a bare diff into a patch mail', async () => {
  const r = await recordFromText('diff --git a/xen/a.c b/xen/a.c\n--- a/xen/a.c\n+++ b/xen/a.c\n@@ -1,1 +1,2 @@ int f(void)\n x;\n+y;\n');
  expect(r.kind).toBe('patch');
  expect(r.files).toEqual(['xen/a.c']);
});

describe('the header block, read in one pass', () => {
  const block = (s: string) => Buffer.from(s, 'latin1');

  test('headerValue: first occurrence, unfolded, name in any case and with spaces before the colon', () => {
    const h = block(
      'Received: from a\n\tby b\nList-Id: first\n <xen-devel.lists.xenproject.org>\nlist-id: second\nSubject : x\n  y\nno colon here\n continued\n\n',
    );
    expect(headerValue(h, 'List-ID')).toBe('first <xen-devel.lists.xenproject.org>');
    expect(headerValue(h, 'subject')).toBe('x y');
    expect(headerValue(h, 'received')).toBe('from a by b');
    expect(headerValue(h, 'no colon here')).toBeNull();
    expect(headerValue(h, 'x-missing')).toBeNull();
  });

  test('headerValue: the index stops at the first empty line, a lone CR included', () => {
    const h = block('Subject: a\r\n\r\nAuto-Submitted: auto-generated\n\n');
    expect(headerValue(h, 'subject')).toBe('a');
    expect(headerValue(h, 'auto-submitted')).toBeNull();
  });

  test('headerValue: a block with an 8-bit header name is still read (the plain way)', () => {
    const h = block('X-Caf\xe9: 1\nPrecedence: bulk\nSubject: caf\xc3\xa9\n\n');
    expect(headerValue(h, 'precedence')).toBe('bulk');
    expect(headerValue(h, 'subject')).toBe('café');
    expect(headerValue(h, 'subject', 'latin1')).toBe('caf\xc3\xa9');
  });

  test('trimHeaders keeps the headers mailparser needs, with their continuation lines and CRLF', () => {
    const raw = block(
      'Received: from a\r\n\tby b\r\nFrom: A <a@b.c>\r\nDKIM-Signature: v=1;\r\n b=xyz\r\nSubject: one\r\n two\r\nContent-Type: text/plain;\r\n charset=utf-8\r\nX-Mailer: m\r\n\r\nbody\r\n',
    );
    const end = findHeaderEnd(raw);
    expect(trimHeaders(raw, end).toString('latin1')).toBe(
      'From: A <a@b.c>\r\nSubject: one\r\n two\r\nContent-Type: text/plain;\r\n charset=utf-8\r\n\r\nbody\r\n',
    );
  });

  test('findHeaderEnd takes whichever of LF LF and CRLF CRLF comes first', () => {
    expect(findHeaderEnd(block('A: b\r\n\r\nx\n\ny'))).toBe(8);
    expect(findHeaderEnd(block('A: b\n\nx\r\n\r\ny'))).toBe(6);
    expect(findHeaderEnd(block('A: b\nC: d'))).toBe(-1);
    expect(findHeaderEnd(block('\nbody'))).toBe(1);
  });
});
