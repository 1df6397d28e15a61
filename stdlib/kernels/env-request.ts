// A request a user makes by setting an environment variable to one value: SFT_ATTENTION=scores,
// SFT_TUNE=off, the explicit kernel requests of runtime/gpu/kernel-self-check.ts. One rule reads
// them all, in the kernel choices here and in the runtime.

/** An environment variable and the value that asks for something. */
export interface EnvRequest {
  variable: string;
  value: string;
}

/** Whether `env` sets `request.variable` to `request.value` (surrounding spaces ignored). */
export function envAsks(request: EnvRequest, env: Readonly<Record<string, string | undefined>>): boolean {
  return env[request.variable]?.trim() === request.value;
}
