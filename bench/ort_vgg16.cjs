// The ONNX Runtime peer of bench/peer_bench.sh: npm's onnxruntime-node (its native CPU
// runtime) on VGG16's convolutional base, f32, as exported by torch_vgg16.py --export-onnx.
// Prints "peer onnx_f32 threads=T batch=B img_per_s=R" like torch_vgg16.py.
//
//   NODE_PATH=DIR/node_modules node bench/ort_vgg16.cjs MODEL.onnx THREADS BATCH ITERS [SIZE]
// (DIR: where `npm install --ignore-scripts onnxruntime-node` was run)
const ort = require("onnxruntime-node");

async function main() {
  const [path, threads, batch, iters, size = 224] = process.argv.slice(2);
  const T = Number(threads), B = Number(batch), N = Number(iters), S = Number(size);
  const sess = await ort.InferenceSession.create(path, {
    executionProviders: ["cpu"],
    intraOpNumThreads: T,
    interOpNumThreads: 1,
    graphOptimizationLevel: "all",
  });
  const data = new Float32Array(B * 3 * S * S);
  for (let i = 0; i < data.length; ++i) data[i] = ((i * 2654435761) % 1000) / 1000;
  const x = new ort.Tensor("float32", data, [B, 3, S, S]);
  await sess.run({ x });  // warm-up
  const t0 = process.hrtime.bigint();
  for (let k = 0; k < N; ++k) await sess.run({ x });
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  const version = require("onnxruntime-node/package.json").version;
  console.log(`# onnxruntime-node ${version} (npm), CPU execution provider`);
  console.log(`peer onnx_f32 threads=${T} batch=${B} img_per_s=${((N * B) / s).toFixed(2)}`);
}

main().catch((e) => {
  console.log(`# peer onnx_f32 unavailable: ${e.message}`);
});
