"""Triton kernels, one module per op; installed as ``fastsnn.kernels``.

Each module exposes the same functions as the op's C++ kernels (see the op's contract in
``fastsnn/ops/<op>.py``) and imports triton lazily through that module only.
"""
