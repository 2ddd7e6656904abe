// The bootstrap payload's JSON Schema (schema/bootstrap.schema.json) against the same
// vectors the server's own validator runs (service/tests/vectors/bootstrap, walked by
// service/tests/unit/test_bootstrap.c), with a real validator: ajv, draft 2020-12.
//
// Each vector says whether the server accepts it ("valid"). Some checks go beyond what a
// schema can say (body size, duplicate JSON keys, NUL, integers written as 1.0 or 1e2,
// unique names, regexes that compile with PCRE2, prefix collisions, references, and the
// policy compiler's own reading of host names and argument paths); such a
// vector carries "schema_valid": true, the verdict the schema alone must give. Bodies that
// are not UTF-8 JSON at all are refused before any schema, here as there.
//
// For vectors the schema refuses, every expected pointer must also be one ajv reports
// (pointers only the server's extra checks find are listed in "beyond_schema").
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const schemaPath = path.join(root, "schema", "bootstrap.schema.json");
const vectorDir = path.join(root, "service", "tests", "vectors", "bootstrap");

function compile() {
  // Every strict check but strictRequired, which does not see that the oneOf/anyOf
  // branches require members the enclosing object declares.
  const ajv = new Ajv2020({ allErrors: true, strict: true, strictRequired: false });
  addFormats(ajv);
  return ajv.compile(JSON.parse(fs.readFileSync(schemaPath, "utf8")));
}

function loadVectors() {
  return fs
    .readdirSync(vectorDir)
    .filter((f) => f.endsWith(".json"))
    .sort()
    .map((f) => JSON.parse(fs.readFileSync(path.join(vectorDir, f), "utf8")));
}

// The exact bytes of a vector's payload, as the C test builds them.
function payloadBytes(v) {
  let bytes;
  if (v.payload !== undefined) bytes = Buffer.from(JSON.stringify(v.payload), "utf8");
  else if (v.payload_text !== undefined) bytes = Buffer.from(v.payload_text, "utf8");
  else bytes = Buffer.from(v.payload_base64, "base64");
  if (v.pad_to !== undefined && bytes.length < v.pad_to) {
    bytes = Buffer.concat([bytes, Buffer.alloc(v.pad_to - bytes.length, 0x20)]);
  }
  return bytes;
}

// { parsed, ok, errors }: UTF-8 JSON first, then the schema.
function schemaVerdict(validate, bytes) {
  let value;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    return { parsed: false, ok: false, errors: [] };
  }
  const ok = validate(value);
  return { parsed: true, ok, errors: ok ? [] : [...validate.errors] };
}

const escapeSegment = (s) => String(s).replaceAll("~", "~0").replaceAll("/", "~1");

// The pointers one ajv error stands for: where it is, and the member or item it names.
function errorPointers(e) {
  const out = [e.instancePath];
  const p = e.params ?? {};
  for (const name of [p.missingProperty, p.additionalProperty, p.propertyName]) {
    if (name !== undefined) out.push(`${e.instancePath}/${escapeSegment(name)}`);
  }
  if (e.keyword === "uniqueItems") out.push(`${e.instancePath}/${Math.max(p.i, p.j)}`);
  return out;
}

const validate = compile();
const vectors = loadVectors();

test("the vector set is large enough", () => {
  const valid = vectors.filter((v) => v.valid).length;
  const invalid = vectors.length - valid;
  assert.ok(valid >= 10, `${valid} valid vectors`);
  assert.ok(invalid >= 40, `${invalid} invalid vectors`);
  const names = new Set(vectors.map((v) => v.name));
  assert.equal(names.size, vectors.length, "vector names are unique");
});

test("the schema compiles in strict mode", () => {
  assert.equal(typeof validate, "function");
});

for (const v of vectors) {
  test(`schema agrees with the server: ${v.name}`, () => {
    const want = v.schema_valid ?? v.valid;
    if (v.valid) assert.equal(want, true, "a payload the server accepts must pass the schema");
    const got = schemaVerdict(validate, payloadBytes(v));
    assert.equal(
      got.ok,
      want,
      `${v.description}: schema says ${got.ok ? "valid" : "invalid"}` +
        (got.errors.length ? `\n${JSON.stringify(got.errors, null, 2)}` : ""),
    );
    if (!got.parsed || got.ok) return;
    const reported = new Set(got.errors.flatMap(errorPointers));
    const beyond = new Set(v.beyond_schema ?? []);
    for (const ptr of v.pointers) {
      if (beyond.has(ptr)) continue;
      assert.ok(reported.has(ptr), `ajv reports nothing at ${ptr}; it reports ${[...reported].join(", ")}`);
    }
  });
}
