#!/usr/bin/env node
// The sftc executable: TypeScript sources run through tsx's loader (transforms are cached on disk).
import { register } from "tsx/esm/api";

register();
const { main } = await import("../cli/main.ts");
process.exitCode = await main(process.argv.slice(2));
