"""PET methods: per-task modules injected into a backbone's PET sites (see ``models.pet.base``)."""
from audio_ticl.models.pet.base import PET_METHODS, PETMethod, PETSite, create_pet, iter_sites, register_pet
from audio_ticl.models.pet.convpass import ConvPass, ConvPassMethod

__all__ = [
    "PET_METHODS",
    "PETMethod",
    "PETSite",
    "create_pet",
    "iter_sites",
    "register_pet",
    "ConvPass",
    "ConvPassMethod",
]
