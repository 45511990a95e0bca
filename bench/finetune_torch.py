#!/usr/bin/env python3
"""The fine-tuning step of bench/finetune_step.cpp in PyTorch, for bench/RESULTS.md.

torchvision's vgg16().features[24:31] (block5_conv1..3 + ReLU, block5_pool; built here with
torch.nn so torchvision is not needed) + the same mlp head (Flatten, Dense 256 ReLU, Dropout 0.5,
Dense 2), on [N, 512, 14, 14] block4_pool tensors: forward, cross-entropy, backward,
SGD(lr 1e-4, momentum 0.9) step. Images/s of the step and of block5's forward alone.

  /usr/bin/python3 bench/finetune_torch.py [batch=32] [steps=10] [threads=all]
"""
import os
import sys
import time

import torch
from torch import nn

batch = int(sys.argv[1]) if len(sys.argv) > 1 else 32
steps = int(sys.argv[2]) if len(sys.argv) > 2 else 10
threads = int(sys.argv[3]) if len(sys.argv) > 3 else os.cpu_count()
torch.set_num_threads(threads)
torch.manual_seed(1)

layers = []
for _ in range(3):
    layers += [nn.Conv2d(512, 512, 3, padding=1), nn.ReLU(inplace=True)]
block5 = nn.Sequential(*layers, nn.MaxPool2d(2, 2))
head = nn.Sequential(nn.Flatten(), nn.Linear(512 * 7 * 7, 256), nn.ReLU(inplace=True),
                     nn.Dropout(0.5), nn.Linear(256, 2))
model = nn.Sequential(block5, head)
opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
x = torch.rand(batch, 512, 14, 14) * 2
y = torch.arange(batch) % 2
loss_fn = nn.CrossEntropyLoss()


def step():
    opt.zero_grad(set_to_none=True)
    loss = loss_fn(model(x), y)
    loss.backward()
    opt.step()


step()  # warm-up
t0 = time.perf_counter()
for _ in range(steps):
    step()
train_s = time.perf_counter() - t0
with torch.no_grad():
    block5(x)
    t0 = time.perf_counter()
    for _ in range(steps):
        block5(x)
    fwd_s = time.perf_counter() - t0
print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads, "
      f"mkldnn {torch.backends.mkldnn.is_available()}")
print(f"batch {batch}, mlp head, {steps} steps")
print(f"fine-tuning step (fwd+bwd+sgd): {steps * batch / train_s:.2f} img/s "
      f"({1e3 * train_s / steps:.1f} ms/step)")
print(f"block5 forward only:            {steps * batch / fwd_s:.2f} img/s")
