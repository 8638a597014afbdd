// What `patchvet serve` says, to whom and when: pure decisions over records, findings and the
// configuration, so that every "never answer ..." rule is unit-tested without a store or a
// network. The service (service.ts) does the I/O and asks here.
//
//   decide()          should this mail be reviewed, and is the reply sent, previewed or dropped
//   holdUntil()       embargo and per-list rate limit: when a queued reply may go out
//   selectFindings()  which findings are new: not posted for an earlier version of the patch,
//                     not already discussed by someone, not silenced with Review-Bot-Ignore
//   feedbackOf()      what a reply to the bot says about its findings (disputes)
//   classifySmtpError / retryDelay   how delivery failures are retried
import type { Comment, Finding, MessageRecord, ReplyBlock } from '../model.js';
import { normalizeSubjectKey } from '../thread/subject.js';
import type { EmailDeliveryConfig, ListConfig, ReplyMode } from './config.js';

// ---------------------------------------------------------------- lists

/** The list `addr` is, as seen in List-Id / List-Post / To / Cc. */
function listMatches(list: ListConfig, listIds: readonly string[], rcpts: readonly string[]): boolean {
  const dotted = list.listId ?? list.address.replace('@', '.');
  if (listIds.some((id) => id === list.address || id === dotted)) return true;
  return rcpts.includes(list.address);
}

/**
 * The configured list a mail belongs to: List-Id / List-Post first (the list's own stamp), then
 * To / Cc. A mail cross-posted to several configured lists belongs to the first one listed in the
 * config whose headers match, in that order of evidence.
 */
export function matchList(rec: Pick<MessageRecord, 'listIds' | 'to' | 'cc'>, lists: readonly ListConfig[]): ListConfig | null {
  const ids = rec.listIds.map((s) => s.toLowerCase());
  const byHeader = lists.find((l) => listMatches(l, ids, []));
  if (byHeader) return byHeader;
  const rcpts = [...rec.to, ...rec.cc].map((a) => a.address.toLowerCase());
  return lists.find((l) => listMatches(l, [], rcpts)) ?? null;
}

// ---------------------------------------------------------------- senders

