#!/usr/bin/env bash
# The crumb HTTP API with nothing but curl. Start a server first: npx crumb serve <model>
# Usage: examples/curl.sh [base-url]   (default http://127.0.0.1:8080; CRUMB_API_KEY if --api-key is set)
# Every body is sent as application/json: a server without --api-key refuses others (415).
set -euo pipefail
URL="${1:-http://127.0.0.1:8080}"
AUTH=(-H "Authorization: Bearer ${CRUMB_API_KEY:-none}")

echo "# health and models"
curl -sS "$URL/health"; echo
curl -sS "${AUTH[@]}" "$URL/v1/models"; echo

echo "# chat, one answer"
curl -sS "${AUTH[@]}" "$URL/v1/chat/completions" -H "Content-Type: application/json" \
  -d '{"messages":[{"role":"user","content":"Say hello"}],"max_tokens":32}'; echo

echo "# chat, streamed (server-sent events; -N turns off curl's buffering)"
curl -sSN "${AUTH[@]}" "$URL/v1/chat/completions" -H "Content-Type: application/json" \
  -d '{"messages":[{"role":"user","content":"Count to five"}],"max_tokens":32,"stream":true}'

echo "# JSON mode: the output always parses"
curl -sS "${AUTH[@]}" "$URL/v1/chat/completions" -H "Content-Type: application/json" \
  -d '{"messages":[{"role":"user","content":"A user profile as JSON"}],"max_tokens":64,"response_format":{"type":"json_object"}}'; echo

echo "# raw completion, embeddings, tokenize"
curl -sS "${AUTH[@]}" "$URL/v1/completions" -H "Content-Type: application/json" -d '{"prompt":"Once upon a time","max_tokens":16}'; echo
curl -sS "${AUTH[@]}" "$URL/v1/embeddings" -H "Content-Type: application/json" -d '{"input":["kitchen sensor: 21.5 C"],"encoding_format":"float","dimensions":8}'; echo
curl -sS "${AUTH[@]}" "$URL/tokenize" -H "Content-Type: application/json" -d '{"content":"Hello world"}'; echo

echo "# Prometheus metrics"
curl -sS "${AUTH[@]}" "$URL/metrics" | grep -v '^#'
