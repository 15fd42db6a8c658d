/**
 * One generation as the routes run it: validate eagerly (the engine throws before any work,
 * so a bad request is a 400 even when streaming), take a place in the queue (a 503 when it
 * is full, before any header is sent), then stream the engine's events while holding the
 * slot, stopping when the client goes away or the server shuts down.
 *
 * Constrained output (JSON mode, forced tool calls) applies stop strings here instead of in
 * the engine: the constraint must see every generated character, and the engine holds back
 * text that might begin a stop string.
 */
import type { FinishReason, GenerateOptions, TokenLogprob, Usage } from "../../engine/types.ts";
import { createStopMatcher } from "../../engine/stop-strings.ts";
import type { ServerContext } from "../context.ts";
import { HttpError } from "../errors.ts";
import { createJsonConstraint, type JsonConstraintSpec } from "../json-constraint.ts";
import type { Slot } from "../queue.ts";

export type RunEvent =
  | { readonly type: "text"; readonly text: string; readonly logprob?: TokenLogprob }
  | { readonly type: "done"; readonly finishReason: Exclude<FinishReason, "abort">; readonly usage: Usage; readonly text: string };

export interface GenerationSpec {
  readonly prompt: string | readonly number[];
  readonly options: GenerateOptions;
  /** Constrained decoding (budget and EOS ids are filled in here). */
  readonly constraint?: Omit<JsonConstraintSpec, "budget" | "eosTokenIds">;
  /** Prompt length in tokens, for the constraint's budget when max_tokens is not given. */
  readonly promptTokens: number;
}

export interface PreparedGeneration {
  /** Runs once; `signal` aborts when the client leaves. Releases its slot when done or abandoned. */
  run(signal: AbortSignal): AsyncGenerator<RunEvent>;
}

/** Validates and enqueues; throws InvalidArgumentError/ContextLengthError (400) or HttpError (503). */
export function prepareGeneration(ctx: ServerContext, spec: GenerationSpec, clientSignal: AbortSignal): PreparedGeneration {
  const engine = ctx.engine();
  const abort = new AbortController();
  const stops = spec.options.stop ?? [];
  let options: GenerateOptions = { ...spec.options, signal: abort.signal };
  if (spec.constraint !== undefined) {
    const budget = spec.options.maxTokens ?? engine.contextLength - spec.promptTokens;
    const eosTokenIds = [...new Set([...engine.tokenizer.eosTokenIds, ...engine.args.eosTokenIds])];
    options = {
      ...options,
      stop: undefined,
      constrain: createJsonConstraint(engine.tokenizer, { ...spec.constraint, budget, eosTokenIds }),
    };
  }
  const events = engine.generate(spec.prompt, options);
  const entered = ctx.queue.enter(clientSignal);
  // The promise is awaited in run(); a route that never runs must not leave it unhandled.
  entered.catch(() => {});
  const stopMatcher = spec.constraint !== undefined && stops.length > 0 ? createStopMatcher(stops) : undefined;

  return {
    async *run(signal) {
      let slot: Slot;
      try {
        slot = await entered;
      } catch (error) {
        await events.return(undefined);
        throw error;
      }
      const onAbort = () => abort.abort();
      signal.addEventListener("abort", onAbort, { once: true });
      slot.signal.addEventListener("abort", onAbort, { once: true });
      if (signal.aborted || slot.signal.aborted) abort.abort();
      let text = "";
      let stoppedHere = false;
      let firstTokenAt: number | undefined;
      try {
        for await (const event of events) {
          if (event.type === "done") {
            if (event.finishReason === "abort" && !stoppedHere && slot.signal.aborted) {
              throw new HttpError(503, "server_shutting_down", "the server shut down before the generation finished; retry");
            }
            const decodeSeconds = firstTokenAt === undefined ? 0 : (performance.now() - firstTokenAt) / 1000;
            ctx.metrics.generation(event.usage.promptTokens, event.usage.completionTokens, decodeSeconds);
            if (stopMatcher !== undefined && !stoppedHere) {
              const rest = stopMatcher.flush();
              if (rest !== "") {
                text += rest;
                yield { type: "text", text: rest };
              }
            }
            const finishReason = stoppedHere || event.finishReason === "abort" ? "stop" : event.finishReason;
            yield { type: "done", finishReason, usage: event.usage, text: stopMatcher === undefined ? event.text : text };
            return;
          }
          if (stoppedHere) continue;
          if (event.type === "token") firstTokenAt ??= performance.now();
          let delta = event.text;
          if (stopMatcher !== undefined) {
            const { emit, stopped } = stopMatcher.push(delta);
            delta = emit;
            if (stopped) {
              stoppedHere = true;
              abort.abort();
            }
          }
          text += delta;
          yield { type: "text", text: delta, logprob: event.type === "token" ? event.logprob : undefined };
        }
      } finally {
        signal.removeEventListener("abort", onAbort);
        slot.signal.removeEventListener("abort", onAbort);
        slot.release();
      }
    },
  };
}
