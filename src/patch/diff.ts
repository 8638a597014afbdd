// The diff stage: split a patch mail's body the way `git mailinfo` does (commit message,
// notes after "---", the diff) and read the diff into FileDiffs.
//
// Framing (where files and hunks start and end, extended headers, damage) is done by
// diff-scan.ts, because parse-diff falls short on mail-borne diffs: it ignores
// rename/copy/similarity headers (a rename of "x y" to "z" comes out as "x y" -> "x y"),
// never flags binary files, keeps C-quoted names escaped ("x\\ty"), keeps "\r" in line
// content, turns "\ No newline at end of file" into an extra change, and reads any line as
// a context line, so a hunk that lost lines silently swallows the next file's
// "diff --git" header, with nothing reported. The scanner numbers the framed hunks' lines;
// parse-diff reads the mode/index headers (modes and blob ids, readModes).

import parseUnified from 'parse-diff';
import type { Diff, FileDiff, FileStatus, Hunk } from '../model.js';
import {
  DEV_NULL,
  nameFromMarkerLine,
  plainDiffNames,
  splitGitHeaderNames,
  stripGitPrefixes,
  unquoteName,
} from './diff-paths.js';
import { fileStartAtText, frameDiff, parseHunkHeader, splitTexts, type FramedFile, type FramedHunk } from './diff-scan.js';
import { assignFunctions } from './functions.js';

export interface PatchBodyParts {
  /** Body up to the "---" separator (or up to the diff), blank lines trimmed at both ends. */
  commitMessage: string;
  /** Text between "---" and the diff: changelog, CCs, diffstat. */
  notes: string;
  /** The diff, from its first header to its last hunk (no signature), or null. */
  diffText: string | null;
  /** A diffstat (" xen/arch/x86/domain.c | 2 ++" and " 1 file changed, ...") is present. */
  diffstat: boolean;
}

export interface ExtractedDiff {
  commitMessage: string;
  notes: string;
  diff: Diff | null;
  diffstat: boolean;
}

const SEPARATOR_RE = /^---\s*$/;
const DIFFSTAT_FILE_RE = /^\s*\S.*\s\|\s+(?:\d+\s*[-+]*|Bin(?: \d+ -> \d+ bytes)?)\s*$/;
const DIFFSTAT_SUMMARY_RE = /^\s*\d+ files? changed(?:, \d+ insertions?\(\+\))?(?:, \d+ deletions?\(-\))?\s*$/;

// The part of a body before its diff is read by offsets into the body, not split into lines:
// most bodies are replies without a diff, and a split (a string per line) and a join for the
// commit message cost more than everything else done with those lines. A "line" here runs
// from a line start to the next "\n" (or the end of the body); its text is that without one
// trailing "\r", as splitTexts gives it.

const CH_LF = 0x0a;
const CH_CR = 0x0d;

/** End (exclusive, before "\n") of the line starting at p. */
function lineEnd(body: string, p: number): number {
  const e = body.indexOf('\n', p);
  return e < 0 ? body.length : e;
}

/** The text of the line [p, e): without a trailing "\r". */
function lineText(body: string, p: number, e: number): string {
  return e > p && body.charCodeAt(e - 1) === CH_CR ? body.slice(p, e - 1) : body.slice(p, e);
}

/** The line [p, e) is empty or white space only (a trailing "\r" is white space too). */
function isBlankLine(body: string, p: number, e: number): boolean {
  if (p === e) return true;
  const c = body.charCodeAt(p);
  if (c > 0x20 && c < 0x7f) return false;
  return body.slice(p, e).trim() === '';
}

/**
 * The lines starting in [a, b) joined by "\n", blank lines trimmed at both ends (a is a line
 * start, b a line start or the body's end).
 */
