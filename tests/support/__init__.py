"""Test and benchmark tools that are not part of the installed package.

* ``tests.support.synthetic``: the tiny Code Llama-shaped GGUF models (real
  vocabulary, scripted random weights) that every model test uses;
* ``tests.support.llama_server``: llama.cpp's ``llama-server`` built from the
  llama-cpp-python sdist's vendored sources, and a process wrapper to run it.

How it is imported: always as ``tests.support.<module>``, with the repository
root on ``sys.path`` (``tests`` itself is a namespace package, no
``__init__.py``, so pytest keeps importing test modules by their bare names).
``tests/conftest.py`` puts the root there for the test run, and each
``bench/*.py`` script that needs these tools does the same at its top.  From a
shell in the repository root, ``python -m tests.support.synthetic`` and
``python -m tests.support.llama_server`` work as they are (``-m`` puts the
current directory first on ``sys.path``).
"""
