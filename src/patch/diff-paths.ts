// File names in diff headers: git's C-style quoting, a/ b/ prefixes, names with
// spaces in "diff --git" lines, and the timestamps `diff -u` appends.

export const DEV_NULL = '/dev/null';

const SIMPLE_ESCAPES: Record<string, number> = {
  a: 7, b: 8, t: 9, n: 10, v: 11, f: 12, r: 13, '"': 34, '\\': 92,
};

/**
 * Read one C-style quoted name (git quotes names with control characters, '"', '\\' or
 * non-ASCII bytes when core.quotePath is on) starting at s[start] === '"'.
 * Returns the unquoted name and the index just past the closing quote, or null if the
 * quote is not closed. Octal escapes are bytes: "\303\251" is UTF-8 for "é".
 */
export function readQuoted(s: string, start = 0): { name: string; end: number } | null {
  if (s[start] !== '"') return null;
  const bytes: number[] = [];
  let i = start + 1;
  while (i < s.length) {
    const c = s[i];
    if (c === '"') return { name: Buffer.from(bytes).toString('utf8'), end: i + 1 };
    if (c === '\\') {
      const e = s[i + 1];
      if (e !== undefined && /[0-7]/.test(e)) {
        const oct = /^[0-7]{1,3}/.exec(s.slice(i + 1))![0];
        bytes.push(parseInt(oct, 8) & 0xff);
        i += 1 + oct.length;
        continue;
      }
      if (e !== undefined && e in SIMPLE_ESCAPES) {
        bytes.push(SIMPLE_ESCAPES[e]);
        i += 2;
        continue;
      }
      // Unknown escape: keep it literally rather than guess.
      bytes.push(...Buffer.from(c));
      i += 1;
      continue;
    }
    bytes.push(...Buffer.from(c, 'utf8'));
    i += 1;
  }
  return null;
}

/** A name as written in "rename from", "copy to", ...: possibly quoted, never prefixed. */
export function unquoteName(s: string): string {
  const t = s.trim();
  if (t.startsWith('"')) {
    const q = readQuoted(t);
    if (q && q.end === t.length) return q.name;
  }
  return t;
}

const TIMESTAMP_RE =
  /\s+(?:\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:\s*[+-]\d{4})?|[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2} \d{4})\s*$/;

/**
 * The name on a "--- " / "+++ " line (the text after the marker). Git quotes odd names
 * and puts a TAB after names that contain a space; `diff -u` puts a TAB and a timestamp
 * after every name. Returns the name (still prefixed) and whether it carried a timestamp.
 */
export function nameFromMarkerLine(rest: string): { name: string; timestamp: string | null } {
  let s = rest;
  if (s.startsWith('"')) {
    const q = readQuoted(s);
    if (q) return { name: q.name, timestamp: s.slice(q.end).trim() || null };
  }
  const tab = s.indexOf('\t');
  if (tab >= 0) {
    const ts = s.slice(tab + 1).trim();
    return { name: s.slice(0, tab), timestamp: ts || null };
  }
  const m = TIMESTAMP_RE.exec(s);
  if (m) return { name: s.slice(0, m.index), timestamp: m[0].trim() };
  s = s.replace(/\s+$/, '');
  return { name: s, timestamp: null };
}

const OLD_PREFIXES = ['a/', 'c/', 'i/', 'o/', '1/'];
const NEW_PREFIXES = ['b/', 'w/', 'i/', '2/'];

function hasPrefix(name: string, prefixes: string[]): boolean {
  return prefixes.some((p) => name.startsWith(p) && name.length > p.length);
}

/**
 * Strip git's source/destination prefixes ("a/" "b/", or the mnemonic "i/" "w/" "c/" "o/")
 * from a pair of names, but only when both sides carry one: `diff.noPrefix` users send
 * "--- xen/foo.c" and stripping a component there would lose "xen/".
 */
export function stripGitPrefixes(oldName: string | null, newName: string | null): [string | null, string | null] {
  const o = oldName === DEV_NULL ? null : oldName;
  const n = newName === DEV_NULL ? null : newName;
  const oOk = o === null || hasPrefix(o, OLD_PREFIXES);
  const nOk = n === null || hasPrefix(n, NEW_PREFIXES);
  if (oOk && nOk && (o !== null || n !== null)) {
    return [o === null ? null : o.slice(o.indexOf('/') + 1), n === null ? null : n.slice(n.indexOf('/') + 1)];
  }
  return [o, n];
}

