"""Pure core: documents, positions and the text that goes into prompts (no LSP types)."""
