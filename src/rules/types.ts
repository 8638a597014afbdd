// The rule API: rules are data (YAML in rules/<pack>/<name>.yml) plus small pure
// matchers written in TypeScript (src/rules/matchers/). A rule never does I/O:
// everything it may look at is in the MatchContext.
import type { Diff, FileDiff, Hunk, DiffLine, MessageRecord, Severity } from '../model.js';

/** A rule as written in YAML (after validation). */
export interface RuleSpec {
  /** "pack/name"; never reused. */
  id: string;
  title: string;
  severity: Severity;
  scope: {
    /** Globs on the file path ("xen/**"); a file outside them is never looked at. */
    paths?: string[];
    /** Paths to leave alone even inside `paths`. */
    excludePaths?: string[];
    /** List addresses or List-Id fragments; when given, mail from other lists is skipped (mail with no list header is kept). */
    lists?: string[];
    /** Identifiers the rule is about (documentation, and a cheap prefilter for the LLM pass). */
    symbols?: string[];
  };
  /** Cheap trigger: regexes (JavaScript syntax) on added/removed line text. A rule without a trigger sees every patch in scope. */
  trigger?: {
    added?: string[];
    removed?: string[];
  };
  /** Declarative structural condition on the code around a triggering line. */
  condition?: {
    /** The line's function must be one of these (names, or "kb:<list>" for a knowledge-base list). */
    inFunction?: string[];
    notInFunction?: string[];
    /** Regex that one of the enclosing block conditions must match (e.g. "!\\s*is_idle_(vcpu|domain)"). */
    insideBlock?: string;
    notInsideBlock?: string;
  };
  /** Name of a TS matcher in src/rules/matchers (see MATCHERS); it receives the triggering lines. */
  matcher?: string;
  /** Free-form options handed to the matcher. */
  options?: Record<string, unknown>;
  /** Message template. {function}, {symbol}, {file}, {line} and matcher-provided {vars} are substituted. */
  message: string;
  /** The invariant, why it matters, with correct and wrong examples (also given to the LLM pass). */
  guide: string;
  references?: string[];
  examples: {
    /** Patches the rule must flag. */
    flag: RuleExample[];
    /** Near-miss patches the rule must not flag. */
    ok: RuleExample[];
  };
  /** Optional (set by the loader): path of the YAML file the rule came from, for error reports and `rules test`. */
  source?: string;
}

export interface RuleExample {
  name: string;
  /** A mail (headers + body with a diff), or just a unified diff. */
  patch: string;
  /** For `flag`: where the finding must be (new-side line), and optionally a regex its message must match. */
  expect?: { file?: string; line?: number; message?: string; severity?: Severity }[];
}

/** Facts about the target tree a pack ships for when no tree is at hand (rules/<pack>/kb.yml). */
export interface KnowledgeBase {
  /** Named lists of identifiers, referenced as "kb:<name>" from conditions, e.g. nonIdleOnly, vcpuCreatePaths. */
  lists: Record<string, string[]>;
  /** Per-function facts: which flags it sets/clears, what it allocates, whether the idle vCPU runs it. */
  functions: Record<string, FunctionFacts>;
}

export interface FunctionFacts {
  sets?: string[];
  clears?: string[];
  allocates?: string[];
  resets?: string[];
  idle?: 'never' | 'always' | 'both';
  note?: string;
}

/** Code around a changed line, computed from the hunk (and the tree when given). */
export interface LineContext {
  file: FileDiff;
  hunk: Hunk;
  /** Index of the line in hunk.lines. */
  index: number;
  line: DiffLine;
  /** Conditions of the enclosing blocks, innermost last, as seen in the hunk's visible lines
   *  (e.g. ["!is_idle_domain(d)"]; an `else` branch is reported as "!(<cond>)"). */
  blocks: string[];
  /** True if the added line has a removed twin with the same tokens (an edit, not a new statement). */
  edited: boolean;
  /** True if the only change against its removed twin is a renamed identifier. */
  renameOnly: boolean;
}

/** Optional view of the target tree (from --tree), gathered at the edge before rules run. */
export interface TreeView {
  /** Whole body of a function (pre-image), by name, if found. */
  functionBody(name: string): string | undefined;
  /** Pre-image text of a file, if found. */
  fileText(path: string): string | undefined;
}

export interface MatchContext {
  rule: RuleSpec;
  record: MessageRecord;
  diff: Diff;
  kb: KnowledgeBase;
  tree?: TreeView;
  /** The lines that passed the trigger and condition (all changed lines in scope when there is no trigger). */
  lines: LineContext[];
  /** Context for any line of the diff. */
  contextOf(file: FileDiff, hunk: Hunk, index: number): LineContext;
}

/** What a matcher returns: a place and, optionally, a more specific message. */
export interface Match {
  file: string;
  line: number | null;
  side: 'new' | 'old' | null;
  function: string | null;
  code: string | null;
  /** Overrides the rule's message. */
  message?: string;
  severity?: Severity;
  /** Values for {placeholders} in the rule's message. */
  vars?: Record<string, string>;
  /** Normalised code used in the fingerprint (defaults to the normalised `code`). */
  key?: string;
}

export type Matcher = (ctx: MatchContext) => Match[];
