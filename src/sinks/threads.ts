// sinks for `patchvet threads`: the JSON of CONTRACT.md (patchvet/threads@1) and a
// readable text tree. Both are written one thread at a time.
import type { Comment, InputError, Series, Thread, ThreadMessage } from '../model.js';

export const THREADS_SCHEMA = 'patchvet/threads@1';

/** One message as CONTRACT.md shapes it (ghosts keep the same keys, with nulls). */
export function messageJson(m: ThreadMessage, seriesOf?: (id: string) => string | undefined): Record<string, unknown> {
  const r = m.record;
  if (!r) {
    return {
      messageId: m.messageId, parent: m.parent, ghost: true, from: null, author: null, date: null, subject: null,
      kind: null, series: null, files: [], trailers: [], comments: [],
    };
  }
  const s = r.parsedSubject.series;
  return {
    messageId: r.messageId,
    parent: m.parent,
    ghost: false,
    from: r.from,
    author: r.author,
    date: r.date,
    subject: r.subject,
    kind: r.kind,
    series: s
      ? { version: s.version, index: s.index, total: s.total, rfc: s.rfc, prefixes: s.prefixes, ...(s.resend ? { resend: true } : {}), ...(s.targets.length ? { targets: s.targets } : {}) }
      : null,
    seriesId: seriesOf?.(r.messageId) ?? null,
    files: r.files,
    trailers: r.trailers.map((t) => (t.givenIn ? { name: t.name, value: t.value, givenIn: t.givenIn } : { name: t.name, value: t.value })),
    comments: m.comments.map(commentJson),
    source: r.ref.source,
    ...(r.whitespaceDamaged ? { whitespaceDamaged: true, damage: r.damage } : {}),
    ...(r.automated ? { automated: true } : {}),
  };
}

function commentJson(c: Comment): Record<string, unknown> {
  return { file: c.file, line: c.line, side: c.side, function: c.function ?? null, text: c.text, quoted: c.quoted };
}

export function threadJson(t: Thread, seriesOf?: (id: string) => string | undefined): Record<string, unknown> {
  return { root: t.root, rootMissing: t.rootMissing, subject: t.subject, messages: t.messages.map((m) => messageJson(m, seriesOf)) };
}

// A thread's JSON can be written before series are grouped (on a worker thread, while the main
// thread groups them): each message's seriesId is left as a slot, filled in later. The slot's
// value is a control character, which JSON.stringify escapes, and a quote inside a string is
// always escaped too: so this text, a key and its value, appears nowhere else in the JSON.
const SERIES_SLOT = '"seriesId":"\\u0001"';

/** JSON.stringify(threadJson(t, seriesOf)), with slots for seriesOf: the text, and the ids of the slots' messages in order. */
export function threadJsonSlots(t: Thread): { text: string; ids: string[] } {
  const ids: string[] = [];
  const text = JSON.stringify(
    threadJson(t, (id) => {
      ids.push(id);
      return '\u0001';
    }),
  );
  return { text, ids };
}

/** The text of threadJsonSlots with its slots filled: JSON.stringify(threadJson(t, seriesOf)). */
export function fillSeriesSlots(text: string, ids: readonly string[], seriesOf: (id: string) => string | undefined): string {
  const parts = text.split(SERIES_SLOT);
  if (parts.length !== ids.length + 1) throw new Error(`threads JSON: ${parts.length - 1} seriesId slots for ${ids.length} messages`);
  let out = parts[0];
  for (let i = 0; i < ids.length; i++) out += '"seriesId":' + JSON.stringify(seriesOf(ids[i]) ?? null) + parts[i + 1];
  return out;
}

export function seriesJson(s: Series): Record<string, unknown> {
  return { ...s };
}

// ---------------------------------------------------------------- text

const wrapIndent = (text: string, prefix: string, width = 100): string[] => {
  const out: string[] = [];
  for (const para of text.split('\n')) {
    if (para.length + prefix.length <= width) {
      out.push(prefix + para);
      continue;
    }
    let line = '';
    for (const w of para.split(/\s+/)) {
      if (line && line.length + w.length + 1 + prefix.length > width) {
        out.push(prefix + line);
        line = w;
      } else line = line ? `${line} ${w}` : w;
    }
    if (line) out.push(prefix + line);
  }
  return out;
};

export function threadText(t: Thread): string {
  const lines: string[] = [];
  lines.push(`Thread: ${t.subject}${t.rootMissing ? '   (root not in input)' : ''}`);
  const byId = new Map(t.messages.map((m) => [m.messageId, m]));
  const depth = new Map<string, number>();
  for (const m of t.messages) {
    const d = m.parent && depth.has(m.parent) ? depth.get(m.parent)! + 1 : 0;
    depth.set(m.messageId, d);
    const pad = '  '.repeat(d + 1);
    const r = m.record;
    if (!r) {
      lines.push(`${pad}- [missing] ${m.messageId}`);
      continue;
    }
    const s = r.parsedSubject.series;
    const marker = s
      ? ` ${s.rfc ? 'RFC ' : ''}v${s.version}${s.index !== null ? ` ${s.index}/${s.total ?? '?'}` : ''}`
      : '';
    const date = r.date ? r.date.slice(0, 16).replace('T', ' ') : 'no date';
    const who = r.author.name || r.author.address;
    lines.push(`${pad}- ${r.kind}${marker}: ${r.subject}`);
    lines.push(`${pad}  ${who} <${r.author.address}>, ${date}   ${r.messageId}`);
    if (r.files.length) lines.push(`${pad}  files: ${r.files.join(', ')}`);
    if (r.whitespaceDamaged) lines.push(`${pad}  ! diff may be damaged by the mail client: ${r.damage[0] ?? ''}`);
    for (const tr of r.trailers) lines.push(`${pad}  ${tr.name}: ${tr.value}${tr.givenIn ? `   (given in ${tr.givenIn})` : ''}`);
    for (const c of m.comments) {
      const where = c.file ? `${c.file}:${c.line} (${c.side}${c.function ? `, ${c.function}` : ''})` : 'on the prose';
      lines.push(`${pad}  > ${where}`);
      for (const q of c.quoted) lines.push(`${pad}  |   ${q}`);
      lines.push(...wrapIndent(c.text, `${pad}    `));
    }
    void byId;
  }
  return lines.join('\n') + '\n';
}

export function errorsText(errors: InputError[]): string {
  return errors.map((e) => `${e.source}: ${e.message}`).join('\n');
}
