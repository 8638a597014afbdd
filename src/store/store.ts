// The durable store behind `patchvet serve`: messages as received, where each source has got
// to, what was found, what was posted, and the replies waiting to go out.
//
// Two backends share this interface and one SQL implementation (src/store/sql.ts):
//   sqlite:./patchvet.db | sqlite:/abs/path.db | sqlite::memory:   (one instance)
//   postgres://user@host:5432/db  (or postgresql://)             (several instances)
//
// ---------------------------------------------------------------- the exactly-once argument
// `serve` must review each new patch once and reply on the list exactly once, even when killed
// (-9) at any moment. The store gives that by three transactions and one recognisable id:
//
// 1. Intake. A source's messages and its new position are written in ONE transaction:
//      store.transaction(async (tx) => {
//        for (const m of batch) await tx.putMessage(m.record, m.raw, { key, position: m.position });
//        await tx.setPosition(key, batchEnd);
//      });
//    A crash before COMMIT loses both, so the source re-reads from the old position; putMessage
//    is idempotent by Message-ID, so a re-read (or the same mail from a second source) is only
//    recorded as a sighting. Nothing is lost, nothing is stored twice.
//
// 2. Review. For each of pendingMessages(), in ONE transaction: markProcessed first (false means
//    another instance got there: roll back), then putFindings, enqueueReply (with a key derived
//    from what is answered, e.g. "reply:<message-id>") and markFindingPosted for what the reply
//    says. A crash before COMMIT leaves the message pending: it is reviewed again (reviews are
//    deterministic; LLM answers are cached). A crash after COMMIT leaves it processed with its
//    reply queued. On PostgreSQL the first markProcessed holds the row lock until COMMIT, so a
//    second instance's markProcessed waits and then returns false; and the outbox key is UNIQUE,
//    so a reply is enqueued once whatever the callers do.
//
// 3. Delivery. claimReplies() moves queued items to 'sending' under a lease; the sender hands the
//    eml to SMTP and then calls markSent() with the SMTP response. A crash before SMTP accepts:
//    the lease expires, the item is claimed again and sent: once. A crash between SMTP accepting
//    and markSent is the one window no local transaction can close (SMTP is not part of it).
//    Two things make it recognisable instead of a silent duplicate:
//    - the eml carries a deterministic Message-ID (stored as messageId and derived from the key),
//      so a second copy is the *same* message: list archives (public-inbox) and mail clients
//      de-duplicate by Message-ID, and
//    - an item whose lease expired while 'sending' is listed by possiblySent() and comes back
//      from claimReplies() with possiblySent: true. Before re-sending such an item the sender
//      should look for its Message-ID on the list it follows (hasMessage(item.messageId), or
//      replyByMessageId() for a message seen on the list) and, if found, markSent() instead.
//    So: at-least-once transport, made exactly-once in effect by idempotent enqueue and a
//    stable identity for each reply.
//
// Transactions: SQLite uses BEGIN IMMEDIATE (writers queue up front instead of failing on
// upgrade); PostgreSQL uses one pooled client for the whole transaction. Nested transaction()
// calls, and calls on the root store made from inside a transaction's callback, join the
// outer transaction. An error thrown inside a transaction aborts all of it, even if the caller
// catches it (as PostgreSQL does): the outer transaction then rolls back at its end.
import type { Finding, MessageRecord, Series } from '../model.js';

export type OutboxState = 'queued' | 'sending' | 'sent' | 'failed';

/** Where one copy of a message came from: the source and its position just after the message. */
export interface SourcePosition {
  /** Stable name of the source, e.g. "public-inbox:/srv/inbox/xen-devel" or "imap:user@host/INBOX". */
  key: string;
  /** Source-specific, opaque to the store: "epoch 3 <commit>", "<uidvalidity>:<uid>", file name. */
  position: string;
}

/** A reply to send: what enqueueReply() takes. */
export interface ReplyInput {
  /** Idempotency key (UNIQUE): the same key is enqueued at most once, ever. */
  key: string;
  /** The reply's own Message-ID, deterministic (derived from key) and present in eml. */
  messageId: string;
  /** The Message-ID the reply answers (null for a new thread). */
  inReplyTo: string | null;
  /** Envelope recipients (bare addresses). */
  to: string[];
  cc: string[];
  /** The complete message as it will be sent (headers included). */
  eml: Buffer;
  /** How it goes out: "smtp", "outbox" (files), "github", ... */
  channel: string;
}

/** What the delivery said when it accepted the reply. */
export interface SentInfo {
  /** The SMTP server's final response (e.g. "250 2.0.0 Ok: queued as 4Zx..."), or how it was confirmed. */
  response: string;
  /** Anything else worth keeping (JSON). */
  [extra: string]: unknown;
}

