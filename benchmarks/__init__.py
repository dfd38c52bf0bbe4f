"""Benchmark layer of InternVQA (`internvqa.bench`, the top-level `benchmarks/` folder).

The top of the layering (DESIGN.md): it may import every other layer, nothing imports it.
It holds what compares engines rather than what scores video:

- `bench`, `bench_cli`, `bench_report`: `vqa-bench` (latency percentiles, throughput,
  memory, accuracy vs MOS and vs the teacher; the table and the PNG report).
- `bench.open_backend` is the one factory that turns an engine reference into a backend:
  a bundle through the runtime's ONNX Runtime / TensorRT backends, a project checkpoint
  through `internvqa.distill.torch_backend` (PyTorch; the same adapter export's parity
  check runs).
- `baseline`: the features+ridge peer baseline (fitted and saved here, not in the runtime).
- `peers`: classic no-reference peers (BRISQUE, NIQE) and libvmaf (full reference) as
  `vqa-bench --peer` engines, torch-free.
- The reproducible suite beside them (`run_suite.py`, `heldout.py`, `bench_*.py`, ...) and its
  committed results (`RESULTS.md`); those scripts run as files (`python benchmarks/x.py`).

Importing this package imports nothing heavy; each module imports what it needs.
"""
