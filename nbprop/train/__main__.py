"""python -m nbprop.train: the main job (see nbprop.train.cli)."""

import sys

from nbprop.train.cli import main

sys.exit(main())
