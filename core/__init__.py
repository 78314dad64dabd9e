"""The completion pipeline and its settings: joins context/ and quant/, no LSP types.

context/ and quant/ never import each other; this package is where the two
meet, and server/ (the LSP layer) and the command line both call into it.
"""
