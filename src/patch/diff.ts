// The diff stage: split a patch mail's body the way `git mailinfo` does (commit message,
// notes after "---", the diff) and read the diff into FileDiffs.
//
// Framing (where files and hunks start and end, extended headers, damage) is done by
// diff-scan.ts, because parse-diff falls short on mail-borne diffs: it ignores
// rename/copy/similarity headers (a rename of "x y" to "z" comes out as "x y" -> "x y"),
// never flags binary files, keeps C-quoted names escaped ("x\\ty"), keeps "\r" in line
// content, turns "\ No newline at end of file" into an extra change, and reads any line as
// a context line, so a hunk that lost lines silently swallows the next file's
// "diff --git" header, with nothing reported. The lines of the framed hunks are numbered
// here; parse-diff reads the mode/index headers (modes and blob ids).

import parseUnified from 'parse-diff';
import type { Diff, DiffLine, FileDiff, FileStatus, Hunk } from '../model.js';
import {
  DEV_NULL,
  nameFromMarkerLine,
  plainDiffNames,
  splitGitHeaderNames,
  stripGitPrefixes,
  unquoteName,
} from './diff-paths.js';
import { fileStartAt, parseHunkHeader, scanDiff, splitLines, type ScanFile, type ScanHunk, type SrcLine } from './diff-scan.js';
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

function joinTrimmed(lines: SrcLine[]): string {
  let a = 0;
  let b = lines.length;
  while (a < b && lines[a].text.trim() === '') a++;
  while (b > a && lines[b - 1].text.trim() === '') b--;
  return lines
    .slice(a, b)
    .map((l) => l.text)
    .join('\n');
}

/** Cut the mail signature ("-- " and what follows) off the end of a section. */
function withoutSignature(lines: SrcLine[]): SrcLine[] {
  for (let i = lines.length - 1; i >= 0; i--) {
    if (lines[i].text === '-- ') return lines.slice(0, i);
  }
  return lines;
}

function hasDiffstat(lines: SrcLine[]): boolean {
  let statLines = 0;
  for (const l of lines) {
    // A stat line has a '|', the summary says "changed": cheap tests first, the patterns backtrack.
    const t = l.text;
    if (t.includes('|') && DIFFSTAT_FILE_RE.test(t)) statLines++;
    else if (statLines > 0 && t.includes('changed') && DIFFSTAT_SUMMARY_RE.test(t)) return true;
  }
  return false;
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
  return {
    ...parts,
    diffText: diffLines === null ? null : diffLines.map((l) => `${l.text}${l.cr ? '\r' : ''}\n`).join(''),
  };
}

/** splitPatchBody, with the diff as its lines (what splitLines would make of diffText). */
function splitBody(body: string): Omit<PatchBodyParts, 'diffText'> & { diffLines: SrcLine[] | null } {
  const lines = splitLines(body);
  let separator = -1;
  let diffStart = -1;
  for (let i = 0; i < lines.length; i++) {
    if (fileStartAt(lines, i) !== null) {
      diffStart = i;
      break;
    }
    if (separator < 0 && SEPARATOR_RE.test(lines[i].text)) separator = i;
  }
  const stop = diffStart >= 0 ? diffStart : lines.length;
  let message = lines.slice(0, separator >= 0 ? separator : stop);
  let notes = separator >= 0 ? lines.slice(separator + 1, stop) : [];
  const diffstat = hasDiffstat(lines.slice(0, stop));
  let diffLines: SrcLine[] | null = null;
  if (diffStart >= 0) {
    const rest = lines.slice(diffStart);
    const scan = scanDiff(rest);
    if (scan.files.length > 0) diffLines = rest.slice(0, scan.end);
  } else if (separator >= 0) {
    notes = withoutSignature(notes);
  } else {
    message = withoutSignature(message);
  }
  return { commitMessage: joinTrimmed(message), notes: joinTrimmed(notes), diffLines, diffstat };
}

// ---------------------------------------------------------------- reading the framed diff

interface Names {
  oldPath: string | null;
  newPath: string | null;
  status: FileStatus;
  similarity?: number;
}

function extValue(ext: string[], key: string): string | undefined {
  const line = ext.find((e) => e.startsWith(`${key} `));
  return line === undefined ? undefined : line.slice(key.length + 1);
}

function markerName(raw: string | undefined): string | null | undefined {
  if (raw === undefined) return undefined;
  const { name } = nameFromMarkerLine(raw);
  return name === DEV_NULL ? null : name;
}

