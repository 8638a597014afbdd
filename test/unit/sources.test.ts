import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { createReadStream } from 'node:fs';
import { createGunzip, gunzipSync, gzipSync } from 'node:zlib';
import type { InputError, RawMessage } from '../../src/model.js';
import {
  InputOpenError,
  MboxSplitter,
  isEnvelopeText,
  readInputs,
  splitMbox,
  splitMboxBuffer,
} from '../../src/sources/index.js';

const SHARED = resolve(process.cwd(), '../shared/fixtures');
const OWN = resolve(process.cwd(), 'test/fixtures/sources');
const REF = join(SHARED, 'xen-fpu-reset-v2-1of9.mbox');
const EAGER = join(SHARED, 'xen-eager-fpu-v2.mbox');
const FTW = join(SHARED, 'xen-ftw-alloc.mbox');
const HYPERV = join(SHARED, 'real/linux-hyperv-2026.mbox.gz');

async function collect(it: AsyncIterable<RawMessage>): Promise<RawMessage[]> {
  const out: RawMessage[] = [];
  for await (const m of it) out.push(m);
  return out;
}

function errorsSink(): { errors: InputError[]; onError: (e: InputError) => void } {
  const errors: InputError[] = [];
  return { errors, onError: (e) => errors.push(e) };
}

async function* chunked(buf: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < buf.length; i += size) yield Buffer.from(buf.subarray(i, i + size));
}

/** What a reader of stored bytes must do to get raw back (mboxrd). */
function unescapeRd(b: Buffer): Buffer {
  return Buffer.from(b.toString('latin1').replace(/^>(>*From )/gm, '$1'), 'latin1');
}

const HEADER_LINE = /^[!-9;-~]+:/;

/** Checks that hold for every message of a well-formed mboxrd file. */
function checkAgainstFile(msgs: RawMessage[], file: Buffer): void {
  let prevEnd = 0;
  for (const m of msgs) {
    const stored = file.subarray(m.ref.offset, m.ref.offset + m.ref.length);
    expect(unescapeRd(stored).equals(m.raw)).toBe(true);
    expect(m.raw.toString('latin1', 0, 200)).toMatch(HEADER_LINE);
    // The line just before the message is its envelope line, and before that an empty line (or the start).
    const before = file.toString('latin1', Math.max(0, m.ref.offset - 200), m.ref.offset);
    expect(before).toMatch(/(^|\n\n)From \S+ [^\n]+\n$/);
    // Between two messages: exactly the mbox format's empty line and the envelope line.
    if (prevEnd > 0) expect(file.toString('latin1', prevEnd, m.ref.offset)).toMatch(/^\nFrom [^\n]+\n$/);
    prevEnd = m.ref.offset + m.ref.length;
  }
}

