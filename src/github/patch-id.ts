// `git patch-id --stable` in TypeScript: the id git gives a change regardless of where it sits
// (line numbers, whitespace, file order), so a pull request's commit and the patch mail it was
// made from can be recognised as the same change. Pure.
//
// The algorithm follows git's builtin/patch-id.c (get_one_patchid, stable mode):
//   - lines before the first "diff " line (commit message, mail headers) are skipped;
//   - "index a..b" lines are skipped (their blob ids are remembered for binary files);
//   - hunk headers ("@@ -a,b +c,d @@") are skipped, their counts only say where a hunk ends;
//   - every other line of the diff is hashed (SHA-1) with ALL whitespace removed, the file
//     headers ("diff --git", "new file mode", "rename from", "--- a/x", "+++ b/x") included;
//   - "\ No newline at end of file" is skipped;
//   - stable: each file's hash is added into the result as a 20-byte little-endian number, so
//     the order of files does not matter (a file without hunks, e.g. a pure rename, is hashed
//     together with the next one, exactly as git does);
//   - binary files contribute their "index" blob ids.
// renderGitDiff() turns the parsed Diff (src/patch/diff.ts) back into git's text, so a patch
// whose whitespace a mail client damaged but the diff reader repaired gets the same id as the
// commit it came from.
import { createHash, type Hash } from 'node:crypto';
import type { Diff, FileDiff } from '../model.js';

const ZERO = Buffer.alloc(20);

function isSpace(c: number): boolean {
  // C isspace() in the "C" locale: space, \t, \n, \v, \f, \r.
  return c === 0x20 || (c >= 0x09 && c <= 0x0d);
}

/** The line with every whitespace byte removed (git's remove_space), as bytes. */
function withoutSpace(line: Buffer): Buffer {
  let n = 0;
  const out = Buffer.allocUnsafe(line.length);
  for (const c of line) if (!isSpace(c)) out[n++] = c;
  return out.subarray(0, n);
}

/** "@@ -a[,b] +c[,d] @@": the line counts b and d (1 when omitted); null when unreadable. */
export function hunkCounts(line: string): { before: number; after: number } | null {
  const m = /^@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))?/.exec(line);
  if (!m) return null;
  return { before: m[1] === undefined ? 1 : Number(m[1]), after: m[2] === undefined ? 1 : Number(m[2]) };
}

function isAlpha(c: number | undefined): boolean {
  return c !== undefined && ((c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a));
}

/** Add a 20-byte hash into `acc` (little-endian, with carry), as git's flush_one_hunk does. */
function addInto(acc: Buffer, h: Buffer): void {
  let carry = 0;
  for (let i = 0; i < 20; i++) {
    carry += acc[i]! + h[i]!;
    acc[i] = carry & 0xff;
    carry >>= 8;
  }
}

/** Lines of a text as byte buffers, each with its "\n" (the last one may lack it). */
function byteLines(text: string | Buffer): Buffer[] {
  const buf = typeof text === 'string' ? Buffer.from(text, 'utf8') : text;
  const out: Buffer[] = [];
  let start = 0;
  for (let i = 0; i < buf.length; i++) {
    if (buf[i] === 0x0a) {
      out.push(buf.subarray(start, i + 1));
      start = i + 1;
    }
  }
  if (start < buf.length) out.push(buf.subarray(start));
  return out;
}

const HEX40 = /^[0-9a-f]{40}/;

/**
 * The stable patch-id (40 hex digits) of the first patch in `text` (a diff, `git show` or
 * format-patch output, or a mail body), or null when it holds no diff.
 */