function joinTrimmed(body: string, a: number, b: number): string {
  if (b <= a) return '';
  // Where the last line's text ends: before the "\n" that ends it, if any.
  let end = body.charCodeAt(b - 1) === CH_LF ? b - 1 : b;
  for (;;) {
    const e = Math.min(lineEnd(body, a), end);
    if (!isBlankLine(body, a, e)) break;
    if (e >= end) return '';
    a = e + 1;
  }
  for (;;) {
    // The line at a is not blank: the last line starts after a or is that line.
    const s = end === a ? a : Math.max(a, body.lastIndexOf('\n', end - 1) + 1);
    if (s === a || !isBlankLine(body, s, end)) break;
    end = s - 1;
  }
  const text = body.slice(a, end);
  if (!text.includes('\r')) return text;
  // A loop, not .map with a closure: see the note on closures above findFile in anchor.ts.
  const lines = text.split('\n');
  for (let k = 0; k < lines.length; k++) if (lines[k].endsWith('\r')) lines[k] = lines[k].slice(0, -1);
  return lines.join('\n');
}

/** The line [i, ...) ends right after k: k is the body's end, a "\n", or a "\r" that ends the line. */
function lineEndsAt(body: string, k: number): boolean {
  if (k === body.length) return true;
  const c = body.charCodeAt(k);
  return c === CH_LF || (c === CH_CR && (k + 1 === body.length || body.charCodeAt(k + 1) === CH_LF));
}

/** Where the lines [a, b) end once the mail signature (the last "-- " line and what follows) is cut off. */
function endWithoutSignature(body: string, a: number, b: number): number {
  // Searched forwards: indexOf skips to candidates much faster than lastIndexOf walks back.
  let last = b;
  for (let i = body.indexOf('-- ', a); i >= 0 && i < b; i = body.indexOf('-- ', i + 1)) {
    if ((i === 0 || body.charCodeAt(i - 1) === CH_LF) && lineEndsAt(body, i + 3)) last = i;
  }
  return last;
}

/**
 * A diffstat in the lines before offset b: a stat line (it has a '|'), and after it a summary
 * line (it says "changed"; it cannot have a '|', so it is never taken for a stat line). Only
 * lines with those characters are looked at: the patterns backtrack.
 */
function hasDiffstat(body: string, b: number): boolean {
  let statEnd = -1;
  for (let k = body.indexOf('|'); k >= 0 && k < b; ) {
    const s = body.lastIndexOf('\n', k) + 1;
    const e = lineEnd(body, k);
    if (DIFFSTAT_FILE_RE.test(lineText(body, s, e))) {
      statEnd = e;
      break;
    }
    k = body.indexOf('|', e);
  }
  if (statEnd < 0) return false;
  for (let k = body.indexOf('changed', statEnd); k >= 0 && k < b; ) {
    const s = body.lastIndexOf('\n', k) + 1;
    const e = lineEnd(body, k);
    if (DIFFSTAT_SUMMARY_RE.test(lineText(body, s, e))) return true;
    k = body.indexOf('changed', e);
  }
  return false;
}

/** The texts of up to `max` lines from offset p: what fileStartAtText reads from its line on. */
function textsFrom(body: string, p: number, max: number): string[] {
  const out: string[] = [];
  while (out.length < max && p < body.length) {
    const e = lineEnd(body, p);
    out.push(lineText(body, p, e));
    p = e + 1;
  }
  return out;
}

/**
 * Split a patch mail's decoded text body like `git mailinfo`: the commit message runs to
 * the first "---" line (git also accepts trailing whitespace after it) or to the start of
 * the diff; notes and diffstat follow until the diff. The diff starts at "diff --git ",
 * or at "diff -..."/"Index: " followed by "--- "/"+++ " lines, or at a "--- " line followed
 * by a "+++ " line. Unlike mailinfo, a "diff -" or "Index: " line with no diff after it
 * (prose) does not end the commit message. The diff ends after its last hunk (by the hunk
 * counts), so the trailing "-- \n2.53.0" signature is not part of it; with no diff, the
 * signature is cut from the last section.
 */
