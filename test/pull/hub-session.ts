/**
 * Per-test fake hubs for the pull tests: each `setUp` starts a hub (the file's defaults plus
 * overrides) and a scratch cache, gives the pull options that point at them (HF_TOKEN when the
 * hub wants one), and both are removed after the test.
 */
import { afterEach } from "bun:test";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { PullOptions } from "../../quantizer/pull/pull.ts";
import { type FakeHub, type FakeHubOptions, startFakeHub } from "./fake-hub.ts";

export interface HubSession {
  hub: FakeHub;
  options: PullOptions;
  cache: string;
}

export function hubSessions(defaults: FakeHubOptions, cachePrefix: string): (overrides?: Partial<FakeHubOptions>) => Promise<HubSession> {
  const hubs: FakeHub[] = [];
  const caches: string[] = [];
  afterEach(async () => {
    for (const hub of hubs.splice(0)) await hub.close();
    for (const cache of caches.splice(0)) await fs.rm(cache, { recursive: true, force: true });
  });
  return async (overrides = {}) => {
    const hub = await startFakeHub({ ...defaults, ...overrides });
    hubs.push(hub);
    const cache = await fs.mkdtemp(path.join(os.tmpdir(), cachePrefix));
    caches.push(cache);
    const env = { HF_ENDPOINT: hub.endpoint, CRUMB_CACHE: cache, ...(overrides.token ? { HF_TOKEN: overrides.token } : {}) };
    return { hub, cache, options: { env, retries: 3, retryDelayMs: 1, idleTimeoutMs: 5000 } };
  };
}
