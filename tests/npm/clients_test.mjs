// clients_test.mjs — the official OpenAI clients from npm, as they ship (versions pinned in
// package-lock.json), against a running `kb serve` (tests/serve_test.sh openai_clients): the
// vectors they hand their callers must equal `kb embed --json`'s within 1e-6.
// Environment: SERVE_PORT, SERVE_READ (the read token), KB (the kb binary), MODEL (the KB's
// model folder, which may be cut to 8 dimensions); the server answers to the alias
// text-embedding-ada-002, @langchain/openai's default model.
// Prints one line per failed check and "N passed, N failed"; exits 1 when any failed.
import { execFileSync } from 'node:child_process';
import { basename } from 'node:path';

import OpenAI from 'openai';
import { OpenAIEmbeddings } from '@langchain/openai';

const { SERVE_PORT, SERVE_READ, KB, MODEL } = process.env;
const baseURL = `http://127.0.0.1:${SERVE_PORT}/v1`;
const modelId = basename(MODEL);
let passed = 0;
let failed = 0;

function check(cond, what) {
  if (cond) {
    passed++;
  } else {
    failed++;
    console.log(`FAIL: ${what}`);
  }
}

// Runs one group of checks; a call that throws fails the group and the others still run.
async function step(what, fn) {
  try {
    await fn();
  } catch (e) {
    check(false, `${what}: ${e.status ?? ''} ${e.message}`);
  }
}

// kb embed --json of texts, one per line on standard input.
function kbEmbed(texts) {
  const out = execFileSync(KB, ['--json', 'embed', '--model', MODEL],
                           { input: texts.map((t) => `${t}\n`).join(''), maxBuffer: 1 << 28 });
  return JSON.parse(out).embeddings;
}

// The largest difference between two lists of vectors (Infinity when their shapes differ).
function maxDiff(got, want) {
  if (!Array.isArray(got) || got.length !== want.length) return Infinity;
  let diff = 0;
  for (let i = 0; i < want.length; i++) {
    if (!got[i] || got[i].length !== want[i].length) return Infinity;
    for (let j = 0; j < want[i].length; j++) diff = Math.max(diff, Math.abs(got[i][j] - want[i][j]));
  }
  return diff;
}

function cut(vectors, dims) {
  return vectors.map((v) => {
    const head = v.slice(0, dims);
    const norm = Math.sqrt(head.reduce((sum, x) => sum + x * x, 0));
    return head.map((x) => x / norm);
  });
}

const texts = ['how are the logs rotated', 'a second, different text', 'Ünïcödé wombats dig burrows'];
const want = kbEmbed(texts);

// openai: the client asks for base64 unless told otherwise, and decodes it itself.
const client = new OpenAI({ apiKey: SERVE_READ, baseURL, maxRetries: 0 });
await step('openai embeddings.create with its defaults', async () => {
  const r = await client.embeddings.create({ model: modelId, input: texts });
  const got = r.data.map((e) => Array.from(e.embedding));
  check(maxDiff(got, want) <= 1e-6,
        `openai embeddings.create with its defaults (base64): kb embed's vectors (max difference ${maxDiff(got, want)})`);
  check(r.model === modelId && r.usage.prompt_tokens > 0, `openai: model and usage (${r.model}, ${JSON.stringify(r.usage)})`);
});
await step('openai embeddings.create with encoding_format float', async () => {
  const r = await client.embeddings.create({ model: modelId, input: texts, encoding_format: 'float' });
  const got = r.data.map((e) => e.embedding);
  check(maxDiff(got, want) <= 1e-6,
        `openai embeddings.create with encoding_format float: kb embed's vectors (${maxDiff(got, want)})`);
});
for (const dims of [8, 16]) {
  await step(`openai embeddings.create with dimensions ${dims}`, async () => {
    const r = await client.embeddings.create({ model: modelId, input: texts, dimensions: dims });
    const got = r.data.map((e) => Array.from(e.embedding));
    const expected = cut(want, dims);
    check(maxDiff(got, expected) <= 1e-6,
          `openai embeddings.create with dimensions ${dims}: kb embed's first ${dims} values, renormalised (${maxDiff(got, expected)})`);
  });
}
try {
  await client.embeddings.create({ model: modelId, input: 'x', dimensions: 4 });
  check(false, 'openai: dimensions below the model\'s minimum is refused');
} catch (e) {
  check(e.status === 400 && /from 8 to/.test(e.message), `openai: dimensions 4 is a 400 naming the range (${e.status} ${e.message})`);
}
try {
  await client.embeddings.create({ model: 'text-embedding-3-large', input: 'x' });
  check(false, 'openai: another model is refused');
} catch (e) {
  check(e.status === 404 && !e.message.includes(MODEL), `openai: another model is a 404 naming no path (${e.status} ${e.message})`);
}
await step('openai models.list', async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  check(ids.includes(modelId) && ids.includes('text-embedding-ada-002'), `openai models.list: the model and its alias (${ids})`);
});

// @langchain/openai: its defaults (model text-embedding-ada-002, batches of 512, base64).
const lc = new OpenAIEmbeddings({ apiKey: SERVE_READ, configuration: { baseURL }, maxRetries: 0 });
await step('langchain embedQuery', async () => {
  const got = await lc.embedQuery(texts[0]);
  check(maxDiff([got], want.slice(0, 1)) <= 1e-6, `langchain embedQuery: kb embed's vector (${maxDiff([got], want.slice(0, 1))})`);
});
await step('langchain embedDocuments', async () => {
  const many = Array.from({ length: 1000 }, (_, i) => `document ${i}: ${texts[i % texts.length]} ${i * 7}`);
  const wantMany = kbEmbed(many);
  const got = await lc.embedDocuments(many);
  check(got.length === 1000 && maxDiff(got, wantMany) <= 1e-6,
        `langchain embedDocuments of 1,000 texts (two batches): kb embed's vectors (${maxDiff(got, wantMany)})`);
});

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
