"""``python -m lgae_hep.cli``: the same as the ``lgae-hep`` command."""

from lgae_hep.cli import main

raise SystemExit(main())
