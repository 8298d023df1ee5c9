"""`python -m service.cli`: the convtrain command."""

import sys

from service.cli.main import main

sys.exit(main())
