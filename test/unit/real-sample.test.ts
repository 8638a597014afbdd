// Threads and anchors on 3,000 real linux-hyperv mails.
//
// Threading: a message's own In-Reply-To (else its last Reference) names its parent whenever
// that message is in the corpus (JWZ keeps a message's own headers authoritative).
//
// Anchoring: every reviewer comment that patchvet anchors to a line must follow a quoted line
// that reads as that line of the patch the reply answers (whitespace aside). The only
// exceptions are quotes that go past what the patch shows (review bots quote the file beyond
// the hunk); they are listed in KNOWN with the line the quote's own hunk header gives, so any
// other anchor that does not read as its line fails the test.
import { join } from 'node:path';
import { loadCorpus, type Corpus } from '../../src/pipeline.js';
import { readInputs } from '../../src/sources/index.js';
import type { DiffLine, MessageRecord, ThreadMessage } from '../../src/model.js';
import { buildThreads } from '../../src/thread/jwz.js';
import { groupSeries } from '../../src/thread/series.js';

const SAMPLE = join(process.cwd(), '../shared/fixtures/real/linux-hyperv-2026.mbox.gz');

/** reply Message-ID + file -> the line the quote's own numbering gives (no patch line there). */
const KNOWN: Record<string, number> = {
  // Sashiko AI review bot: quotes 4 lines above the patch's hunk, under a hunk header of its own.
  '<20260519205555.5C52F1F000E9@smtp.kernel.org> drivers/gpu/drm/hyperv/hyperv_drm_proto.c': 389,
  '<20260530004428.A0ECB1F00893@smtp.kernel.org> drivers/net/ethernet/microsoft/mana/hw_channel.c': 261,
  // The same bot, quoting past the hunk's end: counted on from the hunk's last line (122 and 307).
  '<20260528012253.489281F000E9@smtp.kernel.org> kernel/liveupdate/kexec_handover.c': 125,
  '<20260710024051.6EEDD1F000E9@smtp.kernel.org> drivers/hid/hid-hyperv.c': 314,
};

const squash = (s: string) => s.replace(/\s+/g, '');

let corpus: Corpus;
beforeAll(async () => {
  corpus = await loadCorpus([SAMPLE], { workers: 0 });
}, 120_000);
afterAll(() => corpus?.close());

test("every message's parent is the message its own headers name, when that message is here", () => {
  const parentOf = new Map<string, string | null>();
  const present: string[] = [];
  for (const t of corpus.threads) {
    for (const m of t.messages) {
      parentOf.set(m.messageId, m.parent);
      if (!m.ghost) present.push(m.messageId);
    }
  }
  let named = 0;
  const wrong: string[] = [];
  for (const id of present) {
    const r = corpus.load(id)!;
    const own = (r.inReplyTo ?? r.references[r.references.length - 1] ?? '').trim();
    if (!own || own === id || !parentOf.has(own)) continue;
    named++;
    if (parentOf.get(id) !== own) wrong.push(`${id}: parent ${parentOf.get(id)}, its headers name ${own}`);
  }
  expect(wrong).toEqual([]);
  expect(named).toBeGreaterThan(2600); // 2,695 when written
});

test('every comment anchored to a line follows a quoted line that reads as that line of the patch', () => {
  let anchored = 0;
  let verified = 0;
  const wrong: string[] = [];
  const outside: Record<string, number> = {};
  for (const t of corpus.threads) {
    const thread = corpus.thread(t);
    const byId = new Map(thread.messages.map((m) => [m.messageId, m]));
    const patchOf = (m: ThreadMessage): ThreadMessage | null => {
      for (let p = m.parent ? byId.get(m.parent) : undefined; p; p = p.parent ? byId.get(p.parent) : undefined) {
        if (p.record?.kind === 'patch' && p.record.diff) return p;
      }
      return null;
    };
    for (const m of thread.messages) {
      for (const c of m.comments) {
        if (c.file === null || c.line === null) continue;
        anchored++;
        const patch = patchOf(m);
        if (!patch) continue; // numbered from the quote's own headers alone: nothing to check against
        const file = patch.record!.diff!.files.find((f) => f.path === c.file);
        const at = (l: DiffLine) => (c.side === 'old' ? l.kind !== 'add' && l.oldLine === c.line : l.kind !== 'del' && l.newLine === c.line);
        const line = file?.hunks.flatMap((h) => h.lines).find(at);
        const quoted = c.quoted[c.quoted.length - 1] ?? '';
        if (!line) outside[`${m.messageId} ${c.file}`] = c.line;
        else if (squash(line.text) === squash(quoted.slice(1))) verified++;
        else wrong.push(`${m.messageId} ${c.file}:${c.line} (${c.side}): quoted ${JSON.stringify(quoted)}, the patch has ${JSON.stringify(line.text)}`);
      }
    }
  }
  expect(wrong).toEqual([]);
  expect(outside).toEqual(KNOWN);
  // A floor, so that anchoring giving up (everything as prose) fails too: 785 when written.
  expect(anchored).toBeGreaterThanOrEqual(790);
  expect(verified).toBeGreaterThanOrEqual(780);
});

test('the on-disk index threads and groups series as the in-memory Threader and groupSeries do', () => {
  const records: MessageRecord[] = [];
  const skeletons: unknown[] = [];
  for (const t of corpus.threads) {
    skeletons.push({ root: t.root, rootMissing: t.rootMissing, messages: t.messages });
    for (const m of t.messages) if (!m.ghost) records.push(corpus.load(m.messageId)!);
  }
  expect(records).toHaveLength(corpus.stats.messages - corpus.stats.duplicates);
  const { threads } = buildThreads(records);
  expect(skeletons).toEqual(threads.map((t) => ({ root: t.root, rootMissing: t.rootMissing, messages: t.messages })));

  const series = [...corpus.series];
  expect(series.length).toBeGreaterThan(300); // 307 when written
  expect(series.filter((s) => s.previousVersion).length).toBeGreaterThan(50);
  expect(series).toEqual(groupSeries(records, threads));
  for (const s of series) for (const p of s.patches) if (p) expect(corpus.seriesOf(p)).toBe(s.id);
});

test('none of the real list mails, all stamped "Precedence: bulk" by the list server, is automated by that alone', async () => {
  let bulk = 0;
  for await (const m of readInputs([SAMPLE])) {
    const head = m.raw.subarray(0, 16384).toString('latin1');
    if (/^Precedence: bulk$/im.test(head) && /^List-Id:/im.test(head) && !/^(Auto-Submitted|X-Autoreply|X-Autorespond|X-List-Administrivia):/im.test(head)) bulk++;
  }
  expect(bulk).toBe(3000);
  const automated: string[] = [];
  for (const t of corpus.threads) {
    for (const m of t.messages) {
      if (m.ghost) continue;
      const r = corpus.load(m.messageId)!;
      if (r.automated) automated.push(`${r.messageId} ${r.from.address}`);
    }
  }
  expect(automated).toEqual([]);
});
