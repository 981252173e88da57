// The Python module fastsnn._C. It holds no Python functions: importing it runs the static
// TORCH_LIBRARY_IMPL registrations of every csrc/torch/<op>.cpp, which give the ops
// fastsnn::<kernel> (schemas declared in fastsnn/ops/) their CPU and, when built with it,
// CUDA implementations. WITH_CUDA says whether the CUDA kernels were built.
#include <Python.h>

PyMODINIT_FUNC PyInit__C(void) {
  static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  PyObject* m = PyModule_Create(&module);
#ifdef FASTSNN_WITH_CUDA
  const long with_cuda = 1;
#else
  const long with_cuda = 0;
#endif
  if (m != nullptr && PyModule_AddIntConstant(m, "WITH_CUDA", with_cuda) != 0) {
    Py_DECREF(m);
    return nullptr;
  }
  return m;
}
