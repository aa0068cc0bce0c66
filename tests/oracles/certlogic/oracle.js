// certlogic-js (the CertLogic reference implementation) as a long-lived differential oracle for vaxcred.rules.
// Reads one JSON object per line from stdin and writes one JSON line per request:
// {"expr": ..., "data": ...} -> {"value": <value>} or {"error": "<message>"} (date-times as {"$date": "<ISO>"|null});
// {"validate": ...}          -> {"problems": ["<message>", ...]} (certlogic-js's format validator).
"use strict";
const readline = require("readline");
const { evaluate } = require("certlogic-js");
const { validateFormat } = require("certlogic-js/dist/validation");

const encode = (value) => {
  if (value instanceof Date) {
    return { $date: isNaN(value.getTime()) ? null : value.toISOString() };
  }
  if (Array.isArray(value)) {
    return value.map(encode);
  }
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, encode(v)]));
  }
  return value === undefined ? { $undefined: true } : value;
};

const lines = readline.createInterface({ input: process.stdin, terminal: false });
lines.on("line", (line) => {
  let reply;
  try {
    const request = JSON.parse(line);
    if ("validate" in request) {
      reply = { problems: validateFormat(request.validate).map((problem) => problem.message) };
    } else {
      reply = { value: encode(evaluate(request.expr, request.data)) };
    }
  } catch (e) {
    reply = { error: String(e && e.message) };
  }
  process.stdout.write(JSON.stringify(reply) + "\n");
});
