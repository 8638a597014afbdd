// Linking a pull request commit to the list patch it mirrors. Pure. Three kinds of evidence,
// strongest first:
//   1. trailers in the commit message naming the mail: "Link: https://lore.kernel.org/r/<id>",
//      "Link: https://lore.kernel.org/xen-devel/<id>/", "Message-Id: <id>" (what `git am
//      --message-id` and b4 add), patchwork URLs;
//   2. the same change: equal `git patch-id --stable` (src/github/patch-id.ts);
//   3. the same title from the same author (normalised: case, spaces, a trailing full stop).
// The store keeps both sides (patch_index for mails, github_pr_commits for commits), so a link is
// made whichever arrives first.
import { normalizeSubjectKey, parseSubject } from '../thread/subject.js';

const TRAILER_RE = /^(link|message-id|msgid)\s*:\s*(.+?)\s*$/gim;

/** A Message-ID ("<...>") from a trailer value: an angle-bracketed id, or the path segment of an archive URL holding one. */
export function messageIdOf(value: string): string | null {
  const v = value.trim();
  const bracketed = /<([^<>\s]+@[^<>\s]+)>/.exec(v);
  if (bracketed) return `<${bracketed[1]}>`;
  let url: URL | null = null;
  try {
    url = new URL(v.split(/\s/)[0]!);
  } catch {
    url = null;
  }
  if (url && /^https?:$/.test(url.protocol)) {
    // lore: /r/<id>, /all/<id>/, /<list>/<id>/T/#u; patchwork: /project/<p>/patch/<id>/; msgid.link: /<id>
    for (const seg of url.pathname.split('/').map((x) => {
      try {
        return decodeURIComponent(x);
      } catch {
        return x;
      }
    })) {
      const s = seg.replace(/^<|>$/g, '');
      if (/^[^@\s/]+@[^@\s/]+$/.test(s)) return `<${s}>`;
    }
    return null;
  }
  const bare = /^([^<>\s@]+@[^<>\s@]+)$/.exec(v);
  return bare ? `<${bare[1]}>` : null;
}

/** Message-IDs named by a commit message's Link:/Message-Id: trailers, in order, without repeats. */
export function trailerMessageIds(commitMessage: string): string[] {
  const out: string[] = [];
  for (const m of commitMessage.matchAll(TRAILER_RE)) {
    const id = messageIdOf(m[2]!);
    if (id && !out.includes(id)) out.push(id);
  }
  return out;
}

/**
 * The title + author key: the commit title (or a patch mail's subject without its "[PATCH ...]"
 * bracket) normalised, and the author's address in lower case.
 */
export function subjectKey(title: string, authorEmail: string): string {
  const clean = parseSubject(title).clean;
  return `${normalizeSubjectKey(clean)}\n${authorEmail.trim().toLowerCase()}`;
}

/** Repository "owner/name" of a PR link key and its number, from "owner/name#12". */
export function prKey(repo: string, pr: number): string {
  return `${repo}#${pr}`;
}
