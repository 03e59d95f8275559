/**
 * Compiles a `*` glob (case-insensitive) to a matcher. `*` matches any run of characters,
 * line breaks included. The match takes time linear in the pattern and the value whatever
 * the stars (a backtracking regular expression takes polynomial time in the number of stars).
 */
export function glob(pattern: string): (value: string) => boolean {
  if (pattern === '*') return () => true;
  const p = pattern.toLowerCase();
  if (!p.includes('*')) return (v) => v.toLowerCase() === p;
  const pieces = p.split('*');
  const head = pieces[0]!;
  const tail = pieces.at(-1)!;
  const middle = pieces.slice(1, -1).filter((m) => m !== '');
  return (value) => {
    const v = value.toLowerCase();
    if (v.length < head.length + tail.length || !v.startsWith(head) || !v.endsWith(tail)) return false;
    // Each middle piece at its leftmost place after the previous one: if any placement fits, that one does.
    const end = v.length - tail.length;
    let at = head.length;
    for (const m of middle) {
      const found = v.indexOf(m, at);
      if (found < 0 || found + m.length > end) return false;
      at = found + m.length;
    }
    return true;
  };
}
