// The Python module fastsnn._C. It holds no Python functions: importing it runs the static
// TORCH_LIBRARY registrations of every csrc/torch/<op>.cpp, which expose the kernels as
// torch.ops.fastsnn_C.<kernel> (CPU always, CUDA when built with it).
#include <Python.h>

#include <torch/library.h>

// One schema-defining library for the namespace; each op file adds a fragment.
TORCH_LIBRARY(fastsnn_C, m) {}

PyMODINIT_FUNC PyInit__C(void) {
  static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module);
}
