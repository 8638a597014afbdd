// The run's spool: records stored in two parts and read back lazily, spool files written by
// one thread and read by another, and reply comments anchored ahead of time (what the worker
// threads do) giving exactly what thread assembly would compute itself.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readInputs, splitMboxBuffer } from '../../src/sources/index.js';
import { recordFromRaw } from '../../src/mail/record.js';
import { decodeRecord, encodeRecord } from '../../src/mail/stored.js';
import { PARSE_WINDOW, parseEachInto, runAnchorJobs, storeRecord, type ParseResult, type RecordSink } from '../../src/mail/jobs.js';
import { SpoolDir, SpoolReader, SpoolWriter } from '../../src/store/spool.js';
import { buildThreads } from '../../src/thread/jwz.js';
import { assembleThread } from '../../src/thread/assemble.js';
import type { MessageRecord, RawMessage } from '../../src/model.js';

const FIX = join(process.cwd(), '../shared/fixtures');

async function records(name: string): Promise<MessageRecord[]> {
  const out: MessageRecord[] = [];
  for (const m of splitMboxBuffer(readFileSync(join(FIX, name)), name)) out.push(await recordFromRaw(m));
  return out;
}

describe('stored records', () => {
  test('a record read back is the same record, field order included', async () => {
    for (const r of await records('xen-fpu-reset-v2-1of9.mbox')) {
      const { head, rest } = encodeRecord(r);
      let restReads = 0;
      const back = decodeRecord(head, () => {
        restReads++;
        return rest;
      });
      expect(JSON.stringify(back)).toBe(JSON.stringify(r));
      expect(Object.keys(back)).toEqual(Object.keys(r));
      expect(restReads).toBe(1);
    }
  });

  test('only the head is parsed until a bulky field is used; then once', async () => {
    const [patch] = (await records('xen-fpu-reset-v2-1of9.mbox')).filter((r) => r.kind === 'patch');
    const { head, rest } = encodeRecord(patch);
    expect(head.length).toBeLessThan(rest.length); // the head is the small part
    let restReads = 0;
    const back = decodeRecord(head, () => {
      restReads++;
      return rest;
    });
    expect([back.messageId, back.kind, back.files, back.subject]).toEqual([patch.messageId, 'patch', patch.files, patch.subject]);
    expect(restReads).toBe(0);
    expect(back.diff).toEqual(patch.diff);
    expect(back.blocks).toEqual(patch.blocks);
    expect(restReads).toBe(1);
  });

  test('every record of the 3,000 real mails reads back the same, packed diff lines included', async () => {
    let packed = 0;
    let lines = 0;
    for await (const m of readInputs([join(FIX, 'real/linux-hyperv-2026.mbox.gz')])) {
      const r = await recordFromRaw(m);
      const { head, rest } = encodeRecord(r);
      const stored = JSON.parse(rest)[5] as { files: Array<{ hunks: Array<{ lines: unknown }> }> } | null;
      for (const f of stored?.files ?? []) for (const h of f.hunks) if (!Array.isArray(h.lines)) packed++;
      for (const f of r.diff?.files ?? []) for (const h of f.hunks) lines += h.lines.length;
      expect(JSON.stringify(decodeRecord(head, () => rest))).toBe(JSON.stringify(r));
    }
    expect(packed).toBeGreaterThan(1000);
    expect(lines).toBeGreaterThan(50_000);
  }, 120_000);

  test('a hunk whose lines are not numbered from its starts is kept as it is', async () => {
    const [patch] = (await records('xen-fpu-reset-v2-1of9.mbox')).filter((r) => r.kind === 'patch');
    const hunk = patch.diff!.files[0].hunks[0];
    const line = hunk.lines.find((l) => l.kind === 'add')!;
    line.newLine = 9999; // numbered apart from its neighbours: not derivable, so stored whole
    hunk.lines[hunk.lines.length - 1].noNewline = true;
    const { head, rest } = encodeRecord(patch);
    expect(Array.isArray(JSON.parse(rest)[5].files[0].hunks[0].lines)).toBe(true);
    const back = decodeRecord(head, () => rest);
    expect(back.diff).toEqual(patch.diff);
    expect(back.diff!.files[0].hunks[0].lines.find((l) => l.kind === 'add')!.newLine).toBe(9999);
  });

  test('a line without a newline at the end keeps its mark through the packing', async () => {
    const [patch] = (await records('xen-fpu-reset-v2-1of9.mbox')).filter((r) => r.kind === 'patch');
    const hunk = patch.diff!.files[0].hunks[0];
    hunk.lines[hunk.lines.length - 1].noNewline = true;
    const { head, rest } = encodeRecord(patch);
    expect(Array.isArray(JSON.parse(rest)[5].files[0].hunks[0].lines)).toBe(false);
    const back = decodeRecord(head, () => rest);
    expect(JSON.stringify(back.diff)).toBe(JSON.stringify(patch.diff));
    expect(back.diff!.files[0].hunks[0].lines.filter((l) => l.noNewline).length).toBe(1);
  });

  test('a bulky field can be replaced like any other', async () => {
    const [r] = await records('xen-fpu-reset-v2-1of9.mbox');
    const { head, rest } = encodeRecord(r);
    const back = decodeRecord(head, () => rest);
    back.warnings = ['changed'];
    expect(back.warnings).toEqual(['changed']);
    expect(back.cc).toEqual(r.cc);
    const copy = { ...back, trailers: [] };
    expect(copy.diff).toEqual(r.diff);
    expect(copy.warnings).toEqual(['changed']);
  });
});

