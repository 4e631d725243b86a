"""Pure-PyTorch models of the audio TI-CL suite: AST backbone, token mixers (GSA / FTA), PET methods, TI-CL wrapper.

Build backbones by name (timm's pattern): ``create_model("ast_base", input_frames=512, mixer="fta")``.
"""
from audio_ticl.models import ast as _ast  # noqa: F401  (registers the AST entrypoints)
from audio_ticl.models.ast import ASTBackbone, Block
from audio_ticl.models.errors import ModelError
from audio_ticl.models.mixers import MIXERS, create_mixer
from audio_ticl.models.pet import PET_METHODS, PETMethod, create_pet
from audio_ticl.models.registry import create_model, list_models, register_model
from audio_ticl.models.ticl import PAD_LOGIT, TaskIncrementalModel

__all__ = [
    "ASTBackbone",
    "Block",
    "MIXERS",
    "ModelError",
    "PAD_LOGIT",
    "PET_METHODS",
    "PETMethod",
    "TaskIncrementalModel",
    "create_mixer",
    "create_model",
    "create_pet",
    "list_models",
    "register_model",
]
