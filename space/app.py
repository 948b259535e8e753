"""The Space's entry point: the spacehooks server with every module of handlers/ loaded.

A Space runs `python app.py` with SPACE_ID, SPACE_HOST and the Space's secrets and variables in
the environment; `spacehooks serve` then binds 0.0.0.0:7860 and refuses to start without a
WEBHOOK_SECRET (see server/settings.py).
"""

import sys
from pathlib import Path

# server/ and handlers/ are uploaded next to this file.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from server.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["serve"]))
