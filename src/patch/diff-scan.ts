// Framing of a diff as it arrives in a mail: where each file starts, which lines are its
// extended headers, where each hunk ends, and what the mail client broke on the way.
//
// A hunk's body is exactly as long as its header says ("@@ -a,b +c,d @@": b old-side and
// d new-side lines). That is how git apply reads it, and the only way to tell a removed
// line "-- foo" or "- " from the mail signature "-- ". parse-diff trusts the counts blindly
// and reads anything as a context line, so a hunk that lost lines swallows the next file's
// header; this scanner finds the frame first, tolerantly, and says what it had to guess.

export interface SrcLine {
  /** The line without its "\n" and without a trailing "\r". */
  text: string;
  /** The line ended in "\r\n". */
  cr: boolean;
}

export interface ScanLine {
  kind: 'add' | 'del' | 'ctx';
  text: string;
  /** Followed by "\ No newline at end of file" (always present: one object shape). */
  noNewline: boolean;
}

export interface ScanHunk {
  /** The header line as written (without "\r"). */
  header: string;
  oldStart: number;
  oldLines: number;
  newStart: number;
  newLines: number;
  headerFunction: string | null;
  lines: ScanLine[];
  /** Damage seen in this hunk, without the file/hunk prefix. */
  problems: string[];
}

export interface ScanFile {
  /** 'git' when the file starts with "diff --git" (or "diff --cc"), else 'plain'. */
  kind: 'git' | 'plain';
  /** Text after "diff --git " (git files). */
  gitNames?: string;
  /** Text after "--- " and "+++ ". */
  minus?: string;
  plus?: string;
  /** Names from "Binary files X and Y differ" when that line starts the file (diff -r). */
  binaryNames?: { a: string; b: string };
  /** Extended header lines in order ("new file mode 100644", "rename from x", "index a..b 100644", ...). */
  ext: string[];
  binary: boolean;
  hunks: ScanHunk[];
  /** Damage about the file itself (not one hunk). */
  problems: string[];
}

export interface Scan {
  files: ScanFile[];
  /** Damage not tied to a file. */
  damage: string[];
  /** Index (into the scanned lines) just past the last line that belongs to the diff. */
  end: number;
  /** How many of the diff's lines ended in "\r\n" and how many did not. */
  crLines: number;
  lfLines: number;
}

export function splitLines(text: string): SrcLine[] {
  const parts = text.split('\n');
  if (parts.length > 0 && parts[parts.length - 1] === '') parts.pop();
  return parts.map((p) => (p.endsWith('\r') ? { text: p.slice(0, -1), cr: true } : { text: p, cr: false }));
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
  return {
    oldStart: Number(m[1]),
    oldLines: m[2] === undefined ? 1 : Number(m[2]),
    newStart: Number(m[3]),
    newLines: m[4] === undefined ? 1 : Number(m[4]),
    range: line.slice(0, line.length - rest.length),
    headerFunction: rest.trim() === '' ? null : rest.trim(),
  };
}

const EXT_HEADER_RE =
  /^(old mode|new mode|deleted file mode|new file mode|copy from|copy to|rename from|rename to|rename old|rename new|similarity index|dissimilarity index|index) /;

const BINARY_FILES_RE = /^Binary files (.+) and (.+) differ$/;

const text = (lines: SrcLine[], i: number): string | undefined => lines[i]?.text;

function isMinusPlusAt(lines: SrcLine[], i: number): boolean {
  const t = text(lines, i);
  const u = text(lines, i + 1);
  return t !== undefined && u !== undefined && t.startsWith('--- ') && u.startsWith('+++ ');
}

export type FileStart = 'git' | 'plain-diff' | 'index' | 'unified' | 'binary';

/**
 * Does a file's diff start at line i? "diff --git " (and "diff --cc"), "diff -..." and
 * "Index: " (CVS/svn/quilt) when a "--- "/"+++ " pair or a "Binary files" line follows
 * within a few lines, and a bare "--- "/"+++ " pair (Thunderbird-pasted `git diff`,
 * `diff -u`).
 */