describe('thread assembly on stored records', () => {
  test('trailers given in replies are merged without reading the patch\'s diff or recipients', async () => {
    const recs = await records('xen-eager-fpu-v2.mbox');
    let restReads = 0;
    const stored = new Map(
      recs.map((r) => {
        const { head, rest } = encodeRecord(r);
        return [r.messageId, () => decodeRecord(head, () => (restReads++, rest))] as const;
      }),
    );
    let merged = 0;
    for (const t of buildThreads(recs).threads) {
      const direct = assembleThread(t, (id) => recs.find((r) => r.messageId === id));
      const fromSpool = assembleThread(t, (id) => stored.get(id)?.(), () => []);
      for (const m of fromSpool.messages) {
        const d = direct.messages.find((x) => x.messageId === m.messageId)!;
        expect(m.record?.trailers).toEqual(d.record?.trailers);
        if (m.record?.kind === 'patch' && m.record.trailers.some((x) => x.givenIn)) merged++;
      }
      expect(restReads).toBe(0); // (comments were given, so no reply was anchored here)
      // Read now, the copies give the records' own values.
      expect(JSON.stringify(fromSpool.messages.map((m) => m.record))).toBe(JSON.stringify(direct.messages.map((m) => m.record)));
      restReads = 0;
    }
    expect(merged).toBeGreaterThan(0);
  });
});

describe('spool files', () => {
  test('what one writer appends, a reader reads at the offsets it was given, multi-byte text included', () => {
    const dir = new SpoolDir('patchvet-test-spool-');
    try {
      const a = dir.newFile();
      const b = dir.newFile();
      const wa = new SpoolWriter(a.path);
      const wb = new SpoolWriter(b.path);
      const big = 'x'.repeat(3 << 20); // larger than the staging buffer: written on its own
      const pieces: Array<[number, { offset: number; length: number }, string]> = [];
      for (const [w, f, s] of [
        [wa, a.file, 'Roger Pau Monné'],
        [wb, b.file, '日本語のメール'],
        [wa, a.file, big],
        [wa, a.file, 'after the big one'],
      ] as const) {
        pieces.push([f, w.append(s), s]);
      }
      wa.flush();
      wb.close();
      const r = new SpoolReader(dir.paths);
      for (const [f, at, s] of pieces) expect(r.text(f, at.offset, at.length)).toBe(s);
      r.close();
      wa.close();
    } finally {
      dir.close();
    }
  });
});

