// Framing of a diff as it arrives in a mail: where each file starts, which lines are its
// extended headers, where each hunk ends, and what the mail client broke on the way.
//
// A hunk's body is exactly as long as its header says ("@@ -a,b +c,d @@": b old-side and
// d new-side lines). That is how git apply reads it, and the only way to tell a removed
// line "-- foo" or "- " from the mail signature "-- ". parse-diff trusts the counts blindly
// and reads anything as a context line, so a hunk that lost lines swallows the next file's
// header; this scanner finds the frame first, tolerantly, and says what it had to guess.

import type { DiffLine, Hunk } from '../model.js';

/**
 * A text's lines without their "\n" and without a trailing "\r", and which of them ended in
 * "\r\n" (null when none did: most mail has no "\r" left, and then no flag is kept per line).
 * The texts are what the scanner works on: no object per line.
 */
export interface TextLines {
  texts: string[];
  cr: boolean[] | null;
}

export function splitTexts(text: string): TextLines {
  const texts = text.split('\n');
  if (texts.length > 0 && texts[texts.length - 1] === '') texts.pop();
  if (!text.includes('\r')) return { texts, cr: null };
  const cr: boolean[] = new Array<boolean>(texts.length);
  for (let k = 0; k < texts.length; k++) {
    const p = texts[k];
    if (p.charCodeAt(p.length - 1) === 0x0d) {
      texts[k] = p.slice(0, -1);
      cr[k] = true;
    } else {
      cr[k] = false;
    }
  }
  return { texts, cr };
}

const HUNK_RE = /^@@\s+-(\d+)(?:,(\d+))?\s+\+(\d+)(?:,(\d+))?\s+@@(.*)$/;

export interface HunkHeader {
  oldStart: number;
  oldLines: number;
  newStart: number;
  newLines: number;
  /** "@@ -a,b +c,d @@" part as written. */
  range: string;
  headerFunction: string | null;
}

export function parseHunkHeader(line: string): HunkHeader | null {
  const m = HUNK_RE.exec(line);
  if (!m) return null;
  const rest = m[5];
  const fn = rest.trim();
  return {
    oldStart: Number(m[1]),
    oldLines: m[2] === undefined ? 1 : Number(m[2]),
    newStart: Number(m[3]),
    newLines: m[4] === undefined ? 1 : Number(m[4]),
    range: line.slice(0, line.length - rest.length),
    headerFunction: fn === '' ? null : fn,
  };
}

const EXT_HEADER_RE =
  /^(old mode|new mode|deleted file mode|new file mode|copy from|copy to|rename from|rename to|rename old|rename new|similarity index|dissimilarity index|index) /;

const BINARY_FILES_RE = /^Binary files (.+) and (.+) differ$/;

// First characters, so that most lines are told apart by one charCodeAt before any
// startsWith or pattern runs.
const CH_TAB = 0x09;
const CH_SPACE = 0x20;
const CH_PLUS = 0x2b;
const CH_MINUS = 0x2d;
const CH_AT = 0x40;
const CH_B = 0x42;
const CH_I = 0x49;
const CH_BACKSLASH = 0x5c;
const CH_D = 0x64;

function isMinusPlusAt(texts: string[], i: number): boolean {
  const t = texts[i];
  const u = texts[i + 1];
  return t !== undefined && u !== undefined && t.startsWith('--- ') && u.startsWith('+++ ');
}

/** "Binary files X and Y differ": the first letter rejects almost every line before the pattern runs. */
function isBinaryFilesLine(t: string): boolean {
  return t.charCodeAt(0) === CH_B && BINARY_FILES_RE.test(t);
}

export type FileStart = 'git' | 'plain-diff' | 'index' | 'unified' | 'binary';

/**
 * Does a file's diff start at line i? "diff --git " (and "diff --cc"), "diff -..." and
 * "Index: " (CVS/svn/quilt) when a "--- "/"+++ " pair or a "Binary files" line follows
 * within a few lines, and a bare "--- "/"+++ " pair (Thunderbird-pasted `git diff`,
 * `diff -u`).
 */
