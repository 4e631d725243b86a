"""PET methods: per-task modules attached to a backbone's modules by name (see ``models.pet.base`` / ``tuner``)."""
from audio_ticl.models.pet.adapters import AATMethod, AdaptFormerMethod, Bottleneck, HoulsbyMethod, PfeifferMethod
from audio_ticl.models.pet.base import PET_METHODS, PETMethod, create_pet, register_pet
from audio_ticl.models.pet.bitfit import BiasDelta, BitFitMethod
from audio_ticl.models.pet.conformer import ConformerAdapter, ConformerMethod
from audio_ticl.models.pet.convpass import ConvPass, ConvPassMethod
from audio_ticl.models.pet.lora import LoRAMethod, LoRAQV, merge_lora
from audio_ticl.models.pet.prompt import BlockPrompts, VPTDeepMethod, VPTMethod, VPTShallowMethod
from audio_ticl.models.pet.tuner import PLACEMENTS, TaskModules, iter_task_modules, match_targets

__all__ = [
    "PET_METHODS",
    "PLACEMENTS",
    "PETMethod",
    "TaskModules",
    "create_pet",
    "iter_task_modules",
    "match_targets",
    "register_pet",
    "AATMethod",
    "AdaptFormerMethod",
    "BiasDelta",
    "BlockPrompts",
    "BitFitMethod",
    "Bottleneck",
    "ConformerAdapter",
    "ConformerMethod",
    "ConvPass",
    "ConvPassMethod",
    "HoulsbyMethod",
    "LoRAMethod",
    "LoRAQV",
    "PfeifferMethod",
    "VPTDeepMethod",
    "VPTMethod",
    "VPTShallowMethod",
    "merge_lora",
]
