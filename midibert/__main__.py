import sys

from midibert.cli import main

sys.exit(main())
