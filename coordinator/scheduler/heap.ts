// Generic binary min-heap with a non-destructive in-order walk.
// Pure data structure: never looks at what it stores beyond the comparator.

/** Negative when `a` must come out before `b`. Must be a strict total order for a stable walk. */
export type Compare<T> = (a: T, b: T) => number;

export class Heap<T> {
  private items: T[] = [];
  // Bumped on every change to the array layout so a running walk can detect it.
  private layoutVersion = 0;

  constructor(private readonly compare: Compare<T>) {}

  get size(): number {
    return this.items.length;
  }

  peek(): T | undefined {
    return this.items[0];
  }

  /** O(log n). */
  push(item: T): void {
    this.layoutVersion++;
    const items = this.items;
    items.push(item);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.compare(items[i], items[parent]) >= 0) break;
      [items[i], items[parent]] = [items[parent], items[i]];
      i = parent;
    }
  }

  /** O(log n). */
  pop(): T | undefined {
    const items = this.items;
    if (items.length === 0) return undefined;
    this.layoutVersion++;
    const top = items[0];
    const last = items.pop() as T;
    if (items.length > 0) {
      items[0] = last;
      this.siftDown(0);
    }
    return top;
  }

  /** Keeps only items matching `keep`, re-heapifying in O(n). */
  retain(keep: (item: T) => boolean): void {
    this.layoutVersion++;
    this.items = this.items.filter(keep);
    for (let i = (this.items.length >> 1) - 1; i >= 0; i--) this.siftDown(i);
  }

  /** Every stored item, in no particular order. */
  values(): readonly T[] {
    return this.items;
  }

  /**
   * Yields items in comparator order without removing them: a frontier heap of array
   * indices grows by the two children of each yielded slot, so the first k items cost
   * O(k log k) regardless of the heap's size. Throws if the heap changes mid-walk.
   */
  *ordered(): Generator<T, void, undefined> {
    const items = this.items;
    const version = this.layoutVersion;
    if (items.length === 0) return;
    const frontier = new Heap<number>((a, b) => this.compare(items[a], items[b]));
    frontier.push(0);
    while (frontier.size > 0) {
      const i = frontier.pop() as number;
      yield items[i];
      if (this.layoutVersion !== version) throw new Error("heap changed during ordered walk");
      const left = 2 * i + 1;
      if (left < items.length) frontier.push(left);
      if (left + 1 < items.length) frontier.push(left + 1);
    }
  }

  private siftDown(start: number): void {
    const items = this.items;
    const n = items.length;
    let i = start;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= n) return;
      const right = left + 1;
      const child = right < n && this.compare(items[right], items[left]) < 0 ? right : left;
      if (this.compare(items[child], items[i]) >= 0) return;
      [items[i], items[child]] = [items[child], items[i]];
      i = child;
    }
  }
}
