// MaildirWatchSource on real folders: files dropped the way an MDA does it (written to tmp/, then
// renamed into new/), fs.watch and the rescan fallback, restarts from the stored position, markSeen.
import { mkdirSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MaildirWatchSource, seenName, uniqueName, type MaildirWatchOptions } from '../../src/serve/sources/maildir-watch.js';
import type { SourceBatch } from '../../src/serve/types.js';
import { XEN_THREAD, mailsOf, runSource, tempDirs, waitFor, type RunningSource } from '../helpers/serve.js';

let THREAD: Buffer[];

beforeAll(async () => {
  THREAD = await mailsOf(XEN_THREAD);
  expect(THREAD).toHaveLength(3);
});

const tempDir = tempDirs('patchvet-md-');

function makeMaildir(): string {
  const d = tempDir();
  for (const sub of ['new', 'cur', 'tmp']) mkdirSync(join(d, sub));
  return d;
}

let seq = 0;
/** Deliver like an MDA: write under tmp/, then rename into new/. Returns the file name. */
function drop(dir: string, raw: Buffer, opts: { name?: string; mtime?: number } = {}): string {
  const name = opts.name ?? `${1774000000 + seq}.M${seq++}P${process.pid}.testhost`;
  writeFileSync(join(dir, 'tmp', name), raw);
  if (opts.mtime !== undefined) utimesSync(join(dir, 'tmp', name), opts.mtime, opts.mtime);
  renameSync(join(dir, 'tmp', name), join(dir, 'new', name));
  return name;
}

function start(
  opts: Partial<MaildirWatchOptions> & { path: string },
  from: string | null = null,
  onBatch?: (b: SourceBatch) => Promise<void> | void,
): RunningSource<MaildirWatchSource, { mtimeMs: number; names: string[] }> {
  return runSource((logger) => new MaildirWatchSource({ every: '50ms', start: 'beginning', logger, ...opts }), from, onBatch);
}

function snapshot(dir: string): Record<string, Array<[string, number]>> {
  const out: Record<string, Array<[string, number]>> = {};
  for (const sub of ['new', 'cur', 'tmp']) {
    out[sub] = readdirSync(join(dir, sub))
      .sort()
      .map((n) => [n, statSync(join(dir, sub, n)).mtimeMs]);
  }
  return out;
}

describe('maildir names', () => {
  test('unique part and the Seen flag', () => {
    expect(uniqueName('1774.M1P2.host')).toBe('1774.M1P2.host');
    expect(uniqueName('1774.M1P2.host:2,RS')).toBe('1774.M1P2.host');
    expect(seenName('1774.M1P2.host')).toBe('1774.M1P2.host:2,S');
    expect(seenName('1774.M1P2.host:2,RF')).toBe('1774.M1P2.host:2,FRS');
    expect(seenName('1774.M1P2.host:2,S')).toBe('1774.M1P2.host:2,S');
  });
});

