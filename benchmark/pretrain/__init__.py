"""``ticl pretrain``: self-supervised pretraining of a backbone on unlabelled audio (SSAST's MSPM), written in
SSAST's / SSAMBA's checkpoint layout for ``model.init: ssast:<file>`` / ``ssamba:<file>``."""
from audio_ticl.benchmark.pretrain.schema import PretrainConfig, PretrainSource, load_pretrain_config

__all__ = ["PretrainConfig", "PretrainSource", "load_pretrain_config"]