function gitNames(f: ScanFile): Names | string {
  const header = f.gitNames === undefined ? null : splitGitHeaderNames(f.gitNames);
  const minus = markerName(f.minus);
  const plus = markerName(f.plus);
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
  const renameFrom = extValue(f.ext, 'rename from') ?? extValue(f.ext, 'rename old');
  const renameTo = extValue(f.ext, 'rename to') ?? extValue(f.ext, 'rename new');
  const copyFrom = extValue(f.ext, 'copy from');
  const copyTo = extValue(f.ext, 'copy to');
  const similarityText = extValue(f.ext, 'similarity index');
  const similarity = similarityText === undefined ? undefined : parseInt(similarityText, 10);
  let status: FileStatus = 'modified';
  if (extValue(f.ext, 'new file mode') !== undefined) status = 'added';
  else if (extValue(f.ext, 'deleted file mode') !== undefined) status = 'deleted';
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

function plainNames(f: ScanFile): Names | string {
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

function hunkRange(h: ScanHunk): string {
  return parseHunkHeader(h.header)?.range.trim() ?? h.header;
}

/**
 * Number the lines of one framed hunk: old-side numbers count up from oldStart over context
 * and removed lines, new-side numbers from newStart over context and added lines. (This is
 * what parse-diff gave for the hunk re-emitted with exact counts, which is how it was done
 * before: parse-diff agreed with the scanner on every such hunk, as its reading of a hunk with
 * exact counts cannot differ, and the re-emitting and re-parsing was a quarter of the cost of
 * reading a diff.)
 */
function readHunk(h: ScanHunk): { hunk: Hunk; additions: number; deletions: number } {
  const hunk: Hunk = {
    header: h.header,
    oldStart: h.oldStart,
    oldLines: h.oldLines,
    newStart: h.newStart,
    newLines: h.newLines,
    headerFunction: h.headerFunction,
    lines: [],
  };
  let additions = 0;
  let deletions = 0;
  let oldLine = h.oldStart;
  let newLine = h.newStart;
  for (const l of h.lines) {
    let line: DiffLine;
    if (l.kind === 'add') {
      additions++;
      line = { kind: 'add', text: l.text, oldLine: null, newLine: newLine++, fn: null };
    } else if (l.kind === 'del') {
      deletions++;
      line = { kind: 'del', text: l.text, oldLine: oldLine++, newLine: null, fn: null };
    } else {
      line = { kind: 'ctx', text: l.text, oldLine: oldLine++, newLine: newLine++, fn: null };
    }
    if (l.noNewline) line.noNewline = true;
    hunk.lines.push(line);
  }
  return { hunk, additions, deletions };
}

function readFile(f: ScanFile, damage: string[]): FileDiff | null {
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
  // Modes and blob ids: parse-diff reads these header lines.
  const modeLines = f.ext.filter((e) => /^(old mode|new mode|deleted file mode|new file mode|index) /.test(e));
  if (modeLines.length > 0) {
    const info = parseUnified(`${modeLines.join('\n')}\n`)[0];
    if (info?.oldMode !== undefined) file.oldMode = info.oldMode;
    if (info?.newMode !== undefined) file.newMode = info.newMode;
    const blobs = info?.index?.[0]?.split('..');
    if (blobs?.length === 2) {
      file.oldBlob = blobs[0];
      file.newBlob = blobs[1];
    }
  }
  for (const p of f.problems) damage.push(`${path}: ${p}`);
  for (const h of f.hunks) {
    const where = `${path} hunk ${hunkRange(h)}`;
    for (const p of h.problems) damage.push(`${where}: ${p}`);
    const r = readHunk(h);
    file.hunks.push(r.hunk);
    file.additions += r.additions;
    file.deletions += r.deletions;
  }
  assignFunctions(file);
  return file;
}

/** Read a diff (git, `diff -u`, or pasted without "diff --git") into FileDiffs. */
export function parseDiff(diffText: string): Diff {
  return parseDiffLines(splitLines(diffText));
}

function parseDiffLines(lines: SrcLine[]): Diff {
  const scan = scanDiff(lines);
  const damage: string[] = [];
  const files: FileDiff[] = [];
  for (const f of scan.files) {
    const file = readFile(f, damage);
    if (file) files.push(file);
  }
  damage.push(...scan.damage);
  if (scan.crLines > 0 && scan.lfLines > 0) {
    damage.push(`mixed line endings: ${scan.crLines} of ${scan.crLines + scan.lfLines} diff lines end in CRLF`);
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
    diff: parts.diffLines === null ? null : parseDiffLines(parts.diffLines),
    diffstat: parts.diffstat,
  };
}
