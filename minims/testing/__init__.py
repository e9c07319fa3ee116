"""Checking tools, shipped with the library so you can run them on your own ops and models
(chainer's `chainer.testing` and `gradient_check`):

- `gradcheck.py`: any op against float64 central differences along random directions, from a
  spec that says how to draw its inputs and how to compute it in NumPy;
- `op_specs.py`: the specs of every op minims registers (they draw inputs with hypothesis, a
  test dependency);
- `causality.py`: the black-box leak checks every language model must pass;
- `torch_gpt.py`: a plain PyTorch GPT with the vanilla model's layout, the reference the tests
  and `python -m minims.bench` compare with (PyTorch is optional).

Nothing here is imported by `import minims`; import the module you need.
"""