export function splitPatchBody(body: string): PatchBodyParts {
  const { diffLines, ...parts } = splitBody(body);
  let diffText: string | null = null;
  if (diffLines !== null) {
    const { texts, cr, crBase } = diffLines;
    diffText = texts.map((t, k) => `${t}${cr !== null && cr[crBase + k] ? '\r' : ''}\n`).join('');
  }
  return { ...parts, diffText };
}

/** A diff's lines: texts, and "\r\n" flags (null: none) with the index of the diff's first line in them. */
interface DiffTexts {
  texts: string[];
  cr: boolean[] | null;
  crBase: number;
}

const CH_MINUS = 0x2d;
const CH_D = 0x64;
const CH_I = 0x49;

/** splitPatchBody, with the diff as its lines (what splitTexts would make of diffText). */
function splitBody(body: string): Omit<PatchBodyParts, 'diffText'> & { diffLines: DiffTexts | null } {
  const n = body.length;
  /** Offsets of the separator line, the line after it, and the diff's first line (-1: none). */
  let separator = -1;
  let afterSeparator = -1;
  let diffStart = -1;
  for (let p = 0; p < n; ) {
    const e = lineEnd(body, p);
    // A diff starts at "diff -", "Index: " or "--- ", the separator is "---": every other line
    // is told apart by its first character (most of a reply's lines).
    const c = body.charCodeAt(p);
    if (c === CH_MINUS || c === CH_D || c === CH_I) {
      if (
        (body.startsWith('diff -', p) || body.startsWith('Index: ', p) || body.startsWith('--- ', p)) &&
        fileStartAtText(textsFrom(body, p, 6), 0) !== null
      ) {
        diffStart = p;
        break;
      }
      if (separator < 0 && c === CH_MINUS && SEPARATOR_RE.test(lineText(body, p, e))) {
        separator = p;
        afterSeparator = e + 1;
      }
    }
    p = e + 1;
  }
  const stop = diffStart >= 0 ? diffStart : n;
  let messageEnd = separator >= 0 ? separator : stop;
  const notesStart = separator >= 0 ? Math.min(afterSeparator, stop) : stop;
  let notesEnd = stop;
  const diffstat = hasDiffstat(body, stop);
  let diffLines: DiffTexts | null = null;
  if (diffStart >= 0) {
    // A first pass finds where the diff ends (its frame only, no lines built); the diff is
    // then read from its own lines, as parseDiff would read the diff text.
    const { texts, cr } = splitTexts(diffStart === 0 ? body : body.slice(diffStart));
    const frame = frameDiff(texts, true);
    if (frame.files.length > 0) {
      diffLines = { texts: frame.end === texts.length ? texts : texts.slice(0, frame.end), cr, crBase: 0 };
    }
  } else if (separator >= 0) {
    notesEnd = endWithoutSignature(body, notesStart, notesEnd);
  } else {
    messageEnd = endWithoutSignature(body, 0, messageEnd);
  }
  return {
    commitMessage: joinTrimmed(body, 0, messageEnd),
    notes: separator >= 0 ? joinTrimmed(body, notesStart, notesEnd) : '',
    diffLines,
    diffstat,
  };
}

// ---------------------------------------------------------------- reading the framed diff

interface Names {
  oldPath: string | null;
  newPath: string | null;
  status: FileStatus;
  similarity?: number;
}

/** The value of the first extended header line "<key> <value>"; `prefix` is the key and its space. */
function extValue(ext: string[], prefix: string): string | undefined {
  for (const e of ext) if (e.startsWith(prefix)) return e.slice(prefix.length);
  return undefined;
}

function markerName(raw: string | undefined): string | null | undefined {
  if (raw === undefined) return undefined;
  const { name } = nameFromMarkerLine(raw);
  return name === DEV_NULL ? null : name;
}