export function patchIdOfText(text: string | Buffer): string | null {
  const result = Buffer.from(ZERO);
  let ctx: Hash = createHash('sha1');
  let patchlen = 0;
  let before = -1;
  let after = -1;
  let binary = false;
  let preOid = '';
  let postOid = '';
  const flush = () => {
    addInto(result, ctx.digest());
    ctx = createHash('sha1');
  };
  for (const line of byteLines(text)) {
    const s = line.toString('latin1');
    let p = s;
    if (s.startsWith('commit ')) p = s.slice(7);
    else if (s.startsWith('From ')) p = s.slice(5);
    else if (s.startsWith('\\ ') && s.length > 12) continue; // "\ No newline at end of file"
    // The start of the next patch in `git log -p` / format-patch output.
    if (HEX40.test(p)) {
      if (patchlen) break;
      continue;
    }
    if (!patchlen && !s.startsWith('diff ')) continue;
    if (before === -1) {
      if (s.startsWith('GIT binary patch') || s.startsWith('Binary files')) {
        binary = true;
        before = 0;
        ctx.update(preOid, 'latin1');
        ctx.update(postOid, 'latin1');
        flush();
        continue;
      } else if (s.startsWith('index ')) {
        const dots = s.indexOf('..');
        if (dots >= 0) {
          let end = s.indexOf(' ', dots);
          if (end < 0) end = s.length - 1; // drops the "\n" (or, without one, the last character, as git does)
          preOid = s.slice('index '.length, dots);
          postOid = s.slice(dots + 2, end);
        }
        continue;
      } else if (s.startsWith('--- ')) {
        before = after = 1;
      } else if (!isAlpha(line[0])) {
        break;
      }
    }
    if (binary) {
      if (s.startsWith('diff ')) {
        binary = false;
        before = -1;
      }
      continue;
    }
    if (before === 0 && after === 0) {
      if (s.startsWith('@@ -')) {
        const c = hunkCounts(s);
        if (c) {
          before = c.before;
          after = c.after;
        }
        continue;
      }
      if (!s.startsWith('diff ')) break;
      flush();
      before = after = -1;
    }
    const c0 = line[0];
    if (c0 === 0x2d || c0 === 0x20) before--;
    if (c0 === 0x2b || c0 === 0x20) after--;
    const stripped = withoutSpace(line);
    patchlen += stripped.length;
    ctx.update(stripped);
  }
  flush();
  return patchlen ? result.toString('hex') : null;
}

// ---------------------------------------------------------------- the parsed diff as git text

function prefixed(side: 'a' | 'b', path: string | null): string {
  return path === null ? '/dev/null' : `${side}/${path}`;
}

function renderFile(f: FileDiff): string[] {
  const oldName = f.oldPath ?? f.path;
  const newName = f.newPath ?? f.path;
  const out = [`diff --git a/${oldName} b/${newName}`];
  if (f.status === 'added') out.push(`new file mode ${f.newMode ?? '100644'}`);
  else if (f.status === 'deleted') out.push(`deleted file mode ${f.oldMode ?? '100644'}`);
  else if (f.oldMode && f.newMode && f.oldMode !== f.newMode) out.push(`old mode ${f.oldMode}`, `new mode ${f.newMode}`);
  if (f.status === 'renamed' || f.status === 'copied') {
    const verb = f.status === 'renamed' ? 'rename' : 'copy';
    if (f.similarity !== undefined) out.push(`similarity index ${f.similarity}%`);
    out.push(`${verb} from ${oldName}`, `${verb} to ${newName}`);
  }
  if (f.oldBlob && f.newBlob) out.push(`index ${f.oldBlob}..${f.newBlob}`);
  if (f.binary) {
    out.push(`Binary files ${prefixed('a', f.oldPath)} and ${prefixed('b', f.newPath)} differ`);
    return out;
  }
  if (!f.hunks.length) return out;
  out.push(`--- ${prefixed('a', f.oldPath)}`, `+++ ${prefixed('b', f.newPath)}`);
  for (const h of f.hunks) {
    const oldCount = h.lines.filter((l) => l.kind !== 'add').length;
    const newCount = h.lines.filter((l) => l.kind !== 'del').length;
    out.push(`@@ -${h.oldStart},${oldCount} +${h.newStart},${newCount} @@`);
    for (const l of h.lines) {
      out.push(`${l.kind === 'add' ? '+' : l.kind === 'del' ? '-' : ' '}${l.text}`);
      if (l.noNewline) out.push('\\ No newline at end of file');
    }
  }
  return out;
}

/** A parsed diff as git prints it (enough of it for patch-ids: no function names in hunk headers). */
export function renderGitDiff(diff: Diff): string {
  return diff.files.flatMap(renderFile).join('\n') + '\n';
}

/** The stable patch-id of a parsed diff (see renderGitDiff), or null when it changes nothing. */
export function patchIdOfDiff(diff: Diff | null): string | null {
  if (!diff || !diff.files.length) return null;
  return patchIdOfText(renderGitDiff(diff));
}
