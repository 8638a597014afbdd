// `patchvet threads` end to end on the real reference thread, in-process (the parse pool
// falls back to in-process parsing under jest) and through bin/patchvet (worker threads).
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { pathToFileURL } from 'node:url';
import { run } from '../helpers/cli.js';

const FIX = join(process.cwd(), '../shared/fixtures');
const REF = join(FIX, 'xen-fpu-reset-v2-1of9.mbox');

describe('threads on the reference thread', () => {
  let doc: any;
  beforeAll(async () => {
    const r = await run(['threads', REF, '--format', 'json']);
    expect(r.code).toBe(0);
    doc = JSON.parse(r.out);
  });

  test('one thread rooted at the missing cover letter', () => {
    expect(doc.schema).toBe('patchvet/threads@1');
    expect(doc.threads).toHaveLength(1);
    const t = doc.threads[0];
    expect(t.root).toBe('<20260324181937.2465574-1-ross.lagerwall@citrix.com>');
    expect(t.rootMissing).toBe(true);
    expect(t.messages.map((m: any) => [m.messageId, m.ghost, m.kind])).toEqual([
      ['<20260324181937.2465574-1-ross.lagerwall@citrix.com>', true, null],
      ['<20260324181937.2465574-2-ross.lagerwall@citrix.com>', false, 'patch'],
      ['<0471e754-9ea7-4fb5-b573-b770713b2f53@citrix.com>', false, 'reply'],
      [expect.stringMatching(/^<.+>$/), false, 'reply'],
    ]);
    expect(doc.errors).toEqual([]);
  });

  test('the patch: series, author, files, trailers, parent', () => {
    const p = doc.threads[0].messages[1];
    expect(p.parent).toBe('<20260324181937.2465574-1-ross.lagerwall@citrix.com>');
    expect(p.series).toMatchObject({ version: 2, index: 1, total: 9, rfc: false, prefixes: ['PATCH'] });
    expect(p.author).toEqual({ name: 'Ross Lagerwall', address: 'ross.lagerwall@citrix.com' });
    expect(p.files).toEqual(['xen/arch/x86/domain.c']);
    expect(p.trailers).toEqual([{ name: 'Signed-off-by', value: 'Ross Lagerwall <ross.lagerwall@citrix.com>' }]);
    expect(p.date).toBe('2026-03-24T18:19:29.000Z');
    expect(doc.series).toHaveLength(1);
    expect(doc.series[0]).toMatchObject({ version: 2, total: 9, complete: false });
    expect(doc.series[0].missing).toEqual([2, 3, 4, 5, 6, 7, 8, 9]);
  });

  test("the maintainer's review is anchored to the added vcpu_reset_fpu(v) line", () => {
    const review = doc.threads[0].messages[2];
    expect(review.parent).toBe('<20260324181937.2465574-2-ross.lagerwall@citrix.com>');
    expect(review.from.address).toBe('andrew.cooper3@citrix.com');
    const onCode = review.comments.filter((c: any) => c.file !== null);
    const alloc = onCode.find((c: any) => /part of allocating the memory/.test(c.text));
    expect(alloc).toMatchObject({ file: 'xen/arch/x86/domain.c', side: 'new' });
    expect([525, 526]).toContain(alloc.line);
    expect(alloc.quoted.join('\n')).toContain('vcpu_reset_fpu(v);');
    expect(alloc.text).toMatch(/idle vCPU doesn't take this path/);
    const how = review.comments.find((c: any) => /^How\?/.test(c.text));
    expect(how).toMatchObject({ file: null, line: null });
  });

  test("the author's flowed answer comments on prose", () => {
    const answer = doc.threads[0].messages[3];
    expect(answer.author.address).toBe('ross.lagerwall@citrix.com');
    const no = answer.comments.find((c: any) => /^No, since it means the backing memory/.test(c.text));
    expect(no).toMatchObject({ file: null, line: null });
    const yes = answer.comments.find((c: any) => /but yes, that does seem like the best way/.test(c.text));
    expect(yes).toMatchObject({ file: null });
  });

  test('text format is a readable tree', async () => {
    const r = await run(['threads', REF, '--format', 'text']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/root not in input/);
    expect(r.out).toMatch(/patch v2 1\/9: \[PATCH v2 1\/9\] x86\/domain: Ensure a vCPU's FPU is reset early/);
    expect(r.out).toMatch(/xen\/arch\/x86\/domain\.c:52[56] \(new, arch_vcpu_create\)/);
  });
});

describe('inputs and errors', () => {
  test('several inputs, stdin, and duplicates collapsed', async () => {
    const stdin = Readable.from([readFileSync(REF)]);
    const r = await run(['threads', REF, '-', '--format', 'json'], stdin);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.out);
    expect(doc.stats.duplicates).toBe(3);
    expect(doc.threads).toHaveLength(1);
    expect(doc.threads[0].messages).toHaveLength(4);
  });

  test('an unreadable input exits 2 with advice', async () => {
    const r = await run(['threads', '/nonexistent/x.mbox']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/x\.mbox/);
  });

  test('a usage error exits 2', async () => {
    const r = await run(['threads', REF, '--format', 'yaml']);
    expect(r.code).toBe(2);
  });

  test('a malformed message is reported with its offset and skipped', async () => {
    const good = readFileSync(REF, 'latin1');
    const bad = 'From mboxrd@z Thu Jan  1 00:00:00 1970\n\x00\x01\x02garbage without any header\n\n';
    const stdin = Readable.from([Buffer.from(bad + good, 'latin1')]);
    const r = await run(['threads', '-', '--format', 'json'], stdin);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.out);
    expect(doc.errors).toHaveLength(1);
    expect(doc.errors[0].source).toMatch(/^-:\d+$/);
    expect(doc.threads[0].messages).toHaveLength(4);
    expect(r.err).toMatch(/-:\d+: skipped/);
  });
});

