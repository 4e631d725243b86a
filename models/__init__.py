"""Pure-PyTorch models of the audio TI-CL suite: AST and SSAMBA backbones, token mixers (GSA / FTA), PET methods,
the TI-CL wrapper.

Build backbones by name (timm's pattern): ``create_model("ast_base", input_frames=512, mixer="fta")``, or with
initial weights: ``create_backbone("ast_base", input_frames=512, init="timm:vit_base_patch16_384")``. Every
backbone follows ``models.protocol.Backbone`` (timm's ``forward_features`` / ``forward_head`` names).
"""
from audio_ticl.models import ast as _ast  # noqa: F401  (registers the AST entrypoints)
from audio_ticl.models import ssamba as _ssamba  # noqa: F401  (registers the SSAMBA entrypoints)
from audio_ticl.models.ast import ASTBackbone, Block
from audio_ticl.models.context import ForwardContext, current_context, forward_context
from audio_ticl.models.errors import ModelError
from audio_ticl.models.factory import create_backbone, init_backbone
from audio_ticl.models.init import InitWeights, list_inits, register_init
from audio_ticl.models.mixers import MIXERS, create_mixer
from audio_ticl.models.pet import PET_METHODS, PETMethod, create_pet, register_pet
from audio_ticl.models.pretrained import from_pretrained
from audio_ticl.models.protocol import Backbone, PatchBackbone
from audio_ticl.models.registry import create_model, list_models, model_mixers, register_model
from audio_ticl.models.ssamba import SSAMBABackbone
from audio_ticl.models.ticl import PAD_LOGIT, TaskIncrementalModel

__all__ = [
    "ASTBackbone",
    "Backbone",
    "Block",
    "ForwardContext",
    "InitWeights",
    "MIXERS",
    "ModelError",
    "PAD_LOGIT",
    "PET_METHODS",
    "PETMethod",
    "PatchBackbone",
    "SSAMBABackbone",
    "TaskIncrementalModel",
    "create_backbone",
    "create_mixer",
    "create_model",
    "create_pet",
    "current_context",
    "forward_context",
    "from_pretrained",
    "init_backbone",
    "list_inits",
    "list_mixers",
    "list_models",
    "model_mixers",
    "register_init",
    "register_model",
    "register_pet",
]


def list_mixers() -> list[str]:
    """Every token-mixer name a backbone accepts: the attention mixers (``MIXERS``), then the mixers registered
    models declare for themselves (``model_mixers``: SSAMBA's ``mamba``)."""
    declared = {mixer for name in list_models() for mixer in (model_mixers(name) or ())}
    return [*MIXERS, *sorted(declared - set(MIXERS))]
