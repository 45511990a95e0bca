#!/usr/bin/env python3
"""The peers of bench/peer_bench.sh: VGG16's convolutional base, forward only, on random input.

PyTorch (torchvision's vgg16().features; a hand-built copy of the same 13 convs + 5 pools if
torchvision is missing) in f32 NCHW, f32 channels_last and bf16 channels_last, and ONNX
Runtime f32 where it is installed. Prints one line per peer:

    peer <name> threads=<T> batch=<B> img_per_s=<rate>

Usage: torch_vgg16.py --threads T [--batch B] [--iters N] [--size S] [--peers a,b,...]
                      [--export-onnx PATH]
"""
import argparse
import copy
import os
import sys
import tempfile
import time
import warnings

import torch

# VGG16 "D": channels per conv, "M" = 2x2 max pool (torchvision's cfgs["D"]).
VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def vgg16_features():
    try:
        import torchvision

        try:
            return torchvision.models.vgg16(weights=None).features, "torchvision " + torchvision.__version__
        except TypeError:  # torchvision < 0.13
            return torchvision.models.vgg16(pretrained=False).features, "torchvision " + torchvision.__version__
    except ImportError:
        layers, c = [], 3
        for v in VGG16_CFG:
            if v == "M":
                layers.append(torch.nn.MaxPool2d(2, 2))
            else:
                layers += [torch.nn.Conv2d(c, v, 3, padding=1), torch.nn.ReLU(inplace=True)]
                c = v
        return torch.nn.Sequential(*layers), "hand-built (torchvision missing)"


def time_it(run, x, iters):
    run(x)  # warm-up: oneDNN primitive creation, weight reorders
    t0 = time.perf_counter()
    for _ in range(iters):
        run(x)
    return iters * x.shape[0] / (time.perf_counter() - t0)


def torch_peer(model, name, batch, size, iters):
    x = torch.rand(batch, 3, size, size)
    m = copy.deepcopy(model)  # Module.to() converts in place
    if name in ("f32_cl", "bf16_cl"):
        m = m.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    if name == "bf16_cl":
        m = m.to(torch.bfloat16)
        x = x.to(torch.bfloat16)
    with torch.inference_mode():
        return time_it(m, x, iters)


def export_onnx(model, path, batch, size):
    x = torch.rand(batch, 3, size, size)
    args = dict(input_names=["x"], output_names=["y"], opset_version=13)
    try:  # torch >= 2.9 defaults to the dynamo exporter; the TorchScript one is quicker here
        warnings.filterwarnings("ignore", category=DeprecationWarning)  # ... and deprecated
        torch.onnx.export(model, x, path, dynamo=False, **args)
    except TypeError:  # torch < 2.5: no dynamo argument
        torch.onnx.export(model, x, path, **args)
    return x


def onnx_peer(model, threads, batch, size, iters):
    import numpy as np
    import onnxruntime as ort

    path = os.path.join(tempfile.mkdtemp(), "vgg16_features.onnx")
    x = export_onnx(model, path, batch, size)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    xn = x.numpy().astype(np.float32)
    return time_it(lambda a: sess.run(["y"], {"x": a}), xn, iters), "onnxruntime " + ort.__version__


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--peers", default="f32_nchw,f32_cl,bf16_cl,onnx_f32")
    ap.add_argument("--export-onnx", metavar="PATH",
                    help="write the f32 model as ONNX (input x, NCHW; for bench/ort_vgg16.cjs)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    model, origin = vgg16_features()
    model.eval()
    if a.export_onnx:
        export_onnx(model, a.export_onnx, a.batch, a.size)
    print(f"# torch {torch.__version__} ({origin}), mkldnn {torch.backends.mkldnn.is_available()}, "
          f"{torch.get_num_threads()} threads", flush=True)
    for name in a.peers.split(","):
        try:
            if name == "onnx_f32":
                rate, version = onnx_peer(model, a.threads, a.batch, a.size, a.iters)
                print(f"# {version}", flush=True)
            else:
                rate = torch_peer(model, name, a.batch, a.size, a.iters)
        except Exception as e:  # a missing peer is reported, not fatal: the others still run
            print(f"# peer {name} unavailable: {type(e).__name__}: {e}", flush=True)
            continue
        print(f"peer {name} threads={a.threads} batch={a.batch} img_per_s={rate:.2f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
