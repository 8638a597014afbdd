// Records for the rule tests. Uses the real mail stage (src/mail/record.ts recordFromText)
// when it loads; until its diff parser lands, falls back to a small stand-in that reads
// plain 8bit git-send-email mails well enough for the rule tests (headers, in-body From,
// commit message, trailers, a unified diff with the function of each line).
import { readFileSync } from 'node:fs';
import type { Address, DiffLine, FileDiff, Hunk, MessageRecord } from '../../src/model.js';
import { parseSubject } from '../../src/thread/subject.js';

export const FIXTURES = '/work/shared/fixtures';

/** Split an mboxrd file into mail texts (">From " unescaped). */
export function readMbox(path: string): string[] {
  const text = readFileSync(path, 'utf8');
  return text
    .split(/^From [^\n]*\n/m)
    .filter((m) => m.trim())
    .map((m) => m.replace(/^>(>*From )/gm, '$1'));
}

// ---------------------------------------------------------------- stand-in

function headerBlock(text: string): { headers: Map<string, string[]>; body: string } {
  const end = text.search(/\r?\n\r?\n/);
  const head = end < 0 ? text : text.slice(0, end);
  const body = end < 0 ? '' : text.slice(end).replace(/^\r?\n\r?\n/, '');
  const headers = new Map<string, string[]>();
  let last: string | null = null;
  for (const line of head.split(/\r?\n/)) {
    if (/^[ \t]/.test(line) && last) {
      const vals = headers.get(last)!;
      vals[vals.length - 1] += ' ' + line.trim();
      continue;
    }
    const m = /^([^:\s]+):\s*(.*)$/.exec(line);
    if (!m) continue;
    last = m[1]!.toLowerCase();
    headers.set(last, [...(headers.get(last) ?? []), m[2]!]);
  }
  return { headers, body };
}

function addr(v: string): Address {
  const m = /^\s*"?([^"<]*?)"?\s*<([^>]+)>/.exec(v);
  if (m) return { name: m[1]!.trim(), address: m[2]!.trim() };
  return { name: '', address: v.trim() };
}

