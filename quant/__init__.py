"""GGUF models: catalog, download, quantize, the llama.cpp engine and remote backends.

No LSP types here.  Only ``engine`` and ``quantize`` load llama.cpp's native
library, and they import ``llama_cpp`` before numpy: on a CUDA machine loading a
model segfaulted when numpy's libraries had been loaded first.
"""
