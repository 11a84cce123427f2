"""``python -m tfio_handlers``: the same as the ``tfio-handlers`` command."""

from .cli import main

raise SystemExit(main())