describe('splitMbox on the xen fixtures', () => {
  test.each([
    [REF, 3],
    [EAGER, 15],
    [FTW, 6],
  ])('%s', async (path, count) => {
    const file = readFileSync(path);
    const { errors, onError } = errorsSink();
    const msgs = await collect(splitMbox(createReadStream(path), path, { onError }));
    expect(errors).toEqual([]);
    expect(msgs).toHaveLength(count);
    checkAgainstFile(msgs, file);
    for (const m of msgs) {
      expect(m.ref.source).toBe(`${path}:${m.ref.offset}`);
      expect(m.ref.file).toBe(path);
      expect(m.raw.toString('latin1')).toMatch(/\nMessage-I[Dd]: *<[^>]+>/i);
    }
    // The empty line that belongs to the mbox format is gone; the message's own empty lines stay
    // (git format-patch ends a patch with "2.53.0\n\n", and the list adds one more).
    if (path === REF) expect(msgs[0].raw.toString().endsWith('\n-- \n2.53.0\n\n\n')).toBe(true);
    expect(file.subarray(msgs[0].ref.offset - 39, msgs[0].ref.offset).toString()).toBe(
      'From mboxrd@z Thu Jan  1 00:00:00 1970\n',
    );
  });

  test('the review in the reference thread gets its ">From" line unescaped', async () => {
    const msgs = await collect(splitMbox(createReadStream(REF), REF));
    const review = msgs[1].raw.toString('utf8');
    expect(review).toContain("\nFrom Xen's point of view, vcpu_create() is the only #RESET-like thing");
    expect(review).not.toContain(">From Xen's");
    // ref.length counts the stored (escaped) bytes; raw lost exactly one '>'.
    expect(msgs[1].ref.length - msgs[1].raw.length).toBe(1);
    expect(msgs[0].ref.length).toBe(msgs[0].raw.length);
    // The other messages do not contain the sentence: the split is at the right places.
    expect(msgs[0].raw.toString()).not.toContain("point of view");
    expect(msgs[2].raw.toString()).toMatch(/^> ?>? ?From Xen's point of view/m);
  });

  test('1-byte and 7-byte chunks give the same messages as one buffer', async () => {
    for (const path of [REF, join(OWN, 'escapes.mbox'), join(OWN, 'crlf.mbox'), join(OWN, 'formats.mbox'), join(OWN, 'no-envelope.mbox')]) {
      const buf = readFileSync(path);
      const whole = splitMboxBuffer(buf, path);
      expect(whole.length).toBeGreaterThan(1);
      for (const size of [1, 7, 4096]) {
        const parts = await collect(splitMbox(chunked(buf, size), path));
        expect(parts.map((m) => m.ref)).toEqual(whole.map((m) => m.ref));
        expect(parts.map((m) => m.raw.toString('latin1'))).toEqual(whole.map((m) => m.raw.toString('latin1')));
      }
    }
  });
});

describe('linux-hyperv archive (3,000 real mails, gzip)', () => {
  test('readInputs finds every message at the right offset of the decompressed stream', async () => {
    const file = gunzipSync(readFileSync(HYPERV));
    const { errors, onError } = errorsSink();
    const msgs = await collect(readInputs([HYPERV], { onError }));
    expect(errors).toEqual([]);
    expect(msgs).toHaveLength(3000);
    checkAgainstFile(msgs, file);
    // Six ">From " body lines in the archive, each unescaped once.
    const lost = msgs.reduce((n, m) => n + (m.ref.length - m.raw.length), 0);
    expect(lost).toBe(6);
    expect(msgs[0].ref.offset).toBe('From mboxrd@z Thu Jan  1 00:00:00 1970\n'.length);
    // The last message ends where the file does, minus the mbox format's empty line.
    const last = msgs[msgs.length - 1];
    expect(last.ref.offset + last.ref.length).toBe(file.length - 1);
  });
});

describe('escaping and separators', () => {
  const path = join(OWN, 'escapes.mbox');

  test('mboxrd removes exactly one ">" from >+From lines', () => {
    const msgs = splitMboxBuffer(readFileSync(path), path);
    expect(msgs).toHaveLength(2);
    const body = msgs[0].raw.toString();
    expect(body).toContain('\nFrom the start, this was one escape.\n');
    expect(body).toContain('\n>From here, two.\n');
    expect(body).toContain('\n>>From there, three.\n');
    expect(body).toContain('\n> From a quote, not an escape.\n');
    expect(body).toContain('\n>Fromage is not an escape either.\n');
  });

  test('mboxo removes the ">" of ">From " only', () => {
    const msgs = splitMboxBuffer(readFileSync(path), path, { format: 'mboxo' });
    const body = msgs[0].raw.toString();
    expect(body).toContain('\nFrom the start, this was one escape.\n');
    expect(body).toContain('\n>>From here, two.\n');
    expect(body).toContain('\n>>>From there, three.\n');
  });

  test('"From " body lines that are not separators do not split', () => {
    const msgs = splitMboxBuffer(readFileSync(path), path);
    const first = msgs[0].raw.toString();
    // after an empty line, but not an envelope:
    expect(first).toContain('\n\nFrom here on the body says From at the start of a line, after an empty line.\n');
    // after a non-empty line:
    expect(first).toContain('\nFrom me to you, after a non-empty line: still the same message.\n');
    // an envelope-looking line right after a non-empty line is body text (git would split here):
    const second = msgs[1].raw.toString();
    expect(second).toMatch(/Looks fine\.[^\n]*\nFrom quoted@example\.org Tue Mar 24 18:20:00 2026\n$/);
    expect(first.endsWith('still the same message.\n')).toBe(true);
  });

  test('envelope grammar', () => {
    for (const good of [
      'From mboxrd@z Thu Jan  1 00:00:00 1970',
      'From 1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d Mon Sep 17 00:00:00 2001',
      'From user@host Tue Mar 24 18:19:29 2026',
      'From - Tue Mar 24 18:19:29 2026',
      'From MAILER-DAEMON Tue Mar 24 18:19:29 2026 +0100',
      'From user@host Tue, 24 Mar 2026 18:19:29 +0100',
      'From user@host Tue Mar 24 18:19:29 CET 2026',
      'From user Sat Jan  3 01:05:34 1998 remote from uunet',
      'From user@host 2026-03-24T18:19:29Z',
    ]) {
      expect([good, isEnvelopeText(good)]).toEqual([good, true]);
    }
    for (const bad of [
      'From here on the code is different, see 2026 notes at 10:00:00',
      'From Xen\'s point of view, vcpu_create() is the only #RESET-like thing',
      'From: Ada <ada@example.org>',
      'From me Tue Mar 24 2026', // no time
      'From me Tue Mar 24 18:19:29', // no year
      'From user@host Tue Mar 24 18:19:29 2026 and then some words',
      'From  ',
    ]) {
      expect([bad, isEnvelopeText(bad)]).toEqual([bad, false]);
    }
  });

  test('git format-patch, Thunderbird and RFC 2822 envelopes; own empty lines kept; no final newline', () => {
    const path2 = join(OWN, 'formats.mbox');
    const buf = readFileSync(path2);
    const { errors, onError } = errorsSink();
    const msgs = splitMboxBuffer(buf, path2, { onError });
    expect(errors).toEqual([]);
    expect(msgs.map((m) => /Subject: (.*)/.exec(m.raw.toString())![1])).toEqual([
      '[PATCH 1/2] first',
      '[PATCH 2/2] second',
      'saved by Thunderbird',
      'RFC 2822 style envelope date',
    ]);
    expect(msgs[0].raw.toString().endsWith('-- \n2.43.0\n')).toBe(true);
    // The message had one empty line of its own before the mbox's: only the mbox's goes.
    expect(msgs[1].raw.toString().endsWith('own.\n\n')).toBe(true);
    expect(msgs[3].raw.toString().endsWith('Body four has no final newline.')).toBe(true);
    expect(msgs[3].ref.offset + msgs[3].ref.length).toBe(buf.length);
    // A leading empty line is skipped: the first message starts after the second line.
    expect(msgs[0].ref.offset).toBe(1 + 'From 1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d Mon Sep 17 00:00:00 2001\n'.length);
  });

  test('CRLF files keep their bytes; the CRLF empty line before a separator is stripped', () => {
    const path3 = join(OWN, 'crlf.mbox');
    const buf = readFileSync(path3);
    const msgs = splitMboxBuffer(buf, path3);
    expect(msgs).toHaveLength(2);
    const first = msgs[0].raw.toString();
    expect(first.startsWith('From: Ada Example <ada@example.org>\r\n')).toBe(true);
    expect(first.endsWith('still the same message.\r\n')).toBe(true);
    expect(first).toContain('\r\n>From here, two.\r\n');
    expect(first).toContain('\r\nFrom the start, this was one escape.\r\n');
    expect(msgs[1].raw.toString().endsWith('Tue Mar 24 18:20:00 2026\r\n')).toBe(true);
    const lf = splitMboxBuffer(readFileSync(join(OWN, 'escapes.mbox')), 'lf');
    expect(msgs.map((m) => m.raw.toString().replace(/\r\n/g, '\n'))).toEqual(lf.map((m) => m.raw.toString()));
  });

  test('an empty message between two envelopes is reported, not yielded', () => {
    const mbox = Buffer.from(
      'From a@b Tue Mar 24 18:19:29 2026\nSubject: one\n\nok\n\n' +
        'From a@b Tue Mar 24 18:19:30 2026\n\n' +
        'From a@b Tue Mar 24 18:19:31 2026\nSubject: three\n\nok\n',
    );
    const { errors, onError } = errorsSink();
    const msgs = splitMboxBuffer(mbox, 'm', { onError });
    expect(msgs.map((m) => m.raw.toString())).toEqual(['Subject: one\n\nok\n', 'Subject: three\n\nok\n']);
    expect(errors).toEqual([{ source: `m:${mbox.indexOf('\n\nFrom a@b Tue Mar 24 18:19:31') + 1}`, message: expect.stringContaining('empty message') }]);
  });

  test('empty input and blank-only input give no message and no error', async () => {
    const { errors, onError } = errorsSink();
    expect(await collect(splitMbox(chunked(Buffer.alloc(0), 1), 'e', { onError }))).toEqual([]);
    expect(splitMboxBuffer(Buffer.from('\n\n'), 'e', { onError })).toEqual([]);
    expect(errors).toEqual([]);
  });
});

describe('streams that are not clean mboxes', () => {
  test('no envelope line at the start: reported, read as one message when it has headers', () => {
    const path = join(OWN, 'no-envelope.mbox');
    const { errors, onError } = errorsSink();
    const msgs = splitMboxBuffer(readFileSync(path), path, { onError });
    expect(errors).toEqual([{ source: `${path}:0`, message: expect.stringContaining("does not start with an mbox 'From ' line") }]);
    expect(msgs).toHaveLength(2);
    expect(msgs[0].ref.offset).toBe(0);
    expect(msgs[0].raw.toString()).toMatch(/^From: Ada Example <ada@example.org>\n[\s\S]*First message, no envelope\.\n$/);
    expect(msgs[1].raw.toString()).toMatch(/^From: Bob Example/);
  });

  test('not mail at the start: reported and skipped up to the first envelope', () => {
    const path = join(OWN, 'junk-start.mbox');
    const { errors, onError } = errorsSink();
    const msgs = splitMboxBuffer(readFileSync(path), path, { onError });
    expect(errors).toHaveLength(1);
    expect(errors[0].source).toBe(`${path}:0`);
    expect(msgs).toHaveLength(1);
    expect(msgs[0].raw.toString()).toMatch(/^From: Bob Example[\s\S]*Only message\.\n$/);
  });

  test('an oversized message is reported with its offset and skipped; the next ones are read', async () => {
    const big = 'x'.repeat(99) + '\n';
    const mbox = Buffer.from(
      'From a@b Tue Mar 24 18:19:29 2026\nSubject: small 1\n\nok\n\n' +
        'From a@b Tue Mar 24 18:19:30 2026\nSubject: big\n\n' + big.repeat(200) + '\n' +
        'From a@b Tue Mar 24 18:19:31 2026\nSubject: small 2\n\nok\n\n',
    );
    const bigOffset = mbox.indexOf('Subject: big');
    const { errors, onError } = errorsSink();
    const msgs = await collect(splitMbox(chunked(mbox, 512), 'big.mbox', { onError, maxMessageBytes: 10_000 }));
    expect(msgs.map((m) => /Subject: (.*)/.exec(m.raw.toString())![1])).toEqual(['small 1', 'small 2']);
    expect(errors).toEqual([{ source: `big.mbox:${bigOffset}`, message: expect.stringContaining('larger than 10000 bytes') }]);
    expect(msgs[1].ref.offset).toBe(mbox.indexOf('Subject: small 2'));
  });

  test('a long line split over many chunks stays whole', () => {
    const line = 'F' + 'y'.repeat(100_000) + '\n';
    const mbox = Buffer.from(`From a@b Tue Mar 24 18:19:29 2026\nSubject: long\n\n${line}>From x\n\n`);
    const s = new MboxSplitter('long');
    const out: RawMessage[] = [];
    for (let i = 0; i < mbox.length; i += 1000) out.push(...s.push(mbox.subarray(i, i + 1000)));
    out.push(...s.end());
    expect(out).toHaveLength(1);
    expect(out[0].raw.toString()).toBe(`Subject: long\n\n${line}From x\n`);
  });

  test('a truncated gzip stream: the messages before are read, the failure is reported', async () => {
    const gz = gzipSync(readFileSync(EAGER));
    const dir = mkdtempSync(join(tmpdir(), 'patchvet-src-'));
    try {
      const p = join(dir, 'cut.mbox.gz');
      writeFileSync(p, gz.subarray(0, Math.floor(gz.length / 2)));
      const { errors, onError } = errorsSink();
      const msgs = await collect(readInputs([p], { onError }));
      expect(msgs.length).toBeGreaterThan(3);
      expect(msgs.length).toBeLessThan(15);
      expect(errors).toHaveLength(1);
      expect(errors[0].message).toMatch(/reading failed .*unexpected end of file.*dropped/);
      const whole = splitMboxBuffer(readFileSync(EAGER), EAGER);
      expect(msgs.map((m) => m.raw.toString('latin1'))).toEqual(whole.slice(0, msgs.length).map((m) => m.raw.toString('latin1')));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('readInputs', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'patchvet-src-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  test('gzip is detected by its magic bytes, whatever the name', async () => {
    const p = join(dir, 'thread.txt');
    writeFileSync(p, gzipSync(readFileSync(REF)));
    const msgs = await collect(readInputs([p]));
    const plain = splitMboxBuffer(readFileSync(REF), p);
    expect(msgs).toHaveLength(3);
    expect(msgs.map((m) => m.ref)).toEqual(plain.map((m) => m.ref));
    expect(msgs.map((m) => m.raw.toString('latin1'))).toEqual(plain.map((m) => m.raw.toString('latin1')));
  });

  test('maildir: cur then new, sorted by name; tmp and dotfiles skipped', async () => {
    const md = join(dir, 'Maildir');
    for (const sub of ['cur', 'new', 'tmp']) mkdirSync(join(md, sub), { recursive: true });
    const mail = (subject: string) => `From: a@example.org\nSubject: ${subject}\nMessage-ID: <${subject}@x>\n\nbody\n`;
    writeFileSync(join(md, 'cur', '1711300002.M2P1.host:2,S'), mail('cur-b'));
    writeFileSync(join(md, 'cur', '1711300001.M1P1.host:2,S'), mail('cur-a'));
    writeFileSync(join(md, 'cur', '.hidden'), mail('hidden'));
    writeFileSync(join(md, 'new', '1711300000.M0P1.host'), mail('new-a'));
    writeFileSync(join(md, 'tmp', '1711300009.M9P1.host'), mail('tmp'));
    mkdirSync(join(md, '.Sent', 'cur'), { recursive: true });
    writeFileSync(join(md, '.Sent', 'cur', 'x'), mail('sent'));
    const msgs = await collect(readInputs([md]));
    expect(msgs.map((m) => /Subject: (.*)/.exec(m.raw.toString())![1])).toEqual(['cur-a', 'cur-b', 'new-a']);
    const f = join(md, 'cur', '1711300001.M1P1.host:2,S');
    expect(msgs[0].ref).toEqual({ source: f, file: f, offset: 0, length: Buffer.byteLength(mail('cur-a')) });
    expect(msgs[0].raw.toString()).toBe(mail('cur-a'));
  });

  test('a single .eml file is one message, even with "From " lines in its body', async () => {
    const p = join(OWN, 'single.eml');
    const msgs = await collect(readInputs([p]));
    expect(msgs).toHaveLength(1);
    expect(msgs[0].raw.equals(readFileSync(p))).toBe(true);
    expect(msgs[0].ref).toEqual({ source: p, file: p, offset: 0, length: readFileSync(p).length });
  });

  test('an .eml that starts with an envelope line is read as an mbox', async () => {
    const p = join(dir, 'saved.eml');
    writeFileSync(p, readFileSync(FTW));
    const msgs = await collect(readInputs([p]));
    expect(msgs).toHaveLength(6);
    expect(msgs[2].ref.source).toBe(`${p}:${msgs[2].ref.offset}`);
  });

  test('a plain folder of .eml/.mbox files, and several inputs, are read in order', async () => {
    const folder = join(dir, 'mails');
    mkdirSync(folder);
    writeFileSync(join(folder, 'a.eml'), readFileSync(join(OWN, 'single.eml')));
    writeFileSync(join(folder, 'b.mbox'), readFileSync(REF));
    writeFileSync(join(folder, 'c.mbox.gz'), gzipSync(readFileSync(FTW)));
    writeFileSync(join(folder, 'README'), 'not mail\n');
    writeFileSync(join(folder, '.d.eml'), 'hidden\n');
    const { errors, onError } = errorsSink();
    const msgs = await collect(readInputs([folder, REF], { onError }));
    expect(errors).toEqual([]);
    expect(msgs).toHaveLength(1 + 3 + 6 + 3);
    expect(msgs.map((m) => m.ref.file)).toEqual([
      join(folder, 'a.eml'),
      ...Array(3).fill(join(folder, 'b.mbox')),
      ...Array(6).fill(join(folder, 'c.mbox.gz')),
      ...Array(3).fill(REF),
    ]);
  });

  test('stdin: mbox, gzip and a single message', async () => {
    const viaStdin = (buf: Buffer) => collect(readInputs(['-'], { stdin: Readable.from(chunked(buf, 1000)) }));
    const m1 = await viaStdin(readFileSync(EAGER));
    expect(m1).toHaveLength(15);
    expect(m1[3].ref.source).toBe(`-:${m1[3].ref.offset}`);
    expect(m1[3].ref.file).toBe('-');
    const m2 = await viaStdin(gzipSync(readFileSync(REF)));
    expect(m2.map((m) => m.ref.offset)).toEqual(splitMboxBuffer(readFileSync(REF), '-').map((m) => m.ref.offset));
    const one = readFileSync(join(OWN, 'single.eml'));
    const m3 = await viaStdin(one);
    expect(m3).toHaveLength(1);
    expect(m3[0].raw.equals(one)).toBe(true);
    expect(m3[0].ref.source).toBe('-:0');
  });

  test('a missing input throws InputOpenError before anything is read, saying what to do', async () => {
    const it = readInputs([REF, join(dir, 'x.mbox')]);
    const err = await it.next().then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(InputOpenError);
    expect((err as InputOpenError).message).toBe(
      `cannot read '${join(dir, 'x.mbox')}': no such file or folder. Give an mbox file (optionally gzip-compressed), a maildir folder, a folder of .eml/.mbox files, a .eml file or - for stdin.`,
    );
    expect((err as InputOpenError).code).toBe('ENOENT');
  });

  test('a folder without mail throws InputOpenError', async () => {
    writeFileSync(join(dir, 'notes.txt'), 'hello\n');
    await expect(collect(readInputs([dir]))).rejects.toThrow(/not a maildir .*holds no \.eml\/\.mbox files/);
  });

  test('permission problems get a message that says what to do', () => {
    const eacces = Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' });
    const e = InputOpenError.from('list.mbox', eacces);
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe('InputOpenError');
    expect(e.message).toMatch(/^cannot read 'list\.mbox': permission denied\. Check its permissions/);
    expect(e.cause).toBe(eacces);
  });

  test('an unreadable file throws InputOpenError (not testable as root, who reads everything)', async () => {
    if (process.getuid?.() === 0) return; // root reads everything
    const p = join(dir, 'secret.mbox');
    writeFileSync(p, readFileSync(REF));
    chmodSync(p, 0o000);
    await expect(collect(readInputs([p]))).rejects.toThrow(/permission denied\. Check its permissions/);
  });

  test('stopping early closes the input', async () => {
    const src = createReadStream(HYPERV).pipe(createGunzip());
    let n = 0;
    for await (const m of splitMbox(src, 'h')) {
      expect(m.raw.length).toBeGreaterThan(0);
      if (++n === 5) break;
    }
    expect(n).toBe(5);
    expect(src.destroyed).toBe(true);
  });
});

describe('memory', () => {
  test('a ~200 MB stream of small messages is split with flat memory', async () => {
    const msg = (i: number) =>
      `From gen@example.org Tue Mar 24 18:19:29 2026\nFrom: Gen <gen@example.org>\nSubject: message ${i}\n` +
      `Message-ID: <gen-${i}@example.org>\n\n` + 'body line that is long enough to matter for the volume\n'.repeat(12) + '\n';
    const TARGET = 200 * 1024 * 1024;
    let produced = 0;
    let messagesMade = 0;
    async function* gen(): AsyncGenerator<Buffer> {
      while (produced < TARGET) {
        let s = '';
        while (s.length < 64 * 1024) s += msg(messagesMade++);
        const b = Buffer.from(s);
        produced += b.length;
        yield b;
      }
    }
    const g = (globalThis as { gc?: () => void }).gc;
    g?.();
    const before = process.memoryUsage().rss;
    let peak = before;
    let count = 0;
    let bytes = 0;
    for await (const m of splitMbox(gen(), 'gen')) {
      count++;
      bytes += m.raw.length;
      if ((count & 1023) === 0) peak = Math.max(peak, process.memoryUsage().rss);
    }
    g?.();
    peak = Math.max(peak, process.memoryUsage().rss);
    expect(produced).toBeGreaterThanOrEqual(TARGET);
    expect(count).toBe(messagesMade);
    expect(bytes).toBe(produced - messagesMade * ('From gen@example.org Tue Mar 24 18:19:29 2026\n'.length + 1));
    expect(peak - before).toBeLessThan(100 * 1024 * 1024);
  });
});