test('bin/patchvet (compiled, worker threads) gives the same JSON as in-process', async () => {
  // --workers: an input this small is otherwise parsed on the main thread.
  const viaBin = execFileSync(join(process.cwd(), 'bin/patchvet'), ['threads', REF, '--format', 'json', '--workers', '2'], { encoding: 'utf8' });
  const inProc = await run(['threads', REF, '--format', 'json']);
  expect(JSON.parse(viaBin)).toEqual(JSON.parse(inProc.out));
});

test('a parser worker that dies costs only the message that killed it', () => {
  // The marker sits in the maintainer's review (the 2nd mail): the worker crashes on it, the pool
  // retries the batch one message at a time in fresh workers, and reports just that one mail.
  const res = spawnSync(join(process.cwd(), 'bin/patchvet'), ['threads', REF, '--format', 'json', '--workers', '2'], {
    encoding: 'utf8',
    env: { ...process.env, PATCHVET_TEST_WORKER_CRASH_MARKER: 'X-Rspamd-Queue-Id: 4024D31D9C6' },
  });
  expect(res.status).toBe(0);
  const doc = JSON.parse(res.stdout);
  expect(doc.errors).toHaveLength(1);
  expect(doc.errors[0].source).toMatch(/xen-fpu-reset-v2-1of9\.mbox:\d+$/);
  expect(doc.errors[0].message).toMatch(/crashed/);
  const ids = doc.threads.flatMap((t: any) => t.messages.filter((m: any) => !m.ghost).map((m: any) => m.messageId));
  expect(ids).toContain('<20260324181937.2465574-2-ross.lagerwall@citrix.com>');
  expect(ids).not.toContain('<0471e754-9ea7-4fb5-b573-b770713b2f53@citrix.com>');
  expect(ids).toHaveLength(2);
});

