/**
 * One generation as the routes run it: validate eagerly (the engine throws before any work,
 * and a response format's schema is compiled and checked against the token budget, so a bad
 * request is a 400 even when streaming), take a place in the queue (a 503 when it is full,
 * before any header is sent), then, holding the slot, build the constraint's vocabulary trie
 * (in slices, once per tokenizer) and stream the engine's events, stopping when the client
 * goes away (a CancelledError, 499) or the server shuts down (503). Every generation that
 * started is counted in the metrics with the tokens it produced, cancelled ones included.
 *
 * Constrained output (JSON mode, forced tool calls) applies stop strings here instead of in
 * the engine: the constraint must see every generated character, and the engine holds back
 * text that might begin a stop string.
 */
import type { FinishReason, GenerateOptions, TokenLogprob, Usage } from "../../engine/types.ts";
import { createStopMatcher } from "../../engine/stop-strings.ts";
import { CancelledError } from "../../errors.ts";
import type { ServerContext } from "../context.ts";
import { HttpError } from "../errors.ts";
import {
  checkBudget,
  compileConstraint,
  constrainWith,
  type JsonConstraint,
  type JsonConstraintShape,
  loadVocab,
} from "../json-constraint.ts";
import type { Slot } from "../queue.ts";

export type RunEvent =
  | { readonly type: "text"; readonly text: string; readonly logprob?: TokenLogprob }
  | { readonly type: "done"; readonly finishReason: Exclude<FinishReason, "abort">; readonly usage: Usage; readonly text: string };

export interface GenerationSpec {
  readonly prompt: string | readonly number[];
  readonly options: GenerateOptions;
  /** Constrained decoding (budget and EOS ids are filled in here). */
  readonly constraint?: JsonConstraintShape;
  /** The request parameter the constraint's schema came in (for 400s). */
  readonly constraintParam?: string;
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
  let constraint: JsonConstraint | undefined;
  const budget = spec.options.maxTokens ?? engine.contextLength - spec.promptTokens;
  const eosTokenIds = [...new Set([...engine.tokenizer.eosTokenIds, ...engine.args.eosTokenIds])];
  const param = spec.constraintParam ?? "response_format.json_schema.schema";
  // The schema is checked now (a 400 before any header); the vocabulary trie waits for the slot.
  const compiled = spec.constraint === undefined ? undefined : compileConstraint(spec.constraint, param);
  if (compiled !== undefined) {
    checkBudget(engine.tokenizer, compiled, budget, param);
    options = { ...options, stop: undefined, constrain: (text) => constraint!.constrain(text) };
  }
  const events = engine.generate(spec.prompt, options);
  const entered = ctx.queue.enter(clientSignal);
  // The promise is awaited in run(); a route that never runs must not leave it unhandled.
  entered.catch(() => {});
  const stopMatcher = compiled !== undefined && stops.length > 0 ? createStopMatcher(stops) : undefined;

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
      let completionTokens = 0;
      let promptTokens = 0;
      /** Why the work stopped early, when it did: the server's shutdown, else the client leaving. */
      const cancelled = () =>
        slot.signal.aborted
          ? new HttpError(503, "server_shutting_down", "the server shut down before the generation finished; retry")
          : new CancelledError("the client closed the connection before the generation finished");
      try {
        if (compiled !== undefined) {
          try {
            constraint = constrainWith(await loadVocab(engine.tokenizer, abort.signal), compiled, budget, eosTokenIds);
          } catch (error) {
            if (abort.signal.aborted) throw cancelled();
            throw error;
          }
        }
        for await (const event of events) {
          if (event.type === "done") {
            promptTokens = event.usage.promptTokens;
            completionTokens = event.usage.completionTokens;
            if (event.finishReason === "abort" && !stoppedHere) throw cancelled();
            if (stopMatcher !== undefined && !stoppedHere) {
              const rest = stopMatcher.flush();
              if (rest !== "") {
                text += rest;
                yield { type: "text", text: rest };
              }
            }
            const output = stopMatcher === undefined ? event.text : text;
            // Constrained output says "stop" only when the document is complete (the model could
            // say nothing else) or a stop string ended it; a document max_tokens cut is "length".
            let finishReason: Exclude<FinishReason, "abort"> = stoppedHere || event.finishReason === "abort" ? "stop" : event.finishReason;
            if (constraint !== undefined && !stoppedHere) finishReason = constraint.complete(output) ? "stop" : "length";
            yield { type: "done", finishReason, usage: event.usage, text: output };
            return;
          }
          if (event.type === "token") {
            completionTokens++;
            promptTokens = spec.promptTokens;
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
        // Every generation that ran is counted, cancelled ones included, with the tokens it made.
        const decodeSeconds = firstTokenAt === undefined ? 0 : (performance.now() - firstTokenAt) / 1000;
        ctx.metrics.generation(promptTokens, completionTokens, decodeSeconds);
      }
    },
  };
}