const BACKUP_SUFFIXES = ['.orig', '.old', '.bak', '~', '.ori', '.save'];

/**
 * Names of a plain (non-git) unified diff. "diff -u" run by hand gives
 * "--- xen/foo.c.orig" / "+++ xen/foo.c" (no prefix, a backup suffix on the old side) or
 * "--- xen-4.21.orig/xen/foo.c" / "+++ xen-4.21/xen/foo.c" (a tree name to strip, as
 * patch -p1 would). Both sides describe the same file: a plain diff cannot rename.
 */
export function plainDiffNames(oldName: string | null, newName: string | null): [string | null, string | null] {
  let o = oldName === DEV_NULL ? null : oldName;
  let n = newName === DEV_NULL ? null : newName;
  const [po, pn] = stripGitPrefixes(o, n);
  if (po !== o || pn !== n) {
    o = po;
    n = pn;
  } else if (o !== null && n !== null && o.startsWith('a/') && n.startsWith('a/') && o.length > 2 && n.length > 2) {
    // quilt as used for the -mm tree: "--- a/mm/util.c~fix-name" / "+++ a/mm/util.c" (patch -p1 applies it).
    o = o.slice(2);
    n = n.slice(2);
  } else if (o !== null && n !== null) {
    const os = o.indexOf('/');
    const ns = n.indexOf('/');
    // The rest may still differ by the old side's backup suffix: akpm's patch-scripts
    // ("diff -puN") write "--- 24/mm/util.c~fix-name" / "+++ 24-akpm/mm/util.c".
    if (os > 0 && ns > 0 && o.slice(0, os) !== n.slice(0, ns) && isBackupOf(o.slice(os + 1), n.slice(ns + 1))) {
      o = o.slice(os + 1);
      n = n.slice(ns + 1);
    }
  }
  if (o !== null && n !== null && o !== n && isBackupOf(o, n)) o = n;
  return [o, n];
}

/** `old` is `name` itself or its backup copy ("foo.c.orig", quilt's "foo.c~patch-name"). */
function isBackupOf(old: string, name: string): boolean {
  if (old === name) return true;
  if (BACKUP_SUFFIXES.some((suffix) => old === name + suffix)) return true;
  // quilt's backup copy: the file name, '~' and the patch's name.
  return old.startsWith(name + '~') && !old.slice(name.length).includes('/');
}

/**
 * Split the names of a "diff --git " line (the text after that marker). Either name may
 * be quoted. Unquoted names may contain spaces; like git, prefer the split where both
 * names are the same once their prefixes are stripped (a rename's real names come from
 * the "rename from/to" lines anyway). Names are returned still prefixed.
 */
export function splitGitHeaderNames(rest: string): { a: string; b: string } | null {
  const s = rest.replace(/\s+$/, '');
  if (s.startsWith('"')) {
    const q = readQuoted(s);
    if (!q || s[q.end] !== ' ') return null;
    const bPart = s.slice(q.end + 1);
    const b = bPart.startsWith('"') ? readQuoted(bPart)?.name : bPart;
    return b === undefined ? null : { a: q.name, b };
  }
  const lastQuote = s.lastIndexOf(' "');
  if (s.endsWith('"') && lastQuote > 0) {
    const q = readQuoted(s, lastQuote + 1);
    if (q && q.end === s.length) return { a: s.slice(0, lastQuote), b: q.name };
  }
  const candidates: Array<{ a: string; b: string }> = [];
  for (let k = s.indexOf(' '); k > 0; k = s.indexOf(' ', k + 1)) {
    candidates.push({ a: s.slice(0, k), b: s.slice(k + 1) });
  }
  if (candidates.length === 0) return null;
  const strip = (x: string) => (x.includes('/') ? x.slice(x.indexOf('/') + 1) : x);
  const same = candidates.find((c) => strip(c.a) === strip(c.b) || c.a === c.b);
  if (same) return same;
  return candidates.find((c) => hasPrefix(c.b, NEW_PREFIXES)) ?? candidates[Math.floor(candidates.length / 2)];
}
