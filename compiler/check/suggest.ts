// "Did you mean ...?" for misspelled names: the closest candidate by edit distance, when it is
// close enough to be a plausible typo.

/** Levenshtein distance, case-insensitive (a wrong case is one cheap mistake, not several). */
export function editDistance(a: string, b: string): number {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  let prev = Array.from({ length: y.length + 1 }, (_, j) => j);
  for (let i = 1; i <= x.length; i++) {
    const row = [i];
    for (let j = 1; j <= y.length; j++) {
      const cost = x[i - 1] === y[j - 1] ? 0 : 1;
      row[j] = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + cost);
    }
    prev = row;
  }
  return prev[y.length];
}

/** The candidate nearest to `name`, or undefined when none is within a third of its length. */
export function closest(name: string, candidates: Iterable<string>): string | undefined {
  const limit = Math.max(1, Math.floor(name.length / 3));
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const d = editDistance(name, candidate);
    if (d < bestDistance || (d === bestDistance && best !== undefined && candidate < best)) {
      best = candidate;
      bestDistance = d;
    }
  }
  return bestDistance <= limit ? best : undefined;
}

/** "; did you mean `x`?" or "" — ready to append to a message. */
export function didYouMean(name: string, candidates: Iterable<string>): string {
  const match = closest(name, candidates);
  return match === undefined ? "" : `; did you mean \`${match}\`?`;
}

/** "`a`, `b`, `c`" — for messages that list the valid names. */
export function listNames(names: Iterable<string>): string {
  return [...names].map((n) => `\`${n}\``).join(", ");
}
