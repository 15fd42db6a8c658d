/**
 * An IoT gateway pattern: embed a batch of sensor notes once, then answer "which past event
 * is most like this one?" by cosine similarity, all against a crumb server on the device.
 *
 *   npx crumb serve <model> --pooling mean        # on the gateway
 *   bun examples/iot-embeddings.ts "pump 3 vibrating and hot"
 *
 * The server returns unit-length vectors, so cosine similarity is a dot product. The openai
 * SDK asks for base64 by default (compact on slow links) and decodes it for you.
 */
import process from "node:process";
import OpenAI from "openai";

const client = new OpenAI({
  baseURL: process.env.CRUMB_URL ?? "http://127.0.0.1:8080/v1",
  apiKey: process.env.CRUMB_API_KEY ?? "not-needed",
});

const notes = [
  "greenhouse 2: humidity 91%, condensation on the north panels",
  "pump 3: vibration above threshold, bearing temperature 78 C",
  "cold room: door open for 12 minutes, temperature rising to 9 C",
  "solar array: output dropped 40% at noon, panels dusty",
  "pump 1: pressure low, possible leak near the inlet valve",
  "greenhouse 1: soil moisture 12%, irrigation skipped",
];

const dot = (a: number[], b: number[]) => a.reduce((sum, x, i) => sum + x * b[i], 0);

// One request embeds the whole batch; `dimensions` trims vectors for cheap storage.
const { data } = await client.embeddings.create({ model: "crumb", input: notes, dimensions: 32 });
const index = data.map((item) => ({ note: notes[item.index], vector: item.embedding }));

const query = process.argv.slice(2).join(" ") || "pump 3 vibrating and running hot";
const [{ embedding }] = (await client.embeddings.create({ model: "crumb", input: query, dimensions: 32 })).data;

const ranked = index.map(({ note, vector }) => ({ note, score: dot(vector, embedding) })).sort((a, b) => b.score - a.score);
console.log(`query: ${query}`);
for (const { note, score } of ranked.slice(0, 3)) console.log(`  ${score.toFixed(3)}  ${note}`);