function gitNames(f: FramedFile): Names | string {
  const minus = markerName(f.minus);
  const plus = markerName(f.plus);
  // The "diff --git" names are needed only where a "---"/"+++" name is missing.
  const header = f.gitNames === undefined || (minus !== undefined && plus !== undefined) ? null : splitGitHeaderNames(f.gitNames);
  let oldName: string | null;
  let newName: string | null;
  if (minus !== undefined || plus !== undefined) {
    [oldName, newName] = stripGitPrefixes(
      minus === undefined ? header?.a ?? null : minus ?? DEV_NULL,
      plus === undefined ? header?.b ?? null : plus ?? DEV_NULL,
    );
  } else if (header) {
    [oldName, newName] = stripGitPrefixes(header.a, header.b);
  } else {
    return `cannot read the file names of "diff --git ${f.gitNames ?? ''}"`;
  }
  const renameFrom = extValue(f.ext, 'rename from ') ?? extValue(f.ext, 'rename old ');
  const renameTo = extValue(f.ext, 'rename to ') ?? extValue(f.ext, 'rename new ');
  const copyFrom = extValue(f.ext, 'copy from ');
  const copyTo = extValue(f.ext, 'copy to ');
  const similarityText = extValue(f.ext, 'similarity index ');
  const similarity = similarityText === undefined ? undefined : parseInt(similarityText, 10);
  let status: FileStatus = 'modified';
  if (extValue(f.ext, 'new file mode ') !== undefined) status = 'added';
  else if (extValue(f.ext, 'deleted file mode ') !== undefined) status = 'deleted';
  else if (renameFrom !== undefined || renameTo !== undefined) status = 'renamed';
  else if (copyFrom !== undefined || copyTo !== undefined) status = 'copied';
  else if (oldName === null && newName !== null) status = 'added';
  else if (newName === null && oldName !== null) status = 'deleted';
  if (status === 'renamed') {
    oldName = renameFrom !== undefined ? unquoteName(renameFrom) : oldName;
    newName = renameTo !== undefined ? unquoteName(renameTo) : newName;
  } else if (status === 'copied') {
    oldName = copyFrom !== undefined ? unquoteName(copyFrom) : oldName;
    newName = copyTo !== undefined ? unquoteName(copyTo) : newName;
  }
  if (status === 'added') oldName = null;
  if (status === 'deleted') newName = null;
  return {
    oldPath: oldName,
    newPath: newName,
    status,
    similarity: similarity !== undefined && !Number.isNaN(similarity) ? similarity : undefined,
  };
}

function plainNames(f: FramedFile): Names | string {
  let oldRaw: string | null;
  let newRaw: string | null;
  if (f.minus !== undefined && f.plus !== undefined) {
    oldRaw = markerName(f.minus) ?? DEV_NULL;
    newRaw = markerName(f.plus) ?? DEV_NULL;
  } else if (f.binaryNames) {
    oldRaw = f.binaryNames.a;
    newRaw = f.binaryNames.b;
  } else {
    return 'diff header without file names';
  }
  const [oldPath, newPath] = plainDiffNames(oldRaw, newRaw);
  let status: FileStatus = 'modified';
  // `diff -N` writes a missing file's name with an epoch timestamp, and a hunk "-0,0".
  const hunks = f.hunks;
  if (oldPath === null || (hunks.length > 0 && hunks.every((h) => h.oldStart === 0 && h.oldLines === 0))) {
    status = 'added';
  } else if (newPath === null || (hunks.length > 0 && hunks.every((h) => h.newStart === 0 && h.newLines === 0))) {
    status = 'deleted';
  }
  return {
    oldPath: status === 'added' ? null : oldPath,
    newPath: status === 'deleted' ? null : newPath,
    status,
    similarity: undefined,
  };
}

function hunkRange(h: FramedHunk): string {
  return parseHunkHeader(h.header)?.range.trim() ?? h.header;
}

