// A trie over UTF-16 code units for longest-match lookups: SentencePiece's user-defined symbols,
// the unigram lattice's piece lookup, and the added tokens of byte-level BPE tokenizers.

interface TrieNode<V> {
  children: Map<number, TrieNode<V>>;
  value: V | undefined;
}

/** Maps strings to values; finds the keys that start at a position of a text. */
export class PrefixTrie<V> {
  private readonly root: TrieNode<V> = { children: new Map(), value: undefined };
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** Adds `key`; a key added twice keeps its first value. */
  add(key: string, value: V): void {
    let node = this.root;
    for (let i = 0; i < key.length; i++) {
      const c = key.charCodeAt(i);
      let next = node.children.get(c);
      if (!next) {
        next = { children: new Map(), value: undefined };
        node.children.set(c, next);
      }
      node = next;
    }
    if (node.value === undefined) {
      node.value = value;
      this.count++;
    }
  }

  /** Calls `visit(length, value)` for each key that starts at `text[start]`, shortest first. */
  forEachPrefix(text: string, start: number, visit: (length: number, value: V) => void): void {
    let node: TrieNode<V> | undefined = this.root;
    for (let i = start; i < text.length; i++) {
      node = node.children.get(text.charCodeAt(i));
      if (!node) return;
      if (node.value !== undefined) visit(i + 1 - start, node.value);
    }
  }

  /** The longest key that starts at `text[start]`, as its length in code units (0: none). */
  longestMatch(text: string, start: number): number {
    let longest = 0;
    this.forEachPrefix(text, start, (length) => (longest = length));
    return longest;
  }
}
