// PublicInboxSource against real git repositories: archives built with plain git by
// test/helpers/public-inbox.ts, and (to prove that layout matches the real tool) archives made by
// public-inbox-init / public-inbox-mda.
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import type { RawMessage } from '../../src/model.js';
import { expandHome, parseInterval } from '../../src/serve/sources/options.js';
import { PublicInboxSource, type PublicInboxSourceOptions } from '../../src/serve/sources/public-inbox.js';
import type { SourceBatch } from '../../src/serve/types.js';
import { TestInboxV1, TestInboxV2, createRealInbox, mailMeta, requirePublicInboxTools, v1Path } from '../helpers/public-inbox.js';
import { FIXTURES, XEN_THREAD, mailsOf, runSource, tempDirs, waitFor, type RunningSource } from '../helpers/serve.js';

const FTW = join(FIXTURES, 'xen-ftw-alloc.mbox');

let THREAD: Buffer[]; // the three reference mails
let MORE: Buffer[]; // six later mails (the FTW fix and its replies)

beforeAll(async () => {
  THREAD = await mailsOf(XEN_THREAD);
  MORE = await mailsOf(FTW);
  expect(THREAD).toHaveLength(3);
  expect(MORE.length).toBeGreaterThanOrEqual(3);
});

const tempDir = tempDirs('patchvet-pi-');

function midOf(m: Buffer | RawMessage): string {
  return mailMeta(Buffer.isBuffer(m) ? m : m.raw).messageId ?? '';
}

type Running = RunningSource<PublicInboxSource>;

function start(
  opts: Partial<PublicInboxSourceOptions> & { path: string },
  from: string | null = null,
  onBatch?: (b: SourceBatch, ac: AbortController) => Promise<void> | void,
): Running {
  return runSource((logger) => new PublicInboxSource({ every: '50ms', start: 'beginning', logger, ...opts }), from, onBatch);
}

describe('source options', () => {
  test('units, bare numbers as seconds, and rejects', () => {
    expect(parseInterval('60s', 1)).toBe(60_000);
    expect(parseInterval('5m', 1)).toBe(300_000);
    expect(parseInterval('1h', 1)).toBe(3_600_000);
    expect(parseInterval('50ms', 1)).toBe(50);
    expect(parseInterval(' 1.5s ', 1)).toBe(1500);
    expect(parseInterval(60, 1)).toBe(60_000);
    expect(parseInterval('90', 1)).toBe(90_000);
    expect(parseInterval(undefined, 42)).toBe(42);
    expect(() => parseInterval('soon', 1)).toThrow(/bad interval "soon"/);
    expect(() => parseInterval('0s', 1)).toThrow(/greater than zero/);
    expect(() => parseInterval(-1, 1)).toThrow(/greater than zero/);
  });

  test('bad option values from patchvet.yml are refused at construction', () => {
    expect(() => new PublicInboxSource({ path: '/x', start: 'end' as never })).toThrow(/bad start "end": write start: now/);
    expect(() => new PublicInboxSource({ path: '/x', batchSize: 0 })).toThrow(/bad batchSize 0/);
    expect(() => new PublicInboxSource({ path: '/x', every: 'often' })).toThrow(/bad interval "often"/);
    expect(() => new PublicInboxSource({ path: '' })).toThrow(/path/);
    expect(new PublicInboxSource({ path: '~/inbox', start: 'now' }).key).toBe(`public-inbox:${join(homedir(), 'inbox')}`);
  });

  test('expandHome', () => {
    expect(expandHome('~/Maildir/xen-devel')).toBe(join(homedir(), 'Maildir/xen-devel'));
    expect(expandHome('/srv/inbox/xen-devel')).toBe('/srv/inbox/xen-devel');
    expect(expandHome('a/~/b')).toBe('a/~/b');
  });
});