describe('parsing several mails at once', () => {
  test('records come out in input order, spooled as one at a time would, and a bad mail in a window is skipped alone', async () => {
    const good: RawMessage[] = [];
    for await (const m of readInputs([join(FIX, 'real/linux-hyperv-2026.mbox.gz')])) {
      good.push(m);
      if (good.length === PARSE_WINDOW * 3 + 5) break;
    }
    // Two mails parseMail rejects, in the middle of windows, and one at the very end.
    const bad = (n: number): RawMessage => {
      const raw = n % 2 ? Buffer.alloc(0) : Buffer.from('this is not a mail: no header block at all');
      return { raw, ref: { source: `bad:${n}`, file: 'bad', offset: n, length: raw.length } };
    };
    const msgs = [...good.slice(0, 7), bad(1), ...good.slice(7, PARSE_WINDOW + 9), bad(2), ...good.slice(PARSE_WINDOW + 9), bad(3)];
    const dir = new SpoolDir('patchvet-test-spool-');
    try {
      const many = dir.newFile();
      const sinkMany: RecordSink = { file: many.file, writer: new SpoolWriter(many.path) };
      const results: ParseResult[] = [];
      for await (const r of parseEachInto(msgs, sinkMany)) results.push(r);
      sinkMany.writer.close();
      // The same mails through a window of one: the generator fed one mail at a time.
      const one = dir.newFile();
      const sinkOne: RecordSink = { file: one.file, writer: new SpoolWriter(one.path) };
      const single: ParseResult[] = [];
      for (const m of msgs) for await (const r of parseEachInto([m], sinkOne)) single.push(r);
      sinkOne.writer.close();

      expect(results).toHaveLength(msgs.length);
      expect(results.map((r) => (r.ok ? r.light.messageId : r.error.source))).toEqual(single.map((r) => (r.ok ? r.light.messageId : r.error.source)));
      const errors = results.filter((r) => !r.ok);
      expect(errors.map((r) => (r.ok ? null : r.error.source))).toEqual(['bad:1', 'bad:2', 'bad:3']);
      expect(errors.every((r) => !r.ok && r.error.message.startsWith('skipped: '))).toBe(true);
      expect(results.filter((r) => r.ok)).toHaveLength(good.length);
      expect(readFileSync(many.path)).toEqual(readFileSync(one.path));
      expect(readFileSync(many.path).length).toBeGreaterThan(good.length * 100);
    } finally {
      dir.close();
    }
  });
});

describe('anchoring ahead of time', () => {
  test('gives what assembleThread anchors itself, for every reply of the reference threads', async () => {
    const recs = [
      ...(await records('xen-fpu-reset-v2-1of9.mbox')),
      ...(await records('xen-eager-fpu-v2.mbox')),
      ...(await records('xen-ftw-alloc.mbox')),
    ];
    const byId = new Map(recs.map((r) => [r.messageId, r]));
    const dir = new SpoolDir('patchvet-test-spool-');
    try {
      const f = dir.newFile();
      const sink: RecordSink = { file: f.file, writer: new SpoolWriter(f.path) };
      const at = new Map(recs.map((r) => [r.messageId, storeRecord(r, sink)]));
      sink.writer.flush();
      const reader = new SpoolReader(dir.paths);
      let anchored = 0;
      for (const t of buildThreads(recs).threads) {
        const direct = assembleThread(t, (id) => byId.get(id));
        // The patch each reply answers, as the pipeline finds it: nearest patch ancestor with a diff.
        const parent = new Map(t.messages.map((m) => [m.messageId, m.parent]));
        const jobs = t.messages
          .filter((m) => byId.get(m.messageId)?.blocks.length)
          .map((m) => {
            let p = parent.get(m.messageId) ?? null;
            while (p !== null && !(byId.get(p)?.kind === 'patch' && byId.get(p)?.diff)) p = parent.get(p) ?? null;
            return { id: m.messageId, job: { reply: at.get(m.messageId)!, patch: p ? at.get(p)! : null } };
          });
        const out = runAnchorJobs(jobs.map((j) => j.job), reader, sink);
        sink.writer.flush();
        const pre = new Map(jobs.map((j, i) => [j.id, JSON.parse(reader.text(out[i].file, out[i].offset, out[i].length))]));
        const ahead = assembleThread(t, (id) => byId.get(id), (id) => pre.get(id) ?? (byId.get(id)?.blocks.length ? undefined : null));
        expect(JSON.parse(JSON.stringify(ahead))).toEqual(JSON.parse(JSON.stringify(direct)));
        anchored += jobs.length;
      }
      expect(anchored).toBeGreaterThan(5);
      reader.close();
      sink.writer.close();
    } finally {
      dir.close();
    }
  });
});