export function fileStartAtText(texts: string[], i: number): FileStart | null {
  const t = texts[i];
  if (t === undefined) return null;
  // Every start begins with 'd' ("diff "), 'I' ("Index: ") or '-' ("--- "): one test turns away the rest.
  const c = t.charCodeAt(0);
  if (c === CH_D) {
    if (t.startsWith('diff --git ') || t.startsWith('diff --cc ') || t.startsWith('diff --combined ')) return 'git';
    // A client wrapped the names onto the next line.
    if (t.trimEnd() === 'diff --git') return 'git';
    return t.startsWith('diff -') ? headerBeforeNames(texts, i, 'plain-diff') : null;
  }
  if (c === CH_I) return t.startsWith('Index: ') ? headerBeforeNames(texts, i, 'index') : null;
  if (c === CH_MINUS && isMinusPlusAt(texts, i)) return 'unified';
  return null;
}

/** A "diff -..." or "Index: " line starts a file when names follow within a few lines. */
function headerBeforeNames(texts: string[], i: number, kind: 'plain-diff' | 'index'): FileStart | null {
  for (let j = i + 1; j <= i + 4 && j < texts.length; j++) {
    const u = texts[j];
    if (isMinusPlusAt(texts, j) || isBinaryFilesLine(u)) return kind;
    if (u.startsWith('@@') || u.startsWith('diff ')) break;
  }
  return null;
}

/** "-- " (or "--" whose trailing space a client ate) with nothing diff-like after it. */
function isSignatureAt(texts: string[], i: number): boolean {
  const t = texts[i];
  if (t !== '-- ' && t !== '--') return false;
  for (let j = i + 1; j < texts.length; j++) {
    const u = texts[j];
    if (u === '') continue;
    const c = u.charCodeAt(0);
    if (c === CH_MINUS || c === CH_PLUS || c === CH_BACKSLASH || c === CH_AT || c === CH_SPACE) return false;
    if (u.startsWith('diff ') || u.startsWith('Index: ')) return false;
  }
  return true;
}

/** Inside a hunk body: a line that cannot be a body line and begins something new. */
function endsHunkBody(texts: string[], i: number): boolean {
  const t = texts[i];
  const c = t.charCodeAt(0);
  if (c === CH_AT) return t.startsWith('@@');
  if (c === CH_D) {
    if (t.startsWith('diff --git ') || t.startsWith('diff --cc ')) return true;
    return t.startsWith('diff -') && fileStartAtText(texts, i) !== null;
  }
  if (c === CH_I) return t.startsWith('Index: ') && fileStartAtText(texts, i) !== null;
  return false;
}

/**
 * "--- x" / "+++ y" / "@@ -" inside a hunk whose counts are not used up: the hunk was
 * short and a new file starts. Without the "@@" a "--- x" line is a removed "-- x" line.
 */
function newFileInsideHunk(texts: string[], i: number): boolean {
  return isMinusPlusAt(texts, i) && (texts[i + 2] ?? '').startsWith('@@ -');
}

type Strategy = 'auto' | 'context' | 'join';

interface BodyResult {
  /** The hunk's lines, numbered; null when only the frame was asked for. */
  lines: DiffLine[] | null;
  additions: number;
  deletions: number;
  next: number;
  problems: string[];
  unprefixed: number;
  /** Body-like lines right after the counted body (damage): they still belong to the diff. */
  after: number;
}

/** A line this wide (in columns) may have been wrapped by a client that wraps at 72-78. */
const WRAP_CANDIDATE = 60;

/** Display width with tabs to 8 columns: clients wrap by what they show, and kernel code is tab-indented. */
function displayWidth(s: string): number {
  let w = 0;
  for (let k = 0; k < s.length; k++) {
    const c = s.charCodeAt(k);
    if (c === CH_TAB) w += 8 - (w % 8);
    else {
      w++;
      // a surrogate pair is one character
      if (c >= 0xd800 && c <= 0xdbff && k + 1 < s.length) {
        const d = s.charCodeAt(k + 1);
        if (d >= 0xdc00 && d <= 0xdfff) k++;
      }
    }
  }
  return w;
}

/** displayWidth(s) >= WRAP_CANDIDATE, without measuring lines too short to get there. */
function wrapCandidate(s: string): boolean {
  return s.length * 8 >= WRAP_CANDIDATE && displayWidth(s) >= WRAP_CANDIDATE;
}

/** wrapCandidate of the line before, measured only when a reading needs it (rarely: most lines have a prefix). */
function lastWasWide(last: string | null): boolean {
  return last !== null && wrapCandidate(last);
}

function excerpt(s: string): string {
  const t = s.length > 40 ? `${s.slice(0, 40)}...` : s;
  return JSON.stringify(t);
}

/**
 * Read a hunk body by its counts. The lines come out numbered as DiffLines (old-side numbers
 * from oldStart over context and removed lines, new-side ones from newStart over context and
 * added lines), unless `frameOnly`: then only the frame (where the body ends, its problems)
 * is worked out, and no line is built.
 */