describe('MaildirWatchSource', () => {
  test('bad option values from patchvet.yml are refused at construction', () => {
    expect(() => new MaildirWatchSource({ path: '/x', markSeen: 'false' as never })).toThrow(/bad markSeen "false": write true or false/);
    expect(() => new MaildirWatchSource({ path: '/x', start: 'all' as never })).toThrow(/bad start "all"/);
    expect(() => new MaildirWatchSource({ path: '/x', batchSize: 2.5 })).toThrow(/bad batchSize/);
    expect(() => new MaildirWatchSource({ path: '/x', mtimeSlackMs: -1 })).toThrow(/mtimeSlackMs/);
  });

  test('delivers new/ and cur/ mail, ignores tmp/ and dotfiles, and sees mail dropped later (fs.watch)', async () => {
    const dir = makeMaildir();
    const a = drop(dir, THREAD[0], { mtime: 1774000000 });
    writeFileSync(join(dir, 'cur', 'old.M1P1.host:2,S'), THREAD[1]);
    utimesSync(join(dir, 'cur', 'old.M1P1.host:2,S'), 1774000100, 1774000100);
    writeFileSync(join(dir, 'tmp', 'half-written'), 'From: x\n');
    writeFileSync(join(dir, 'new', '.hidden'), 'not mail');
    // a long rescan interval: only fs.watch can make the later mail come quickly
    const r = start({ path: dir, every: '1h' });
    try {
      await waitFor(() => r.messages().length >= 2, 'existing mail');
      expect(r.messages().map((m) => m.ref.source)).toEqual([join(dir, 'new', a), join(dir, 'cur', 'old.M1P1.host:2,S')]);
      expect(r.messages()[0].raw.equals(THREAD[0])).toBe(true);
      expect(r.messages()[0].ref).toEqual({ source: join(dir, 'new', a), file: join(dir, 'new', a), offset: 0, length: THREAD[0].length });
      const c = drop(dir, THREAD[2]);
      await waitFor(() => r.messages().length >= 3, 'the dropped mail (fs.watch)', 5000);
      expect(r.messages()[2].ref.source).toBe(join(dir, 'new', c));
      expect(r.messages()[2].raw.equals(THREAD[2])).toBe(true);
      expect(r.errors).toEqual([]);
      expect(r.src.key).toBe(`maildir:${dir}`);
    } finally {
      await r.stop();
    }
  });

  test('without fs.watch, the periodic rescan finds new mail', async () => {
    const dir = makeMaildir();
    const r = start({ path: dir, watch: false });
    try {
      await waitFor(() => r.batches.length >= 1, 'first scan');
      drop(dir, THREAD[0]);
      await waitFor(() => r.messages().length >= 1, 'the rescan');
      expect(r.messages().map((m) => m.raw)).toEqual([THREAD[0]]);
    } finally {
      await r.stop();
    }
  });

  test('never moves, renames or deletes mail unless markSeen is set; delivers each message once', async () => {
    const dir = makeMaildir();
    THREAD.forEach((m) => drop(dir, m));
    const before = snapshot(dir);
    const r = start({ path: dir });
    try {
      await waitFor(() => r.messages().length >= 3, 'three messages');
      await r.src.pollNow();
      await r.src.pollNow();
      expect(r.messages()).toHaveLength(3);
      expect(snapshot(dir)).toEqual(before);
    } finally {
      await r.stop();
    }
  });

  test('markSeen moves delivered mail from new/ to cur/ with :2,S, after the batch is stored', async () => {
    const dir = makeMaildir();
    const names = THREAD.map((m) => drop(dir, m));
    const curBefore = readdirSync(join(dir, 'cur'));
    let seenAtDelivery: string[] = [];
    const r = start({ path: dir, markSeen: true }, null, (b) => {
      if (b.messages.length) seenAtDelivery = readdirSync(join(dir, 'new')).sort();
    });
    try {
      await waitFor(() => r.messages().length >= 3 && readdirSync(join(dir, 'new')).length === 0, 'delivery and move');
      expect(seenAtDelivery).toEqual([...names].sort()); // still in new/ while the batch is stored
      expect(curBefore).toEqual([]);
      expect(readdirSync(join(dir, 'cur')).sort()).toEqual(names.map((n) => `${n}:2,S`).sort());
      names.forEach((n, i) => expect(readFileSync(join(dir, 'cur', `${n}:2,S`)).equals(THREAD[i])).toBe(true));
      await r.src.pollNow();
      await r.src.pollNow();
      expect(r.messages()).toHaveLength(3); // the move does not make them new
    } finally {
      await r.stop();
    }
  });

  test('a restart from the stored position redelivers nothing, even after a client moved mail to cur/', async () => {
    const dir = makeMaildir();
    const names = THREAD.slice(0, 2).map((m) => drop(dir, m));
    const first = start({ path: dir });
    await waitFor(() => first.messages().length >= 2, 'first run');
    await first.stop();
    const stored = first.batches[first.batches.length - 1].position!;
    // a mail client reads one of them: new/x -> cur/x:2,S (mtime unchanged)
    renameSync(join(dir, 'new', names[0]), join(dir, 'cur', `${names[0]}:2,S`));

    const second = start({ path: dir }, stored);
    try {
      await second.src.pollNow();
      await second.src.pollNow();
      expect(second.messages()).toEqual([]);
      const c = drop(dir, THREAD[2]);
      await waitFor(() => second.messages().length >= 1, 'the new mail');
      await second.src.pollNow();
      expect(second.messages().map((m) => m.ref.source)).toEqual([join(dir, 'new', c)]);
      expect(second.lastPosition().names).toContain(c);
    } finally {
      await second.stop();
    }
  });

  test('the position: mtime high-water mark and the names at it (no slack)', async () => {
    const dir = makeMaildir();
    const a = drop(dir, THREAD[0], { name: 'a.M1.host', mtime: 1774000000 });
    drop(dir, THREAD[1], { name: 'b.M2.host', mtime: 1774000500 });
    drop(dir, THREAD[2], { name: 'c.M3.host', mtime: 1774000500 });
    const first = start({ path: dir, mtimeSlackMs: 0 });
    await waitFor(() => first.messages().length >= 3, 'three messages');
    await first.stop();
    expect(first.lastPosition()).toEqual({ mtimeMs: 1774000500 * 1000, names: ['b.M2.host', 'c.M3.host'] });
    expect(a).toBe('a.M1.host');

    // after a restart: a file with the high-water mtime but another name is new; one older is not
    drop(dir, THREAD[0], { name: 'd.M4.host', mtime: 1774000500 });
    const second = start({ path: dir, mtimeSlackMs: 0 }, JSON.stringify(first.lastPosition()));
    try {
      await waitFor(() => second.messages().length >= 1, 'd');
      await second.src.pollNow();
      expect(second.messages().map((m) => m.ref.source)).toEqual([join(dir, 'new', 'd.M4.host')]);
      expect(second.lastPosition()).toEqual({ mtimeMs: 1774000500 * 1000, names: ['b.M2.host', 'c.M3.host', 'd.M4.host'] });
    } finally {
      await second.stop();
    }
  });

  test('the default slack keeps the last minute of names in the position', async () => {
    const dir = makeMaildir();
    const now = Date.now() / 1000;
    drop(dir, THREAD[0], { name: 'old.M1.host', mtime: now - 3600 });
    drop(dir, THREAD[1], { name: 'recent.M2.host', mtime: now - 30 });
    drop(dir, THREAD[2], { name: 'newest.M3.host', mtime: now - 1 });
    const r = start({ path: dir });
    try {
      await waitFor(() => r.messages().length >= 3, 'three messages');
      const p = r.lastPosition();
      expect(p.names).toEqual(['newest.M3.host', 'recent.M2.host']);
      // the cutoff trails the newest mail's mtime (as stat reports it) by exactly the slack
      expect(p.mtimeMs).toBe(statSync(join(dir, 'new', 'newest.M3.host')).mtimeMs - 60_000);
    } finally {
      await r.stop();
    }
  });

  test("start 'now' (the default) stores the position at once and delivers only later mail", async () => {
    const dir = makeMaildir();
    THREAD.slice(0, 2).forEach((m) => drop(dir, m));
    const r = start({ path: dir, start: undefined });
    try {
      await waitFor(() => r.batches.length >= 1, 'the start position');
      expect(r.batches[0].messages).toEqual([]);
      expect(r.batches[0].position).not.toBeNull();
      const c = drop(dir, THREAD[2]);
      await waitFor(() => r.messages().length >= 1, 'later mail');
      await r.src.pollNow();
      expect(r.messages().map((m) => m.ref.source)).toEqual([join(dir, 'new', c)]);
    } finally {
      await r.stop();
    }
  });

  test('a file that disappears between listing and reading is skipped silently; a moved one comes later, once', async () => {
    const dir = makeMaildir();
    const a = drop(dir, THREAD[0], { mtime: 1774000000 });
    const b = drop(dir, THREAD[1], { mtime: 1774000001 });
    const c = drop(dir, THREAD[2], { mtime: 1774000002 });
    let firstBatch = true;
    const r = start({ path: dir, batchSize: 1 }, null, (batch) => {
      if (!firstBatch || batch.messages.length === 0) return;
      firstBatch = false;
      // while the first batch is stored: b is deleted, c is moved to cur/ by a mail client
      unlinkSync(join(dir, 'new', b));
      renameSync(join(dir, 'new', c), join(dir, 'cur', `${c}:2,S`));
    });
    try {
      await waitFor(() => r.messages().length >= 2, 'a and c');
      await r.src.pollNow();
      await r.src.pollNow();
      expect(r.messages().map((m) => m.ref.source)).toEqual([join(dir, 'new', a), join(dir, 'cur', `${c}:2,S`)]);
      expect(r.errors).toEqual([]);
      expect(r.src.health().ok).toBe(true);
    } finally {
      await r.stop();
    }
  });

  test('an oversized file is reported and skipped; the rest is delivered', async () => {
    const dir = makeMaildir();
    const limit = THREAD[1].length + 1000;
    const big = drop(dir, Buffer.concat([THREAD[0], Buffer.alloc(limit, 0x61)]), { mtime: 1774000000 });
    drop(dir, THREAD[1], { mtime: 1774000001 });
    const r = start({ path: dir, maxMessageBytes: limit });
    try {
      await waitFor(() => r.messages().length >= 1, 'the small one');
      await r.src.pollNow();
      expect(r.messages().map((m) => m.raw)).toEqual([THREAD[1]]);
      expect(r.errors).toEqual([{ source: join(dir, 'new', big), message: expect.stringMatching(/over the \d+-byte limit; skipped/) }]);
    } finally {
      await r.stop();
    }
  });

  test('a missing maildir: scans fail (never thrown), health turns bad, then recovers', async () => {
    const root = makeMaildir();
    const dir = join(root, 'later');
    const r = start({ path: dir, failureThreshold: 3 });
    try {
      await r.src.pollNow();
      await r.src.pollNow();
      expect(r.src.health().ok).toBe(false);
      expect(r.src.health().detail).toContain('is not a maildir');
      for (const sub of ['new', 'cur', 'tmp']) mkdirSync(join(dir, sub), { recursive: true });
      drop(dir, THREAD[0]);
      await r.src.pollNow();
      expect(r.src.health().ok).toBe(true);
      expect(r.messages().map((m) => m.raw)).toEqual([THREAD[0]]);
    } finally {
      await r.stop();
    }
  });

  test('a failing deliver is retried; nothing is lost or marked seen before it is stored', async () => {
    const dir = makeMaildir();
    const name = drop(dir, THREAD[0]);
    let fail = true;
    const r = start({ path: dir, markSeen: true }, null, (b) => {
      if (fail && b.messages.length) throw new Error('store is down');
    });
    try {
      await waitFor(() => r.batches.length >= 1, 'the failing batch');
      expect(readdirSync(join(dir, 'new'))).toEqual([name]);
      fail = false;
      await r.src.pollNow();
      await waitFor(() => readdirSync(join(dir, 'new')).length === 0, 'the move');
      expect(r.messages().map((m) => m.raw)).toEqual([THREAD[0], THREAD[0]]);
      expect(readdirSync(join(dir, 'cur'))).toEqual([`${name}:2,S`]);
    } finally {
      await r.stop();
    }
  });

  test('abort ends the run promptly', async () => {
    const dir = makeMaildir();
    const r = start({ path: dir, every: '1h' });
    await waitFor(() => r.batches.length >= 1, 'first scan');
    const t = Date.now();
    await r.stop();
    expect(Date.now() - t).toBeLessThan(1000);
    // and a watcher event after the end does nothing
    drop(dir, THREAD[0]);
    await new Promise((res) => setTimeout(res, 100));
    expect(r.messages()).toEqual([]);
  });
});
