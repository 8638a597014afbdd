// The list reply patchvet would send for one patch mail: plain text, threaded under the
// patch, quoting only the hunk lines each finding concerns (with a little context and
// [...] elisions), the finding under the quoted line, prose wrapped at 72 columns.
// Pure: composing is separate from sending (the outbox/SMTP sinks send what this returns).
import { createHash } from 'node:crypto';
import type { Address, DiffLine, FileDiff, Finding, Hunk, MessageRecord } from '../model.js';

export interface ReplyOptions {
  from: string;
  /** Where the list is (Cc'd unless policy says author only). */
  list?: string | null;
  /** 'author': only to the author; 'list': to the author, Cc the list and the original Cc's. */
  policy?: 'author' | 'list';
  botName?: string;
  /** Domain for generated Message-IDs. */
  domain?: string;
  context?: number;
}

export interface ComposedReply {
  headers: Array<[string, string]>;
  text: string;
  messageId: string;
  inReplyTo: string;
  to: string[];
  cc: string[];
}

/** Strip anything that could break out of a header (CR, LF, other controls). */
export function headerSafe(s: string): string {
  return s.replace(/[\r\n\t\x00-\x1f\x7f]+/g, ' ').replace(/\s+/g, ' ').trim();
}

/** RFC 2047 encoded-word (Q) for a header text with non-ASCII characters; ASCII stays as it is. */
export function encodeWord(text: string): string {
  if (/^[\x20-\x7e]*$/.test(text)) return text;
  const bytes = Buffer.from(text, 'utf8');
  let q = '';
  for (const b of bytes) {
    const c = String.fromCharCode(b);
    q += /[A-Za-z0-9!*+\-/]/.test(c) ? c : b === 0x20 ? '_' : `=${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  // Encoded words are limited to 75 characters: split into several.
  const words: string[] = [];
  for (let i = 0; i < q.length; ) {
    let end = Math.min(q.length, i + 60);
    while (end < q.length && q[end - 1] !== undefined && /=[0-9A-F]?$/.test(q.slice(Math.max(i, end - 2), end))) end--;
    words.push(`=?UTF-8?Q?${q.slice(i, end)}?=`);
    i = end;
  }
  return words.join(' ');
}

function formatAddress(a: Address): string {
  const addr = headerSafe(a.address).replace(/[<>,;\s]/g, '');
  if (!a.name) return addr;
  const name = headerSafe(a.name);
  if (/[^\x20-\x7e]/.test(name)) return `${encodeWord(name)} <${addr}>`;
  return /^[\w .'-]+$/.test(name) ? `${name} <${addr}>` : `"${name.replace(/["\\]/g, '\\$&')}" <${addr}>`;
}

/** Wrap prose at `width` columns, keeping paragraphs. */
export function wrap(text: string, width = 72, indent = ''): string {
  const out: string[] = [];
  for (const para of text.split(/\n{2,}/)) {
    const words = para.replace(/\s+/g, ' ').trim().split(' ');
    let line = '';
    for (const w of words) {
      if (line && (indent + line + ' ' + w).length > width) {
        out.push(indent + line);
        line = w;
      } else line = line ? `${line} ${w}` : w;
    }
    if (line) out.push(indent + line);
    out.push('');
  }
  while (out.length && out[out.length - 1] === '') out.pop();
  return out.join('\n');
}

function prefixOf(l: DiffLine): string {
  return l.kind === 'add' ? '+' : l.kind === 'del' ? '-' : ' ';
}

function locate(file: FileDiff, f: Finding): { hunk: Hunk; index: number } | null {
  for (const hunk of file.hunks) {
    const index = hunk.lines.findIndex((l) => (f.side === 'old' ? l.oldLine === f.line && l.kind !== 'add' : l.newLine === f.line && l.kind !== 'del'));
    if (index >= 0) return { hunk, index };
  }
  return null;
}

function attribution(r: MessageRecord): string {
  const who = r.from.name || r.from.address;
  if (!r.date) return `${who} wrote:`;
  const d = new Date(r.date);
  const day = d.toUTCString().replace(/ GMT$/, ' +0000');
  return `On ${day}, ${who} wrote:`;
}