function readBody(texts: string[], start: number, h: HunkHeader, strategy: Strategy, frameOnly: boolean): BodyResult {
  let oldLeft = h.oldLines;
  let newLeft = h.newLines;
  const out: DiffLine[] | null = frameOnly ? null : [];
  /** Lines read so far (out.length when lines are built). */
  let count = 0;
  let oldNo = h.oldStart;
  let newNo = h.newStart;
  let additions = 0;
  let deletions = 0;
  const problems: string[] = [];
  let blankContext = 0;
  let unprefixed = 0;
  /** The last line read (not a "\ " line), for wrapCandidate when a reading asks for it. */
  let last: string | null = null;
  let i = start;
  let cut: string | null = null;
  while ((oldLeft > 0 || newLeft > 0) && i < texts.length) {
    const t = texts[i];
    const c = t.charCodeAt(0);
    if (c === CH_BACKSLASH && (t.length === 1 || t.charCodeAt(1) === CH_SPACE)) {
      // "\ No newline at end of file" (any wording: GNU diff translates it).
      if (out !== null && out.length > 0) out[out.length - 1].noNewline = true;
      i++;
      continue;
    }
    if (c === CH_PLUS) {
      if (out !== null) out.push({ kind: 'add', text: t.slice(1), oldLine: null, newLine: newNo, fn: null });
      newNo++;
      additions++;
      count++;
      newLeft--;
    } else if (c === CH_MINUS) {
      if (isSignatureAt(texts, i)) {
        cut = 'the mail signature';
        break;
      }
      if (newFileInsideHunk(texts, i)) {
        cut = 'the next file header';
        break;
      }
      if (out !== null) out.push({ kind: 'del', text: t.slice(1), oldLine: oldNo, newLine: null, fn: null });
      oldNo++;
      deletions++;
      count++;
      oldLeft--;
    } else if (c === CH_SPACE) {
      if (out !== null) out.push({ kind: 'ctx', text: t.slice(1), oldLine: oldNo, newLine: newNo, fn: null });
      oldNo++;
      newNo++;
      count++;
      oldLeft--;
      newLeft--;
    } else if (t === '') {
      // An empty context line whose single space a mail client (or editor) stripped.
      if (out !== null) out.push({ kind: 'ctx', text: '', oldLine: oldNo, newLine: newNo, fn: null });
      oldNo++;
      newNo++;
      count++;
      blankContext++;
      oldLeft--;
      newLeft--;
    } else if (endsHunkBody(texts, i)) {
      cut = t.startsWith('@@') ? 'the next hunk header' : 'the next file header';
      break;
    } else {
      unprefixed++;
      const join = count > 0 && (strategy === 'join' || (strategy === 'auto' && !/^\s/.test(t) && lastWasWide(last)));
      if (join) {
        if (out !== null) {
          const prev = out[out.length - 1];
          prev.text += prev.text.endsWith(' ') || prev.text.endsWith('\t') ? t : ` ${t}`;
        }
        problems.push(`line without diff prefix inside a hunk, read as the wrapped end of the line before: ${excerpt(t)}`);
      } else {
        if (out !== null) out.push({ kind: 'ctx', text: t, oldLine: oldNo, newLine: newNo, fn: null });
        oldNo++;
        newNo++;
        count++;
        oldLeft--;
        newLeft--;
        problems.push(`line without diff prefix inside a hunk, read as a context line: ${excerpt(t)}`);
      }
    }
    last = t;
    i++;
  }
  // The last line's "\ No newline at end of file" comes after the counts are used up.
  while (i < texts.length && texts[i].startsWith('\\ ')) {
    if (out !== null && out.length > 0) out[out.length - 1].noNewline = true;
    i++;
  }
  let clean = true;
  if (oldLeft > 0 || newLeft > 0) {
    clean = false;
    const missing = Math.max(oldLeft, newLeft);
    const sides = oldLeft === newLeft ? '' : ` (old side short by ${oldLeft}, new side by ${newLeft})`;
    const where = cut ? `, cut by ${cut}` : i >= texts.length ? ', cut by the end of the diff' : '';
    problems.push(`${missing} line${missing === 1 ? '' : 's'} missing${sides}${where}`);
  }
  if (oldLeft < 0 || newLeft < 0) {
    clean = false;
    problems.push(
      `more lines than the header says (old side ${h.oldLines - oldLeft} for ${h.oldLines}, new side ${h.newLines - newLeft} for ${h.newLines})`,
    );
  }
  const after = trailingBodyLikeLines(texts, i, last);
  if (clean && after > 0) {
    clean = false;
    problems.push(`${after === 1 ? '1 line' : `${after} lines`} right after the hunk beyond its counts (${after === 1 ? 'looks' : 'look'} like diff lines)`);
  }
  if (!clean && blankContext > 0) {
    problems.push(`${blankContext} empty line${blankContext === 1 ? '' : 's'} read as context lines that lost their leading space`);
  }
  return { lines: out, additions, deletions, next: i, problems, unprefixed, after };
}

