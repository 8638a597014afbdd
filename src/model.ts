// The data model that flows through patchvet:
//   sources -> mail -> thread -> patch -> rules -> review -> sinks
// Every stage takes and returns plain data (structured-clone safe, so records can
// cross worker threads and be spooled as JSON).

/** Where a message came from: enough to report an error or re-read its raw bytes. */
export interface SourceRef {
  /** "path:byteOffset" (mbox), "path" (maildir/eml file), "-:byteOffset" (stdin). */
  source: string;
  file: string;
  /** Byte offset of the message's first byte (after the mbox "From " line) in the (decompressed) stream. */
  offset: number;
  /** Length of the raw message in bytes. */
  length: number;
}

/** One message as a source delivers it: raw bytes (never altered) plus where they came from. */
export interface RawMessage {
  raw: Buffer;
  ref: SourceRef;
}

export interface Address {
  name: string;
  address: string;
}

/** A problem with one input message; the run goes on. */
export interface InputError {
  /** "file:byteOffset" or "<message-id>". */
  source: string;
  message: string;
}

// ---------------------------------------------------------------- subjects / series

/** What the bracketed prefix of a patch subject says, e.g. "[RFC PATCH for-4.21 v2 3/9]". */
export interface SeriesMarker {
  /** 1 when no version is given; 5.1 for "v5.1" (a partial reroll). */
  version: number;
  /** Position in the series; 0 for a cover letter; null when unnumbered. */
  index: number | null;
  /** Series length; null when unnumbered. */
  total: number | null;
  rfc: boolean;
  resend: boolean;
  /** The words of the bracket(s) other than version and numbering, e.g. ["RFC", "PATCH", "for-4.21"]. */
  prefixes: string[];
  /** Target branches/releases named in the bracket ("for-4.21", "for-4.22?", "net-next"). */
  targets: string[];
}

export interface ParsedSubject {
  /** Subject with reply/forward prefixes ("Re:", "AW:", "Fwd:", "[tag]") and the patch bracket removed. */
  clean: string;
  /** True if the subject had a reply prefix (Re:, AW:, SV:, ...). */
  reply: boolean;
  forward: boolean;
  /** null when the subject carries no patch marker. */
  series: SeriesMarker | null;
}

// ---------------------------------------------------------------- diffs

export type LineKind = 'add' | 'del' | 'ctx';

export interface DiffLine {
  kind: LineKind;
  /** Line text without the leading '+', '-' or ' '. */
  text: string;
  /** Line number on the old side (null for added lines). */
  oldLine: number | null;
  /** Line number on the new side (null for deleted lines). */
  newLine: number | null;
  /** The C function (or other definition) this line sits in, as far as the hunk shows it. */
  fn: string | null;
  /** Followed by "\ No newline at end of file". */
  noNewline?: boolean;
}

export interface Hunk {
  /** The "@@ -a,b +c,d @@ ..." line as written. */
  header: string;
  oldStart: number;
  oldLines: number;
  newStart: number;
  newLines: number;
  /** The function named in the hunk header (git's funcname: the definition *before* the hunk). */
  headerFunction: string | null;
  lines: DiffLine[];
}

export type FileStatus = 'added' | 'deleted' | 'modified' | 'renamed' | 'copied';

export interface FileDiff {
  /** Old path, null for a new file. */
  oldPath: string | null;
  /** New path, null for a deleted file. */
  newPath: string | null;
  /** The path users talk about: new path, or old path for deletions. */
  path: string;
  status: FileStatus;
  oldMode?: string;
  newMode?: string;
  /** Percent, from "similarity index N%". */
  similarity?: number;
  /** Abbreviated blob ids from the "index a..b" line. */
  oldBlob?: string;
  newBlob?: string;
  binary: boolean;
  hunks: Hunk[];
  additions: number;
  deletions: number;
}

export interface Diff {
  files: FileDiff[];
  /** Problems seen while reading the diff (hunk counts not matching, lines without a prefix, ...). */
  damage: string[];
}

export interface Trailer {
  /** Canonical case, e.g. "Signed-off-by", "Reviewed-by", "Fixes". */
  name: string;
  value: string;
  /** Message-ID of the reply that gave this trailer, when it was given in a reply. */
  givenIn?: string;
}

