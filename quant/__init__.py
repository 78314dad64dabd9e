"""GGUF models and the llama.cpp inference engine (no LSP types)."""

# llama_cpp before numpy, for every user of this package (engine, synthetic models,
# benchmarks, tests): on a CUDA machine (numpy 2.5, system libstdc++) loading a
# model segfaulted when numpy's libraries had been loaded first.
import llama_cpp  # noqa: F401
