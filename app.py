"""Career Advisor: `python app.py` builds the index if needed and serves the chat in the browser (`advisor serve`)."""

import sys

from advisor.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["serve", *sys.argv[1:]], prog="python app.py"))
