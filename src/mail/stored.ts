// How a MessageRecord is kept in the run's spool: two JSON texts written back to back.
// The head holds what thread assembly and the threads output read of every message (ids,
// sender, subject, kind, files, trailers...); the rest holds the bulky parts (diff, reply
// blocks, commit message, recipients), about nine tenths of a record's bytes on list mail.
// A record read back parses only its head; the rest is parsed the first time one of its
// fields is read or written, so `patchvet threads` never parses diffs it does not print,
// while a rule that reads `diff` sees exactly the record the parser built.
import type { MessageRecord } from '../model.js';
import { lazyRecipients, rawRecipientsOf, type RawRecipients } from './recipients.js';

/** The two texts of a stored record. */
export interface StoredRecord {
  head: string;
  rest: string;
}

export function encodeRecord(r: MessageRecord): StoredRecord {
  // To/Cc not decoded yet stay as their header values (recipients.ts): in the place of `to`,
  // an object (never an array) holding both; `cc` is then null.
  const raw = rawRecipientsOf(r);
  return {
    head: JSON.stringify([
      r.messageId, r.ref, r.inReplyTo, r.from, r.author, r.date, r.subject, r.parsedSubject, r.kind,
      r.files, r.diffstat, r.trailers, r.whitespaceDamaged, r.damage, r.automated,
    ]),
    rest: JSON.stringify([r.references, r.listIds, raw ? { raw } : r.to, raw ? null : r.cc, r.commitMessage, r.diff, r.blocks, r.warnings]),
  };
}

type Rest = [
  MessageRecord['references'], MessageRecord['listIds'], MessageRecord['to'], MessageRecord['cc'],
  MessageRecord['commitMessage'], MessageRecord['diff'], MessageRecord['blocks'], MessageRecord['warnings'],
];
const REST_KEYS = ['references', 'listIds', 'to', 'cc', 'commitMessage', 'diff', 'blocks', 'warnings'] as const;

/**
 * The record again, with its fields in the order buildRecord gives them (so JSON.stringify
 * of it is the same text). `loadRest` is called at most once, on first use of a bulky field.
 */
export function decodeRecord(head: string, loadRest: () => string): MessageRecord {
  const h = JSON.parse(head) as unknown[];
  let parsed = false;
  // Turn the accessors into plain data properties (same keys, same order) on first use.
  const rest = (): MessageRecord => {
    if (!parsed) {
      parsed = true;
      const v = JSON.parse(loadRest()) as Rest;
      for (let i = 0; i < REST_KEYS.length; i++) {
        Object.defineProperty(r, REST_KEYS[i], { value: v[i], writable: true, enumerable: true, configurable: true });
      }
      const to = v[2] as MessageRecord['to'] | { raw: RawRecipients };
      if (!Array.isArray(to)) lazyRecipients(r, to.raw);
    }
    return r;
  };
  const r: MessageRecord = {
    messageId: h[0] as MessageRecord['messageId'],
    ref: h[1] as MessageRecord['ref'],
    inReplyTo: h[2] as MessageRecord['inReplyTo'],
    get references() { return rest().references; },
    set references(v) { rest().references = v; },
    from: h[3] as MessageRecord['from'],
    author: h[4] as MessageRecord['author'],
    date: h[5] as MessageRecord['date'],
    subject: h[6] as MessageRecord['subject'],
    parsedSubject: h[7] as MessageRecord['parsedSubject'],
    kind: h[8] as MessageRecord['kind'],
    get listIds() { return rest().listIds; },
    set listIds(v) { rest().listIds = v; },
    get to() { return rest().to; },
    set to(v) { rest().to = v; },
    get cc() { return rest().cc; },
    set cc(v) { rest().cc = v; },
    get commitMessage() { return rest().commitMessage; },
    set commitMessage(v) { rest().commitMessage = v; },
    get diff() { return rest().diff; },
    set diff(v) { rest().diff = v; },
    files: h[9] as MessageRecord['files'],
    diffstat: h[10] as MessageRecord['diffstat'],
    trailers: h[11] as MessageRecord['trailers'],
    get blocks() { return rest().blocks; },
    set blocks(v) { rest().blocks = v; },
    whitespaceDamaged: h[12] as MessageRecord['whitespaceDamaged'],
    damage: h[13] as MessageRecord['damage'],
    automated: h[14] as MessageRecord['automated'],
    get warnings() { return rest().warnings; },
    set warnings(v) { rest().warnings = v; },
  };
  return r;
}