export function fileStartAt(lines: SrcLine[], i: number): FileStart | null {
  const t = text(lines, i);
  if (t === undefined) return null;
  if (t.startsWith('diff --git ') || t.startsWith('diff --cc ') || t.startsWith('diff --combined ')) return 'git';
  // A client wrapped the names onto the next line.
  if (t.trimEnd() === 'diff --git') return 'git';
  if (t.startsWith('diff -') || t.startsWith('Index: ')) {
    for (let j = i + 1; j <= i + 4 && j < lines.length; j++) {
      if (isMinusPlusAt(lines, j) || BINARY_FILES_RE.test(lines[j].text)) {
        return t.startsWith('Index: ') ? 'index' : 'plain-diff';
      }
      if (lines[j].text.startsWith('@@') || lines[j].text.startsWith('diff ')) break;
    }
    return null;
  }
  if (isMinusPlusAt(lines, i)) return 'unified';
  return null;
}

/** "-- " (or "--" whose trailing space a client ate) with nothing diff-like after it. */
function isSignatureAt(lines: SrcLine[], i: number): boolean {
  const t = text(lines, i);
  if (t !== '-- ' && t !== '--') return false;
  for (let j = i + 1; j < lines.length; j++) {
    const u = lines[j].text;
    if (u === '') continue;
    if (/^[-+\\@ ]/.test(u) || u.startsWith('diff ') || u.startsWith('Index: ')) return false;
  }
  return true;
}

/** Inside a hunk body: a line that cannot be a body line and begins something new. */
function endsHunkBody(lines: SrcLine[], i: number): boolean {
  const t = lines[i].text;
  if (t.startsWith('@@')) return true;
  if (t.startsWith('diff --git ') || t.startsWith('diff --cc ')) return true;
  if (t.startsWith('diff -') || t.startsWith('Index: ')) return fileStartAt(lines, i) !== null;
  return false;
}

/**
 * "--- x" / "+++ y" / "@@ -" inside a hunk whose counts are not used up: the hunk was
 * short and a new file starts. Without the "@@" a "--- x" line is a removed "-- x" line.
 */
function newFileInsideHunk(lines: SrcLine[], i: number): boolean {
  return isMinusPlusAt(lines, i) && (text(lines, i + 2) ?? '').startsWith('@@ -');
}

type Strategy = 'auto' | 'context' | 'join';

