// patchvet vs git mailinfo on 3,000 real linux-hyperv mails: for every mail in which
// `git mailinfo` finds a patch, the author address, the subject (prefixes stripped) and the
// files touched must agree in at least 99% of the mails. Each known difference is explained
// in KNOWN below; any other difference fails the test and is printed.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readInputs } from '../../src/sources/index.js';
import { recordFromRaw } from '../../src/mail/record.js';
import type { RawMessage } from '../../src/model.js';

const SAMPLE = join(process.cwd(), '../shared/fixtures/real/linux-hyperv-2026.mbox.gz');

interface Info {
  author: string;
  subject: string;
  files: string[];
}

/** Files a patch text touches, as git apply would name them (new path, old path for deletions). */
export function filesOfPatch(patch: string): string[] {
  const out: string[] = [];
  const lines = patch.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const m = /^diff --git (?:"?a\/)(.+?)"? (?:"?b\/)(.+?)"?$/.exec(lines[i]);
    if (m) {
      let deleted = false;
      for (let j = i + 1; j < Math.min(lines.length, i + 8) && !lines[j].startsWith('diff --git '); j++) {
        if (lines[j].startsWith('deleted file mode')) deleted = true;
        if (lines[j].startsWith('@@')) break;
      }
      out.push(deleted ? m[1] : m[2]);
      continue;
    }
    if (lines[i].startsWith('--- ') && lines[i + 1]?.startsWith('+++ ') && !lines[i - 1]?.startsWith('index ') && !/^(new|deleted) file mode|^similarity|^index /.test(lines[i - 1] ?? '')) {
      // A diff without "diff --git" headers.
      if (out.length && lines.slice(Math.max(0, i - 4), i).some((l) => l.startsWith('diff --git '))) continue;
      const nw = lines[i + 1].slice(4).split('\t')[0].trim();
      const old = lines[i].slice(4).split('\t')[0].trim();
      const strip = (p: string) => p.replace(/^[^/]+\//, '');
      out.push(nw === '/dev/null' ? strip(old) : strip(nw));
    }
  }
  return [...new Set(out)];
}

/**
 * The differences that remain, by Message-ID, and why patchvet's answer is the one a reviewer
 * wants. Any other difference fails the test (with the list printed), so each one is explained.
 */
const KNOWN: Record<string, string> = {
  // A review that attaches a fix as a text/x-patch file with its own Subject:. git mailinfo
  // reads in-body headers only at the top of the first part and takes the reply's subject;
  // patchvet names the attached patch by its own Subject (the commit it would become).
  '<f0e33b51-d465-462d-b0f6-98a1db66bb15@infradead.org>': 'subject: the attachment\'s own Subject',
  // An Outlook reply whose quoted header starts "From: Lorenzo Stoakes <ljs@kernel.org> Sent: ...":
  // git mailinfo takes that line for an in-body From:; patchvet keeps a reply's sender (it is a
  // review, not Lorenzo's patch).
  '<SN6PR02MB41573DF211DA2469D7FFE892D44BA@SN6PR02MB4157.namprd02.prod.outlook.com>': 'author: Outlook quote header',
  // An interdiff between two patch files made with `diff -u`: the name is followed by two
  // spaces and a timestamp, which patchvet strips (the reference here splits only on TAB).
  '<SA1PR21MB69217F13193ADBD59430FB52BF3C2@SA1PR21MB6921.namprd21.prod.outlook.com>': 'files: diff -u timestamp',
  // Quoted-printable with =0D on every line: the patch git mailinfo writes keeps the CRs
  // ("quoted CRLF detected"), so the reference reads no file names; patchvet decodes the
  // same 14 files `git am --quoted-cr=strip` would.
  '<20260714-convert-to-noio-udata-v1-1-f1f6b6c7c988@nvidia.com>': 'files: quoted CRs',
};

function mailinfo(raw: Buffer, dir: string, n: number): Promise<Info | null> {
  return new Promise((resolve, reject) => {
    const msg = join(dir, `m${n}`);
    const patch = join(dir, `p${n}`);
    const p = spawn('git', ['mailinfo', '--scissors', '-u', msg, patch], { stdio: ['pipe', 'pipe', 'ignore'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.on('error', reject);
    p.on('close', () => {
      let patchText = '';
      try {
        patchText = readFileSync(patch, 'utf8');
      } catch {
        /* no patch */
      }
      if (!patchText.trim()) return resolve(null);
      const get = (k: string) => new RegExp(`^${k}: (.*)$`, 'm').exec(out)?.[1] ?? '';
      resolve({ author: get('Email').toLowerCase(), subject: get('Subject'), files: filesOfPatch(patchText).sort() });
    });
    p.stdin.on('error', () => {});
    p.stdin.end(raw);
  });
}

test('agrees with git mailinfo on author, subject and files for >= 99% of real patches', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'patchvet-mailinfo-'));
  const msgs: RawMessage[] = [];
  for await (const m of readInputs([SAMPLE])) msgs.push(m);
  expect(msgs.length).toBe(3000);

  let compared = 0;
  const diffs: string[] = [];
  const unexplained: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < msgs.length) {
      const i = next++;
      const m = msgs[i];
      const info = await mailinfo(m.raw, dir, i);
      if (!info) continue;
      compared++;
      const r = await recordFromRaw(m);
      const ours = { author: r.author.address, subject: r.parsedSubject.clean, files: [...r.files].sort() };
      const problems: string[] = [];
      if (ours.author !== info.author) problems.push(`author ${ours.author} vs ${info.author}`);
      if (ours.subject.replace(/\s+/g, ' ') !== info.subject.replace(/\s+/g, ' ')) problems.push(`subject "${ours.subject}" vs "${info.subject}"`);
      if (ours.files.join(',') !== info.files.join(',')) problems.push(`files [${ours.files}] vs [${info.files}]`);
      if (problems.length) {
        diffs.push(`${m.ref.source} ${r.messageId}: ${problems.join('; ')}`);
        if (!(r.messageId in KNOWN)) unexplained.push(diffs[diffs.length - 1]);
      }
    }
  };
  try {
    await Promise.all([worker(), worker(), worker(), worker()]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const agree = (compared - diffs.length) / compared;
  // Shown on failure, and a record of the remaining differences.
  if (agree < 0.99 || process.env.PATCHVET_SHOW_MAILINFO_DIFFS) console.log(`${compared} patches compared, ${diffs.length} differ:\n${diffs.join('\n')}`);
  expect(compared).toBeGreaterThan(500);
  expect(agree).toBeGreaterThanOrEqual(0.99);
  expect(unexplained).toEqual([]);
}, 300_000);
