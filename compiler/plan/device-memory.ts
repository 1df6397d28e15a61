// How much memory the device has. WebGPU does not report it, so the figure comes from the user
// (`--memory`, or the SFT_DEVICE_MEMORY environment variable) or from the nominal capacity of a
// known adapter name; the plan says which.

/** A device memory figure and where it came from. */
export interface DeviceMemory {
  bytes: number;
  source: string;
}

const UNITS: Record<string, number> = {
  b: 1,
  kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12,
  kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40,
  // a bare letter is read as the binary unit, as GPU tools print memory
  k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40,
};

/** Bytes of `24GiB`, `80 GB`, `16g`, `1.5e10`; null when the text is not a size. */
export function parseByteSize(text: string): number | null {
  const match = /^\s*(\d+(?:\.\d+)?(?:e\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  if (!match) return null;
  const unit = UNITS[(match[2] || "b").toLowerCase()];
  const bytes = Number(match[1]) * (unit ?? NaN);
  return Number.isFinite(bytes) && bytes > 0 ? Math.round(bytes) : null;
}

// Nominal memory of adapters whose name fixes it (names as drivers report them).
const KNOWN_ADAPTERS: [RegExp, number][] = [
  [/H200/i, 141e9],
  [/H100/i, 80e9],
  [/RTX 4090/i, 24 * 2 ** 30],
  [/RTX 3090/i, 24 * 2 ** 30],
  [/RTX 4080/i, 16 * 2 ** 30],
  [/\bL4\b/i, 24 * 2 ** 30],
  [/\bA10\b/i, 24 * 2 ** 30],
];

/** The nominal memory of an adapter known by name, or null. */
export function knownAdapterMemory(name: string): number | null {
  return KNOWN_ADAPTERS.find(([pattern]) => pattern.test(name))?.[1] ?? null;
}
