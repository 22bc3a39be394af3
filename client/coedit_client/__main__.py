"""``python -m coedit_client``: the remote command line (see :mod:`coedit_client.cli`)."""

import sys

from coedit_client.cli import main

sys.exit(main())
