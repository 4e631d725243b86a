"""``python -m audio_ticl.benchmark`` is the ``ticl`` command."""
import sys

from .cli import main

sys.exit(main())