export function composeReply(record: MessageRecord, findings: Finding[], opts: ReplyOptions): ComposedReply {
  const context = opts.context ?? 3;
  const body: string[] = [attribution(record), ''];
  const byFile = new Map<string, Finding[]>();
  const general: Finding[] = [];
  for (const f of findings) {
    if (f.file && f.line !== null) byFile.set(f.file, [...(byFile.get(f.file) ?? []), f]);
    else general.push(f);
  }
  for (const f of general) {
    body.push(wrap(`[${f.rule}] ${f.message}`), '');
  }
  for (const file of record.diff?.files ?? []) {
    const fs = (byFile.get(file.path) ?? []).slice().sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
    if (!fs.length) continue;
    const header =
      file.oldPath && file.newPath ? `diff --git a/${file.oldPath} b/${file.newPath}` : `diff --git a/${file.path} b/${file.path}`;
    body.push(`> ${header}`);
    let lastHunk: Hunk | null = null;
    let lastIndex = -1;
    for (const f of fs) {
      const loc = locate(file, f);
      if (!loc) {
        body.push('', wrap(`[${f.rule}] ${f.message}`), '');
        continue;
      }
      if (loc.hunk === lastHunk && loc.index === lastIndex) {
        // Another finding on the line just quoted: no second quote.
        body.push(wrap(f.message));
        for (const n of f.notes ?? []) body.push('', wrap(n));
        body.push(wrap(`(${f.rule}, ${f.severity})`), '');
        continue;
      }
      const from = Math.max(0, loc.index - context);
      if (loc.hunk !== lastHunk) {
        if (lastHunk) body.push('> [...]');
        body.push(`> ${loc.hunk.header}`);
        if (from > 0) body.push('> [...]');
      } else if (from > lastIndex + 1) body.push('> [...]');
      const start = loc.hunk === lastHunk ? Math.max(from, lastIndex + 1) : from;
      for (let i = start; i <= loc.index; i++) {
        const l = loc.hunk.lines[i];
        body.push(`> ${prefixOf(l)}${l.text}`.trimEnd());
      }
      lastHunk = loc.hunk;
      lastIndex = loc.index;
      if (body[body.length - 1] !== '') body.push('');
      body.push(wrap(f.message));
      for (const n of f.notes ?? []) body.push('', wrap(n));
      body.push(wrap(`(${f.rule}, ${f.severity})`), '');
    }
  }
  const bot = opts.botName ?? 'patchvet';
  body.push(
    '-- ',
    wrap(
      `${bot} is an automated reviewer; these are questions for a human to weigh, not a verdict. ` +
        `To silence a rule on this thread, reply with "Review-Bot-Ignore: <rule-id>".` +
        (findings.some((f) => f.source === 'llm')
          ? ' Points marked llm/... are a language model\'s second reading, held to the lines it quotes.'
          : ''),
    ),
  );

  const subject = headerSafe(record.subject);
  const reSubject = /^re:/i.test(subject) ? subject : `Re: ${subject}`;
  const refs = [...record.references.filter((r) => r !== record.messageId), record.messageId].map(headerSafe);
  const fp = createHash('sha256')
    .update(record.messageId + '\n' + findings.map((f) => f.fingerprint).sort().join(','))
    .digest('hex')
    .slice(0, 24);
  const messageId = `<patchvet.${fp}@${opts.domain ?? 'patchvet.invalid'}>`;
  const to = [formatAddress(record.author.address ? record.author : record.from)];
  const cc: string[] = [];
  if ((opts.policy ?? 'list') === 'list') {
    if (record.from.address && record.from.address !== record.author.address) cc.push(formatAddress(record.from));
    if (opts.list) cc.push(headerSafe(opts.list));
    for (const a of [...record.to, ...record.cc]) {
      const s = formatAddress(a);
      if (a.address && !cc.includes(s) && !to.includes(s)) cc.push(s);
    }
  }
  const headers: Array<[string, string]> = [
    ['From', headerSafe(opts.from)],
    ['To', to.join(', ')],
    ...(cc.length ? ([['Cc', cc.join(', ')]] as Array<[string, string]>) : []),
    ['Subject', encodeWord(reSubject)],
    ['Message-ID', messageId],
    ['In-Reply-To', headerSafe(record.messageId)],
    ['References', refs.join(' ')],
    ['Auto-Submitted', 'auto-generated'],
    ['X-Patchvet', `findings=${findings.length}`],
    ['MIME-Version', '1.0'],
    ['Content-Type', 'text/plain; charset=utf-8'],
    ['Content-Transfer-Encoding', '8bit'],
  ];
  return { headers, text: body.join('\n') + '\n', messageId, inReplyTo: record.messageId, to, cc };
}

/** RFC 5322 text of a composed reply (headers folded at 78 columns). */
export function replyToEml(r: ComposedReply): string {
  const fold = (name: string, value: string) => {
    const words = `${name}: ${value}`.split(' ');
    const lines: string[] = [];
    let cur = '';
    for (const w of words) {
      if (cur && cur.length + 1 + w.length > 78) {
        lines.push(cur);
        cur = ' ' + w;
      } else cur = cur ? `${cur} ${w}` : w;
    }
    lines.push(cur);
    return lines.join('\n');
  };
  return r.headers.map(([k, v]) => fold(k, v)).join('\n') + '\n\n' + r.text;
}
