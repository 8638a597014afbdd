// Path globs for rule scopes. Node's path.matchesGlob is experimental (and warns) on Node 20,
// so patchvet carries its own small matcher with gitignore-like conventions:
//   "xen/**"        everything under xen/
//   "xen/arch/"     same as "xen/arch/**"
//   "*.c"           a pattern without '/' matches at any depth ("**/*.c")
//   "xen/*/x86/*.c" '*' and '?' never cross '/'; "{c,h}" alternatives; "[ch]" classes
// A pattern also matches every path under a directory it matches ("xen/arch" covers xen/arch/x86/a.c).

const cache = new Map<string, RegExp>();

export function globToRegExp(glob: string): RegExp {
  const hit = cache.get(glob);
  if (hit) return hit;
  let g = glob.trim().replace(/^\.\//, '');
  if (g.endsWith('/')) g += '**';
  if (!g.includes('/')) g = `**/${g}`;
  if (g.startsWith('/')) g = g.slice(1);
  let re = '';
  let i = 0;
  let braces = 0;
  while (i < g.length) {
    const c = g[i]!;
    if (c === '*') {
      if (g[i + 1] === '*') {
        // "**/" at a segment start: zero or more directories; any other "**": anything.
        if ((i === 0 || g[i - 1] === '/') && g[i + 2] === '/') {
          re += '(?:[^/]*/)*';
          i += 3;
        } else {
          re += '.*';
          i += 2;
        }
        continue;
      }
      re += '[^/]*';
    } else if (c === '?') {
      re += '[^/]';
    } else if (c === '[') {
      const end = g.indexOf(']', i + 2);
      if (end < 0) {
        re += '\\[';
      } else {
        let cls = g.slice(i + 1, end);
        if (cls.startsWith('!')) cls = '^' + cls.slice(1);
        re += `[${cls.replace(/\\/g, '\\\\')}]`;
        i = end;
      }
    } else if (c === '{') {
      braces++;
      re += '(?:';
    } else if (c === '}' && braces > 0) {
      braces--;
      re += ')';
    } else if (c === ',' && braces > 0) {
      re += '|';
    } else {
      re += c.replace(/[.+^$()|\\/]/g, '\\$&');
    }
    i++;
  }
  const compiled = new RegExp(`^${re}(?:/.*)?$`);
  cache.set(glob, compiled);
  return compiled;
}

export function matchGlob(path: string, glob: string): boolean {
  return globToRegExp(glob).test(path.replace(/^\.?\//, ''));
}

export function matchAnyGlob(path: string, globs: readonly string[] | undefined): boolean {
  return !!globs && globs.some((g) => matchGlob(path, g));
}