test("bin/patchvet's V8 flags leave the parser workers their own heap limits", () => {
  // A process-wide --max-old-space-size or --max-semi-space-size overrides the workers'
  // resourceLimits: each worker would then grow up to the process's limit, and a monstrous
  // mail would take the process down instead of being skipped.
  const res = spawnSync(join(process.cwd(), 'bin/patchvet'), ['threads', REF, '--format', 'json', '--workers', '1'], {
    encoding: 'utf8',
    env: { ...process.env, PATCHVET_LOG_LEVEL: 'debug' },
  });
  expect(res.status).toBe(0);
  const ready = res.stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l))
    .find((e) => e.msg === 'parser worker ready');
  expect(ready).toBeDefined();
  // 96 MB of old generation and 12 MB of young (src/mail/pool.ts WORKER_LIMITS).
  expect(ready.heapLimitMb).toBe(108);
});

test('worker threads that cannot start stop the run at once with what to do, not a retry per message', () => {
  // Run through `node --input-type=module -e`: worker threads inherit that option and refuse it
  // before loading anything. Every message would otherwise be retried alone in a new thread
  // that fails the same way, and reported as having crashed the parser.
  // 400 short mails: several batches in flight on each worker when they fail.
  const dir = mkdtempSync(join(tmpdir(), 'patchvet-nostart-'));
  const many = join(dir, 'many.mbox');
  writeFileSync(
    many,
    Array.from({ length: 400 }, (_, i) => `From mboxrd@z Thu Jan  1 00:00:00 1970\nFrom: A <a@example.org>\nSubject: note ${i}\nMessage-ID: <n${i}@example.org>\n\nText ${i}.\n`).join('\n'),
  );
  const cli = pathToFileURL(join(process.cwd(), 'dist/cli.js')).href;
  const script = `const { main } = await import(${JSON.stringify(cli)});
process.exitCode = await main(['node', 'patchvet', 'threads', ${JSON.stringify(many)}, '--format', 'json', '--workers', '2']);`;
  const res = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  rmSync(dir, { recursive: true, force: true });
  expect(res.status).toBe(2);
  expect(res.stdout).toBe('');
  expect(res.stderr).toMatch(/parser worker threads could not start \(.*--input-type.*\); no message was parsed/);
  expect(res.stderr).toMatch(/--workers 0/);
  expect(res.stderr).not.toMatch(/retrying its messages one by one/);
  expect(res.stderr).not.toMatch(/internal error/);
});

