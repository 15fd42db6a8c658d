/**
 * Server counters in the Prometheus text exposition format (version 0.0.4): requests by
 * route and status, prompt and generated tokens, queue depth and running slots, and the
 * decode speed of the most recent generation.
 */

export interface Metrics {
  request(route: string, status: number): void;
  /** Records one generation that ran (finished or cancelled): token counts and decode time (first to last token). */
  generation(promptTokens: number, completionTokens: number, decodeSeconds: number): void;
  /** Prometheus text; queue gauges are read at render time. */
  render(gauges: { running: number; waiting: number; loaded: boolean; open?: number }): string;
}

const escapeLabel = (value: string) => value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");

export function createMetrics(): Metrics {
  const requests = new Map<string, number>();
  let promptTokens = 0;
  let completionTokens = 0;
  let generations = 0;
  let decodeSeconds = 0;
  let lastTokensPerSecond = 0;

  return {
    request(route, status) {
      const key = `route="${escapeLabel(route)}",status="${status}"`;
      requests.set(key, (requests.get(key) ?? 0) + 1);
    },
    generation(prompt, completion, seconds) {
      promptTokens += prompt;
      completionTokens += completion;
      generations++;
      if (completion > 1 && seconds > 0) {
        decodeSeconds += seconds;
        lastTokensPerSecond = (completion - 1) / seconds;
      }
    },
    render({ running, waiting, loaded, open = 0 }) {
      const lines: string[] = [];
      const metric = (name: string, type: string, help: string, samples: [string, number][]) => {
        lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
        for (const [labels, value] of samples) lines.push(`${name}${labels ? `{${labels}}` : ""} ${value}`);
      };
      metric("crumb_requests_total", "counter", "HTTP requests by route and status.", [...requests.entries()]);
      metric("crumb_prompt_tokens_total", "counter", "Prompt tokens processed.", [["", promptTokens]]);
      metric("crumb_completion_tokens_total", "counter", "Tokens generated, by cancelled generations too.", [["", completionTokens]]);
      metric("crumb_generations_total", "counter", "Generations run, cancelled ones included.", [["", generations]]);
      metric("crumb_decode_seconds_total", "counter", "Time spent decoding after the first token.", [["", decodeSeconds]]);
      metric("crumb_decode_tokens_per_second", "gauge", "Decode speed of the most recent generation.", [["", lastTokensPerSecond]]);
      metric("crumb_requests_running", "gauge", "Requests holding a generation slot.", [["", running]]);
      metric("crumb_queue_depth", "gauge", "Requests waiting for a slot.", [["", waiting]]);
      metric("crumb_model_loaded", "gauge", "1 once the model is loaded.", [["", loaded ? 1 : 0]]);
      metric("crumb_requests_open", "gauge", "Requests open (headers in, response not yet sent), capped by --max-connections.", [[
        "",
        open,
      ]]);
      return lines.join("\n") + "\n";
    },
  };
}
