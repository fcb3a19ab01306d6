"""``python -m redcore_lite COMMAND``: see :mod:`redcore_lite.cli`."""
from .cli import main

raise SystemExit(main())