/**
 * Lines right after a hunk's counted body that still look like body lines (bad counts, a
 * flowed decoder's joins). Unprefixed text counts only right after a long last line (its
 * wrapped end) or right before the next header: otherwise it is prose written after a pasted
 * diff ("Thanks,"). `last` is the hunk's last line read, or null.
 */
function trailingBodyLikeLines(texts: string[], i: number, last: string | null): number {
  let n = 0;
  for (let j = i; j < texts.length; j++) {
    const t = texts[j];
    if (t === '' || t === '-- ' || t === '--' || (t.charCodeAt(0) === CH_MINUS && /^---\s*$/.test(t))) break;
    if (endsHunkBody(texts, j) || fileStartAtText(texts, j) !== null) break;
    const c = t.charCodeAt(0);
    if (c === CH_MINUS || c === CH_PLUS || c === CH_SPACE) {
      n++;
      continue;
    }
    // Unprefixed text: the wrapped end of a long line, or any text wedged between a hunk
    // and the next hunk/file header (prose does not sit there).
    if (j === i && lastWasWide(last)) {
      n++;
      continue;
    }
    const beforeHeader = j + 1 < texts.length && (endsHunkBody(texts, j + 1) || fileStartAtText(texts, j + 1) !== null);
    if (!beforeHeader) break;
    n++;
  }
  return n;
}

/** The problems say nothing worse than lines without a prefix: the counts came out exact. */
function countsOk(r: BodyResult): boolean {
  for (const p of r.problems) if (!p.startsWith('line without diff prefix')) return false;
  return true;
}

/**
 * Read one hunk body. Lines without a diff prefix are either wrapped continuations (a
 * client broke a long line) or context lines that lost their leading space; try reading
 * them each way and keep the first reading whose counts come out exact.
 */
function readHunk(texts: string[], start: number, h: HunkHeader, frameOnly: boolean): BodyResult {
  const auto = readBody(texts, start, h, 'auto', frameOnly);
  if (auto.unprefixed === 0) return auto;
  if (countsOk(auto)) return auto;
  const context = readBody(texts, start, h, 'context', frameOnly);
  if (countsOk(context)) return context;
  const join = readBody(texts, start, h, 'join', frameOnly);
  if (countsOk(join)) return join;
  return auto;
}