// The mode and blob-id header lines ("old mode", "new file mode", "index a..b 100644"), read
// by parse-diff. Only files that have such lines pay for the call.
const MODE_LINE_RE = /^(old mode|new mode|deleted file mode|new file mode|index) /;

function readModes(ext: string[], file: FileDiff): void {
  let modeLines: string | null = null;
  for (const e of ext) if (MODE_LINE_RE.test(e)) modeLines = modeLines === null ? e : `${modeLines}\n${e}`;
  if (modeLines === null) return;
  const info = parseUnified(`${modeLines}\n`)[0];
  if (info?.oldMode !== undefined) file.oldMode = info.oldMode;
  if (info?.newMode !== undefined) file.newMode = info.newMode;
  const blobs = info?.index?.[0]?.split('..');
  if (blobs?.length === 2) {
    file.oldBlob = blobs[0];
    file.newBlob = blobs[1];
  }
}

function readFile(f: FramedFile, damage: string[]): FileDiff | null {
  const names = f.kind === 'git' ? gitNames(f) : plainNames(f);
  if (typeof names === 'string') {
    damage.push(names);
    return null;
  }
  const path = names.newPath ?? names.oldPath;
  if (path === null) {
    damage.push('file without a name');
    return null;
  }
  const file: FileDiff = {
    oldPath: names.oldPath,
    newPath: names.newPath,
    path,
    status: names.status,
    binary: f.binary,
    hunks: [],
    additions: 0,
    deletions: 0,
  };
  if (names.similarity !== undefined) file.similarity = names.similarity;
  readModes(f.ext, file);
  for (const p of f.problems) damage.push(`${path}: ${p}`);
  for (const h of f.hunks) {
    if (h.problems.length > 0) {
      const where = `${path} hunk ${hunkRange(h)}`;
      for (const p of h.problems) damage.push(`${where}: ${p}`);
    }
    const hunk: Hunk = {
      header: h.header,
      oldStart: h.oldStart,
      oldLines: h.oldLines,
      newStart: h.newStart,
      newLines: h.newLines,
      headerFunction: h.headerFunction,
      lines: h.lines,
    };
    file.hunks.push(hunk);
    file.additions += h.additions;
    file.deletions += h.deletions;
  }
  assignFunctions(file);
  return file;
}

/** Read a diff (git, `diff -u`, or pasted without "diff --git") into FileDiffs. */
export function parseDiff(diffText: string): Diff {
  const { texts, cr } = splitTexts(diffText);
  return parseDiffTexts({ texts, cr, crBase: 0 });
}

function parseDiffTexts(lines: DiffTexts): Diff {
  const scan = frameDiff(lines.texts, false);
  const damage: string[] = [];
  const files: FileDiff[] = [];
  for (const f of scan.files) {
    const file = readFile(f, damage);
    if (file) files.push(file);
  }
  damage.push(...scan.damage);
  // Without any "\r" (cr null) every line ended in "\n" alone: no mix.
  const { cr, crBase } = lines;
  if (cr !== null) {
    let crLines = 0;
    for (let j = 0; j < scan.end; j++) if (cr[crBase + j]) crLines++;
    const lfLines = scan.end - crLines;
    if (crLines > 0 && lfLines > 0) {
      damage.push(`mixed line endings: ${crLines} of ${crLines + lfLines} diff lines end in CRLF`);
    }
  }
  return { files, damage };
}

/** splitPatchBody + parseDiff. */
export function extractDiff(body: string): ExtractedDiff {
  // The diff's lines go to parseDiff as they are: joining them into diffText and splitting
  // that again gives the same lines.
  const parts = splitBody(body);
  return {
    commitMessage: parts.commitMessage,
    notes: parts.notes,
    diff: parts.diffLines === null ? null : parseDiffTexts(parts.diffLines),
    diffstat: parts.diffstat,
  };
}
