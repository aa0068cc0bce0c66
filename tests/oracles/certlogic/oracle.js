// certlogic-js (the CertLogic reference implementation) as a long-lived differential oracle for vaxcred.rules.
// Reads one JSON object {"expr": ..., "data": ...} per line from stdin; writes one JSON line per request:
// {"value": <value>} or {"error": "<message>"}. Date-times are written as {"$date": "<ISO>"|null}.
"use strict";
const readline = require("readline");
const { evaluate } = require("certlogic-js");

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
    const { expr, data } = JSON.parse(line);
    reply = { value: encode(evaluate(expr, data)) };
  } catch (e) {
    reply = { error: String(e && e.message) };
  }
  process.stdout.write(JSON.stringify(reply) + "\n");
});