// ---------------------------------------------------------------- replies

/** A reply body split into quoted and new text, in order. */
export type ReplyBlock =
  | {
      type: 'quote';
      /** Quoted lines with the quote markers removed (one level per depth; depth-1 for "> x"). */
      lines: string[];
      /** Quote depth of each line (1 for "> ", 2 for "> > " or ">> "). */
      depths: number[];
    }
  | { type: 'text'; text: string }
  | { type: 'attribution'; text: string }
  | { type: 'elision'; text: string };

/** A stretch of new text in a reply, anchored to the diff line it answers. */
export interface Comment {
  file: string | null;
  line: number | null;
  side: 'new' | 'old' | null;
  text: string;
  /** The quoted diff lines (with their +/-/space prefix) the comment follows. */
  quoted: string[];
  /** The function the anchored line sits in, when known. */
  function?: string | null;
}

// ---------------------------------------------------------------- messages

export type MessageKind = 'patch' | 'cover' | 'reply' | 'other';

/** Everything patchvet extracts from one mail: compact, JSON-safe. */
export interface MessageRecord {
  messageId: string;
  ref: SourceRef;
  inReplyTo: string | null;
  references: string[];
  from: Address;
  /** Patch author as git am sees it (in-body From: wins), else the sender. */
  author: Address;
  /** ISO-8601, or null when the mail has no parseable date. */
  date: string | null;
  /** Decoded Subject header as sent. */
  subject: string;
  parsedSubject: ParsedSubject;
  kind: MessageKind;
  listIds: string[];
  to: Address[];
  cc: Address[];
  /** Commit message (body up to the '---' separator), for patches. */
  commitMessage: string | null;
  /** The mail's own diff (never quoted text); null when there is none. */
  diff: Diff | null;
  files: string[];
  /** True when the mail carries a diffstat (" foo.c | 2 +-"), as cover letters do. */
  diffstat: boolean;
  trailers: Trailer[];
  /** Reply structure (quoted/new text), for replies; [] otherwise. */
  blocks: ReplyBlock[];
  /** Diff may be corrupted by the mail client (format=flowed, wrapped lines, ...): say so rather than trust it. */
  whitespaceDamaged: boolean;
  damage: string[];
  /** Written by a program (auto-reply, bounce, a list server's notice, patchvet's own reply): never answer it. */
  automated: boolean;
  /** Non-fatal problems met while reading this message. */
  warnings: string[];
}

// ---------------------------------------------------------------- threads and series

export interface ThreadMessage {
  messageId: string;
  parent: string | null;
  ghost: boolean;
  children: string[];
  /** Absent for ghosts. */
  record?: MessageRecord;
  /** Anchored comments (replies only). */
  comments: Comment[];
}

export interface Thread {
  root: string;
  rootMissing: boolean;
  subject: string;
  /** Depth-first order, parents before children, siblings by date. */
  messages: ThreadMessage[];
}

export interface Series {
  /** Stable id: message-id of the cover letter, or of patch 1 when there is none. */
  id: string;
  version: number;
  total: number | null;
  subject: string;
  author: Address;
  cover: string | null;
  /** Message-ids of patches by index (index 1..total); null where missing. */
  patches: Array<string | null>;
  /** Extra patches beyond total ("3/2"). */
  extra: string[];
  complete: boolean;
  missing: number[];
  rfc: boolean;
  /** Series id of the previous/next version, when linked. */
  previousVersion: string | null;
  nextVersion: string | null;
}

// ---------------------------------------------------------------- findings

export type Severity = 'error' | 'warning' | 'info';

/** One finding: serves every output (text, JSON, SARIF, email, GitHub). */
export interface Finding {
  rule: string;
  severity: Severity;
  title: string;
  message: string;
  messageId: string;
  subject: string;
  series: { version: number; index: number | null; total: number | null } | null;
  file: string | null;
  line: number | null;
  side: 'new' | 'old' | null;
  function: string | null;
  /** The code line the finding is on (without +/- prefix). */
  code: string | null;
  fingerprint: string;
  source: 'rule' | 'llm';
  /** Extra points for the same (rule, file, function), each a sentence. */
  notes?: string[];
}