interface BodyResult {
  lines: ScanLine[];
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
    if (c === 0x09) w += 8 - (w % 8);
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

function excerpt(s: string): string {
  const t = s.length > 40 ? `${s.slice(0, 40)}...` : s;
  return JSON.stringify(t);
}

function readBody(lines: SrcLine[], start: number, h: HunkHeader, strategy: Strategy): BodyResult {
  let oldLeft = h.oldLines;
  let newLeft = h.newLines;
  const out: ScanLine[] = [];
  const problems: string[] = [];
  let blankContext = 0;
  let unprefixed = 0;
  let lastWide = false;
  let i = start;
  let cut: string | null = null;
  while ((oldLeft > 0 || newLeft > 0) && i < lines.length) {
    const t = lines[i].text;
    if (/^\\( |$)/.test(t)) {
      // "\ No newline at end of file" (any wording: GNU diff translates it).
      if (out.length > 0) out[out.length - 1].noNewline = true;
      i++;
      continue;
    }
    const c = t[0];
    if (c === '+') {
      out.push({ kind: 'add', text: t.slice(1), noNewline: false });
      newLeft--;
    } else if (c === '-') {
      if (isSignatureAt(lines, i)) {
        cut = 'the mail signature';
        break;
      }
      if (newFileInsideHunk(lines, i)) {
        cut = 'the next file header';
        break;
      }
      out.push({ kind: 'del', text: t.slice(1), noNewline: false });
      oldLeft--;
    } else if (c === ' ') {
      out.push({ kind: 'ctx', text: t.slice(1), noNewline: false });
      oldLeft--;
      newLeft--;
    } else if (t === '') {
      // An empty context line whose single space a mail client (or editor) stripped.
      out.push({ kind: 'ctx', text: '', noNewline: false });
      blankContext++;
      oldLeft--;
      newLeft--;
    } else if (endsHunkBody(lines, i)) {
      cut = t.startsWith('@@') ? 'the next hunk header' : 'the next file header';
      break;
    } else {
      unprefixed++;
      const prev = out[out.length - 1];
      const join =
        prev !== undefined &&
        (strategy === 'join' || (strategy === 'auto' && lastWide && !/^\s/.test(t)));
      if (join) {
        prev.text += prev.text.endsWith(' ') || prev.text.endsWith('\t') ? t : ` ${t}`;
        problems.push(`line without diff prefix inside a hunk, read as the wrapped end of the line before: ${excerpt(t)}`);
      } else {
        out.push({ kind: 'ctx', text: t, noNewline: false });
        oldLeft--;
        newLeft--;
        problems.push(`line without diff prefix inside a hunk, read as a context line: ${excerpt(t)}`);
      }
    }
    lastWide = wrapCandidate(t);
    i++;
  }
  // The last line's "\ No newline at end of file" comes after the counts are used up.
  while (i < lines.length && lines[i].text.startsWith('\\ ')) {
    if (out.length > 0) out[out.length - 1].noNewline = true;
    i++;
  }
  let clean = true;
  if (oldLeft > 0 || newLeft > 0) {
    clean = false;
    const missing = Math.max(oldLeft, newLeft);
    const sides = oldLeft === newLeft ? '' : ` (old side short by ${oldLeft}, new side by ${newLeft})`;
    const where = cut ? `, cut by ${cut}` : i >= lines.length ? ', cut by the end of the diff' : '';
    problems.push(`${missing} line${missing === 1 ? '' : 's'} missing${sides}${where}`);
  }
  if (oldLeft < 0 || newLeft < 0) {
    clean = false;
    problems.push(
      `more lines than the header says (old side ${h.oldLines - oldLeft} for ${h.oldLines}, new side ${h.newLines - newLeft} for ${h.newLines})`,
    );
  }
  const after = trailingBodyLikeLines(lines, i, lastWide);
  if (clean && after > 0) {
    clean = false;
    problems.push(`${after === 1 ? '1 line' : `${after} lines`} right after the hunk beyond its counts (${after === 1 ? 'looks' : 'look'} like diff lines)`);
  }
  if (!clean && blankContext > 0) {
    problems.push(`${blankContext} empty line${blankContext === 1 ? '' : 's'} read as context lines that lost their leading space`);
  }
  return { lines: out, next: i, problems, unprefixed, after };
}

/**
 * Lines right after a hunk's counted body that still look like body lines (bad counts, a
 * flowed decoder's joins). Unprefixed text counts only right after a long last line (its
 * wrapped end) or right before the next header: otherwise it is prose written after a pasted
 * diff ("Thanks,").
 */
function trailingBodyLikeLines(lines: SrcLine[], i: number, lastLineLong: boolean): number {
  let n = 0;
  for (let j = i; j < lines.length; j++) {
    const t = lines[j].text;
    if (t === '' || t === '-- ' || t === '--' || /^---\s*$/.test(t)) break;
    if (endsHunkBody(lines, j) || fileStartAt(lines, j) !== null) break;
    // Unprefixed text: the wrapped end of a long line, or any text wedged between a hunk
    // and the next hunk/file header (prose does not sit there).
    const beforeHeader = j + 1 < lines.length && (endsHunkBody(lines, j + 1) || fileStartAt(lines, j + 1) !== null);
    if (!/^[-+ ]/.test(t) && !(j === i && lastLineLong) && !beforeHeader) break;
    n++;
  }
  return n;
}

/**
 * Read one hunk body. Lines without a diff prefix are either wrapped continuations (a
 * client broke a long line) or context lines that lost their leading space; try reading
 * them each way and keep the first reading whose counts come out exact.
 */
function readHunk(lines: SrcLine[], start: number, h: HunkHeader): BodyResult {
  const auto = readBody(lines, start, h, 'auto');
  if (auto.unprefixed === 0) return auto;
  const countsOk = (r: BodyResult) => !r.problems.some((p) => !p.startsWith('line without diff prefix'));
  if (countsOk(auto)) return auto;
  for (const s of ['context', 'join'] as const) {
    const r = readBody(lines, start, h, s);
    if (countsOk(r)) return r;
  }
  return auto;
}

/** Skip a "GIT binary patch" block: "literal N"/"delta N", base85 lines, a blank line; twice. */
function skipGitBinary(lines: SrcLine[], i: number): number {
  let j = i;
  for (let block = 0; block < 2; block++) {
    if (!/^(literal|delta) \d+$/.test(text(lines, j) ?? '')) break;
    j++;
    while (j < lines.length && /^[A-Za-z][0-9A-Za-z!#$%&()*+;<=>?@^_`{|}~-]+$/.test(lines[j].text)) j++;
    if (text(lines, j) === '') j++;
  }
  return j;
}

function newFile(kind: ScanFile['kind']): ScanFile {
  // Every field present from the start (undefined when unknown): one object shape for all
  // files, so the code reading them is not deoptimised each time a new combination shows up.
  return { kind, gitNames: undefined, minus: undefined, plus: undefined, binaryNames: undefined, ext: [], binary: false, hunks: [], problems: [] };
}

/** Frame a diff: files, their headers and hunks, and the damage found on the way. */
export function scanDiff(lines: SrcLine[]): Scan {
  const files: ScanFile[] = [];
  const damage: string[] = [];
  let cur: ScanFile | null = null;
  /** True until the current file's first hunk: extended headers are only read there. */
  let inHeader = false;
  let end = 0;
  let i = 0;
  const open = (f: ScanFile) => {
    files.push(f);
    cur = f;
    inHeader = true;
  };
  while (i < lines.length) {
    const t = lines[i].text;
    const start = fileStartAt(lines, i);
    if (start === 'git') {
      const f = newFile('git');
      f.gitNames = t.replace(/^diff --(git|cc|combined) ?/, '');
      if (t.trimEnd() === 'diff --git') f.problems.push('"diff --git" line without file names (wrapped?)');
      else if (!t.startsWith('diff --git ')) f.problems.push('combined (merge) diff: not supported');
      open(f);
      end = ++i;
      continue;
    }
    if (start === 'plain-diff' || start === 'index') {
      open(newFile('plain'));
      end = ++i;
      continue;
    }
    if (start === 'unified') {
      const c = cur as ScanFile | null;
      const attach = c !== null && inHeader && c.minus === undefined && c.hunks.length === 0;
      const f = attach ? c! : newFile('plain');
      if (!attach) open(f);
      f.minus = t.slice(4);
      f.plus = lines[i + 1].text.slice(4);
      i += 2;
      end = i;
      continue;
    }
    if (t.startsWith('@@')) {
      const h = parseHunkHeader(t);
      if (!h) {
        (cur ? (cur as ScanFile).problems : damage).push(`hunk header does not parse: ${excerpt(t)}`);
        i++;
        // Skip its body: it cannot be numbered.
        while (i < lines.length && !lines[i].text.startsWith('@@') && fileStartAt(lines, i) === null) i++;
        continue;
      }
      const r = readHunk(lines, i + 1, h);
      if (cur === null) {
        damage.push(`hunk ${h.range} without a file header: skipped`);
      } else {
        (cur as ScanFile).hunks.push({
          header: t,
          oldStart: h.oldStart,
          oldLines: h.oldLines,
          newStart: h.newStart,
          newLines: h.newLines,
          headerFunction: h.headerFunction,
          lines: r.lines,
          problems: r.problems,
        });
        inHeader = false;
      }
      i = r.next;
      end = i + r.after;
      continue;
    }
    const bin = BINARY_FILES_RE.exec(t);
    if (bin) {
      const c = cur as ScanFile | null;
      if (c !== null && inHeader) {
        c.binary = true;
      } else {
        const f = newFile('plain');
        f.binaryNames = { a: bin[1], b: bin[2] };
        f.binary = true;
        open(f);
      }
      end = ++i;
      continue;
    }
    if (cur !== null && inHeader) {
      const c = cur as ScanFile;
      if (t === 'GIT binary patch') {
        c.binary = true;
        i = skipGitBinary(lines, i + 1);
        end = i;
        continue;
      }
      if (EXT_HEADER_RE.test(t)) {
        c.ext.push(t);
        end = ++i;
        continue;
      }
    }
    // Not part of any file: text between patches, the signature, trailers after the diff.
    if (cur !== null && inHeader && (cur as ScanFile).kind === 'git' && t !== '') {
      const c = cur as ScanFile;
      if (t === '-- ' || t === '--' || /^---\s*$/.test(t) || c.hunks.length > 0) {
        inHeader = false;
      } else {
        // git writes nothing else there: a wrapped header line ("index" / its ids, a long
        // "diff --git" or "+++ " name). Keep reading the header.
        c.problems.push(`unexpected line in the file header (wrapped?): ${excerpt(t)}`);
        // The names of a wrapped "diff --git" line.
        if (c.gitNames === '' && c.ext.length === 0) c.gitNames = t;
      }
    }
    i++;
  }
  let crLines = 0;
  let lfLines = 0;
  for (let j = 0; j < end; j++) {
    if (lines[j].cr) crLines++;
    else lfLines++;
  }
  return { files, damage, end, crLines, lfLines };
}
