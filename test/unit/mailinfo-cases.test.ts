// The tricky mail shapes that git's mailinfo tests (t5100) and patchwork's parser tests
// exercise, re-created as small Xen/Linux patch mails written here. For each mail the real
// `git mailinfo -u --scissors` runs and patchvet's record must agree with it on the author,
// the subject with its prefixes stripped and the files of the patch (as `git apply
// --numstat` names them). Where patchvet deliberately answers otherwise, both answers are
// asserted and the comment says why patchvet's is the one a reviewer wants.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { recordFromRaw } from '../../src/mail/record.js';
import type { MessageRecord } from '../../src/model.js';

let dir = '';
let seq = 0;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'patchvet-mailinfo-cases-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

interface MailInfo {
  /** mailinfo's "Author:" (it repeats the address there when the mail gives no name). */
  author: string;
  email: string;
  subject: string;
  /** The commit message file mailinfo writes. */
  msg: string;
  /** The patch file mailinfo writes. */
  patch: string;
  /** Files of that patch as `git apply --numstat` names them (new path; old path for deletions). */
  files: string[];
}

/** Run the real `git mailinfo -u --scissors` with the mail on stdin. */
function mailinfo(mail: Buffer): MailInfo {
  const n = seq++;
  const msgFile = join(dir, `m${n}`);
  const patchFile = join(dir, `p${n}`);
  const p = spawnSync('git', ['mailinfo', '-u', '--scissors', msgFile, patchFile], { input: mail });
  if (p.status !== 0) throw new Error(`git mailinfo failed: ${p.stderr.toString()}`);
  const out = p.stdout.toString('utf8');
  const get = (k: string) => new RegExp(`^${k}: ?(.*)$`, 'm').exec(out)?.[1] ?? '';
  const patch = readFileSync(patchFile, 'utf8');
  return { author: get('Author'), email: get('Email'), subject: get('Subject'), msg: readFileSync(msgFile, 'utf8'), patch, files: patch.trim() ? numstat(patchFile) : [] };
}

/** `git apply --numstat -z`: "adds\tdels\tpath\0", or "adds\tdels\t\0old\0new\0" for a rename. */
function numstat(patchFile: string): string[] {
  const p = spawnSync('git', ['apply', '--numstat', '-z', patchFile], { cwd: dir });
  if (p.status !== 0) throw new Error(`git apply --numstat failed: ${p.stderr.toString()}`);
  const parts = p.stdout.toString('utf8').split('\0');
  const files: string[] = [];
  for (let i = 0; i < parts.length; i++) {
    const m = /^[-\d]+\t[-\d]+\t(.*)$/.exec(parts[i]);
    if (!m) continue;
    if (m[1] === '') {
      files.push(parts[i + 2]);
      i += 2;
    } else files.push(m[1]);
  }
  return files.sort();
}

/** Mail text as written in this file (leading newline dropped) -> bytes. */
function mail(text: string, opts: { encoding?: BufferEncoding; crlf?: boolean } = {}): Buffer {
  let t = text.replace(/^\n/, '');
  if (opts.crlf) t = t.replace(/\n/g, '\r\n');
  return Buffer.from(t, opts.encoding ?? 'utf8');
}

async function both(raw: Buffer): Promise<[MessageRecord, MailInfo]> {
  const n = seq++;
  writeFileSync(join(dir, `mail${n}.eml`), raw);
  const r = await recordFromRaw({ raw, ref: { source: `case${n}:0`, file: `case${n}`, offset: 0, length: raw.length } });
  return [r, mailinfo(raw)];
}

type Field = 'author' | 'subject' | 'files';

/** patchvet agrees with mailinfo on every field but those in `except` (asserted by the caller). */
function expectAgree(r: MessageRecord, mi: MailInfo, except: Field[] = []): void {
  if (!except.includes('author')) {
    expect(r.author.address).toBe(mi.email.toLowerCase());
    // mailinfo fills the address in as the name when the mail gives none; patchvet leaves it empty.
    expect(r.author.name).toBe(mi.author === mi.email ? '' : mi.author);
  }
  if (!except.includes('subject')) expect(r.parsedSubject.clean).toBe(mi.subject);
  if (!except.includes('files')) expect([...r.files].sort()).toEqual(mi.files);
}

// ---------------------------------------------------------------- diffs the mails carry

const SCHED_DIFF = `diff --git a/xen/common/sched/core.c b/xen/common/sched/core.c
index 3f1a2b4c5d6e..7a8b9c0d1e2f 100644
--- a/xen/common/sched/core.c
+++ b/xen/common/sched/core.c
@@ -1204,7 +1204,7 @@ static void sched_unit_migrate_finish(struct sched_unit *unit)
     struct scheduler *ops = unit_scheduler(unit);
     unsigned int cpu = sched_unit_master(unit);
 
-    if ( unit->is_running )
+    if ( unit->is_running && !unit->migrating )
         return;
 
     sched_spin_unlock_double(old_lock, new_lock, flags);
`;
/** SCHED_DIFF's hunk alone, under other diff headers. */
const SCHED_HUNK = SCHED_DIFF.slice(SCHED_DIFF.indexOf('@@ '));

const HVM_DIFF = `diff --git a/xen/arch/x86/hvm/hvm.c b/xen/arch/x86/hvm/hvm.c
index 0123456789ab..ba9876543210 100644
--- a/xen/arch/x86/hvm/hvm.c
+++ b/xen/arch/x86/hvm/hvm.c
@@ -412,6 +412,9 @@ int hvm_domain_initialise(struct domain *d)
     if ( !hvm_enabled )
         return -EINVAL;
 
+    if ( !d->arch.hvm.params )
+        return -ENOMEM;
+
     spin_lock_init(&d->arch.hvm.irq_lock);
     spin_lock_init(&d->arch.hvm.uc_lock);
     spin_lock_init(&d->arch.hvm.write_map.lock);
`;
/** HVM_DIFF's hunk alone, under other diff headers. */
const HVM_HUNK = HVM_DIFF.slice(HVM_DIFF.indexOf('@@ '));

const XENBUS_DIFF = `diff --git a/drivers/xen/xenbus/xenbus_probe.c b/drivers/xen/xenbus/xenbus_probe.c
index 8a3c5f1e2b4d..0c9d7e6f5a3b 100644
--- a/drivers/xen/xenbus/xenbus_probe.c
+++ b/drivers/xen/xenbus/xenbus_probe.c
@@ -88,7 +88,7 @@ static int xenbus_match(struct device *_dev, const struct device_driver *_drv)
 \tif (!drv->ids)
 \t\treturn 0;
 
-\treturn match_device(drv->ids, to_xenbus_device(_dev)) != NULL;
+\treturn !!match_device(drv->ids, to_xenbus_device(_dev));
 }
 
 static void free_otherend_details(struct xenbus_device *dev)
`;

const SCHED_STAT = ` xen/common/sched/core.c | 2 +-
 1 file changed, 1 insertion(+), 1 deletion(-)
`;
const HVM_STAT = ` xen/arch/x86/hvm/hvm.c | 3 +++
 1 file changed, 3 insertions(+)
`;
const XENBUS_STAT = ` drivers/xen/xenbus/xenbus_probe.c | 2 +-
 1 file changed, 1 insertion(+), 1 deletion(-)
`;

// ---------------------------------------------------------------- RFC 2047 headers