/** Shell-style glob over an address: '*' any run of characters, '?' one; case-insensitive. */
export function addressGlob(glob: string): RegExp {
  const re = glob
    .trim()
    .toLowerCase()
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${re}$`);
}

export function isMuted(rec: Pick<MessageRecord, 'from' | 'author'>, list: ListConfig): boolean {
  const who = [rec.from.address, rec.author.address].filter(Boolean).map((a) => a.toLowerCase());
  return list.mute.some((m) => {
    const re = addressGlob(m);
    return who.some((a) => re.test(a));
  });
}

// ---------------------------------------------------------------- the decision

export type Action = 'send' | 'preview' | 'none';

export interface PolicyContext {
  lists: readonly ListConfig[];
  /** The bot's own address (delivery.email.from), lower case. */
  botAddress: string;
  /** Never answer a patch dated more than this many seconds before `now` (null: no limit). */
  maxAgeSeconds: number | null;
  now: Date;
}

export interface ReplyDecision {
  list: ListConfig | null;
  /** Run the rules over it (and store the findings). */
  review: boolean;
  /** send: queue the reply for delivery; preview: write it to the outbox dir only (reply: off); none: say nothing. */
  action: Action;
  /** Who a reply goes to (composeReply's policy): the author alone, or the author with the list in Cc. */
  audience: 'author' | 'list';
  /** Why, for the log: "answer", "reply: off", "not a patch", "own mail", ... */
  reason: string;
}

function none(list: ListConfig | null, reason: string): ReplyDecision {
  return { list, review: false, action: 'none', audience: 'list', reason };
}

/**
 * Should this mail be reviewed and answered? Only patch mails (never replies, cover letters or
 * other mail), on a configured list, not the bot's own, not automated (Auto-Submitted, bounces,
 * X-Patchvet), from a sender not muted, and not older than the max age (a first start on an old
 * archive answers nothing from it).
 */
export function decide(rec: MessageRecord, ctx: PolicyContext): ReplyDecision {
  if (rec.kind !== 'patch') return none(null, `not a patch (${rec.kind})`);
  const list = matchList(rec, ctx.lists);
  if (!list) return none(null, 'not on a configured list');
  const bot = ctx.botAddress.toLowerCase();
  if (rec.from.address.toLowerCase() === bot || rec.author.address.toLowerCase() === bot) return none(list, 'own mail');
  if (rec.automated) return none(list, 'automated mail');
  if (isMuted(rec, list)) return none(list, 'muted sender');
  const maxAge = list.maxAgeSeconds !== undefined ? list.maxAgeSeconds : ctx.maxAgeSeconds;
  if (maxAge !== null && rec.date) {
    const t = Date.parse(rec.date);
    if (!Number.isNaN(t) && ctx.now.getTime() - t > maxAge * 1000) return none(list, 'older than maxAge');
  }
  const mode: ReplyMode = list.reply;
  if (mode === 'off') return { list, review: true, action: 'preview', audience: 'list', reason: 'reply: off' };
  return { list, review: true, action: 'send', audience: mode, reason: 'answer' };
}

// ---------------------------------------------------------------- when

export interface Hold {
  until: Date;
  reason: string;
}

/**
 * When a reply to `rec` on `list` may go out: null now, or the time it is held until. Embargo:
 * N hours after the patch's date (a date in the future counts from when the reply was queued,
 * so a forged date cannot hold it forever). Rate limit: at most perHour replies to the list in
 * any rolling hour; `sentAt` are the send times of the list's replies (any order).
 */
export function holdUntil(
  rec: Pick<MessageRecord, 'date'> | null,
  list: ListConfig | null,
  opts: { now: Date; queuedAt: Date; sentAt: readonly number[] },
): Hold | null {
  if (!list) return null;
  const now = opts.now.getTime();
  if (list.embargoHours > 0 && rec) {
    const d = rec.date ? Date.parse(rec.date) : NaN;
    const base = Number.isNaN(d) ? opts.queuedAt.getTime() : Math.min(d, opts.queuedAt.getTime());
    const until = base + list.embargoHours * 3600_000;
    if (until > now) return { until: new Date(until), reason: `embargo: ${list.embargoHours}h after the patch` };
  }
  if (list.rateLimit) {
    const recent = opts.sentAt.filter((t) => t > now - 3600_000 && t <= now).sort((a, b) => a - b);
    if (recent.length >= list.rateLimit.perHour) {
      // The slot frees when the oldest send that still counts leaves the window.
      const until = recent[recent.length - list.rateLimit.perHour]! + 3600_000 + 1;
      return { until: new Date(until), reason: `rate limit: ${list.rateLimit.perHour} replies per hour to ${list.address}` };
    }
  }
  return null;
}

// ---------------------------------------------------------------- what

/**
 * A patch's identity across versions and re-sends: the sender and the normalised commit title
 * ("[PATCH v3 2/9] x86: Foo." and "[PATCH v2 4/9] x86: foo" are the same patch).
 */
export function lineageKey(rec: Pick<MessageRecord, 'from' | 'parsedSubject'>): string {
  return `${rec.from.address.toLowerCase()}\n${normalizeSubjectKey(rec.parsedSubject.clean)}`;
}

/** The version of a patch mail (1 when unmarked). */
export function versionOf(rec: Pick<MessageRecord, 'parsedSubject'>): number {
  return rec.parsedSubject.series?.version ?? 1;
}

/** A place someone commented on: the file and function their comment is anchored to. */
export interface Spot {
  file: string;
  function: string | null;
}

export interface PriorDiscussion {
  /** Fingerprints already posted for (or, for previews, found in) earlier versions of the patch. */
  posted: ReadonlySet<string>;
  /** Comments made on earlier versions of the patch. */
  answered: readonly Spot[];
  /** Rules silenced with "Review-Bot-Ignore: <rule>" in the thread or an earlier version's. */
  ignored: ReadonlySet<string>;
}

export interface Selection {
  post: Finding[];
  skipped: Array<{ finding: Finding; reason: 'posted before' | 'already discussed' | 'ignored' }>;
}

function sameSpot(f: Finding, s: Spot): boolean {
  if (!f.file || f.file !== s.file) return false;
  return (f.function ?? null) === (s.function ?? null);
}

/** The findings worth saying now (order kept). */
export function selectFindings(findings: readonly Finding[], prior: PriorDiscussion): Selection {
  const out: Selection = { post: [], skipped: [] };
  for (const f of findings) {
    if (prior.ignored.has(f.rule)) out.skipped.push({ finding: f, reason: 'ignored' });
    else if (prior.posted.has(f.fingerprint)) out.skipped.push({ finding: f, reason: 'posted before' });
    else if (prior.answered.some((s) => sameSpot(f, s))) out.skipped.push({ finding: f, reason: 'already discussed' });
    else out.post.push(f);
  }
  return out;
}

/** Spots of anchored comments (those on a diff line). */
export function spotsOf(comments: readonly Comment[]): Spot[] {
  return comments.filter((c) => c.file).map((c) => ({ file: c.file!, function: c.function ?? null }));
}

// ---------------------------------------------------------------- feedback

const IGNORE_RE = /^[ \t]*Review-Bot-Ignore:[ \t]*([A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+)[ \t]*$/gim;
const FALSE_POSITIVE_RE = /\bfalse[ -]positives?\b/i;
/** Rule ids as the bot writes them: "(xen/idle-vcpu-path, warning)" and "[xen/idle-vcpu-path] ...". */
const RULE_MENTION_RE = /\(([a-z0-9_.-]+\/[a-z0-9_.-]+), (?:error|warning|info)\)|^\[([a-z0-9_.-]+\/[a-z0-9_.-]+)\]/gim;

/** The new text of a mail: text blocks of a reply (quotes left out), or the whole body for other mail. */
function newTexts(blocks: readonly ReplyBlock[]): string[] {
  return blocks.filter((b) => b.type === 'text').map((b) => (b as { text: string }).text);
}

/** Rules silenced in this mail's own text with "Review-Bot-Ignore: <rule-id>" lines. */
export function ignoredRules(rec: Pick<MessageRecord, 'blocks' | 'commitMessage'>): string[] {
  const texts = rec.blocks.length ? newTexts(rec.blocks) : rec.commitMessage ? [rec.commitMessage] : [];
  const out = new Set<string>();
  for (const t of texts) for (const m of t.matchAll(IGNORE_RE)) out.add(m[1]!.toLowerCase());
  return [...out];
}

/** Rule ids the bot's reply text mentions, in order. */
export function rulesMentioned(text: string): string[] {
  const out = new Set<string>();
  for (const m of text.matchAll(RULE_MENTION_RE)) out.add((m[1] ?? m[2])!.toLowerCase());
  return [...out];
}

export interface Feedback {
  /** Rules named in Review-Bot-Ignore lines. */
  ignore: string[];
  /** The words "false positive" appear in the new text. */
  falsePositive: boolean;
  /** Rules the "false positive" remark answers: those named in the quote just above it. */
  near: string[];
  /** The sentence that says so (for the dispute's reason). */
  excerpt: string | null;
}

/** What a reply to the bot says about its findings. */
export function feedbackOf(rec: Pick<MessageRecord, 'blocks' | 'commitMessage'>): Feedback {
  const fb: Feedback = { ignore: ignoredRules(rec), falsePositive: false, near: [], excerpt: null };
  let lastQuote: string[] = [];
  for (const b of rec.blocks) {
    if (b.type === 'quote') lastQuote = b.lines;
    else if (b.type === 'text' && FALSE_POSITIVE_RE.test(b.text)) {
      fb.falsePositive = true;
      fb.excerpt ??= b.text.replace(/\s+/g, ' ').trim().slice(0, 200);
      for (const r of rulesMentioned(lastQuote.join('\n'))) if (!fb.near.includes(r)) fb.near.push(r);
    }
  }
  return fb;
}

// ---------------------------------------------------------------- recipients

const SAFE_ADDRESS = /^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$/;

/** A bare address fit for an SMTP envelope (no controls, quotes, spaces or brackets), lower-cased domain; else null. */
export function envelopeAddress(s: string): string | null {
  // Anything with a control character is refused whole: it is an injection attempt, not an address.
  if (/[\x00-\x1f\x7f]/.test(s)) return null;
  const m = /<([^<>]*)>\s*$/.exec(s);
  const a = (m ? m[1]! : s).trim();
  if (!SAFE_ADDRESS.test(a) || a.length > 254) return null;
  const at = a.lastIndexOf('@');
  return `${a.slice(0, at)}@${a.slice(at + 1).toLowerCase()}`;
}

/** Envelope recipients from the composed header lists: valid, de-duplicated, never the bot itself. */
export function envelope(to: readonly string[], cc: readonly string[], botAddress: string): { to: string[]; cc: string[] } {
  const seen = new Set<string>([botAddress.toLowerCase()]);
  const pick = (xs: readonly string[]): string[] => {
    const out: string[] = [];
    for (const x of xs) {
      const a = envelopeAddress(x);
      if (!a || seen.has(a.toLowerCase())) continue;
      seen.add(a.toLowerCase());
      out.push(a);
    }
    return out;
  };
  const t = pick(to);
  return { to: t, cc: pick(cc) };
}

// ---------------------------------------------------------------- delivery failures

export type FailureKind = 'temporary' | 'permanent';

/**
 * SMTP 5xx is permanent (retried a few times, then given up); 4xx and anything without a reply
 * code (connection refused, timeouts, TLS trouble) is temporary (retried with backoff, forever).
 */
export function classifySmtpError(err: { responseCode?: number; code?: string } | null | undefined): FailureKind {
  const rc = err?.responseCode;
  if (typeof rc === 'number' && rc >= 500 && rc < 600) return 'permanent';
  return 'temporary';
}

/** Seconds before retry number `failures` (1 = after the first failure): doubling, capped, with up to 10% jitter. */
export function retryDelay(failures: number, retry: EmailDeliveryConfig['retry'], jitter: number = Math.random()): number {
  const base = retry.initialDelaySeconds * 2 ** Math.max(0, Math.min(failures - 1, 30));
  const capped = Math.min(base, retry.maxDelaySeconds);
  return capped * (1 + 0.1 * Math.max(0, Math.min(1, jitter)));
}