export interface OutboxItem extends ReplyInput {
  state: OutboxState;
  /** Number of claims so far (the current one included). */
  attempts: number;
  leaseOwner: string | null;
  leaseUntil: Date | null;
  nextAttemptAt: Date | null;
  lastError: string | null;
  /**
   * A lease expired while this item was 'sending' (now or earlier): an earlier attempt may have
   * reached the server. Check the list for messageId before sending again.
   */
  possiblySent: boolean;
  sentInfo: SentInfo | null;
  createdAt: Date;
  sentAt: Date | null;
}

export interface OutboxStats {
  queued: number;
  sending: number;
  sent: number;
  failed: number;
  /** Items listed by possiblySent(). */
  possiblySent: number;
  /** When the oldest queued item was enqueued (queue lag), null when none is queued. */
  oldestQueuedAt: Date | null;
}

export interface DisputeInput {
  /** Rule id ("xen/idle-vcpu-path"). */
  rule: string;
  /** The disputed finding, when known; without it the dispute is about the rule on that message. */
  fingerprint?: string | null;
  /** The mail (or other item) carrying the dispute; with rule, fingerprint and by it identifies the dispute. */
  messageId: string;
  /** Who disputed (address or login). */
  by: string;
  reason: string;
}

export interface RuleStats {
  rule: string;
  /** Findings stored (one per finding per message). */
  findings: number;
  /** Findings posted (one per fingerprint and scope). */
  posted: number;
  /** Disputes recorded. */
  disputes: number;
  /**
   * (posted - disputed) / posted, where disputed counts distinct disputed fingerprints (or
   * messages, for disputes without one); null when nothing was posted. A raw estimate: few
   * posts give a noisy number.
   */
  precision: number | null;
}

// ---------------------------------------------------------------- GitHub mirror PRs

/** What links a list patch to a pull request commit: its patch-id and its title + author. */
export interface PatchIndexEntry {
  messageId: string;
  /** `git patch-id --stable` of the mail's diff; null when it has none. */
  patchId: string | null;
  /** Normalised title + "\n" + author address (see src/github/link.ts). */
  subjectKey: string;
  date: string | null;
}

/** A pull request the app has seen ("owner/name" and number). */
export interface GithubPr {
  repo: string;
  pr: number;
  installationId: number | null;
  headSha: string | null;
  baseSha: string | null;
  title: string | null;
  author: string | null;
  state: string | null;
}

/** One commit of a pull request, with what links it to a patch mail. */
export interface PrCommitEntry {
  sha: string;
  patchId: string | null;
  subjectKey: string;
  /** Message-IDs named by its Link:/Message-Id: trailers. */
  messageIds: string[];
}

export type LinkMethod = 'trailer' | 'patch-id' | 'subject';

/** A pull request commit that is a list patch (stored once, looked up from either side). */
export interface GithubLink {
  repo: string;
  pr: number;
  messageId: string;
  commitSha: string;
  method: LinkMethod;
}

export type GithubCommentKind = 'finding-inline' | 'finding-body' | 'mirror-inline' | 'mirror-body' | 'check';

/** Something patchvet put on a pull request, by a key: "finding:<fingerprint>", "mail:<msgid>#<n>", "check:<sha>". */
export interface GithubCommentRow {
  repo: string;
  pr: number;
  key: string;
  kind: GithubCommentKind;
  rule?: string | null;
  fingerprint?: string | null;
  /** Review comment id (inline), check run id (check); null for review-body items. */
  commentId?: number | null;
  reviewId?: number | null;
  path?: string | null;
  line?: number | null;
  side?: 'LEFT' | 'RIGHT' | null;
  commitSha?: string | null;
  state: 'open' | 'resolved';
}

export type GithubJobState = 'queued' | 'running' | 'done' | 'failed';

export interface GithubJobInput {
  /** Idempotency key (UNIQUE), e.g. "review:owner/name#12@<delivery id>", "mirror:owner/name#12:<msgid>". */
  key: string;
  kind: string;
  repo: string;
  pr: number;
  installationId: number | null;
  payload: unknown;
}

export interface GithubJob extends GithubJobInput {
  state: GithubJobState;
  /** Claims so far, the current one included. */
  attempts: number;
  lastError: string | null;
  createdAt: Date;
}

export type GithubJobOutcome =
  | { state: 'done' }
  | { state: 'retry'; at: Date; error: string }
  | { state: 'failed'; error: string };

/** A pull request comment forwarded to the list (as an outbox reply). */
export interface GithubForward {
  repo: string;
  kind: 'review-comment' | 'issue-comment';
  commentId: number;
  login: string;
  outboxKey: string;
  /** The forwarded mail's Message-ID. */
  messageId: string;
  /** The patch mail it answers. */
  inReplyTo: string;
}

export interface Store {
  readonly backend: 'sqlite' | 'postgres';

