"""A plain PyTorch GPT with exactly the layout of minims' vanilla model (the oracle).

Used by the tests (same weights → same logits and loss) and by `python -m minims.bench`
(same computation timed side by side). Parameters carry minims' names and shapes — Linear
weights are (in, out) and applied as `x @ W` — so a minims `state_dict()` loads as is.
PyTorch is optional (`pip install -e '.[oracle]'`); this module imports it lazily.
"""


def _torch():
    try:
        import torch
    except ImportError as e:
        raise ImportError("the PyTorch oracle needs torch: pip install -e '.[oracle]'") from e
    return torch


def torch_gpt(state, n_head, dtype="float32", requires_grad=True, device="cpu"):
    """Build (params, forward) from a minims vanilla state_dict, its tensors on `device`
    ("cpu", or "cuda" beside minims' CuPy backend).

    forward(idx, targets=None) -> (logits, loss), idx a LongTensor (B, T) on that device.
    """
    torch = _torch()
    F = torch.nn.functional
    params = {k: torch.tensor(v, dtype=getattr(torch, dtype), requires_grad=requires_grad, device=device)
              for k, v in state.items()}
    n_layer = len({k.split(".")[1] for k in state if k.startswith("blocks.")})

    def linear(x, name, bias=True):
        y = x @ params[f"{name}.weight"]
        return y + params[f"{name}.bias"] if bias else y

    def layer_norm(x, name):
        C = x.shape[-1]
        return F.layer_norm(x, (C,), params[f"{name}.weight"], params[f"{name}.bias"], 1e-5)

    def forward(idx, targets=None):
        B, T = idx.shape
        x = params["wte.weight"][idx] + params["wpe.weight"][:T]
        for i in range(n_layer):
            p = f"blocks.{i}"
            h = layer_norm(x, f"{p}.ln1")
            C = h.shape[-1]
            qkv = linear(h, f"{p}.attn.qkv").view(B, T, 3, n_head, C // n_head).permute(2, 0, 3, 1, 4)
            y = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], is_causal=True)
            x = x + linear(y.transpose(1, 2).reshape(B, T, C), f"{p}.attn.proj")
            h = layer_norm(x, f"{p}.ln2")
            x = x + linear(F.gelu(linear(h, f"{p}.mlp.fc"), approximate="tanh"), f"{p}.mlp.proj")
        logits = linear(layer_norm(x, "ln_f"), "lm_head", bias=False)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        return logits, loss

    return params, forward


def torch_adamw(params, lr=1e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1, foreach=False):
    """torch.optim.AdamW with minims' decay rule: matrices only, not the positional table.
    `foreach=False` (the default here) updates one parameter at a time, as minims does;
    None lets PyTorch choose (on a GPU, its faster multi-tensor kernels)."""
    torch = _torch()
    decay = [p for k, p in params.items() if p.ndim >= 2 and k != "wpe.weight"]
    rest = [p for k, p in params.items() if not (p.ndim >= 2 and k != "wpe.weight")]
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": rest, "weight_decay": 0.0}],
                             lr=lr, betas=betas, eps=eps, foreach=foreach)


__all__ = ["torch_gpt", "torch_adamw"]