describe('encoded headers', () => {
  test('ISO-8859-1 Q-encoded From and Subject, the Subject folded into two encoded words', async () => {
    const [r, mi] = await both(
      mail(`
From: =?iso-8859-1?q?Roger_Pau_Monn=E9?= <roger.pau@citrix.com>
To: xen-devel@lists.xenproject.org
Cc: Jan Beulich <jbeulich@suse.com>, Andrew Cooper <andrew.cooper3@citrix.com>
Subject: =?iso-8859-1?q?=5BPATCH=5D_x86/hvm=3A_fail_domain_creation_witho?=
 =?iso-8859-1?q?ut_a_params_page_=28reported_by_Aur=E9lien=29?=
Date: Tue, 3 Mar 2026 10:11:12 +0100
Message-ID: <20260303091112.1234-1-roger.pau@citrix.com>
MIME-Version: 1.0
Content-Type: text/plain; charset=UTF-8
Content-Transfer-Encoding: 8bit

A domain whose params page could not be allocated goes on to crash the
first time a parameter is read.

Signed-off-by: Roger Pau Monné <roger.pau@citrix.com>
---
${HVM_STAT}
${HVM_DIFF}-- 
2.51.0
`),
    );
    expectAgree(r, mi);
    expect(r.author).toEqual({ name: 'Roger Pau Monné', address: 'roger.pau@citrix.com' });
    expect(r.parsedSubject.clean).toBe('x86/hvm: fail domain creation without a params page (reported by Aurélien)');
    expect(r.kind).toBe('patch');
    expect(r.trailers).toEqual([{ name: 'Signed-off-by', value: 'Roger Pau Monné <roger.pau@citrix.com>' }]);
  });

  test('UTF-8 B-encoded From and a whole B-encoded Subject', async () => {
    const [r, mi] = await both(
      mail(`
From: =?UTF-8?B?SsO8cmdlbiBHcm/Dnw==?= <jgross@suse.com>
To: linux-kernel@vger.kernel.org, xen-devel@lists.xenproject.org
Subject: =?UTF-8?B?W1BBVENIIHYyXSB4ZW4veGVuYnVzOiBkb27igJl0IGhhbmcgaW4geGVuYnVzX3JlYWRfZHJpdmVyX3N0YXRlKCk=?=
Date: Wed, 4 Mar 2026 08:00:01 +0100
Message-ID: <20260304070001.20001-1-jgross@suse.com>
MIME-Version: 1.0
Content-Type: text/plain; charset=UTF-8
Content-Transfer-Encoding: 8bit

Comparing the result of match_device() against NULL is a long way of
saying "found one".

Signed-off-by: Jürgen Groß <jgross@suse.com>
---
V2:
- reworded the commit message
---
${XENBUS_STAT}
${XENBUS_DIFF}-- 
2.51.0
`),
    );
    expectAgree(r, mi);
    expect(r.author.name).toBe('Jürgen Groß');
    expect(r.parsedSubject.clean).toBe('xen/xenbus: don’t hang in xenbus_read_driver_state()');
    expect(r.parsedSubject.series).toMatchObject({ version: 2, index: null, total: null });
  });

  test('a UTF-8 character split between two B-encoded words on folded lines', async () => {
    // “ is E2 80 9C: the sender's client cut the word after E2 80. RFC 2047 forbids it, but
    // the bytes of adjacent encoded words in one charset belong together.
    const [r, mi] = await both(
      mail(`
From: Anthony PERARD <anthony.perard@vates.tech>
To: xen-devel@lists.xenproject.org
Subject: =?UTF-8?B?W1BBVENIXSB0b29scy94bDogcHJpbnQg4oA=?=
 =?UTF-8?B?nGRvbWFpbiBkZXN0cm95ZWTigJ0gb25jZQ==?=
Date: Thu, 5 Mar 2026 14:20:00 +0000
Message-ID: <20260305142000.777-1-anthony.perard@vates.tech>
Content-Type: text/plain; charset=UTF-8

The message was printed by both the destroy path and its caller.

Signed-off-by: Anthony PERARD <anthony.perard@vates.tech>
---
${SCHED_DIFF}`),
    );
    expectAgree(r, mi);
    expect(r.parsedSubject.clean).toBe('tools/xl: print “domain destroyed” once');
  });

  test('adjacent encoded words: the space between them is not part of the text', async () => {
    const [r, mi] = await both(
      mail(`
From: =?UTF-8?q?Marek_Marczykowski-?= =?UTF-8?q?G=C3=B3recki?= <marmarek@invisiblethingslab.com>
To: xen-devel@lists.xenproject.org
Subject: [PATCH for-4.21] =?UTF-8?q?tools/libxl=3A_clean_up_a_stubdom=E2=80=99s?=
 =?UTF-8?q?_console?= =?UTF-8?q?_on_failure?=
Date: Fri, 6 Mar 2026 01:02:03 +0100
Message-ID: <20260306000203.4242-1-marmarek@invisiblethingslab.com>
Content-Type: text/plain; charset=UTF-8

Signed-off-by: Marek Marczykowski-Górecki <marmarek@invisiblethingslab.com>
---
${SCHED_DIFF}`),
    );
    expectAgree(r, mi);
    expect(r.author.name).toBe('Marek Marczykowski-Górecki');
    expect(r.parsedSubject.clean).toBe('tools/libxl: clean up a stubdom’s console on failure');
    expect(r.parsedSubject.series?.targets).toEqual(['for-4.21']);
  });
});

// ---------------------------------------------------------------- From: forms

describe('From: header forms', () => {
  test.each([
    ['"Last, First" quoted name', '"Beulich, Jan" <jbeulich@suse.com>', 'Beulich, Jan'],
    ['address then (Name) comment', 'jbeulich@suse.com (Jan Beulich)', 'Jan Beulich'],
    ['bare address', 'jbeulich@suse.com', ''],
    ['address in brackets, no display name', '<jbeulich@suse.com>', ''],
    ['quoted name with escaped quotes', '"Jan \\"JB\\" Beulich" <jbeulich@suse.com>', 'Jan "JB" Beulich'],
  ])('%s', async (_label, from, name) => {
    const [r, mi] = await both(
      mail(`
From: ${from}
To: xen-devel@lists.xenproject.org
Subject: [PATCH] xen/sched: don't finish a migration that is still running
Date: Mon, 9 Mar 2026 09:00:00 +0100
Message-ID: <a1b2c3d4-0000-4000-8000-000000000001@suse.com>
Content-Type: text/plain; charset=UTF-8

Signed-off-by: Jan Beulich <jbeulich@suse.com>
---
${SCHED_STAT}
${SCHED_DIFF}`),
    );
    expectAgree(r, mi);
    expect(r.author).toEqual({ name, address: 'jbeulich@suse.com' });
  });
});

// ---------------------------------------------------------------- in-body headers