describe('PublicInboxSource, v2 archive', () => {
  test('reads every message in order, raw bytes unaltered, with refs and a v2 position', async () => {
    const dir = tempDir();
    const inbox = TestInboxV2.create(dir);
    const commits = THREAD.map((m) => inbox.append(m));
    const r = start({ path: dir });
    try {
      await waitFor(() => r.messages().length >= 3, 'three messages');
      await r.src.pollNow();
      const got = r.messages();
      expect(got).toHaveLength(3);
      got.forEach((m, i) => {
        expect(m.raw.equals(THREAD[i])).toBe(true);
        expect(m.ref).toEqual({ source: `${dir}#0:${commits[i]}`, file: dir, offset: 0, length: THREAD[i].length });
      });
      expect(r.lastPosition()).toEqual({ epoch: 0, commit: commits[2] });
      expect(r.errors).toEqual([]);
      expect(r.src.key).toBe(`public-inbox:${dir}`);
      expect(r.src.health().ok).toBe(true);
      expect(r.src.health().lagSeconds!).toBeLessThan(5);
    } finally {
      await r.stop();
    }
  });

  test('batches hold at most batchSize messages, each with the position after its last commit', async () => {
    const dir = tempDir();
    const inbox = TestInboxV2.create(dir);
    const commits = [...THREAD, MORE[0], MORE[1]].map((m) => inbox.append(m));
    const r = start({ path: dir, batchSize: 2 });
    try {
      await waitFor(() => r.messages().length >= 5, 'five messages');
      expect(r.batches.map((b) => b.messages.length)).toEqual([2, 2, 1]);
      expect(r.batches.map((b) => JSON.parse(b.position!).commit)).toEqual([commits[1], commits[3], commits[4]]);
    } finally {
      await r.stop();
    }
  });

  test('a restart from the stored position redelivers nothing; later mail comes alone', async () => {
    const dir = tempDir();
    const inbox = TestInboxV2.create(dir);
    THREAD.forEach((m) => inbox.append(m));
    const first = start({ path: dir });
    await waitFor(() => first.messages().length >= 3, 'first run');
    await first.stop();
    const stored = first.batches[first.batches.length - 1].position!;

    const second = start({ path: dir }, stored);
    try {
      await second.src.pollNow();
      await second.src.pollNow();
      expect(second.messages()).toEqual([]);
      const c = inbox.append(MORE[0]);
      await second.src.pollNow();
      expect(second.messages().map((m) => m.raw)).toEqual([MORE[0]]);
      expect(second.lastPosition()).toEqual({ epoch: 0, commit: c });
    } finally {
      await second.stop();
    }
  });

  test("start 'now' (the default) stores the tip at once and reads only later mail", async () => {
    const dir = tempDir();
    const inbox = TestInboxV2.create(dir);
    THREAD.forEach((m) => inbox.append(m));
    const r = start({ path: dir, start: undefined });
    try {
      await waitFor(() => r.batches.length >= 1, 'the start position');
      expect(r.batches[0]).toEqual({ messages: [], position: JSON.stringify({ epoch: 0, commit: inbox.tip() }) });
      inbox.append(MORE[0]);
      await r.src.pollNow();
      expect(r.messages().map(midOf)).toEqual([midOf(MORE[0])]);
    } finally {
      await r.stop();
    }
  });

  test("start 'now' on an empty archive stores 'before the first commit', so the first mail is read", async () => {
    const dir = tempDir();
    const inbox = TestInboxV2.create(dir);
    const r = start({ path: dir, start: 'now' });
    try {
      await waitFor(() => r.batches.length >= 1, 'the start position');
      expect(JSON.parse(r.batches[0].position!)).toEqual({ epoch: 0, commit: null });
      inbox.append(THREAD[0]);
      await r.src.pollNow();
      expect(r.messages().map(midOf)).toEqual([midOf(THREAD[0])]);
    } finally {
      await r.stop();
    }
  });

  test('a new epoch is read once it appears, from its first commit, after the old one', async () => {
    const dir = tempDir();
    const inbox = TestInboxV2.create(dir);
    inbox.append(THREAD[0]);
    inbox.append(THREAD[1]);
    const r = start({ path: dir });
    try {
      await waitFor(() => r.messages().length >= 2, 'epoch 0');
      const e0tip = inbox.tip(0);
      expect(r.lastPosition()).toEqual({ epoch: 0, commit: e0tip });
      inbox.rollEpoch();
      await r.src.pollNow();
      // still empty: the source enters epoch 1 and stores that it is before its first commit
      expect(r.lastPosition()).toEqual({ epoch: 1, commit: null });
      const c = inbox.append(THREAD[2]);
      await r.src.pollNow();
      expect(r.messages().map(midOf)).toEqual(THREAD.map(midOf));
      expect(r.messages()[2].ref.source).toBe(`${dir}#1:${c}`);
      expect(r.lastPosition()).toEqual({ epoch: 1, commit: c });
    } finally {
      await r.stop();
    }
  });

  test('a restart in a finished epoch goes on through every later epoch in order', async () => {
    const dir = tempDir();
    const inbox = TestInboxV2.create(dir);
    inbox.append(THREAD[0]);
    const stored = JSON.stringify({ epoch: 0, commit: inbox.tip(0) });
    inbox.append(THREAD[1]);
    inbox.rollEpoch();
    inbox.append(THREAD[2]);
    inbox.append(MORE[0]);
    inbox.rollEpoch();
    inbox.rollEpoch(); // epoch 3: 2 stays empty
    const last = inbox.append(MORE[1]);
    const r = start({ path: dir }, stored);
    try {
      await waitFor(() => r.messages().length >= 4, 'four messages');
      await r.src.pollNow();
      expect(r.messages().map(midOf)).toEqual([THREAD[1], THREAD[2], MORE[0], MORE[1]].map(midOf));
      expect(r.messages().map((m) => m.ref.source.replace(/:.*/, '').replace(/.*#/, ''))).toEqual(['0', '1', '1', '3']);
      expect(r.lastPosition()).toEqual({ epoch: 3, commit: last });
    } finally {
      await r.stop();
    }
  });

  test('rewritten history (stored commit gone): warns and re-reads the epoch from its first commit', async () => {
    const dir = tempDir();
    const inbox = TestInboxV2.create(dir);
    THREAD.forEach((m) => inbox.append(m));
    const r = start({ path: dir });
    try {
      await waitFor(() => r.messages().length >= 3, 'first read');
      const stored = r.lastPosition() as { commit: string };
      // purge the last message: the stored commit is no longer on the ref, and gc removes it
      const { dropped } = inbox.rewrite({ prune: true });
      expect(dropped).toBe(stored.commit);
      expect(() => execFileSync('git', ['--git-dir', inbox.gitDir(), 'cat-file', '-e', dropped], { stdio: 'pipe' })).toThrow();
      const c = inbox.append(MORE[0]);
      await r.src.pollNow();
      expect(r.messages().map(midOf)).toEqual([...THREAD, THREAD[0], THREAD[1], MORE[0]].map(midOf));
      expect(r.lastPosition()).toEqual({ epoch: 0, commit: c });
      const warn = r.lines.find((l) => /rewritten/.test(String(l.msg)));
      expect(warn).toBeDefined();
      expect(warn!.level).toBe(40);
      expect(String(warn!.msg)).toContain(stored.commit);
      expect(r.errors).toEqual([]);
    } finally {
      await r.stop();
    }
  });

  test('rewritten history (stored commit still exists but left the ref) is recovered the same way', async () => {
    const dir = tempDir();
    const inbox = TestInboxV2.create(dir);
    THREAD.forEach((m) => inbox.append(m));
    const r = start({ path: dir });
    try {
      await waitFor(() => r.messages().length >= 3, 'first read');
      inbox.rewrite({ drop: 0 }); // purge the first mail: the two later commits get new ids
      await r.src.pollNow();
      expect(r.messages().map(midOf)).toEqual([...THREAD, THREAD[1], THREAD[2]].map(midOf));
      expect(r.lastPosition()).toEqual({ epoch: 0, commit: inbox.tip() });
      // and then it is steady
      const n = r.batches.length;
      await r.src.pollNow();
      expect(r.batches.length).toBe(n);
    } finally {
      await r.stop();
    }
  });

  test('removals are skipped silently; damaged commits are reported by commit and skipped; reading goes on', async () => {
    const dir = tempDir();
    const inbox = TestInboxV2.create(dir);
    inbox.append(THREAD[0]);
    inbox.remove(THREAD[0]);
    const noM = inbox.appendCorrupt('no-m');
    const gone = inbox.appendCorrupt('missing-blob');
    const last = inbox.append(THREAD[1]);
    const r = start({ path: dir });
    try {
      await waitFor(() => r.messages().length >= 2, 'two messages');
      expect(r.messages().map(midOf)).toEqual([THREAD[0], THREAD[1]].map(midOf));
      expect(r.errors).toHaveLength(2);
      expect(r.errors[0].source).toBe(`${dir}#0:${noM}`);
      expect(r.errors[0].message).toMatch(new RegExp(`commit ${noM} \\(epoch 0\\) has no readable blob 'm'.*skipped`));
      expect(r.errors[1].source).toBe(`${dir}#0:${gone}`);
      expect(r.errors[1].message).toContain(gone);
      expect(r.lastPosition()).toEqual({ epoch: 0, commit: last });
      expect(r.src.health().ok).toBe(true);
    } finally {
      await r.stop();
    }
    // the position is past the damage: a restart does not report it again
    const again = start({ path: dir }, JSON.stringify({ epoch: 0, commit: last }));
    try {
      await again.src.pollNow();
      expect(again.errors).toEqual([]);
      expect(again.messages()).toEqual([]);
    } finally {
      await again.stop();
    }
  });

  test('an unreadable stored position is logged and treated as a first start', async () => {
    const dir = tempDir();
    const inbox = TestInboxV2.create(dir);
    THREAD.forEach((m) => inbox.append(m));
    const r = start({ path: dir }, '{"epoch":"zero"}');
    try {
      await waitFor(() => r.messages().length >= 3, 'three messages');
      expect(r.lines.some((l) => /stored position is unreadable/.test(String(l.msg)))).toBe(true);
    } finally {
      await r.stop();
    }
  });

  test('a missing archive: polls fail (logged, never thrown), health turns bad, then recovers', async () => {
    const root = tempDir();
    const dir = join(root, 'inbox');
    const r = start({ path: dir, failureThreshold: 3 });
    try {
      await r.src.pollNow(); // the first poll (at start) and this one failed
      expect(r.src.health().ok).toBe(true); // two failures are not yet an outage
      expect(r.src.health().detail).toMatch(/^2 failed poll/);
      await r.src.pollNow();
      const h = r.src.health();
      expect(h.ok).toBe(false);
      expect(h.detail).toContain(dir);
      expect(r.lines.filter((l) => l.level === 40 && /poll failed/.test(String(l.msg))).length).toBeGreaterThanOrEqual(2);
      const inbox = TestInboxV2.create(dir);
      inbox.append(THREAD[0]);
      await r.src.pollNow();
      expect(r.src.health().ok).toBe(true);
      expect(r.src.health().lagSeconds!).toBeLessThan(2);
      expect(r.messages().map(midOf)).toEqual([midOf(THREAD[0])]);
    } finally {
      await r.stop();
    }
  });

  test('a failing deliver (store down) is retried from the last acknowledged position', async () => {
    const dir = tempDir();
    const inbox = TestInboxV2.create(dir);
    THREAD.forEach((m) => inbox.append(m));
    let fail = true;
    const r = start({ path: dir, batchSize: 1 }, null, (b) => {
      if (fail && b.messages.length > 0 && midOf(b.messages[0]) === midOf(THREAD[1])) throw new Error('store is down');
    });
    try {
      await waitFor(() => r.batches.length >= 2, 'the failing batch');
      fail = false;
      await r.src.pollNow();
      await waitFor(() => r.lastPosition() !== undefined && (r.lastPosition() as { commit: string }).commit === inbox.tip(), 'the tip');
      // THREAD[1] was offered twice (the first attempt failed), THREAD[0] once
      expect(r.messages().map(midOf)).toEqual([THREAD[0], THREAD[1], THREAD[1], THREAD[2]].map(midOf));
    } finally {
      await r.stop();
    }
  });

  test('abort ends the run promptly, while sleeping and while a batch is being delivered', async () => {
    const dir = tempDir();
    const inbox = TestInboxV2.create(dir);
    THREAD.forEach((m) => inbox.append(m));
    const sleeping = start({ path: dir, every: '1h' });
    await waitFor(() => sleeping.messages().length >= 3, 'first poll');
    let t = Date.now();
    await sleeping.stop();
    expect(Date.now() - t).toBeLessThan(1000);

    // abort inside the first delivery: no further batch is read or delivered
    const busy = start({ path: dir, batchSize: 1 }, null, async (_b, ac) => {
      ac.abort();
      await new Promise((res) => setTimeout(res, 50));
    });
    t = Date.now();
    await busy.done;
    expect(Date.now() - t).toBeLessThan(2000);
    expect(busy.batches).toHaveLength(1);
  });

  test('abort kills a git process that hangs, and the run ends without logging a failure', async () => {
    const dir = tempDir();
    TestInboxV2.create(dir).append(THREAD[0]);
    // a `git` that records its pid and hangs (exec keeps the pid)
    const bin = tempDir();
    const pidFile = join(bin, 'pid');
    writeFileSync(join(bin, 'git'), `#!/bin/sh\necho $$ > '${pidFile}'\nexec sleep 30\n`);
    chmodSync(join(bin, 'git'), 0o755);
    const savedPath = process.env.PATH;
    process.env.PATH = `${bin}${delimiter}${savedPath}`;
    let r: Running;
    try {
      r = start({ path: dir });
      await waitFor(() => existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim() !== '', 'the hanging git');
    } finally {
      process.env.PATH = savedPath;
    }
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    const t = Date.now();
    await r.stop();
    expect(Date.now() - t).toBeLessThan(1000);
    const alive = (): boolean => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    await waitFor(() => !alive(), 'the git process to be gone', 2000);
    expect(r.lines.filter((l) => /poll failed/.test(String(l.msg)))).toEqual([]);
    expect(r.batches).toEqual([]);
  });
});

describe('PublicInboxSource, v1 archive', () => {
  test('reads the file each commit adds, skips removals, positions are {"commit"}; restart and rewrite', async () => {
    const dir = tempDir();
    const inbox = TestInboxV1.create(dir);
    const commits = THREAD.map((m) => inbox.append(m));
    // the layout is public-inbox's: the message sits at sha1(Message-ID) split 2/38
    const tree = execFileSync('git', ['--git-dir', dir, 'ls-tree', '-r', '--name-only', 'refs/heads/master']).toString().trim().split('\n');
    expect(tree.sort()).toEqual(THREAD.map((m) => v1Path(midOf(m))).sort());
    const removal = inbox.remove(THREAD[0]);
    const r = start({ path: dir });
    try {
      await waitFor(() => r.messages().length >= 3, 'three messages');
      await r.src.pollNow();
      expect(r.messages().map((m) => m.raw)).toEqual(THREAD);
      expect(r.messages().map((m) => m.ref.source)).toEqual(commits.map((c) => `${dir}#${c}`));
      expect(r.lastPosition()).toEqual({ commit: removal });
      expect(r.errors).toEqual([]);

      const c = inbox.append(MORE[0]);
      await r.src.pollNow();
      expect(r.messages().map(midOf).slice(3)).toEqual([midOf(MORE[0])]);
      expect(r.lastPosition()).toEqual({ commit: c });

      // purge THREAD[1]: re-read from the first commit (THREAD[1] is no longer there)
      inbox.rewrite({ drop: 1, prune: true });
      await r.src.pollNow();
      expect(r.messages().map(midOf).slice(4)).toEqual([THREAD[0], THREAD[2], MORE[0]].map(midOf));
      expect(r.lastPosition()).toEqual({ commit: inbox.tip() });
    } finally {
      await r.stop();
    }
  });

  test("a v1 archive with start 'now' and a restart from a v1 position", async () => {
    const dir = tempDir();
    const inbox = TestInboxV1.create(dir);
    THREAD.forEach((m) => inbox.append(m));
    const r = start({ path: dir, start: 'now' });
    await waitFor(() => r.batches.length >= 1, 'start position');
    await r.stop();
    expect(r.batches).toEqual([{ messages: [], position: JSON.stringify({ commit: inbox.tip() }) }]);
    inbox.append(MORE[0]);
    const again = start({ path: dir, start: 'now' }, r.batches[0].position);
    try {
      await waitFor(() => again.messages().length >= 1, 'the new mail');
      expect(again.messages().map(midOf)).toEqual([midOf(MORE[0])]);
    } finally {
      await again.stop();
    }
  });
});

describe('PublicInboxSource on archives written by public-inbox itself', () => {
  test('v2: public-inbox-init -V2 + public-inbox-mda', async () => {
    requirePublicInboxTools();
    const real = createRealInbox(tempDir(), { version: 2 });
    real.deliver(THREAD[0]);
    real.deliver(THREAD[1]);
    const r = start({ path: real.dir });
    try {
      await waitFor(() => r.messages().length >= 2, 'two messages');
      real.deliver(THREAD[2]);
      await r.src.pollNow();
      const got = r.messages();
      expect(got.map(midOf)).toEqual(THREAD.map(midOf));
      // -mda drops some headers (Delivered-To...), the rest of the mail is as sent
      got.forEach((m, i) => {
        expect(m.ref.source).toMatch(new RegExp(`^${real.dir}#0:[0-9a-f]{40}$`));
        expect(m.raw.toString('latin1')).toContain(mailMeta(THREAD[i]).subject.slice(0, 40));
        expect(m.ref.length).toBe(m.raw.length);
      });
      const pos = r.lastPosition() as { epoch: number; commit: string };
      expect(pos.epoch).toBe(0);
      const tip = execFileSync('git', ['--git-dir', join(real.dir, 'git', '0.git'), 'rev-parse', 'refs/heads/master']).toString().trim();
      expect(pos.commit).toBe(tip);
      expect(r.errors).toEqual([]);
    } finally {
      await r.stop();
    }
  });

  test('v1: public-inbox-init -V1 + public-inbox-mda', async () => {
    requirePublicInboxTools();
    const real = createRealInbox(tempDir(), { version: 1 });
    THREAD.forEach((m) => real.deliver(m));
    const r = start({ path: real.dir });
    try {
      await waitFor(() => r.messages().length >= 3, 'three messages');
      expect(r.messages().map(midOf)).toEqual(THREAD.map(midOf));
      expect(r.lastPosition()).toEqual({
        commit: execFileSync('git', ['--git-dir', real.dir, 'rev-parse', 'refs/heads/master']).toString().trim(),
      });
      expect(r.errors).toEqual([]);
    } finally {
      await r.stop();
    }
  });
});
