// Runs each case that test_onnx wrote (tests/test_onnx.cpp) in ONNX Runtime (npm's
// onnxruntime-node, its native CPU runtime) and compares the probabilities with tl-predict's.
//   node tests/onnx/check_ort.mjs CASES_DIR
// CASES_DIR/cases.txt: one line per case, "NAME C D0 D1 ...": the graph NAME.onnx, the input
// NAME.input.f32 of dims [D0, D1, ...] (float32, little-endian) and tl-predict's probabilities
// NAME.expected.f32 [D0, C]. Every probability within 1e-4 and the same top class, or exit 1.
import fs from 'node:fs';
import path from 'node:path';
import ort from 'onnxruntime-node';

const kTolerance = 1e-4;
const dir = process.argv[2];
if (!dir) {
  console.error('usage: node check_ort.mjs CASES_DIR');
  process.exit(2);
}
const readF32 = (file) => {
  const b = fs.readFileSync(file);
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
};
const argmax = (p, r, c) => {
  let best = 0;
  for (let j = 1; j < c; ++j) if (p[r * c + j] > p[r * c + best]) best = j;
  return best;
};

const lines = fs.readFileSync(path.join(dir, 'cases.txt'), 'utf8').trim().split('\n');
let failed = 0;
for (const line of lines) {
  const [name, classes, ...dimText] = line.trim().split(/\s+/);
  const C = Number(classes);
  const dims = dimText.map(Number);
  const session = await ort.InferenceSession.create(path.join(dir, `${name}.onnx`));
  const input = new ort.Tensor('float32', readF32(path.join(dir, `${name}.input.f32`)), dims);
  const out = await session.run({[session.inputNames[0]]: input});
  const got = out.probabilities.data;
  const want = readF32(path.join(dir, `${name}.expected.f32`));
  const n = dims[0];
  if (got.length !== n * C || want.length !== n * C) {
    console.error(`${name}: ${got.length} probabilities from ONNX Runtime, ${want.length} ` +
                  `from tl-predict, want ${n} x ${C}`);
    ++failed;
    continue;
  }
  let maxDiff = 0;
  let topDiffer = 0;
  for (let r = 0; r < n; ++r) {
    for (let j = 0; j < C; ++j)
      maxDiff = Math.max(maxDiff, Math.abs(got[r * C + j] - want[r * C + j]));
    if (argmax(got, r, C) !== argmax(want, r, C)) ++topDiffer;
  }
  const ok = maxDiff <= kTolerance && topDiffer === 0;
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}: ${n} rows, largest probability difference ` +
              `${maxDiff.toExponential(2)} (bound ${kTolerance}), top class differs in ${topDiffer}`);
  if (!ok) ++failed;
}
console.log(`onnxruntime-node ${ort.env.versions?.common ?? ''}: ${lines.length - failed} of ` +
            `${lines.length} cases within ${kTolerance}`);
process.exit(failed ? 1 : 0);