describe('in-body headers and scissors', () => {
  test('in-body From:, Date: and Subject: then a blank line override the mail headers', async () => {
    const [r, mi] = await both(
      mail(`
From: Andrew Cooper <andrew.cooper3@citrix.com>
To: Xen-devel <xen-devel@lists.xenproject.org>
Subject: [PATCH 2/4] x86/ucode: the title the sender's script made up
Date: Tue, 10 Mar 2026 12:00:00 +0000
Message-ID: <20260310120000.1-3-andrew.cooper3@citrix.com>
In-Reply-To: <20260310120000.1-1-andrew.cooper3@citrix.com>
Content-Type: text/plain; charset=UTF-8

From: Ross Lagerwall <ross.lagerwall@citrix.com>
Date: Mon, 2 Feb 2026 11:11:11 +0000
Subject: [PATCH] x86/hvm: fail domain creation without a params page

The allocation failure was only noticed much later.

Signed-off-by: Ross Lagerwall <ross.lagerwall@citrix.com>
Signed-off-by: Andrew Cooper <andrew.cooper3@citrix.com>
---
${HVM_STAT}
${HVM_DIFF}`),
    );
    expectAgree(r, mi);
    expect(r.from.address).toBe('andrew.cooper3@citrix.com');
    expect(r.author).toEqual({ name: 'Ross Lagerwall', address: 'ross.lagerwall@citrix.com' });
    expect(r.parsedSubject.clean).toBe('x86/hvm: fail domain creation without a params page');
    // The series position is the mail's, not the in-body subject's.
    expect(r.parsedSubject.series).toMatchObject({ index: 2, total: 4 });
    expect(r.commitMessage).toMatch(/^The allocation failure/);
    expect(mi.msg).toMatch(/^The allocation failure/);
  });

  test('an in-body From: with RFC 2047 encoded words', async () => {
    const [r, mi] = await both(
      mail(`
From: Jan Beulich <jbeulich@suse.com>
To: xen-devel@lists.xenproject.org
Subject: [PATCH] x86/hvm: fail domain creation without a params page
Date: Tue, 10 Mar 2026 12:30:00 +0100
Message-ID: <0f1e2d3c-aaaa-4bbb-8ccc-123456789abc@suse.com>
Content-Type: text/plain; charset=UTF-8

From: =?UTF-8?q?Roger_Pau_Monn=C3=A9?= <roger.pau@citrix.com>

Signed-off-by: Roger Pau Monné <roger.pau@citrix.com>
---
${HVM_DIFF}`),
    );
    expectAgree(r, mi);
    expect(r.author).toEqual({ name: 'Roger Pau Monné', address: 'roger.pau@citrix.com' });
  });

  test('a folded in-body Subject:', async () => {
    const [r, mi] = await both(
      mail(`
From: Stefano Stabellini <sstabellini@kernel.org>
To: xen-devel@lists.xenproject.org
Subject: [PATCH v3] xen/arm: vgic: short title
Date: Wed, 11 Mar 2026 17:45:00 -0700
Message-ID: <alpine.DEB.2.22.394.2603111745000.1234@ubuntu-linux-20-04-desktop>
Content-Type: text/plain; charset=UTF-8

Subject: [PATCH v3] xen/arm: vgic: do not inject an SGI into a vCPU that
 is still being created

Signed-off-by: Stefano Stabellini <stefano.stabellini@amd.com>
---
${SCHED_DIFF}`),
    );
    expectAgree(r, mi);
    expect(r.parsedSubject.clean).toBe('xen/arm: vgic: do not inject an SGI into a vCPU that is still being created');
  });

  test('a scissors line in a reply: the text above it goes, the in-body headers below it count', async () => {
    const [r, mi] = await both(
      mail(`
From: Jan Beulich <jbeulich@suse.com>
To: Roger Pau Monne <roger.pau@citrix.com>
Cc: xen-devel@lists.xenproject.org
Subject: Re: [PATCH] xen/sched: avoid the migrate path for running units
Date: Thu, 12 Mar 2026 08:15:00 +0100
Message-ID: <6a7b8c9d-1111-4222-8333-444455556666@suse.com>
In-Reply-To: <20260311100000.5555-1-roger.pau@citrix.com>
References: <20260311100000.5555-1-roger.pau@citrix.com>
Content-Type: text/plain; charset=UTF-8

On 11.03.2026 11:00, Roger Pau Monne wrote:
> Running units must not be migrated.

I'd rather not add a flag for this. How about the below instead?

Jan

-- >8 --
From: Jan Beulich <jbeulich@suse.com>
Subject: xen/sched: don't finish a migration that is still running

Signed-off-by: Jan Beulich <jbeulich@suse.com>
---
${SCHED_DIFF}`),
    );
    expectAgree(r, mi);
    expect(r.parsedSubject.clean).toBe("xen/sched: don't finish a migration that is still running");
    expect(r.warnings.join(' ')).toMatch(/scissors/);
    // The mail is still a reply in its thread (its header Subject says so); its diff is read.
    expect(r.kind).toBe('reply');
    expect(r.diff?.files[0].hunks[0].lines.find((l) => l.kind === 'add')?.newLine).toBe(1207);
    expect(mi.msg).not.toMatch(/I'd rather not/);
  });

  test('two format-patch files attached: both diffs are read (as git am would apply them), named after the first', async () => {
    const [r, mi] = await both(
      mail(`
From: Michal Orzel <michal.orzel@amd.com>
To: xen-devel@lists.xenproject.org
Subject: Re: [PATCH] xen: scheduler and HVM fixes for 4.21
Date: Fri, 20 Mar 2026 11:20:00 +0100
Message-ID: <c0ffee00-2222-4567-89ab-cdef01234567@amd.com>
In-Reply-To: <a0a0a0a0-1111-4000-8000-b0b0b0b0b0b0@xen.org>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="------------twofp"

--------------twofp
Content-Type: text/plain; charset=UTF-8
Content-Transfer-Encoding: 7bit

Both are needed; attached, please test.

--------------twofp
Content-Type: text/x-patch; charset=UTF-8; name="0001-sched.patch"
Content-Disposition: attachment; filename="0001-sched.patch"
Content-Transfer-Encoding: 7bit

From 0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c Mon Sep 17 00:00:00 2001
From: Ayan Kumar Halder <ayan.kumar.halder@amd.com>
Date: Thu, 19 Mar 2026 18:00:00 +0000
Subject: [PATCH 1/2] xen/sched: don't finish a migration that is still running

Signed-off-by: Ayan Kumar Halder <ayan.kumar.halder@amd.com>
---
${SCHED_DIFF}
--------------twofp
Content-Type: text/x-patch; charset=UTF-8; name="0002-hvm.patch"
Content-Disposition: attachment; filename="0002-hvm.patch"
Content-Transfer-Encoding: 7bit

From 1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d Mon Sep 17 00:00:00 2001
From: Michal Orzel <michal.orzel@amd.com>
Date: Thu, 19 Mar 2026 18:05:00 +0000
Subject: [PATCH 2/2] x86/hvm: fail early without HVM params

Signed-off-by: Michal Orzel <michal.orzel@amd.com>
---
${HVM_DIFF}
--------------twofp--
`),
    );
    // Files: both patches, as git mailinfo joins the parts. Author and subject: the first
    // attached patch, as in the case above (mailinfo names Michal's reply).
    expectAgree(r, mi, ['author', 'subject']);
    expect(mi.files).toEqual(['xen/arch/x86/hvm/hvm.c', 'xen/common/sched/core.c']);
    expect(r.author.address).toBe('ayan.kumar.halder@amd.com');
    expect(r.parsedSubject.clean).toBe("xen/sched: don't finish a migration that is still running");
    expect(r.warnings).toContain('2 patches attached: their diffs are read as one, named after the first (its author and subject)');
  });

  test('a body whose first line starts with "From " is commit text, not a header', async () => {
    const [r, mi] = await both(
      mail(`
From: Andrew Cooper <andrew.cooper3@citrix.com>
To: xen-devel@lists.xenproject.org
Subject: [PATCH] x86/hvm: fail domain creation without a params page
Date: Fri, 13 Mar 2026 19:00:00 +0000
Message-ID: <20260313190000.9999-1-andrew.cooper3@citrix.com>
Content-Type: text/plain; charset=UTF-8

From the SDM's description of the VMCS, the params page is needed before
the first VMENTRY.
From: this line is prose too.

Signed-off-by: Andrew Cooper <andrew.cooper3@citrix.com>
---
${HVM_DIFF}`),
    );
    expectAgree(r, mi);
    expect(r.commitMessage).toMatch(/^From the SDM's description/);
    expect(mi.msg).toMatch(/^From the SDM's description/);
  });

  // git format-patch output pasted into a mail body starts with its "From <commit> Mon Sep 17
  // 00:00:00 2001" line. In a mailbox that line is escaped as ">From ...", which is how
  // `git am` (mboxo mailsplit) hands it to mailinfo: mailinfo skips it and reads the
  // From:/Date:/Subject: below it as in-body headers.
  const pasted = (sep: string) =>
    mail(`
From: Andrew Cooper <andrew.cooper3@citrix.com>
To: xen-devel@lists.xenproject.org
Subject: [PATCH for-4.21] x86/hvm: params page
Date: Fri, 13 Mar 2026 19:05:00 +0000
Message-ID: <e1e2e3e4-5555-4666-8777-888899990000@citrix.com>
Content-Type: text/plain; charset=UTF-8

${sep}From 5e8f0a0c4d7b3e2f1a9c8b7d6e5f4a3b2c1d0e9f Mon Sep 17 00:00:00 2001
From: Teddy Astie <teddy.astie@vates.tech>
Date: Thu, 12 Mar 2026 10:00:00 +0100
Subject: [PATCH] x86/hvm: fail domain creation without a params page

Signed-off-by: Teddy Astie <teddy.astie@vates.tech>
---
${HVM_DIFF}`);

  test('pasted format-patch output, ">From <commit>" line: skipped, the headers below it count', async () => {
    const [r, mi] = await both(pasted('>'));
    expectAgree(r, mi);
    expect(r.author).toEqual({ name: 'Teddy Astie', address: 'teddy.astie@vates.tech' });
    expect(r.parsedSubject.clean).toBe('x86/hvm: fail domain creation without a params page');
    expect(r.commitMessage).toBe('Signed-off-by: Teddy Astie <teddy.astie@vates.tech>');
  });

  test('pasted format-patch output, unescaped "From <commit>" line (deliberate difference)', async () => {
    const [r, mi] = await both(pasted(''));
    expectAgree(r, mi, ['author', 'subject']);
    // patchvet's mbox reader removes the ">" that git's default (mboxo) mailsplit keeps, so
    // the same archived mail reaches patchvet in this shape and mailinfo in the one above.
    // Reading both alike gives the author `git am` gives on the archive; mailinfo, fed the
    // unescaped line directly, leaves the whole block in the commit message.
    expect(mi.email).toBe('andrew.cooper3@citrix.com');
    expect(mi.subject).toBe('x86/hvm: params page');
    expect(mi.msg).toMatch(/^From 5e8f0a0c/);
    expect(r.author).toEqual({ name: 'Teddy Astie', address: 'teddy.astie@vates.tech' });
    expect(r.parsedSubject.clean).toBe('x86/hvm: fail domain creation without a params page');
    expect(r.commitMessage).toBe('Signed-off-by: Teddy Astie <teddy.astie@vates.tech>');
  });

  test('a "[PATCH] title" first body line is an in-body Subject (the pre-format-patch convention)', async () => {
    const [r, mi] = await both(
      mail(`
From: Wei Liu <wl@xen.org>
To: xen-devel@lists.xenproject.org
Subject: please apply
Date: Fri, 13 Mar 2026 19:10:00 +0000
Message-ID: <20260313191000.GA1234@liuwe-devbox>
Content-Type: text/plain; charset=UTF-8

[PATCH] x86/hvm: fail domain creation without a params page

Signed-off-by: Wei Liu <wl@xen.org>
---
${HVM_DIFF}`),
    );
    expectAgree(r, mi);
    expect(r.parsedSubject.clean).toBe('x86/hvm: fail domain creation without a params page');
    expect(r.commitMessage).toBe('Signed-off-by: Wei Liu <wl@xen.org>');
  });
});

// ---------------------------------------------------------------- transfer encodings and charsets

describe('transfer encodings and charsets', () => {
  test('quoted-printable: soft line breaks and =20 inside the diff', async () => {
    const [r, mi] = await both(
      mail(`
From: Juergen Gross <jgross@suse.com>
To: xen-devel@lists.xenproject.org
Subject: [PATCH] xen/sched: don't finish a migration that is still running
Date: Mon, 16 Mar 2026 07:07:07 +0100
Message-ID: <20260316060707.1111-1-jgross@suse.com>
MIME-Version: 1.0
Content-Type: text/plain; charset="utf-8"
Content-Transfer-Encoding: quoted-printable

Since commit 1b2c3d4e5f60 ("xen/sched: move per-unit state into struct sched=
_unit") a unit that is still migrating can be picked by the tick.

Signed-off-by: Juergen Gross <jgross@suse.com>
---
 xen/common/sched/core.c | 2 +-
 1 file changed, 1 insertion(+), 1 deletion(-)

diff --git a/xen/common/sched/core.c b/xen/common/sched/core.c
index 3f1a2b4c5d6e..7a8b9c0d1e2f 100644
--- a/xen/common/sched/core.c
+++ b/xen/common/sched/core.c
@@ -1204,7 +1204,7 @@ static void sched_unit_migrate_finish(struct sched_uni=
t *unit)
     struct scheduler *ops =3D unit_scheduler(unit);
     unsigned int cpu =3D sched_unit_master(unit);
=20
-    if ( unit->is_running )
+    if ( unit->is_running && !unit->migrating && !unit->resched_on_migrat=
ion )
         return;
=20
     sched_spin_unlock_double(old_lock, new_lock, flags);
--=20
2.51.0
`),
    );
    expectAgree(r, mi);
    expect(r.commitMessage).toContain('("xen/sched: move per-unit state into struct sched_unit")');
    const h = r.diff!.files[0].hunks[0];
    expect(h.header).toBe('@@ -1204,7 +1204,7 @@ static void sched_unit_migrate_finish(struct sched_unit *unit)');
    const add = h.lines.find((l) => l.kind === 'add')!;
    expect(add.text).toBe('    if ( unit->is_running && !unit->migrating && !unit->resched_on_migration )');
    expect(add.newLine).toBe(1207);
    expect(h.lines[2]).toMatchObject({ kind: 'ctx', text: '', oldLine: 1206, newLine: 1206 });
    expect(r.whitespaceDamaged).toBe(false);
  });

  test('a base64 text/plain body', async () => {
    const body = `The driver compared against NULL the long way round.

Signed-off-by: Juergen Gross <jgross@suse.com>
---
${XENBUS_STAT}
${XENBUS_DIFF}-- 
2.51.0
`;
    const b64 = Buffer.from(body, 'utf8').toString('base64').replace(/.{76}/g, '$&\n');
    const [r, mi] = await both(
      mail(`
From: Juergen Gross <jgross@suse.com>
To: linux-kernel@vger.kernel.org
Subject: [PATCH] xen/xenbus: simplify xenbus_match()
Date: Mon, 16 Mar 2026 07:30:00 +0100
Message-ID: <20260316063000.2222-1-jgross@suse.com>
MIME-Version: 1.0
Content-Type: text/plain; charset="utf-8"
Content-Transfer-Encoding: base64

${b64}
`),
    );
    expectAgree(r, mi);
    expect(r.diff!.files[0].hunks[0].lines.map((l) => l.kind).join(' ')).toBe('ctx ctx ctx del add ctx ctx ctx');
    expect(r.diff!.files[0].hunks[0].lines[3].text).toBe('\treturn match_device(drv->ids, to_xenbus_device(_dev)) != NULL;');
    expect(r.whitespaceDamaged).toBe(false);
  });

  test('Content-Transfer-Encoding: 8bit with charset=iso-8859-1: the body is transcoded', async () => {
    const [r, mi] = await both(
      mail(
        `
From: =?iso-8859-1?q?Roger_Pau_Monn=E9?= <roger.pau@citrix.com>
To: xen-devel@lists.xenproject.org
Subject: [PATCH] x86/hvm: fail domain creation without a params page
Date: Tue, 17 Mar 2026 10:00:00 +0100
Message-ID: <20260317090000.3333-1-roger.pau@citrix.com>
MIME-Version: 1.0
Content-Type: text/plain; charset=iso-8859-1
Content-Transfer-Encoding: 8bit

Reported-by: Aurélien Stübi <aurelien@example.fr>
Signed-off-by: Roger Pau Monné <roger.pau@citrix.com>
---
${HVM_DIFF}`,
        { encoding: 'latin1' },
      ),
    );
    expectAgree(r, mi);
    expect(r.trailers.map((t) => t.value)).toEqual(['Aurélien Stübi <aurelien@example.fr>', 'Roger Pau Monné <roger.pau@citrix.com>']);
    // mailinfo -u re-codes the commit message to UTF-8 the same way.
    expect(mi.msg).toContain('Reported-by: Aurélien Stübi <aurelien@example.fr>');
  });
});

// ---------------------------------------------------------------- MIME structure

describe('MIME structure', () => {
  test('multipart/mixed: the patch inline in the first text/plain part, then a PGP signature part', async () => {
    const [r, mi] = await both(
      mail(`
From: Demi Marie Obenour <demi@invisiblethingslab.com>
To: xen-devel@lists.xenproject.org
Subject: [PATCH v2 1/3] xen/sched: don't finish a migration that is still running
Date: Wed, 18 Mar 2026 21:00:00 -0400
Message-ID: <20260319010000.4444-2-demi@invisiblethingslab.com>
In-Reply-To: <20260319010000.4444-1-demi@invisiblethingslab.com>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="=-=-=sigboundary"

--=-=-=sigboundary
Content-Type: text/plain; charset=us-ascii
Content-Disposition: inline

Signed-off-by: Demi Marie Obenour <demi@invisiblethingslab.com>
---
${SCHED_STAT}
${SCHED_DIFF}
--=-=-=sigboundary
Content-Type: application/pgp-signature; name="signature.asc"
Content-Disposition: attachment; filename="signature.asc"

-----BEGIN PGP SIGNATURE-----

iQIzBAEBCgAdFiEEdodNnxM2uiJZBxxxsUxDLEkSWvEFAmX5000ACgkQsUxDLEkS
WvH0sw//b4iL8Yz0example0only0not0a0real0signature0AAAAAAAAAAAAAAA
=abcd
-----END PGP SIGNATURE-----

--=-=-=sigboundary--
`),
    );
    expectAgree(r, mi);
    expect(r.kind).toBe('patch');
    expect(r.parsedSubject.series).toMatchObject({ version: 2, index: 1, total: 3 });
    expect(r.diff!.damage).toEqual([]);
  });

  test('multipart/alternative: the text/plain part is the patch, the HTML copy is ignored', async () => {
    const [r, mi] = await both(
      mail(`
From: Oleksii Kurochko <oleksii.kurochko@gmail.com>
To: xen-devel@lists.xenproject.org
Subject: [PATCH] xen/riscv: fail domain creation without a params page
Date: Thu, 19 Mar 2026 11:11:11 +0100
Message-ID: <CAMacjJx1yT0example0alternative0@mail.gmail.com>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="000000000000abcdef0123456789"

--000000000000abcdef0123456789
Content-Type: text/plain; charset="UTF-8"

Signed-off-by: Oleksii Kurochko <oleksii.kurochko@gmail.com>
---
${HVM_DIFF}
--000000000000abcdef0123456789
Content-Type: text/html; charset="UTF-8"

<div dir="ltr">Signed-off-by: Oleksii Kurochko &lt;oleksii.kurochko@gmail.com&gt;<br>---<br>diff --git a/xen/arch/x86/hvm/hvm.c b/xen/arch/x86/hvm/hvm.c<br></div>

--000000000000abcdef0123456789--
`),
    );
    expectAgree(r, mi);
    expect(r.diff!.files[0].hunks[0].newLines).toBe(9);
    expect(r.whitespaceDamaged).toBe(false);
  });

  test('a bare diff attached as text/x-patch: the mail text is the commit message', async () => {
    const [r, mi] = await both(
      mail(`
From: Bertrand Marquis <bertrand.marquis@arm.com>
To: xen-devel@lists.xenproject.org
Subject: [PATCH] xen/sched: don't finish a migration that is still running
Date: Fri, 20 Mar 2026 09:09:09 +0100
Message-ID: <AS8PR08MB7991example0attachment@AS8PR08MB7991.eurprd08.prod.outlook.com>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="_002_attach_"

--_002_attach_
Content-Type: text/plain; charset="us-ascii"
Content-Transfer-Encoding: 7bit

A unit that is still running must not be finished migrating.

Signed-off-by: Bertrand Marquis <bertrand.marquis@arm.com>

--_002_attach_
Content-Type: text/x-patch; name="sched-migrate.patch"
Content-Disposition: attachment; filename="sched-migrate.patch"
Content-Transfer-Encoding: 7bit

${SCHED_DIFF}
--_002_attach_--
`),
    );
    expectAgree(r, mi);
    expect(r.kind).toBe('patch');
    expect(r.commitMessage).toMatch(/^A unit that is still running/);
    expect(r.trailers.map((t) => t.name)).toEqual(['Signed-off-by']);
  });

  test('a whole format-patch file attached: its own From:/Subject: name the patch (deliberate difference)', async () => {
    const [r, mi] = await both(
      mail(`
From: Michal Orzel <michal.orzel@amd.com>
To: xen-devel@lists.xenproject.org
Subject: Re: xen/arm: vgic: SGI delivered too early
Date: Fri, 20 Mar 2026 10:10:10 +0100
Message-ID: <c0ffee00-1234-4567-89ab-cdef01234567@amd.com>
In-Reply-To: <a0a0a0a0-0000-4000-8000-b0b0b0b0b0b0@xen.org>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="------------attachfp"

--------------attachfp
Content-Type: text/plain; charset=UTF-8; format=fixed
Content-Transfer-Encoding: 7bit

Hi Julien,

Does the attached patch fix it for you?

~Michal

--------------attachfp
Content-Type: text/x-patch; charset=UTF-8; name="0001-xen-sched-running-units.patch"
Content-Disposition: attachment; filename="0001-xen-sched-running-units.patch"
Content-Transfer-Encoding: 7bit

From 0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c Mon Sep 17 00:00:00 2001
From: Ayan Kumar Halder <ayan.kumar.halder@amd.com>
Date: Thu, 19 Mar 2026 18:00:00 +0000
Subject: [PATCH] xen/sched: don't finish a migration that is still running

Signed-off-by: Ayan Kumar Halder <ayan.kumar.halder@amd.com>
---
${SCHED_DIFF}
--------------attachfp--
`),
    );
    expectAgree(r, mi, ['author', 'subject']);
    // git mailinfo reads in-body headers only at the top of the first part, so the patch
    // would be committed as Michal's reply. A reviewer wants the patch named as the commit it
    // is: Ayan's, with the attachment's own title.
    expect(mi.email).toBe('michal.orzel@amd.com');
    expect(mi.subject).toBe('xen/arm: vgic: SGI delivered too early');
    expect(r.author).toEqual({ name: 'Ayan Kumar Halder', address: 'ayan.kumar.halder@amd.com' });
    expect(r.parsedSubject.clean).toBe("xen/sched: don't finish a migration that is still running");
    expect(r.from.address).toBe('michal.orzel@amd.com');
  });

  test('a mail with CRLF line ends throughout', async () => {
    const [r, mi] = await both(
      mail(
        `
From: Roger Pau Monne <roger.pau@citrix.com>
To: xen-devel@lists.xenproject.org
Subject: [PATCH v4 5/6] x86/hvm: fail domain creation without a params page
Date: Mon, 23 Mar 2026 16:00:00 +0100
Message-ID: <20260323150000.6666-6-roger.pau@citrix.com>
In-Reply-To: <20260323150000.6666-1-roger.pau@citrix.com>
Content-Type: text/plain; charset=UTF-8

Signed-off-by: Roger Pau Monné <roger.pau@citrix.com>
---
${HVM_DIFF}-- 
2.51.0
`,
        { crlf: true },
      ),
    );
    expectAgree(r, mi);
    expect(r.kind).toBe('patch');
    expect(r.parsedSubject.series).toMatchObject({ version: 4, index: 5, total: 6 });
    const h = r.diff!.files[0].hunks[0];
    expect(h.lines.filter((l) => l.kind === 'add').map((l) => l.newLine)).toEqual([415, 416, 417]);
    // The mail's line ends are transport, not content: no "\r" in the diff text.
    expect(h.lines.some((l) => l.text.endsWith('\r'))).toBe(false);
    expect(r.whitespaceDamaged).toBe(false);
  });
});

// ---------------------------------------------------------------- subject prefixes

describe('subject prefixes', () => {
  const body = `Signed-off-by: Julien Grall <jgrall@amazon.com>
---
${SCHED_DIFF}`;
  const withSubject = (subject: string) =>
    mail(`
From: Julien Grall <julien@xen.org>
To: xen-devel@lists.xenproject.org
Subject: ${subject}
Date: Tue, 24 Mar 2026 13:00:00 +0000
Message-ID: <20260324130000.${subject.length}-1-julien@xen.org>
Content-Type: text/plain; charset=UTF-8

${body}`);

  test('"[PATCH] [PATCH v2 3/7]": both brackets go, the marker reads v2 3/7', async () => {
    const [r, mi] = await both(withSubject('[PATCH] [PATCH v2 3/7] xen/sched: finish migrations later'));
    expectAgree(r, mi);
    expect(r.parsedSubject.clean).toBe('xen/sched: finish migrations later');
    expect(r.parsedSubject.series).toMatchObject({ version: 2, index: 3, total: 7 });
    expect(r.kind).toBe('patch');
  });

  test('"Re: [Xen-devel] [PATCH v2 3/7]": list tag and reply prefix go', async () => {
    const [r, mi] = await both(withSubject('Re: [Xen-devel] [PATCH v2 3/7] xen/sched: finish migrations later'));
    expectAgree(r, mi);
    expect(r.parsedSubject.reply).toBe(true);
    expect(r.kind).toBe('reply');
  });

  test.each([
    ['Fwd: [PATCH] xen/sched: finish migrations later', 'Fwd: [PATCH] xen/sched: finish migrations later', false],
    ['AW: [PATCH v2 3/7] xen/sched: finish migrations later', 'AW: [PATCH v2 3/7] xen/sched: finish migrations later', true],
  ])('"%s": a forward/localised reply prefix (deliberate difference)', async (subject, theirs, reply) => {
    const [r, mi] = await both(withSubject(subject));
    expectAgree(r, mi, ['subject']);
    // git mailinfo strips only "Re:" and brackets, so "Fwd:"/"AW:" and the bracket after them
    // would end up in the commit title. The title a reviewer discusses is the patch's own.
    expect(mi.subject).toBe(theirs);
    expect(r.parsedSubject.clean).toBe('xen/sched: finish migrations later');
    expect(r.parsedSubject.reply).toBe(reply);
  });

  test('"[RFC PATCH for-4.21 v3 02/10]"', async () => {
    const [r, mi] = await both(withSubject('[RFC PATCH for-4.21 v3 02/10] xen/sched: finish migrations later'));
    expectAgree(r, mi);
    expect(r.parsedSubject.series).toMatchObject({ version: 3, index: 2, total: 10, rfc: true, targets: ['for-4.21'] });
  });

  test('no Subject header at all', async () => {
    const raw = mail(`
From: Julien Grall <julien@xen.org>
To: xen-devel@lists.xenproject.org
Date: Tue, 24 Mar 2026 13:30:00 +0000
Message-ID: <20260324133000.1-1-julien@xen.org>

${body}`);
    const [r, mi] = await both(raw);
    expectAgree(r, mi);
    expect(r.subject).toBe('');
    expect(r.parsedSubject.series).toBeNull();
    expect(r.kind).toBe('patch');
  });
});

// ---------------------------------------------------------------- diff shapes

describe('diff shapes', () => {
  const header = (subject: string, id: string) => `From: Frediano Ziglio <frediano.ziglio@cloud.com>
To: xen-devel@lists.xenproject.org
Subject: [PATCH] ${subject}
Date: Wed, 25 Mar 2026 10:00:00 +0000
Message-ID: <${id}@cloud.com>
Content-Type: text/plain; charset=UTF-8
`;

  test('"\\ No newline at end of file"', async () => {
    const [r, mi] = await both(
      mail(`
${header('tools/misc: add the missing newline', 'nonl-1')}
Signed-off-by: Frediano Ziglio <frediano.ziglio@cloud.com>
---
diff --git a/tools/misc/xen-diag.conf b/tools/misc/xen-diag.conf
index 1234567..89abcde 100644
--- a/tools/misc/xen-diag.conf
+++ b/tools/misc/xen-diag.conf
@@ -1,2 +1,2 @@
 # xen-diag defaults
-verbose=0
\\ No newline at end of file
+verbose=0
-- 
2.51.0
`),
    );
    expectAgree(r, mi);
    const lines = r.diff!.files[0].hunks[0].lines;
    expect(lines.map((l) => [l.kind, l.text, !!l.noNewline])).toEqual([
      ['ctx', '# xen-diag defaults', false],
      ['del', 'verbose=0', true],
      ['add', 'verbose=0', false],
    ]);
    expect(r.diff!.damage).toEqual([]);
  });

  test('git renames with a similarity index, one of them changed too', async () => {
    const [r, mi] = await both(
      mail(`
${header('xen/sched: move the null scheduler next to the others', 'rename-1')}
Signed-off-by: Frediano Ziglio <frediano.ziglio@cloud.com>
---
 xen/common/{sched_null.c => sched/null.c} | 2 +-
 xen/include/xen/{sched-null.h => sched/null.h} | 0
 2 files changed, 1 insertion(+), 1 deletion(-)
 rename xen/common/{sched_null.c => sched/null.c} (98%)
 rename xen/include/xen/{sched-null.h => sched/null.h} (100%)

diff --git a/xen/common/sched_null.c b/xen/common/sched/null.c
similarity index 98%
rename from xen/common/sched_null.c
rename to xen/common/sched/null.c
index 1a2b3c4..5d6e7f8 100644
--- a/xen/common/sched_null.c
+++ b/xen/common/sched/null.c
@@ -30,7 +30,7 @@
 #include <xen/sched.h>
 #include <xen/softirq.h>
 #include <xen/trace.h>
-#include "sched-if.h"
+#include "private.h"
 
 /*
  * null tracing events. Check include/public/trace.h for more details.
diff --git a/xen/include/xen/sched-null.h b/xen/include/xen/sched/null.h
similarity index 100%
rename from xen/include/xen/sched-null.h
rename to xen/include/xen/sched/null.h
`),
    );
    expectAgree(r, mi);
    expect(r.diff!.files.map((f) => [f.status, f.oldPath, f.newPath, f.similarity, f.hunks.length])).toEqual([
      ['renamed', 'xen/common/sched_null.c', 'xen/common/sched/null.c', 98, 1],
      ['renamed', 'xen/include/xen/sched-null.h', 'xen/include/xen/sched/null.h', 100, 0],
    ]);
    expect(r.diff!.files[0].hunks[0].lines.find((l) => l.kind === 'add')).toMatchObject({ text: '#include "private.h"', newLine: 33, oldLine: null });
  });

  test('a GIT binary patch next to a text change', async () => {
    const [r, mi] = await both(
      mail(`
${header('docs: add the grant table figure', 'binary-1')}
Signed-off-by: Frediano Ziglio <frediano.ziglio@cloud.com>
---
 docs/figs/grant-table.png | Bin 0 -> 48 bytes
 xen/common/sched/core.c   | 2 +-
 2 files changed, 1 insertion(+), 1 deletion(-)
 create mode 100644 docs/figs/grant-table.png

diff --git a/docs/figs/grant-table.png b/docs/figs/grant-table.png
new file mode 100644
index 0000000000000000000000000000000000000000..8f66a9586699fd124026a4e79f4831078bdfd7fe
GIT binary patch
literal 48
zcmeAS@N?(olHy\`uVBq!ia0!ZTSbFNch-F;!inE\`@Z4%p7U-&9zpVGPR@()?3^q!5^
E0E)d6?f?J)

literal 0
HcmV?d00001

${SCHED_DIFF}-- 
2.51.0
`),
    );
    expectAgree(r, mi);
    expect(r.diff!.files.map((f) => [f.path, f.status, f.binary])).toEqual([
      ['docs/figs/grant-table.png', 'added', true],
      ['xen/common/sched/core.c', 'modified', false],
    ]);
    expect(r.diff!.damage).toEqual([]);
  });

  test('a diff without "diff --git" and "index" lines (Thunderbird, diff -u)', async () => {
    const [r, mi] = await both(
      mail(`
${header('xen/sched: keep running units where they are', 'plain-1')}
Signed-off-by: Frediano Ziglio <frediano.ziglio@cloud.com>
---
--- a/xen/common/sched/core.c\t2026-03-25 09:00:00.000000000 +0000
+++ b/xen/common/sched/core.c\t2026-03-25 09:30:00.000000000 +0000
${SCHED_HUNK}--- a/xen/arch/x86/hvm/hvm.c
+++ b/xen/arch/x86/hvm/hvm.c
${HVM_HUNK}`),
    );
    expectAgree(r, mi);
    expect(r.diff!.files.map((f) => f.status)).toEqual(['modified', 'modified']);
    expect(r.diff!.files[1].hunks[0].lines.filter((l) => l.kind === 'add').map((l) => l.newLine)).toEqual([415, 416, 417]);
  });

  test('a mode change, a new empty file and a removed "---" line in one patch', async () => {
    const [r, mi] = await both(
      mail(`
${header('automation: make the runner executable and drop the YAML marker', 'modes-1')}
Signed-off-by: Frediano Ziglio <frediano.ziglio@cloud.com>
---
 automation/gitlab-ci/test.yaml | 1 -
 automation/scripts/qemu-smoke  | 0
 automation/tests/.keep         | 0
 3 files changed, 1 deletion(-)
 mode change 100644 => 100755 automation/scripts/qemu-smoke
 create mode 100644 automation/tests/.keep

diff --git a/automation/gitlab-ci/test.yaml b/automation/gitlab-ci/test.yaml
index 4b825dc..e69de29 100644
--- a/automation/gitlab-ci/test.yaml
+++ b/automation/gitlab-ci/test.yaml
@@ -1,3 +1,2 @@
----
 .test-jobs-common:
   stage: test
diff --git a/automation/scripts/qemu-smoke b/automation/scripts/qemu-smoke
old mode 100644
new mode 100755
diff --git a/automation/tests/.keep b/automation/tests/.keep
new file mode 100644
index 0000000..e69de29
`),
    );
    expectAgree(r, mi);
    expect(r.diff!.files.map((f) => [f.path, f.status, f.oldMode ?? null, f.newMode ?? null])).toEqual([
      ['automation/gitlab-ci/test.yaml', 'modified', '100644', '100644'],
      ['automation/scripts/qemu-smoke', 'modified', '100644', '100755'],
      ['automation/tests/.keep', 'added', null, '100644'],
    ]);
    expect(r.diff!.files[0].hunks[0].lines[0]).toMatchObject({ kind: 'del', text: '---', oldLine: 1 });
    expect(r.diff!.damage).toEqual([]);
  });
});

// ---------------------------------------------------------------- mails without a patch

test('a [GIT PULL] mail with a diffstat but no diff of its own is not a patch', async () => {
  const [r, mi] = await both(
    mail(`
From: Juergen Gross <jgross@suse.com>
To: torvalds@linux-foundation.org
Cc: linux-kernel@vger.kernel.org, xen-devel@lists.xenproject.org
Subject: [GIT PULL] xen: branch for v7.1-rc3
Date: Fri, 27 Mar 2026 08:00:00 +0100
Message-ID: <20260327070000.8888-1-jgross@suse.com>
Content-Type: text/plain; charset=UTF-8

Linus,

Please git pull the following tag:

 git://git.kernel.org/pub/scm/linux/kernel/git/xen/tip.git for-linus-7.1a-rc3-tag

xen: branch for v7.1-rc3

It contains a single cleanup of the xenbus driver.

Thanks.

Juergen

 drivers/xen/xenbus/xenbus_probe.c | 2 +-
 1 file changed, 1 insertion(+), 1 deletion(-)

Juergen Gross (1):
      xen/xenbus: simplify xenbus_match()
`),
  );
  // mailinfo writes no patch at all.
  expect(mi.patch).toBe('');
  expect(mi.files).toEqual([]);
  expect(r.files).toEqual([]);
  expect(r.diff).toBeNull();
  expect(r.kind).not.toBe('patch');
  // A marker and a diffstat but no diff: read like a cover letter, the head of what it pulls.
  expect(r.kind).toBe('cover');
  expect(r.parsedSubject.series?.prefixes).toEqual(['GIT PULL']);
  expect(r.parsedSubject.clean).toBe(mi.subject);
});

// ---------------------------------------------------------------- DMARC-munged senders

describe('senders rewritten by the list for DMARC', () => {
  // Lists rewrite From: of senders whose domain publishes DMARC p=reject to the list's own
  // address and keep the sender in Reply-To (Mailman) or X-Original-From (Google Groups).
  // git mailinfo takes the rewritten From: as the author; patchvet takes the person back, as
  // patchwork and b4 do: a list is never the author of a patch (deliberate difference).
  const MAILMAN = `List-Id: Xen developer discussion <xen-devel.lists.xenproject.org>
List-Post: <mailto:xen-devel@lists.xenproject.org>
Sender: "Xen-devel" <xen-devel-bounces@lists.xenproject.org>`;

  test('Mailman: From "Jane Doe via Xen-devel" <list>, the sender in Reply-To', async () => {
    const [r, mi] = await both(
      mail(`
From: "Jane Doe via Xen-devel" <xen-devel@lists.xenproject.org>
Reply-To: Jane Doe <jane@example.com>
To: xen-devel@lists.xenproject.org
Subject: [PATCH v2 2/5] xen/sched: don't finish a migration that is still running
Date: Mon, 30 Mar 2026 09:00:00 +0000
Message-ID: <20260330090000.1010-3-jane@example.com>
In-Reply-To: <20260330090000.1010-1-jane@example.com>
${MAILMAN}
Content-Type: text/plain; charset=UTF-8

Signed-off-by: Jane Doe <jane@example.com>
---
${SCHED_DIFF}`),
    );
    expectAgree(r, mi, ['author']);
    expect(mi.author).toBe('Jane Doe via Xen-devel');
    expect(mi.email).toBe('xen-devel@lists.xenproject.org');
    expect(r.author).toEqual({ name: 'Jane Doe', address: 'jane@example.com' });
    // The sender is the person too (series are grouped by sender; replies go to her); the
    // warning keeps what the header said.
    expect(r.from).toEqual({ name: 'Jane Doe', address: 'jane@example.com' });
    expect(r.warnings).toContain(
      'sender taken from Reply-To: the list rewrote From: to its own address ("Jane Doe via Xen-devel" <xen-devel@lists.xenproject.org>), as lists do for senders whose domain publishes DMARC p=reject',
    );
    expect(r.kind).toBe('patch');
    expect(r.parsedSubject.series).toMatchObject({ version: 2, index: 2, total: 5 });
  });

  test('Mailman with reply-to-list: the list in Reply-To is passed over, a quoted "Doe, Jane" is read whole', async () => {
    const [r, mi] = await both(
      mail(`
From: "Doe, Jane via Xen-devel" <xen-devel@lists.xenproject.org>
Reply-To: xen-devel@lists.xenproject.org, "Doe, Jane" <jane@example.com>
To: xen-devel@lists.xenproject.org
Subject: [PATCH] x86/hvm: fail domain creation without a params page
Date: Mon, 30 Mar 2026 09:30:00 +0000
Message-ID: <20260330093000.2020-1-jane@example.com>
${MAILMAN}
Content-Type: text/plain; charset=UTF-8

Signed-off-by: Jane Doe <jane@example.com>
---
${HVM_DIFF}`),
    );
    expectAgree(r, mi, ['author']);
    expect(mi.email).toBe('xen-devel@lists.xenproject.org');
    expect(r.author).toEqual({ name: 'Doe, Jane', address: 'jane@example.com' });
  });

  test('Google Groups: From \'Jane Doe\' via Group <group>, the sender in X-Original-From (it wins over Reply-To)', async () => {
    const [r, mi] = await both(
      mail(`
From: 'Jane Doe' via Xen ARM <xen-arm@googlegroups.com>
X-Original-From: =?UTF-8?q?Jane_Do=C3=A9?= <jane@example.com>
Reply-To: Jane Doe <jane.doe@home.example>
To: xen-arm@googlegroups.com
Subject: [PATCH] xen/arm: fail domain creation without a params page
Date: Tue, 31 Mar 2026 10:00:00 +0000
Message-ID: <20260331100000.3030-1-jane@example.com>
List-Post: <https://groups.google.com/group/xen-arm/post>, <mailto:xen-arm@googlegroups.com>
List-Id: <xen-arm.googlegroups.com>
Mailing-list: list xen-arm@googlegroups.com; contact xen-arm+owners@googlegroups.com
Content-Type: text/plain; charset=UTF-8

Signed-off-by: Jane Doé <jane@example.com>
---
${HVM_DIFF}`),
    );
    expectAgree(r, mi, ['author']);
    expect(mi.author).toBe("'Jane Doe' via Xen ARM");
    expect(mi.email).toBe('xen-arm@googlegroups.com');
    expect(r.author).toEqual({ name: 'Jane Doé', address: 'jane@example.com' });
    expect(r.from).toEqual({ name: 'Jane Doé', address: 'jane@example.com' });
    expect(r.warnings.filter((w) => /^sender taken from X-Original-From: the list rewrote From:/.test(w))).toHaveLength(1);
  });

  test('" via " in the name of a sender who is not the list: From is kept', async () => {
    // A review tool relaying for a person: its address is not the list's, so nothing was
    // rewritten by the list and Reply-To is not an author.
    const [r, mi] = await both(
      mail(`
From: "Jane Doe via Gerrit" <gerrit@review.example.org>
Reply-To: Jane Doe <jane@example.com>
To: xen-devel@lists.xenproject.org
Subject: [PATCH] xen/sched: don't finish a migration that is still running
Date: Wed, 1 Apr 2026 11:00:00 +0000
Message-ID: <gerrit.1743505200000.I0123456789abcdef@review.example.org>
${MAILMAN}
Content-Type: text/plain; charset=UTF-8

Signed-off-by: Jane Doe <jane@example.com>
---
${SCHED_DIFF}`),
    );
    expectAgree(r, mi);
    expect(r.author).toEqual({ name: 'Jane Doe via Gerrit', address: 'gerrit@review.example.org' });
    expect(r.from).toEqual(r.author);
    expect(r.warnings.join(' ')).not.toMatch(/taken from/);
  });

  test('a munged mail with an in-body From: the in-body author wins, as with git am', async () => {
    const [r, mi] = await both(
      mail(`
From: "Jane Doe via Xen-devel" <xen-devel@lists.xenproject.org>
Reply-To: Jane Doe <jane@example.com>
To: xen-devel@lists.xenproject.org
Subject: [PATCH 3/5] xen/xenbus: simplify xenbus_match()
Date: Thu, 2 Apr 2026 12:00:00 +0000
Message-ID: <20260402120000.4040-4-jane@example.com>
${MAILMAN}
Content-Type: text/plain; charset=UTF-8

From: John Smith <john.smith@example.org>

Signed-off-by: John Smith <john.smith@example.org>
Signed-off-by: Jane Doe <jane@example.com>
---
${XENBUS_DIFF}`),
    );
    expectAgree(r, mi);
    expect(r.author).toEqual({ name: 'John Smith', address: 'john.smith@example.org' });
    // The sender is still Jane, not the list.
    expect(r.from).toEqual({ name: 'Jane Doe', address: 'jane@example.com' });
    expect(r.warnings.filter((w) => /^sender taken from Reply-To:/.test(w))).toHaveLength(1);
  });
});

// ---------------------------------------------------------------- shapes from other lists

// Re-created from shapes seen in linux-kernel, linux-mips and git list archives (older
// clients and scripts): written here with Xen names and content.
describe('older list shapes', () => {
  test('"[PATCH]: title" (Mew/Gnus era), the diff right after Signed-off-by with no "---"', async () => {
    const [r, mi] = await both(
      mail(`
Date: Thu, 26 Mar 2026 15:36:48 -0800 (PST)
Message-Id: <20260326.153648.271610.keir@xen.example>
To: xen-devel@lists.xenproject.org
Subject: [PATCH]: Fix the migrate path for running units
From: "Keir A. Fraser" <keir@xen.example>
X-Mailer: Mew version 6.8 on Emacs 29.1
Mime-Version: 1.0
Content-Type: Text/Plain; charset=us-ascii
Content-Transfer-Encoding: 7bit


A unit that is still running can be picked by the tick and finished
early. Checking the migrating flag too closes the window.

Signed-off-by: Keir A. Fraser <keir@xen.example>

${SCHED_DIFF}`),
    );
    expectAgree(r, mi);
    expect(r.parsedSubject.clean).toBe('Fix the migrate path for running units');
    expect(r.kind).toBe('patch');
  });

  test('"[PATCH] Re: <their subject>": a reply turned into a patch, the fix inline in a part named "patch" (BitKeeper names)', async () => {
    const [r, mi] = await both(
      mail(`
Message-ID: <3F54D7B5.1020304@xen.example>
Date: Fri, 27 Mar 2026 13:47:33 -0400
From: Ian Pratt <ian@xen.example>
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Thunderbird/128.3.0
MIME-Version: 1.0
To: Tim Deegan <tim@xen.example>
CC: xen-devel@lists.xenproject.org
Subject: [PATCH] Re: 4.21-rc2: hvm.c doesn't build without CONFIG_HVM_PARAMS
References: <20260327164917.GM23729@xen.example>
In-Reply-To: <20260327164917.GM23729@xen.example>
Content-Type: multipart/mixed;
 boundary="------------030603050304090709040909"

This is a multi-part message in MIME format.
--------------030603050304090709040909
Content-Type: text/plain; charset=us-ascii; format=flowed
Content-Transfer-Encoding: 7bit

Tim Deegan wrote:
> hvm.c: In function 'hvm_domain_initialise':
> hvm.c:415: error: 'params' undeclared

Fixed, please apply.

	Ian

--------------030603050304090709040909
Content-Type: text/plain;
 name="patch"
Content-Transfer-Encoding: 7bit
Content-Disposition: inline;
 filename="patch"

===== xen/arch/x86/hvm/hvm.c 1.22 vs edited =====
--- 1.22/xen/arch/x86/hvm/hvm.c\tThu Mar 26 16:42:22 2026
+++ edited/xen/arch/x86/hvm/hvm.c\tFri Mar 27 13:44:18 2026
${HVM_HUNK}
--------------030603050304090709040909--
`),
    );
    expectAgree(r, mi);
    // git am commits it under the thread's own title, without the "Re:".
    expect(r.parsedSubject.clean).toBe("4.21-rc2: hvm.c doesn't build without CONFIG_HVM_PARAMS");
    // Still a patch, not a reply: its marker comes before the "Re:".
    expect(r.parsedSubject.reply).toBe(false);
    expect(r.kind).toBe('patch');
    expect(r.files).toEqual(['xen/arch/x86/hvm/hvm.c']);
  });

  test('akpm patch-scripts "diff -puN": tree names differ and the old name carries "~patch-name"', async () => {
    const [r, mi] = await both(
      mail(`
To: xen-devel@lists.xenproject.org
Subject: [PATCH]: sched 1/3: keep running units where they are
From: Juan Lopez <juan@xen.example>
Date: Sat, 28 Mar 2026 03:53:43 +0100
Message-ID: <m2adfheczs.fsf@xen.example>
MIME-Version: 1.0
Content-Type: text/plain; charset=us-ascii


Running units must not be finished migrating.


 xen/common/sched/core.c |    2 +-
 1 files changed, 1 insertions(+), 1 deletions(-)

diff -puN xen/common/sched/core.c~sched-running-units xen/common/sched/core.c
--- 4.21/xen/common/sched/core.c~sched-running-units\t2026-03-27 01:37:45.000000000 +0100
+++ 4.21-juan/xen/common/sched/core.c\t2026-03-27 01:43:17.000000000 +0100
${SCHED_HUNK}
_
`),
    );
    expectAgree(r, mi);
    expect(r.files).toEqual(['xen/common/sched/core.c']);
    expect(r.diff!.files[0]).toMatchObject({ oldPath: 'xen/common/sched/core.c', newPath: 'xen/common/sched/core.c', status: 'modified' });
  });
});