/** Skip a "GIT binary patch" block: "literal N"/"delta N", base85 lines, a blank line; twice. */
function skipGitBinary(texts: string[], i: number): number {
  let j = i;
  for (let block = 0; block < 2; block++) {
    if (!/^(literal|delta) \d+$/.test(texts[j] ?? '')) break;
    j++;
    while (j < texts.length && /^[A-Za-z][0-9A-Za-z!#$%&()*+;<=>?@^_`{|}~-]+$/.test(texts[j])) j++;
    if (texts[j] === '') j++;
  }
  return j;
}

/**
 * A hunk as framed: the model's Hunk, its lines numbered (DiffLines with `fn` still null), or
 * empty when only the frame was asked for; with its counts and the damage seen in it.
 */
export interface FramedHunk extends Hunk {
  additions: number;
  deletions: number;
  problems: string[];
}

/** ScanFile with FramedHunks. */
export interface FramedFile {
  kind: 'git' | 'plain';
  gitNames: string | undefined;
  minus: string | undefined;
  plus: string | undefined;
  binaryNames: { a: string; b: string } | undefined;
  ext: string[];
  binary: boolean;
  hunks: FramedHunk[];
  problems: string[];
}

export interface Framing {
  files: FramedFile[];
  damage: string[];
  /** Index just past the last line that belongs to the diff. */
  end: number;
}

function newFile(kind: FramedFile['kind']): FramedFile {
  // Every field present from the start (undefined when unknown): one object shape for all
  // files, so the code reading them is not deoptimised each time a new combination shows up.
  return { kind, gitNames: undefined, minus: undefined, plus: undefined, binaryNames: undefined, ext: [], binary: false, hunks: [], problems: [] };
}

/**
 * Frame a diff (files, their headers and hunks, and the damage found on the way), with the
 * hunks' lines read into numbered DiffLines. With `frameOnly`, no line is built (hunks come
 * with empty `lines`): for finding where a diff ends, which is all a first pass over a mail
 * body needs.
 */
export function frameDiff(texts: string[], frameOnly: boolean): Framing {
  const files: FramedFile[] = [];
  const damage: string[] = [];
  let cur: FramedFile | null = null;
  /** True until the current file's first hunk: extended headers are only read there. */
  let inHeader = false;
  let end = 0;
  let i = 0;
  while (i < texts.length) {
    const t = texts[i];
    const start = fileStartAtText(texts, i);
    if (start === 'git') {
      const f = newFile('git');
      f.gitNames = t.replace(/^diff --(git|cc|combined) ?/, '');
      if (t.trimEnd() === 'diff --git') f.problems.push('"diff --git" line without file names (wrapped?)');
      else if (!t.startsWith('diff --git ')) f.problems.push('combined (merge) diff: not supported');
      files.push(f);
      cur = f;
      inHeader = true;
      end = ++i;
      continue;
    }
    if (start === 'plain-diff' || start === 'index') {
      const f = newFile('plain');
      files.push(f);
      cur = f;
      inHeader = true;
      end = ++i;
      continue;
    }
    if (start === 'unified') {
      const attach = cur !== null && inHeader && cur.minus === undefined && cur.hunks.length === 0;
      let f: FramedFile;
      if (attach) {
        f = cur!;
      } else {
        f = newFile('plain');
        files.push(f);
        cur = f;
        inHeader = true;
      }
      f.minus = t.slice(4);
      f.plus = texts[i + 1].slice(4);
      i += 2;
      end = i;
      continue;
    }
    const c = t.charCodeAt(0);
    if (c === CH_AT && t.startsWith('@@')) {
      const h = parseHunkHeader(t);
      if (!h) {
        (cur ? cur.problems : damage).push(`hunk header does not parse: ${excerpt(t)}`);
        i++;
        // Skip its body: it cannot be numbered.
        while (i < texts.length && !texts[i].startsWith('@@') && fileStartAtText(texts, i) === null) i++;
        continue;
      }
      const r = readHunk(texts, i + 1, h, frameOnly);
      if (cur === null) {
        damage.push(`hunk ${h.range} without a file header: skipped`);
      } else {
        cur.hunks.push({
          header: t,
          oldStart: h.oldStart,
          oldLines: h.oldLines,
          newStart: h.newStart,
          newLines: h.newLines,
          headerFunction: h.headerFunction,
          lines: r.lines ?? [],
          additions: r.additions,
          deletions: r.deletions,
          problems: r.problems,
        });
        inHeader = false;
      }
      i = r.next;
      end = i + r.after;
      continue;
    }
    const bin = c === CH_B ? BINARY_FILES_RE.exec(t) : null;
    if (bin) {
      if (cur !== null && inHeader) {
        cur.binary = true;
      } else {
        const f = newFile('plain');
        f.binaryNames = { a: bin[1], b: bin[2] };
        f.binary = true;
        files.push(f);
        cur = f;
        inHeader = true;
      }
      end = ++i;
      continue;
    }
    if (cur !== null && inHeader) {
      if (t === 'GIT binary patch') {
        cur.binary = true;
        i = skipGitBinary(texts, i + 1);
        end = i;
        continue;
      }
      if (EXT_HEADER_RE.test(t)) {
        cur.ext.push(t);
        end = ++i;
        continue;
      }
    }
    // Not part of any file: text between patches, the signature, trailers after the diff.
    if (cur !== null && inHeader && cur.kind === 'git' && t !== '') {
      if (t === '-- ' || t === '--' || /^---\s*$/.test(t) || cur.hunks.length > 0) {
        inHeader = false;
      } else {
        // git writes nothing else there: a wrapped header line ("index" / its ids, a long
        // "diff --git" or "+++ " name). Keep reading the header.
        cur.problems.push(`unexpected line in the file header (wrapped?): ${excerpt(t)}`);
        // The names of a wrapped "diff --git" line.
        if (cur.gitNames === '' && cur.ext.length === 0) cur.gitNames = t;
      }
    }
    i++;
  }
  return { files, damage, end };
}
