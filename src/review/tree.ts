// --tree DIR: the target tree, read at the edge before rules run. For each patch we find
// the pre-image of every touched file (by the patch's `index <blob>` line with
// `git cat-file` when DIR is a git repo, else by path) and the definitions of functions the
// patch touches or calls, and hand rules a read-only TreeView (rules never do I/O).
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { MessageRecord } from '../model.js';
import type { TreeView } from '../rules/types.js';
import { log } from '../log.js';

/** Function definitions of a C file: name -> whole text from the signature to the closing brace. */
export function cFunctions(text: string): Map<string, string> {
  const out = new Map<string, string>();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (lines[i] !== '{') continue;
    // Signature: the lines above up to a blank line / previous '}' / ';'.
    let s = i - 1;
    while (s > 0 && lines[s - 1].trim() !== '' && !/[;}]\s*$/.test(lines[s - 1]) && !lines[s - 1].startsWith('#') && i - s < 6) s--;
    const sig = lines.slice(s, i).join(' ');
    const m = /\b([A-Za-z_]\w*)\s*\([^()]*(?:\([^()]*\)[^()]*)*\)\s*$/.exec(sig.replace(/\s+/g, ' ').trim());
    if (!m || /^(if|for|while|switch|return|sizeof)$/.test(m[1])) continue;
    let j = i + 1;
    while (j < lines.length && lines[j] !== '}') j++;
    out.set(m[1], lines.slice(s, j + 1).join('\n'));
    i = j;
  }
  return out;
}

function isGitRepo(dir: string): boolean {
  try {
    execFileSync('git', ['-C', dir, 'rev-parse', '--git-dir'], { stdio: ['ignore', 'pipe', 'ignore'] });
    return true;
  } catch {
    return false;
  }
}

export class TreeReader {
  private git: boolean;
  private fileCache = new Map<string, string | undefined>();
  private defCache = new Map<string, string | undefined>();

  constructor(private dir: string) {
    if (!existsSync(dir) || !statSync(dir).isDirectory()) {
      throw new Error(`--tree '${dir}' is not a directory: give a checkout of the target tree (e.g. a xen.git clone)`);
    }
    this.git = isGitRepo(dir);
  }

  private preimage(path: string, blob?: string): string | undefined {
    const key = `${path}@${blob ?? ''}`;
    if (this.fileCache.has(key)) return this.fileCache.get(key);
    let text: string | undefined;
    if (this.git && blob && !/^0+$/.test(blob)) {
      try {
        text = execFileSync('git', ['-C', this.dir, 'cat-file', '-p', blob], { encoding: 'utf8', maxBuffer: 64 << 20, stdio: ['ignore', 'pipe', 'ignore'] });
      } catch {
        log.debug({ path, blob }, 'blob not in --tree; falling back to the path');
      }
    }
    if (text === undefined) {
      const p = join(this.dir, path);
      if (existsSync(p)) text = readFileSync(p, 'utf8');
    }
    this.fileCache.set(key, text);
    return text;
  }

  /** Find a function definition anywhere in the tree (C sources). */
  private definition(name: string): string | undefined {
    if (this.defCache.has(name)) return this.defCache.get(name);
    let body: string | undefined;
    try {
      const args = this.git
        ? ['-C', this.dir, 'grep', '-l', '-E', `^([a-zA-Z_].*[ *])?${name}\\(`, '--', '*.c']
        : null;
      const out = args
        ? execFileSync('git', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
        : execFileSync('grep', ['-rlE', `--include=*.c`, `^([a-zA-Z_].*[ *])?${name}\\(`, this.dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      for (const f of out.split('\n').filter(Boolean).slice(0, 5)) {
        const path = this.git ? f : f.slice(this.dir.length).replace(/^\/+/, '');
        const text = this.preimage(path);
        const b = text ? cFunctions(text).get(name) : undefined;
        if (b) {
          body = b;
          break;
        }
      }
    } catch {
      /* not found */
    }
    this.defCache.set(name, body);
    return body;
  }

  /** A TreeView for one patch: pre-images of its files, and functions it touches or calls. */
  viewFor(record: MessageRecord): TreeView {
    const files = new Map<string, string>();
    const functions = new Map<string, string>();
    for (const f of record.diff?.files ?? []) {
      if (f.status === 'added' || !f.oldPath) continue;
      const text = this.preimage(f.oldPath, f.oldBlob);
      if (!text) continue;
      files.set(f.oldPath, text);
      if (f.newPath) files.set(f.newPath, text);
      if (/\.[ch]$/.test(f.oldPath)) for (const [k, v] of cFunctions(text)) if (!functions.has(k)) functions.set(k, v);
    }
    const called = new Set<string>();
    for (const f of record.diff?.files ?? [])
      for (const h of f.hunks)
        for (const l of h.lines) {
          if (l.kind === 'ctx') continue;
          for (const m of l.text.matchAll(/\b([A-Za-z_]\w*)\s*\(/g)) called.add(m[1]);
        }
    const self = this;
    return {
      functionBody(name: string) {
        if (functions.has(name)) return functions.get(name);
        if (!called.has(name) && called.size > 0 && !/^\w+$/.test(name)) return undefined;
        return self.definition(name);
      },
      fileText(path: string) {
        return files.get(path) ?? self.preimage(path);
      },
    };
  }
}
