#!/usr/bin/env bun
/**
 * crumb's command line: `bun runtime/cli.ts <command> ...` (what `bun run <script>`, `deno task
 * <script>` and the `crumb` bin run). The commands live in cli/main.ts.
 */
import process from "node:process";
import { runCliMain } from "./cli/main.ts";

await runCliMain(process.argv.slice(2));