  // ------------------------------------------------------------ messages

  /**
   * Store a message once per Message-ID (its record as JSON, its raw bytes, and its references
   * for threading) and record that `source` delivered it. A second copy, from the same or another
   * source, only adds a sighting: inserted is false and the message is not pending again.
   * Does not move the source's position (see setPosition).
   */
  putMessage(rec: MessageRecord, raw: Buffer, source: SourcePosition): Promise<{ inserted: boolean }>;
  /** The stored record, or null. */
  getMessage(messageId: string): Promise<MessageRecord | null>;
  /** The raw bytes as received, or null. */
  getRaw(messageId: string): Promise<Buffer | null>;
  hasMessage(messageId: string): Promise<boolean>;
  /** Every source that delivered the message, first sighting first. */
  sightings(messageId: string): Promise<SourcePosition[]>;
  /** Mark a message reviewed. True if this call did it; false if it was already processed or is unknown. */
  markProcessed(messageId: string): Promise<boolean>;
  /** Stored but not yet processed messages, in arrival order (crash recovery and the work queue). */
  pendingMessages(limit: number): Promise<MessageRecord[]>;

  // ------------------------------------------------------------ source positions

  /** Where the source has got to (null before its first batch). */
  getPosition(sourceKey: string): Promise<string | null>;
  /** Move the source's position; call it in the transaction that stores the messages it covers. */
  setPosition(sourceKey: string, position: string): Promise<void>;

  // ------------------------------------------------------------ threads and series

  /**
   * Every stored message connected to `messageId` through In-Reply-To/References (in either
   * direction, through ids that were never received too), by date then arrival. Feed it to the
   * threader to rebuild the thread. `messageId` itself need not be stored (a missing cover letter).
   */
  messagesInThread(messageId: string): Promise<MessageRecord[]>;
  /** Insert or replace a series by its id. */
  putSeries(series: Series): Promise<void>;
  getSeries(id: string): Promise<Series | null>;

  // ------------------------------------------------------------ findings

  /** Replace the findings stored for a (stored) message, keeping their order. */
  putFindings(messageId: string, findings: Finding[]): Promise<void>;
  findingsFor(messageId: string): Promise<Finding[]>;
  /** Has this finding already been posted in this scope (e.g. "series:<first version's id>", "list:<address>")? */
  seenFingerprint(fingerprint: string, scope: string): Promise<boolean>;
  /**
   * Record that a finding was posted in `scope`, `where` (the reply's Message-ID, a URL). The rule
   * is taken from the stored findings unless given. True if newly recorded, false if it already was.
   */
  markFindingPosted(fingerprint: string, scope: string, where: string, rule?: string): Promise<boolean>;

  // ------------------------------------------------------------ outbox

  /** Queue a reply; false (and nothing changes) when its key was ever enqueued before. */
  enqueueReply(reply: ReplyInput): Promise<boolean>;
  /**
   * Take up to `limit` items that are due (queued and past their retry time, or 'sending' with an
   * expired lease), oldest first, and lease them to `worker` for `leaseSeconds`. Concurrent
   * claimers never get the same item while its lease runs.
   */
  claimReplies(limit: number, leaseSeconds: number, worker: string): Promise<OutboxItem[]>;
  /** The reply was accepted (store the SMTP response). False if it was already marked sent. */
  markSent(key: string, info: SentInfo): Promise<boolean>;
  /**
   * The attempt failed: back to 'queued' until retryAt, or 'failed' for good when retryAt is null.
   * Applies only to an item in 'sending' (and, when worker is given, leased to that worker), so a
   * late report from a worker whose lease was taken over changes nothing. True if applied.
   */
  markFailed(key: string, error: string, retryAt: Date | null, worker?: string): Promise<boolean>;
  getReply(key: string): Promise<OutboxItem | null>;
  /** The outbox item whose reply has this Message-ID (e.g. our own reply coming back on the list). */
  replyByMessageId(messageId: string): Promise<OutboxItem | null>;
  outboxStats(): Promise<OutboxStats>;
  /** Not marked sent, and a lease expired while 'sending' (now or on an earlier attempt). */
  possiblySent(): Promise<OutboxItem[]>;

  // ------------------------------------------------------------ feedback

  /** Record that someone disputes a finding (or a rule on a message). False if already recorded. */
  recordDispute(dispute: DisputeInput): Promise<boolean>;
  /** Per rule: findings, posted, disputes, precision estimate; sorted by rule id. */
  ruleStats(): Promise<RuleStats[]>;

  // ------------------------------------------------------------ LLM budget and cache

