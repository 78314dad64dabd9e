"""GGUF models and the llama.cpp inference engine (no LSP types)."""