test('a small input is parsed on the main thread, a larger one by worker threads, with the same result', () => {
  const bin = join(process.cwd(), 'bin/patchvet');
  const env = { ...process.env, PATCHVET_LOG_LEVEL: 'debug' };
  const small = spawnSync(bin, ['threads', REF, '--format', 'json'], { encoding: 'utf8', env });
  expect(small.status).toBe(0);
  expect(small.stderr).toMatch(/small input: parsing on the main thread/);
  // Over 1 MB (the reference thread after a large unrelated patch mail): workers.
  const dir = mkdtempSync(join(tmpdir(), 'patchvet-size-'));
  try {
    const filler = 'From mboxrd@z Thu Jan  1 00:00:00 1970\nFrom: A <a@example.org>\nSubject: [PATCH] big\n' +
      'Message-ID: <big@example.org>\n\n' + 'x'.repeat(80).concat('\n').repeat(14000) + '\n';
    const big = join(dir, 'big.mbox');
    writeFileSync(big, filler + readFileSync(REF, 'latin1'), 'latin1');
    const large = spawnSync(bin, ['threads', big, '--format', 'json'], { encoding: 'utf8', env, maxBuffer: 64 * 1024 * 1024 });
    expect(large.status).toBe(0);
    expect(large.stderr).not.toMatch(/small input/);
    // The same thread, but for where each mail was read from (`source`: file and offset).
    const refThread = (out: string) =>
      JSON.parse(out, (k, v) => (k === 'source' ? undefined : v)).threads.find((t: any) => t.root === '<20260324181937.2465574-1-ross.lagerwall@citrix.com>');
    expect(refThread(large.stdout)).toEqual(refThread(small.stdout));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a worker answers its batches in the order they came, so the first copy of a duplicate wins', () => {
  // One worker, two batches in flight: a 1.2 MB patch (slow to parse) fills the first, a short
  // re-send with the same Message-ID the second. Handled concurrently, the short batch would be
  // answered first and its copy would win.
  const hunk = Array.from({ length: 24000 }, (_, i) => `+\tx${i} = compute(x${i - 1}, ${i}); /* line ${i} */`).join('\n');
  const big =
    'From mboxrd@z Thu Jan  1 00:00:00 1970\nFrom: A <a@example.org>\nSubject: [PATCH] first copy\n' +
    'Message-ID: <dup@example.org>\nDate: Tue, 24 Mar 2026 18:19:29 +0000\n\nBody.\n\nSigned-off-by: A <a@example.org>\n---\n' +
    'diff --git a/f.c b/f.c\n--- a/f.c\n+++ b/f.c\n@@ -0,0 +1,24000 @@\n' + hunk + '\n\n';
  const small =
    'From mboxrd@z Thu Jan  1 00:00:00 1970\nFrom: A <a@example.org>\nSubject: [PATCH] second copy\n' +
    'Message-ID: <dup@example.org>\nDate: Tue, 24 Mar 2026 18:20:29 +0000\n\nShort.\n\n';
  expect(big.length).toBeGreaterThan(1024 * 1024);
  const res = spawnSync(join(process.cwd(), 'bin/patchvet'), ['threads', '-', '--format', 'json', '--workers', '1'], {
    input: big + small,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  expect(res.status).toBe(0);
  const doc = JSON.parse(res.stdout);
  expect(doc.stats).toMatchObject({ messages: 2, duplicates: 1 });
  expect(doc.threads.map((t: any) => t.subject)).toEqual(['[PATCH] first copy']);
});

describe('threads rendered on the worker threads', () => {
  // With workers, `patchvet threads` has them anchor reply comments and write each thread's
  // JSON (or text) while the main thread groups series, then fills in the series ids: the
  // output must be what rendering on the main thread gives, byte for byte.
  const bin = join(process.cwd(), 'bin/patchvet');
  const SAMPLE = join(FIX, 'real', 'linux-hyperv-2026.mbox.gz');
  const threads = (input: string, format: string, workers: string, env: NodeJS.ProcessEnv = process.env) =>
    spawnSync(bin, ['threads', input, '--format', format, '--workers', workers], { encoding: 'utf8', env, maxBuffer: 256 * 1024 * 1024 });

  test.each(['json', 'text'])('the real sample, %s: the same bytes as on the main thread', (format) => {
    const onWorkers = threads(SAMPLE, format, '2');
    const onMain = threads(SAMPLE, format, '0');
    expect(onWorkers.status).toBe(0);
    expect(onMain.status).toBe(0);
    expect(onWorkers.stdout).toBe(onMain.stdout);
    if (format === 'json') {
      // Not vacuous: series ids were filled in, comments anchored to diff lines.
      const doc = JSON.parse(onWorkers.stdout);
      const messages = doc.threads.flatMap((t: any) => t.messages);
      expect(messages.filter((m: any) => m.seriesId !== null && m.seriesId !== undefined).length).toBeGreaterThan(1000);
      expect(messages.flatMap((m: any) => m.comments).filter((c: any) => c.file !== null).length).toBeGreaterThan(500);
    }
  });

  test('a worker that dies while rendering: the main thread renders its threads, nothing is lost', () => {
    const normal = threads(REF, 'json', '2');
    const crashed = threads(REF, 'json', '2', { ...process.env, PATCHVET_TEST_RENDER_CRASH_MARKER: '2465574-1-ross' });
    expect(crashed.status).toBe(0);
    expect(crashed.stderr).toMatch(/worker died/);
    expect(crashed.stdout).toBe(normal.stdout);
    expect(JSON.parse(crashed.stdout).threads[0].messages.some((m: any) => m.comments.some((c: any) => c.file === 'xen/arch/x86/domain.c'))).toBe(true);
  });
});
