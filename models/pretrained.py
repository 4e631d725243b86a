"""``from_pretrained(source, spec, **model_kwargs)``: a backbone built in the geometry of foreign weights (an
``ASTBackbone``, or the registered model the source names: ``ssamba`` builds an ``SSAMBABackbone``).

    from audio_ticl.models import from_pretrained
    ast = from_pretrained("ast", "audioset_10_10_0.4593.pth", input_frames=512)        # AST, AudioSet
    ssast = from_pretrained("ssast", "SSAST-Base-Frame-400.pth")                      # 128 x 2 frame patches
    hf = from_pretrained("hf", "MIT/ast-finetuned-audioset-10-10-0.4593", keep_head=True)
    amba = from_pretrained("ssamba", "amba_tiny_300.pth", input_frames=512, fstride=10, tstride=10)
    deit = from_pretrained("timm", "deit_base_distilled_patch16_384", input_frames=1024)

The source's describer (``models.convert``) reads width, depth, heads, patch shape, prefix tokens, pooling and,
where the source records it, strides and input size; ``model_kwargs`` override any of them (input length,
strides, ``mixer``, ``pooling``, ``drop_path``, ...). The weights are then loaded through the same factory path as
``model.init: <source>:<spec>`` (strict: a missing or unused key is an error that names it), the position
embedding adapted to the built grid. ``keep_head=True`` attaches the source's classifier (AST's 527-class
AudioSet ``mlp_head``, HF's ``classifier``), frozen, as ``backbone.pretrained_head``: ``pretrained_head(backbone(x))``
gives the source's logits. It is a submodule, so it appears in the backbone's state dict.
"""
from __future__ import annotations

from typing import Any

from audio_ticl.models.ast import ASTBackbone
from audio_ticl.models.convert import CONVERTERS, describe_pretrained
from audio_ticl.models.errors import UnknownNameError
from audio_ticl.models.factory import init_backbone
from audio_ticl.models.registry import create_model

__all__ = ["from_pretrained"]


def from_pretrained(
    source: str, spec: str, *, keep_head: bool = False, init_options: dict[str, Any] | None = None,
    **model_kwargs: Any,
) -> ASTBackbone:
    """Build an ``ASTBackbone`` shaped like ``source:spec``'s weights (``model_kwargs`` override) and load them.

    ``init_options`` go to the converter (e.g. ``{"source_grid": (12, 101)}`` for ``ast``).
    """
    if source not in CONVERTERS:
        raise UnknownNameError(f"unknown weight source {source!r}; registered: {sorted(CONVERTERS)}")
    full = f"{source}:{spec}"
    described = describe_pretrained(full, keep_head=keep_head)
    kwargs = {**described.model_kwargs, **model_kwargs}
    model = kwargs.pop("model", None)  # a registered model name (SSAMBA's); an AST-family source names none
    backbone = create_model(model, **kwargs) if model is not None else ASTBackbone(**kwargs)
    init_backbone(backbone, full, {source: dict(init_options or {})})
    if described.head is not None:
        backbone.pretrained_head = described.head
    return backbone
