// mail stage, second half: ParsedMail -> MessageRecord, the compact description of one
// mail every later stage works on (kind, series marker, diff, trailers, reply structure).
import type { MessageKind, MessageRecord, RawMessage, SourceRef, Trailer } from '../model.js';
import { parseMail, applyInBodyHeaders, type ParsedMail } from './parse.js';
import { parseSubject } from '../thread/subject.js';
import { extractDiff } from '../patch/diff.js';
import { splitReply, newText } from '../patch/quote.js';
import { parseTrailers } from '../patch/trailers.js';
import { lazyRecipients } from './recipients.js';

/** Turn one parsed mail into a record. Pure. */
export function buildRecord(m: ParsedMail): MessageRecord {
  const warnings = [...m.warnings];
  const parsedSubject = parseSubject(m.subject);
  if (m.bodySubject) {
    // git am takes an in-body Subject: as the commit title.
    parsedSubject.clean = parseSubject(m.bodySubject).clean;
  }

  // The mail's own diff: inline text first, then attached patches.
  let ex = extractDiff(m.body);
  let commitMessage: string | null = ex.commitMessage;
  let attachmentAuthor: ParsedMail['bodyFrom'] = null;
  if (!ex.diff || ex.diff.files.length === 0) {
    let attached = 0;
    for (const att of m.patchAttachments) {
      // An attached format-patch file carries its own From:/Subject: (kept as in-body headers).
      const inner = applyInBodyHeaders(att);
      const a = extractDiff(inner.body);
      if (!a.diff || a.diff.files.length === 0) continue;
      if (attached++ === 0) {
        // The mail text is the commit message when the attachment is a bare diff.
        ex = { ...a, commitMessage: a.commitMessage.trim() ? a.commitMessage : ex.commitMessage };
        commitMessage = ex.commitMessage;
        attachmentAuthor = inner.from;
        if (inner.subject) parsedSubject.clean = parseSubject(inner.subject).clean;
        continue;
      }
      // Further attached patches: git am applies every part as one commit (mailinfo joins
      // them), and a review that skipped them would pass code nobody looked at.
      ex = { ...ex, diff: { files: [...ex.diff!.files, ...a.diff.files], damage: [...ex.diff!.damage, ...a.diff.damage] } };
    }
    if (attached > 1) {
      warnings.push(`${attached} patches attached: their diffs are read as one, named after the first (its author and subject)`);
    }
  }
  const diff = ex.diff && ex.diff.files.length > 0 ? ex.diff : null;
  const kind = classify(m, parsedSubject.reply, parsedSubject.series, diff !== null, ex.diffstat);

  // A reply is split from the text as sent: when it carries a scissors line (a proposed fixup
  // after "-- >8 --"), what git am would cut away is the review itself.
  const replyText = m.uncutBody ?? m.body;
  const blocks = kind === 'reply' || (kind === 'other' && m.inReplyTo) ? splitReply(replyText) : [];
  let trailers: Trailer[] = [];
  if (kind === 'patch' && commitMessage) trailers = parseTrailers(commitMessage);
  else if (kind === 'cover' && commitMessage) trailers = parseTrailers(commitMessage);
  else if (blocks.length) {
    trailers = parseTrailers(newText(blocks), { fromReply: true }).map((t) => ({ ...t, givenIn: m.messageId }));
  }

  const damage = diff ? [...diff.damage] : [];
  if (diff && m.flowed) damage.unshift('sent as format=flowed: the client may have re-wrapped or re-spaced diff lines');
  // A From: a list rewrote to its own address (DMARC) gives way to the sender the list kept in
  // X-Original-From/Reply-To: the list neither wrote nor sent the mail, and everything that
  // reads `from` (series grouping by sender, replies, reply policy) wants the person.
  let from = m.from;
  if (m.originalFrom) {
    from = m.originalFrom.address;
    warnings.push(
      `sender taken from ${m.originalFrom.header}: the list rewrote From: to its own address (${m.from.name ? `"${m.from.name}" ` : ''}<${m.from.address}>), as lists do for senders whose domain publishes DMARC p=reject`,
    );
  }
  // git am's order: an attached patch's own From:, then the in-body From:, then the sender.
  const author = attachmentAuthor?.address ? attachmentAuthor : m.bodyFrom && m.bodyFrom.address ? m.bodyFrom : from;

  return lazyRecipients({
    messageId: m.messageId,
    ref: m.ref,
    inReplyTo: m.inReplyTo,
    references: m.references,
    from,
    author,
    date: m.date ?? m.bodyDate,
    subject: m.subject,
    parsedSubject,
    kind,
    listIds: m.listIds,
    to: [], // decoded from m.recipients when first read
    cc: [],
    commitMessage: kind === 'patch' || kind === 'cover' ? (commitMessage ?? null) : null,
    diff,
    files: diff ? diff.files.map((f) => f.path) : [],
    diffstat: ex.diffstat,
    trailers,
    blocks,
    whitespaceDamaged: damage.length > 0,
    damage,
    automated: m.automated,
    warnings,
  }, m.recipients);
}

function classify(
  m: ParsedMail,
  reply: boolean,
  series: MessageRecord['parsedSubject']['series'],
  hasDiff: boolean,
  diffstat: boolean,
): MessageKind {
  if (reply) return 'reply';
  if (hasDiff) return 'patch';
  if (series && series.index === 0) return 'cover';
  if (series && series.index === null && diffstat) return 'cover';
  if (series && series.total !== null && diffstat) return 'cover';
  if (m.inReplyTo || m.references.length) return 'reply';
  return 'other';
}

/** Parse raw bytes into a record. */
export async function recordFromRaw(msg: RawMessage): Promise<MessageRecord> {
  return buildRecord(await parseMail(msg));
}

/** Parse a mail given as text (tests, rule examples). A bare diff is wrapped into a minimal patch mail. */
export async function recordFromText(text: string, ref?: Partial<SourceRef>): Promise<MessageRecord> {
  let mail = text;
  if (!/^[A-Za-z][A-Za-z0-9-]*:[^\n]*\n/.test(text) || /^(diff --git|--- |Index: )/.test(text)) {
    mail =
      'From: Example Author <author@example.org>\nSubject: [PATCH] example: change\n' +
      'Message-ID: <example@patchvet.invalid>\nDate: Tue, 24 Mar 2026 18:19:29 +0000\n\n' +
      'Example change.\n\nSigned-off-by: Example Author <author@example.org>\n---\n' +
      text;
  }
  const raw = Buffer.from(mail, 'utf8');
  return recordFromRaw({
    raw,
    ref: { source: ref?.source ?? 'text:0', file: ref?.file ?? 'text', offset: ref?.offset ?? 0, length: raw.length },
  });
}