  /** Add tokens spent on `day` (YYYY-MM-DD) for `list`; returns the new total. */
  addTokens(day: string, list: string, tokens: number): Promise<number>;
  tokensFor(day: string, list: string): Promise<number>;
  /** Every (day, list) counter from `sinceDay` (YYYY-MM-DD) on, by day then list. */
  tokenUsage(sinceDay: string): Promise<Array<{ day: string; list: string; tokens: number }>>;
  /** A cached JSON value, or undefined when absent or expired. */
  cacheGet<T = unknown>(key: string): Promise<T | undefined>;
  /** Store a JSON value (replacing any), optionally expiring after ttlSeconds. */
  cachePut(key: string, value: unknown, ttlSeconds?: number): Promise<void>;

  // ------------------------------------------------------------ GitHub mirror PRs

  /** Index a patch mail by patch-id and title + author (replaces its entry). */
  putPatchIndex(entry: PatchIndexEntry): Promise<void>;
  /** Patch mails with this patch-id / subject key, newest first (by date, then arrival). */
  patchesByPatchId(patchId: string): Promise<string[]>;
  patchesBySubjectKey(subjectKey: string): Promise<string[]>;
  /** Insert or update what is known of a pull request. */
  putGithubPr(pr: GithubPr): Promise<void>;
  getGithubPr(repo: string, pr: number): Promise<GithubPr | null>;
  /** Replace the commits recorded for a pull request (after a push). */
  putPrCommits(repo: string, pr: number, commits: PrCommitEntry[]): Promise<void>;
  /** Pull request commits that match a patch mail, by each method (trailer first). */
  prCommitsMatching(q: { messageId: string; patchId: string | null; subjectKey: string }): Promise<Array<{ repo: string; pr: number; sha: string; method: LinkMethod }>>;
  /** Record a link (true when new; an existing link keeps its commit and method). */
  addGithubLink(link: GithubLink): Promise<boolean>;
  /** Links of a pull request, in commit order as recorded. */
  githubLinks(repo: string, pr: number): Promise<GithubLink[]>;
  /** Links of any of these patch mails. */
  githubLinksForMessages(messageIds: readonly string[]): Promise<GithubLink[]>;
  /** Record what was posted (true when new; an existing key is left as it is). */
  putGithubComment(row: GithubCommentRow): Promise<boolean>;
  /** Mark a posted item open or resolved. True if it changed. */
  setGithubCommentState(repo: string, pr: number, key: string, state: 'open' | 'resolved'): Promise<boolean>;
  githubComments(repo: string, pr: number): Promise<GithubCommentRow[]>;
  /** Queue GitHub work; false (and nothing changes) when the key was ever queued. */
  enqueueGithubJob(job: GithubJobInput): Promise<boolean>;
  /**
   * Take up to `limit` due jobs (queued and due, or running with an expired lease), oldest
   * first, leased to `worker`; with `key`, only that job.
   */
  claimGithubJobs(limit: number, leaseSeconds: number, worker: string, key?: string): Promise<GithubJob[]>;
  /** End a claim: done, back to queued until `at`, or failed for good. Only the lease holder's report counts. */
  finishGithubJob(key: string, worker: string, outcome: GithubJobOutcome): Promise<boolean>;
  getGithubJob(key: string): Promise<GithubJob | null>;
  githubJobStats(): Promise<Record<GithubJobState, number>>;
  /** Record a forwarded comment; false when it was forwarded before. */
  recordGithubForward(f: GithubForward): Promise<boolean>;
  githubForward(repo: string, kind: GithubForward['kind'], commentId: number): Promise<GithubForward | null>;
  /** The forward whose mail has this Message-ID (a list reply answering it). */
  githubForwardByMessageId(messageId: string): Promise<GithubForward | null>;

  // ------------------------------------------------------------ transactions

  /**
   * Run fn in one transaction and commit when it resolves; roll back and rethrow when it rejects.
   * Use the `tx` handle inside (calls on the root store join the transaction too). Nested calls
   * join the outer transaction. Keep it short and do no network I/O inside (SMTP, LLM): on
   * SQLite it holds the database's write lock, on PostgreSQL row locks and a pooled connection.
   */
  transaction<T>(fn: (tx: Store) => Promise<T>): Promise<T>;
  /** Wait for running work, then close connections. The store is unusable afterwards. */
  close(): Promise<void>;
}

/** Open (and migrate) the store named by a URL: `sqlite:<path>`, `sqlite::memory:`, `postgres://...`. */
export async function openStore(url: string): Promise<Store> {
  if (url.startsWith('sqlite:')) {
    const { openSqliteStore } = await import('./sqlite.js');
    return openSqliteStore(url.slice('sqlite:'.length));
  }
  if (/^postgres(ql)?:\/\//.test(url)) {
    const { openPostgresStore } = await import('./postgres.js');
    return openPostgresStore(url);
  }
  throw new Error(`store: unsupported URL "${url}" (use sqlite:./patchvet.db, sqlite::memory: or postgres://user@host/db)`);
}
