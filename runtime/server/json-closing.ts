/**
 * The length of the shortest text that completes a JSON document from a recogniser state
 * (json-machine.ts), from each schema node's precomputed shortest value, in time linear in the
 * nesting depth (cached per frame). json-constraint.ts uses it to refuse tokens after which the
 * document could no longer close within the token budget.
 */
import {
  ANY,
  type Frame,
  type MachineState,
  missingAfter,
  missingExtending,
  numberEnds,
  type ObjectFrame,
  propertyNode,
  type State,
  type StringFrame,
} from "./json-machine.ts";
import { shortestCompletion } from "./json-number.ts";
import { MAX_NUMBER } from "./json-schema.ts";

/** Characters an object needs after a value once `missing` required keys costing `cost` remain. */
const afterValue = (missing: number, cost: number) => (missing === 0 ? 1 : cost + missing + 1);

/** Cheapest `"key":value` still possible in an object (after a comma with no required key left). */
function cheapestKey(frame: ObjectFrame): number {
  const node = frame.node;
  if (node?.properties === undefined) return 4; // "":0
  let best = Infinity;
  for (const key of node.keys) if (!frame.seen.has(key)) best = Math.min(best, node.keyCost.get(key)!);
  return best;
}

function objectClosing(frame: ObjectFrame): number {
  switch (frame.s) {
    case 0:
      return frame.missing === 0 ? 1 : frame.missingCost + frame.missing;
    case 1:
      return 1 + propertyNode(frame, frame.key).shortest + afterValue(...missingAfter(frame, frame.key));
    case 2:
      return afterValue(frame.missing, frame.missingCost);
    case 3:
      return frame.missing > 0 ? frame.missingCost + frame.missing : cheapestKey(frame) + 1;
  }
}

/** A free key closed as a name its object does not lack: `"`, `:`, the shortest value, the rest of the object. */
function keyOffName(key: StringFrame, parent: ObjectFrame): number {
  const escape = key.esc === 1 ? 1 : key.esc > 1 ? key.esc - 1 : 0;
  return escape + 1 + 1 + ANY.shortest + afterValue(parent.missing, parent.missingCost);
}

/**
 * For a free key that may still become a required name (keyMayBeRequired): the closing length
 * after plain text that takes it off every such name. It is the same whatever that text is, so
 * a caller can price those tokens at once and feed only the ones that stay on a name.
 */
export function closingOffName(state: MachineState): number {
  return keyOffName(state.frame as StringFrame, state.below!.frame as ObjectFrame) + closingLength(state.below!.below);
}

/** A key being written and the object it belongs to, closed together (the key decides the value). */
function keyClosing(key: StringFrame, parent: ObjectFrame): number {
  if (key.options === undefined) {
    // Closed as some name the object does not lack, or spelled on into a required name it
    // lacks, which then need not follow the value. Any such name will do: with one missing
    // there is only one, and with more each costs the same (its `"name":value` comes off the
    // missing cost whatever its length).
    const name = missingExtending(parent, key.text);
    if (name === undefined) return keyOffName(key, parent);
    const spelled = name.length - key.text.length + 1 + 1 + propertyNode(parent, name).shortest + afterValue(...missingAfter(parent, name));
    return Math.min(keyOffName(key, parent), spelled);
  }
  let best = Infinity;
  for (let i = key.lo; i < key.hi; i++) {
    const name = key.options[i];
    if (key.exclude.has(name)) continue;
    const total = name.length - key.text.length + 1 + 1 + propertyNode(parent, name).shortest + afterValue(...missingAfter(parent, name));
    best = Math.min(best, total);
  }
  return best;
}

function frameClosing(frame: Frame): number {
  switch (frame.t) {
    case "value":
      return frame.node.shortest;
    case "object":
      return objectClosing(frame);
    case "array": {
      const items = frame.items.shortest;
      if (frame.s === 2) return frame.count >= frame.min ? 1 : (frame.min - frame.count) * (1 + items) + 1;
      const k = frame.s === 0 ? frame.min : Math.max(frame.min - frame.count, 1);
      return k === 0 ? 1 : k * items + (k - 1) + 1;
    }
    case "string": {
      const escape = frame.esc === 1 ? 1 : frame.esc > 1 ? frame.esc - 1 : 0;
      if (frame.options === undefined) return escape + Math.max(0, frame.minLength - frame.length - (escape > 0 ? 1 : 0)) + 1;
      let best = Infinity;
      for (let i = frame.lo; i < frame.hi; i++) best = Math.min(best, frame.options[i].length - frame.text.length + 1);
      return best;
    }
    case "number": {
      if (frame.bounds !== undefined) return shortestCompletion(frame.text, frame.bounds, frame.integer, MAX_NUMBER - frame.text.length);
      return numberEnds(frame.s) ? 0 : 1;
    }
    case "literal": {
      let best = Infinity;
      for (const o of frame.options) if (o.startsWith(frame.text)) best = Math.min(best, o.length - frame.text.length);
      return best;
    }
  }
}

const closingCache = new WeakMap<Frame, number>();

/** Length of the shortest text completing the document from `state` (Infinity if there is none). */
export function closingLength(state: State): number {
  if (state === undefined) return 0;
  let total = 0;
  for (let current = state; current !== undefined;) {
    const frame = current.frame;
    const parent = current.below?.frame;
    let cost = closingCache.get(frame);
    if (frame.t === "string" && frame.key && parent?.t === "object") {
      if (cost === undefined) closingCache.set(frame, cost = keyClosing(frame, parent));
      total += cost;
      current = current.below!.below;
      continue;
    }
    if (cost === undefined) closingCache.set(frame, cost = frameClosing(frame));
    total += cost;
    current = current.below;
  }
  return total;
}