function addrList(v: string | undefined): Address[] {
  if (!v) return [];
  return v
    .split(/,(?=(?:[^"]*"[^"]*")*[^"]*$)/)
    .map((s) => s.trim())
    .filter(Boolean)
    .map(addr);
}

function defName(text: string): string | null {
  // A definition starts in column 0 and is not a declaration.
  if (!/^[A-Za-z_]/.test(text) || /;\s*$/.test(text)) return null;
  const m = /([A-Za-z_]\w*)\s*\(/.exec(text);
  return m ? m[1]! : null;
}

function parseDiff(text: string): { files: FileDiff[]; damage: string[] } {
  const files: FileDiff[] = [];
  const damage: string[] = [];
  const lines = text.split('\n');
  let file: FileDiff | null = null;
  let hunk: Hunk | null = null;
  let oldNo = 0;
  let newNo = 0;
  let oldLeft = 0;
  let newLeft = 0;
  let fn: string | null = null;
  for (const line of lines) {
    if (line.startsWith('diff --git ')) {
      const m = /^diff --git a\/(\S+) b\/(\S+)/.exec(line);
      file = {
        oldPath: m?.[1] ?? null,
        newPath: m?.[2] ?? null,
        path: m?.[2] ?? m?.[1] ?? '?',
        status: 'modified',
        binary: false,
        hunks: [],
        additions: 0,
        deletions: 0,
      };
      files.push(file);
      hunk = null;
      continue;
    }
    if (!file) continue;
    if (line === '-- ' && oldLeft <= 0 && newLeft <= 0) break;
    const h = /^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@ ?(.*)$/.exec(line);
    if (h) {
      oldNo = +h[1]!;
      newNo = +h[3]!;
      oldLeft = h[2] === undefined ? 1 : +h[2];
      newLeft = h[4] === undefined ? 1 : +h[4];
      fn = h[5] ? defName(h[5]) ?? null : null;
      hunk = {
        header: line,
        oldStart: oldNo,
        oldLines: oldLeft,
        newStart: newNo,
        newLines: newLeft,
        headerFunction: fn,
        lines: [],
      };
      file.hunks.push(hunk);
      continue;
    }
    if (!hunk || (oldLeft <= 0 && newLeft <= 0)) {
      if (line.startsWith('new file mode')) file.status = 'added';
      if (line.startsWith('deleted file mode')) file.status = 'deleted';
      if (line.startsWith('--- /dev/null')) file.oldPath = null;
      if (line.startsWith('+++ /dev/null')) {
        file.newPath = null;
        file.path = file.oldPath ?? file.path;
      }
      continue;
    }
    const c = line[0];
    const body = line.slice(1);
    let dl: DiffLine;
    if (c === '\\') {
      const prev = hunk.lines[hunk.lines.length - 1];
      if (prev) prev.noNewline = true;
      continue;
    } else if (c === '+') {
      dl = { kind: 'add', text: body, oldLine: null, newLine: newNo++, fn };
      newLeft--;
      file.additions++;
    } else if (c === '-') {
      dl = { kind: 'del', text: body, oldLine: oldNo++, newLine: null, fn };
      oldLeft--;
      file.deletions++;
    } else if (c === ' ' || line === '') {
      if (line === '') damage.push(`${file.path}: empty line inside a hunk (context lines lost their leading space)`);
      dl = { kind: 'ctx', text: body, oldLine: oldNo++, newLine: newNo++, fn };
      oldLeft--;
      newLeft--;
    } else {
      damage.push(`${file.path}: line without a diff prefix: ${line.slice(0, 40)}`);
      continue;
    }
    const d = defName(dl.text);
    if (d && dl.kind !== 'del') {
      fn = d;
      dl.fn = d;
    }
    hunk.lines.push(dl);
  }
  return { files, damage };
}

/** The stand-in mail reader (8bit text mails only). */
export function stubRecord(text: string): MessageRecord {
  const { headers, body: rawBody } = headerBlock(text.replace(/^From [^\n]*\n/, ''));
  const h = (n: string): string | undefined => headers.get(n)?.[0];
  let body = rawBody;
  if (/quoted-printable/i.test(h('content-transfer-encoding') ?? '')) {
    body = body.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, (_, x: string) => String.fromCharCode(parseInt(x, 16)));
  }
  const from = addr(h('from') ?? '');
  let author = from;
  const inBody = /^From:\s*(.+)\n/.exec(body);
  if (inBody) {
    author = addr(inBody[1]!);
    body = body.slice(inBody[0].length).replace(/^\n/, '');
  }
  const diffAt = body.search(/^diff --git /m);
  let commitMessage: string | null = null;
  let diff: MessageRecord['diff'] = null;
  if (diffAt >= 0) {
    const before = body.slice(0, diffAt);
    const sep = before.search(/^---\s*$/m);
    commitMessage = (sep >= 0 ? before.slice(0, sep) : before).replace(/\s+$/, '\n');
    diff = parseDiff(body.slice(diffAt));
  }
  const subject = h('subject') ?? '';
  const parsedSubject = parseSubject(subject);
  const trailers = (commitMessage ?? '')
    .split('\n')
    .map((l) => /^([A-Za-z][A-Za-z0-9-]*):\s*(.+)$/.exec(l))
    .filter((m): m is RegExpExecArray => !!m && /-by$|^Fixes$|^Link$|^Cc$/i.test(m[1]!))
    .map((m) => ({ name: m[1]!, value: m[2]! }));
  const kind: MessageRecord['kind'] = parsedSubject.reply ? 'reply' : diff ? 'patch' : parsedSubject.series?.index === 0 ? 'cover' : 'other';
  return {
    messageId: (h('message-id') ?? '<none>').trim(),
    ref: { source: 'text:0', file: 'text', offset: 0, length: text.length },
    inReplyTo: h('in-reply-to')?.trim() ?? null,
    references: (h('references') ?? '').split(/\s+/).filter(Boolean),
    from,
    author,
    date: null,
    subject,
    parsedSubject,
    kind,
    listIds: (headers.get('list-id') ?? []).map((v) => /<([^>]+)>/.exec(v)?.[1] ?? v.trim()),
    to: addrList(h('to')),
    cc: addrList(h('cc')),
    commitMessage,
    diff,
    files: diff ? diff.files.map((f) => f.path) : [],
    diffstat: false,
    trailers,
    blocks: [],
    whitespaceDamaged: !!diff?.damage.length || /format=flowed/i.test(h('content-type') ?? ''),
    damage: diff?.damage ?? [],
    automated: false,
    warnings: [],
  };
}

// ---------------------------------------------------------------- the maker the tests use

type RecordFromText = (text: string) => Promise<MessageRecord>;
let real: RecordFromText | null | undefined;

/** Which reader the tests ran with ('real' once src/mail/record.ts and its diff parser load). */
export let readerUsed: 'real' | 'stub' = 'stub';

export async function makeRecord(text: string): Promise<MessageRecord> {
  if (real === undefined) {
    try {
      const mod = (await import('../../src/mail/record.js')) as { recordFromText?: RecordFromText };
      real = mod.recordFromText ?? null;
    } catch {
      real = null;
    }
    readerUsed = real ? 'real' : 'stub';
  }
  return real ? real(text) : stubRecord(text);
}

export async function mboxRecords(path: string): Promise<MessageRecord[]> {
  const out: MessageRecord[] = [];
  for (const m of readMbox(path)) out.push(await makeRecord(m));
  return out;
}
